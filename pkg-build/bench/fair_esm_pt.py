"""Writes a hub folder's ESM-2 weights as fair-esm names and saves them as fair-esm's checkpoints
are saved (torch.save of {"model": state dict, "cfg": {"model": Namespace}}), so that the `.pt`
loader can be timed and checked beside the hub folder's on one set of weights, at full size.

    python3 fair_esm_pt.py HUB_FOLDER OUT.pt
"""
import argparse
import json
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file

# hub → fair-esm, the reverse of src/weights/rename.rs's FAIR_ESM table.
TABLE = [
    ("esm.embeddings.word_embeddings.", "embed_tokens."),
    ("esm.encoder.emb_layer_norm_after.", "emb_layer_norm_after."),
    ("esm.contact_head.", "contact_head."),
    ("esm.encoder.layer.", "layers."),
    ("attention.self.query.", "self_attn.q_proj."),
    ("attention.self.key.", "self_attn.k_proj."),
    ("attention.self.value.", "self_attn.v_proj."),
    ("attention.output.dense.", "self_attn.out_proj."),
    ("attention.LayerNorm.", "self_attn_layer_norm."),
    ("intermediate.dense.", "fc1."),
    ("output.dense.", "fc2."),
    (".LayerNorm.", ".final_layer_norm."),
]


def fair_name(hub):
    if hub.startswith("lm_head."):
        return "encoder." + hub
    for a, b in TABLE:
        hub = hub.replace(a, b)
    return "encoder.sentence_encoder." + hub


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hub", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    config = json.loads((a.hub / "config.json").read_text())
    tensors = load_file(str(a.hub / "model.safetensors"))
    state = OrderedDict((fair_name(k), v) for k, v in tensors.items() if not k.endswith("position_ids"))
    cfg = argparse.Namespace(
        encoder_layers=config["num_hidden_layers"],
        encoder_embed_dim=config["hidden_size"],
        encoder_ffn_embed_dim=config["intermediate_size"],
        encoder_attention_heads=config["num_attention_heads"],
        token_dropout=config.get("token_dropout", True),
    )
    torch.save({"model": state, "cfg": {"model": cfg}}, a.out)
    print(f"{a.out}: {len(state)} tensors, {a.out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
