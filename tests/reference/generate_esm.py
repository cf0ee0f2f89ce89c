#!/usr/bin/env python3
"""Reference fixtures for plmscope's ESM-2 port, computed with `transformers` (EsmForMaskedLM).

Run once by hand (it needs torch + transformers, which CI never installs):

    pip install torch transformers safetensors
    python tests/reference/generate_esm.py

What it writes under tests/reference/fixtures/:

* `t6_8m/config.json`: the hub config of facebook/esm2_t6_8M_UR50D. Its weights are NOT committed
  (30 MB): they are random, and made deterministically from a counter-based generator
  (splitmix64 of the tensor name and the element index) that plmscope re-implements in
  `src/weights/random.rs`, so the test suite regenerates the very same checkpoint in milliseconds.
* `t6_8m/outputs.safetensors`: transformers' hidden states (all 7) and logits for a few
  sequences. For the ~300-residue sequence only every 10th position (and the last two) are
  kept, to keep the repo small; its logits are kept at every position.
* `tiny/`: a 2-layer, d_model 64 ESM-2 with the same head size (so the same rotary), written both
  as a hub `model.safetensors` and as a fair-esm `.pt` (`{"model": state_dict, "cfg": {"model":
  argparse.Namespace}}`, fair-esm names), with every output at every position.
* The sequences themselves are in each outputs file's metadata.
* `widths/{480,640,1280}/`: 2-layer models at the widths (and head counts) of esm2_t12_35M,
  esm2_t30_150M and esm2_t33_650M, random weights as for t6_8m (seed SEED + 2), their outputs for
  "short" (every position) and "medium" (every 10th position and the last two). `--only-widths`
  writes these alone.
* `sizes.json`: transformers' parameter counts for the 35M/150M/650M configs, which plmscope must
  build from `config.json` alone.

Every parameter is re-randomised (LayerNorm weights around 1, biases around 0), so a loader that
drops or swaps any tensor changes the numbers.
"""

import argparse
import json
import math
import os
import random
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
SEED = 0x5EED_E5A2

VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P",
         "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>",
         "<mask>"]


def hub_config(hidden, layers, heads, ffn):
    """The hub's config.json for an ESM-2 size (values of facebook/esm2_t*_UR50D)."""
    return {
        "architectures": ["EsmForMaskedLM"],
        "attention_probs_dropout_prob": 0.0,
        "classifier_dropout": None,
        "emb_layer_norm_before": False,
        "esmfold_config": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": ffn,
        "is_folding_model": False,
        "layer_norm_eps": 1e-05,
        "mask_token_id": 32,
        "max_position_embeddings": 1026,
        "model_type": "esm",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 1,
        "position_embedding_type": "rotary",
        "token_dropout": True,
        "torch_dtype": "float32",
        "transformers_version": "4.25.0.dev0",
        "use_cache": True,
        "vocab_list": None,
        "vocab_size": 33,
    }


# ---------------------------------------------------------------------------------------------
# The deterministic random checkpoint. Mirrored exactly by src/weights/random.rs: change both.
# ---------------------------------------------------------------------------------------------
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def uniform_pm1(name, n, seed):
    """n float32 values in [-1, 1) on a 2^-23 grid: splitmix64(key + (i+1)·golden), top 24 bits."""
    key = np.uint64((seed ^ fnv1a64(name)) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = key + (np.arange(1, n + 1, dtype=np.uint64) * GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
    return u * np.float32(2.0) - np.float32(1.0)


def init_rule(name, shape):
    """(offset, scale) of a hub tensor: value = offset + scale · U[-1, 1)."""
    if name.endswith("LayerNorm.weight") or name.endswith("layer_norm.weight") \
            or name.endswith("emb_layer_norm_after.weight"):
        return 1.0, 0.2
    if name.endswith("word_embeddings.weight"):
        return 0.0, 1.0
    if name.endswith(".bias"):
        return 0.0, 0.1
    if name.endswith(".weight") and len(shape) == 2:
        return 0.0, 2.0 / math.sqrt(shape[1])
    raise ValueError(f"no init rule for {name} {shape}")


def random_tensor(name, shape, seed):
    offset, scale = init_rule(name, shape)
    v = uniform_pm1(name, int(np.prod(shape)), seed)
    return (np.float32(offset) + v * np.float32(scale)).reshape(shape)


def hub_tensor_shapes(cfg):
    """Name → shape of every tensor in a hub ESM-2 model.safetensors, in file order."""
    d, f, v, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    shapes = {"esm.embeddings.word_embeddings.weight": [v, d]}
    for i in range(n):
        p = f"esm.encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            shapes[p + f"attention.self.{proj}.weight"] = [d, d]
            shapes[p + f"attention.self.{proj}.bias"] = [d]
        shapes[p + "attention.output.dense.weight"] = [d, d]
        shapes[p + "attention.output.dense.bias"] = [d]
        shapes[p + "attention.LayerNorm.weight"] = [d]
        shapes[p + "attention.LayerNorm.bias"] = [d]
        shapes[p + "intermediate.dense.weight"] = [f, d]
        shapes[p + "intermediate.dense.bias"] = [f]
        shapes[p + "output.dense.weight"] = [d, f]
        shapes[p + "output.dense.bias"] = [d]
        shapes[p + "LayerNorm.weight"] = [d]
        shapes[p + "LayerNorm.bias"] = [d]
    shapes["esm.encoder.emb_layer_norm_after.weight"] = [d]
    shapes["esm.encoder.emb_layer_norm_after.bias"] = [d]
    shapes["esm.contact_head.regression.weight"] = [1, n * cfg["num_attention_heads"]]
    shapes["esm.contact_head.regression.bias"] = [1]
    shapes["lm_head.dense.weight"] = [d, d]
    shapes["lm_head.dense.bias"] = [d]
    shapes["lm_head.layer_norm.weight"] = [d]
    shapes["lm_head.layer_norm.bias"] = [d]
    shapes["lm_head.bias"] = [v]
    return shapes


def random_checkpoint(cfg, seed=SEED):
    return {name: random_tensor(name, shape, seed) for name, shape in hub_tensor_shapes(cfg).items()}


# ---------------------------------------------------------------------------------------------
# Running transformers
# ---------------------------------------------------------------------------------------------
def load_model(cfg, hub_tensors):
    model = EsmForMaskedLM(EsmConfig(**cfg))
    model.eval()
    state = model.state_dict()
    loaded = set()
    with torch.no_grad():
        for key, param in state.items():
            hub = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            if hub == "lm_head.decoder.weight":
                hub = "esm.embeddings.word_embeddings.weight"  # tied
            if hub.endswith("inv_freq") or hub.endswith("position_ids"):
                continue
            if hub == "lm_head.decoder.bias":
                hub = "lm_head.bias"
            t = torch.from_numpy(hub_tensors[hub])
            assert tuple(param.shape) == tuple(t.shape), (key, param.shape, t.shape)
            param.copy_(t)
            loaded.add(hub)
    missing = set(hub_tensors) - loaded
    assert not missing, f"hub tensors not used by transformers: {missing}"
    assert model.lm_head.decoder.weight.data_ptr() == model.esm.embeddings.word_embeddings.weight.data_ptr() \
        or torch.equal(model.lm_head.decoder.weight, model.esm.embeddings.word_embeddings.weight)
    return model


def tokenizer():
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "vocab.txt"), "w") as fh:
        fh.write("\n".join(VOCAB) + "\n")
    return EsmTokenizer(os.path.join(d, "vocab.txt"))


def run(model, tok, seqs):
    """hidden states [n, L+1, T, d], logits [n, T, V], pre-final-LN residual [n, T, d], ids, mask."""
    enc = tok(seqs, return_tensors="pt", padding=True)
    captured = {}
    last = model.esm.encoder.layer[-1]
    hook = last.register_forward_hook(lambda m, i, o: captured.__setitem__("res", o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
    hook.remove()
    hs = torch.stack(out.hidden_states, dim=1)
    return hs.numpy(), out.logits.numpy(), captured["res"].numpy(), enc["input_ids"].numpy(), \
        enc["attention_mask"].numpy()


def sequences():
    rng = random.Random(20261122)
    aa = "ACDEFGHIKLMNPQRSTVWY"
    long = "".join(rng.choice(aa) for _ in range(300))
    medium = "".join(rng.choice(aa) for _ in range(25))
    masked = "MSKGEELFTG<mask>VPILVELDGDVNGHK<mask>SVSGEGEGXBUZO"
    return {"short": "MKTAYIAKQR", "masked": masked, "medium": medium, "long": long}


def record(model, tok, seqs, stride_for=None):
    out = {}
    for name, seq in seqs.items():
        hs, logits, res, ids, _ = run(model, tok, [seq])
        hs, logits, res, ids = hs[0], logits[0], res[0], ids[0]
        out[f"{name}.input_ids"] = ids.astype(np.int64)
        out[f"{name}.logits"] = logits.astype(np.float32)
        if stride_for and name in stride_for:
            t = ids.shape[0]
            pos = sorted(set(range(0, t, 10)) | {t - 2, t - 1})
            out[f"{name}.positions"] = np.array(pos, dtype=np.int64)
            # ascontiguousarray: advanced indexing may return a non-C-ordered array, which
            # safetensors.numpy would write in memory order.
            hs, res = np.ascontiguousarray(hs[:, pos]), np.ascontiguousarray(res[pos])
        out[f"{name}.hidden_states"] = hs.astype(np.float32)
        out[f"{name}.residual_pre_ln"] = res.astype(np.float32)
    return out


def check_batch(model, tok, seqs, names):
    """A padded batch must give each sequence the numbers it gets alone (transformers does, to
    float rounding), so plmscope's batches are checked against the sequences' own outputs."""
    hs, logits, _, ids, mask = run(model, tok, [seqs[n] for n in names])
    worst = 0.0
    for row, n in enumerate(names):
        h1, l1, _, _, _ = run(model, tok, [seqs[n]])
        t = int(mask[row].sum())
        worst = max(worst, float(np.abs(hs[row, :, :t] - h1[0]).max()), float(np.abs(logits[row, :t] - l1[0]).max()))
    print(f"  transformers padded batch vs alone: max |Δ| = {worst:.2e}")
    assert worst < 1e-4


def fair_esm_state_dict(hub):
    """The same tensors under fair-esm's ESM2 names (the inverse of plmscope's rename table)."""
    out = {}
    for k, v in hub.items():
        n = k
        for a, b in [("esm.embeddings.word_embeddings", "embed_tokens"), ("esm.encoder.layer.", "layers."),
                     ("esm.encoder.emb_layer_norm_after", "emb_layer_norm_after"),
                     ("esm.contact_head.", "contact_head."),
                     ("attention.self.query", "self_attn.q_proj"), ("attention.self.key", "self_attn.k_proj"),
                     ("attention.self.value", "self_attn.v_proj"), ("attention.output.dense", "self_attn.out_proj"),
                     ("attention.LayerNorm", "self_attn_layer_norm"), ("intermediate.dense", "fc1"),
                     ("output.dense", "fc2"), (".LayerNorm", ".final_layer_norm")]:
            n = n.replace(a, b)
        out[n] = torch.from_numpy(v.copy())
    out["lm_head.weight"] = out["embed_tokens.weight"]  # fair-esm ties the head to the embeddings
    return out


WIDTHS = {480: (20, 1920), 640: (20, 2560), 1280: (20, 5120)}


def widths(tok, seqs):
    """The real sizes' widths at 2 layers: what the full models compute per block, kept small."""
    few = {k: seqs[k] for k in ("short", "medium")}
    for d, (heads, ffn) in WIDTHS.items():
        cfg = hub_config(d, 2, heads, ffn)
        out = os.path.join(OUT, "widths", str(d))
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as fh:
            json.dump(cfg, fh, indent=2)
        model = load_model(cfg, random_checkpoint(cfg, seed=SEED + 2))
        print(f"width {d}")
        save_file(record(model, tok, few, stride_for={"medium"}), os.path.join(out, "outputs.safetensors"), metadata=few)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = tokenizer()
    seqs = sequences()
    widths(tok, seqs)
    if "--only-widths" in sys.argv:
        return

    # Full size: esm2_t6_8M_UR50D.
    cfg = hub_config(320, 6, 20, 1280)
    d8 = os.path.join(OUT, "t6_8m")
    os.makedirs(d8, exist_ok=True)
    with open(os.path.join(d8, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    weights = random_checkpoint(cfg)
    # 7,512,482 on the hub counts the 8 inv_freq values once; they are not parameters.
    assert sum(w.size for w in weights.values()) == 7_512_474
    model = load_model(cfg, weights)
    print("t6_8m")
    outs = record(model, tok, seqs, stride_for={"long"})
    check_batch(model, tok, seqs, ["short", "masked", "medium"])
    save_file(outs, os.path.join(d8, "outputs.safetensors"), metadata=seqs)
    if "--write-checkpoint" in sys.argv:  # only to inspect; never committed
        save_file(weights, os.path.join(d8, "model.safetensors"))

    # Tiny: same head size, 2 layers; committed weights in both formats.
    tcfg = hub_config(64, 2, 4, 128)
    dt = os.path.join(OUT, "tiny")
    os.makedirs(dt, exist_ok=True)
    with open(os.path.join(dt, "config.json"), "w") as fh:
        json.dump(tcfg, fh, indent=2)
    tw = random_checkpoint(tcfg, seed=SEED + 1)
    save_file(tw, os.path.join(dt, "model.safetensors"))
    ns = argparse.Namespace(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
                            encoder_attention_heads=4, token_dropout=True, attention_dropout=0.0,
                            dropout=0.0, arch="ESM-2")
    torch.save({"model": fair_esm_state_dict(tw), "cfg": {"model": ns}, "args": None},
               os.path.join(dt, "esm2_tiny.pt"))
    tmodel = load_model(tcfg, tw)
    print("tiny")
    touts = record(tmodel, tok, seqs)
    check_batch(tmodel, tok, seqs, ["short", "masked", "medium"])
    save_file(touts, os.path.join(dt, "outputs.safetensors"), metadata=seqs)

    # Sizes that must build from config.json alone.
    sizes = {}
    for name, (h, l, a, f) in {"esm2_t12_35M_UR50D": (480, 12, 20, 1920),
                               "esm2_t30_150M_UR50D": (640, 30, 20, 2560),
                               "esm2_t33_650M_UR50D": (1280, 33, 20, 5120)}.items():
        c = hub_config(h, l, a, f)
        with torch.device("meta"):
            m = EsmForMaskedLM(EsmConfig(**c))
        sizes[name] = {"config": c, "transformers_parameters": sum(p.numel() for p in m.parameters())}
    with open(os.path.join(OUT, "sizes.json"), "w") as fh:
        json.dump(sizes, fh, indent=2)
    print("sizes", {k: v["transformers_parameters"] for k, v in sizes.items()})


if __name__ == "__main__":
    main()
