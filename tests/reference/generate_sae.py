#!/usr/bin/env python3
"""Reference fixtures for plmscope's sparse autoencoders and interventions.

Run once by hand after generate_esm.py (needs torch + transformers; CI never installs them):

    python tests/reference/generate_sae.py

It builds small random SAEs in every format plmscope reads, on the random-weight ESM-2 models
of generate_esm.py, and writes under tests/reference/fixtures/sae/:

* the SAE files themselves, in their real formats:
  - `interplm_tiny_l1.pt`: InterPLM ReLU SAE (torch.save of a state dict: bias, encoder.*,
    decoder.weight, activation_rescale_factor, normalize_to_sqrt_d=True as a bool tensor);
  - `interplm_tiny_l2.pt`: the same without the optional keys, at the last layer;
  - `saelens_standard_tiny_l1/`, `saelens_topk_tiny_l1/`, `saelens_jumprelu_tiny_l2/`: SAELens
    folders (cfg.json + sae_weights.safetensors);
  - `interprot_tiny_l1_k8.safetensors`: an InterProt top-k SAE (w_enc, w_dec, b_enc, b_pre;
    per-token normalisation), k in the file name as InterProt names its files;
  - `interplm_t6_l3.pt`: an InterPLM SAE on the full-size esm2_t6_8M (d_sae 256, layer 3).
* `expected.safetensors`: for each SAE and sequence, the features (cls/eos excluded) and the
  logits (and, for the InterPLM tiny SAEs, every hidden state) after an intervention (ablate, clamp on positions, scale) patched in
  with a forward hook as x' = decode(f') + (x - decode(f)); the edits are in the metadata.
"""

import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate_esm as ge  # noqa: E402

OUT = os.path.join(ge.OUT, "sae")


def rand(name, shape, scale, offset=0.0, seed=0xA5E):
    v = ge.uniform_pm1(name, int(np.prod(shape)), seed)
    return torch.from_numpy((np.float32(offset) + v * np.float32(scale)).reshape(shape).copy())


class Sae:
    """One SAE in plmscope's canonical terms (W_enc [d_in, d_sae], W_dec [d_sae, d_in])."""

    def __init__(self, name, d_in, d_sae, kind, norm="none", k=None, rescale=None, b_dec_in=True):
        s = 1.0 / math.sqrt(d_in)
        self.W_enc = rand(name + ".W_enc", [d_in, d_sae], 2.0 * s)
        self.b_enc = rand(name + ".b_enc", [d_sae], 0.3, offset=-0.8)
        self.W_dec = rand(name + ".W_dec", [d_sae, d_in], 2.0 * s)
        self.b_dec = rand(name + ".b_dec", [d_in], 0.3)
        self.threshold = rand(name + ".threshold", [d_sae], 0.1, offset=0.15) if kind == "jumprelu" else None
        self.kind, self.norm, self.k, self.rescale, self.b_dec_in = kind, norm, k, rescale, b_dec_in

    def normalise(self, x):
        """x → (x_n, undo) with undo(x̂_n) = x̂."""
        if self.norm == "sqrt_d":  # InterPLM: unit norm × √d, scaled back with the clamped norm
            d = x.shape[-1]
            norms = x.norm(dim=-1, keepdim=True).clamp(min=1e-8)
            xn = torch.nn.functional.normalize(x, p=2, dim=-1) * math.sqrt(d)
            return xn, lambda y: y * norms / math.sqrt(d)
        if self.norm == "layer_norm":  # InterProt / SAELens: (x - μ) / (σ + eps), σ unbiased
            mu = x.mean(dim=-1, keepdim=True)
            xc = x - mu
            std = xc.std(dim=-1, keepdim=True)
            return xc / (std + 1e-5), lambda y: y * std + mu
        return x, lambda y: y

    def encode(self, x):
        xn, undo = self.normalise(x)
        pre = (xn - self.b_dec if self.b_dec_in else xn) @ self.W_enc + self.b_enc
        if self.kind == "relu":
            f = torch.relu(pre)
        elif self.kind == "topk":
            top = torch.topk(pre, self.k, dim=-1)
            f = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        elif self.kind == "jumprelu":
            f = pre * (pre > self.threshold)
        return f, undo

    def decode(self, f, undo):
        return undo(f @ self.W_dec + self.b_dec)

    # -- the formats ---------------------------------------------------------------------------
    def save_interplm(self, path, optional_keys):
        sd = {"bias": self.b_dec, "encoder.weight": self.W_enc.T.contiguous(), "encoder.bias": self.b_enc,
              "decoder.weight": self.W_dec.T.contiguous()}
        if optional_keys:
            sd["activation_rescale_factor"] = self.rescale
            sd["normalize_to_sqrt_d"] = torch.tensor(self.norm == "sqrt_d", dtype=torch.bool)
        torch.save(sd, path)

    def save_saelens(self, folder, layer):
        os.makedirs(folder, exist_ok=True)
        t = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            t["threshold"] = self.threshold
        save_file({k: v.numpy() for k, v in t.items()}, os.path.join(folder, "sae_weights.safetensors"))
        cfg = {"architecture": {"relu": "standard"}.get(self.kind, self.kind), "d_in": self.W_enc.shape[0],
               "d_sae": self.W_enc.shape[1], "apply_b_dec_to_input": self.b_dec_in,
               "normalize_activations": {"none": "none", "layer_norm": "layer_norm"}[self.norm],
               "hook_name": f"esm.encoder.layer.{layer - 1}", "hook_layer": layer - 1,
               "model_name": "esm2-tiny-random", "dtype": "float32", "device": "cpu"}
        if self.k is not None:
            cfg["k"] = self.k
        with open(os.path.join(folder, "cfg.json"), "w") as fh:
            json.dump(cfg, fh, indent=2)

    def save_interprot(self, path):
        save_file({"w_enc": self.W_enc.numpy(), "w_dec": self.W_dec.numpy(), "b_enc": self.b_enc.numpy(),
                   "b_pre": self.b_dec.numpy()}, path)


def hidden_and_hook_target(model, layer):
    """The module whose output is hidden_states[layer]: block layer-1, or the final LN."""
    n = len(model.esm.encoder.layer)
    return model.esm.encoder.emb_layer_norm_after if layer == n else model.esm.encoder.layer[layer - 1]


def choose_edits(f):
    """Edits that exercise every operation on features that matter for this sequence."""
    r = f.shape[0]
    by_max = torch.argsort(f.max(dim=0).values, descending=True).tolist()
    ablate, scale = by_max[0], by_max[3]
    lo, hi = 3, min(10, r)  # 1-based residues 3..10
    quiet = [j for j in by_max[::-1] if float(f[lo - 1:hi, j].max()) == 0.0]
    clamp = quiet[0] if quiet else by_max[-1]
    return [{"op": "ablate", "feature": ablate, "positions": None},
            {"op": "clamp", "feature": clamp, "value": 0.8, "positions": [lo, hi]},
            {"op": "scale", "feature": scale, "value": 2.0, "positions": None}]


def apply_edits(f, edits):
    g = f.clone()
    for e in edits:
        rows = slice(None) if e["positions"] is None else slice(e["positions"][0] - 1, e["positions"][1])
        j = e["feature"]
        if e["op"] == "ablate":
            g[rows, j] = 0.0
        elif e["op"] == "clamp":
            g[rows, j] = e["value"]
        else:
            g[rows, j] = g[rows, j] * e["value"]
    return g


def record(model, tok, sae, layer, seqs, key, out, meta):
    target = hidden_and_hook_target(model, layer)
    for name, seq in seqs.items():
        enc = tok([seq], return_tensors="pt")
        with torch.no_grad():
            base = model(**enc, output_hidden_states=True)
        x = base.hidden_states[layer][0, 1:-1]  # [R, d], cls/eos excluded
        f, undo = sae.encode(x)
        out[f"{key}.{name}.features"] = f.numpy().astype(np.float32)
        if sae.rescale is not None:
            out[f"{key}.{name}.features_normalized"] = (f / sae.rescale).numpy().astype(np.float32)
        edits = choose_edits(f)
        patched = sae.decode(apply_edits(f, edits), undo) + (x - sae.decode(f, undo))

        def hook(_m, _i, o):
            h = (o[0] if isinstance(o, tuple) else o).clone()
            h[0, 1:-1] = patched
            return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h

        handle = target.register_forward_hook(hook)
        with torch.no_grad():
            after = model(**enc, output_hidden_states=True)
        handle.remove()
        out[f"{key}.{name}.intervened_logits"] = after.logits[0].numpy().astype(np.float32)
        if key.startswith("interplm_tiny"):  # hidden states of the CLI's output; logits elsewhere
            hs = torch.stack(after.hidden_states)[:, 0].clone()
            # transformers records hidden_states[layer] before forward hooks run: put the patch in.
            hs[layer, 1:-1] = patched
            out[f"{key}.{name}.intervened_hidden_states"] = hs.numpy().astype(np.float32)
        meta[f"{key}.{name}.edits"] = edits
        d = (after.logits[0] - base.logits[0]).abs().max().item()
        print(f"  {key} {name}: {int((f > 0).sum())} active, intervention moves logits by {d:.3f}")


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    tok = ge.tokenizer()
    seqs = {k: v for k, v in ge.sequences().items() if k != "long"}
    tiny_cfg = ge.hub_config(64, 2, 4, 128)
    tiny = ge.load_model(tiny_cfg, ge.random_checkpoint(tiny_cfg, seed=ge.SEED + 1))
    t6_cfg = ge.hub_config(320, 6, 20, 1280)
    t6 = ge.load_model(t6_cfg, ge.random_checkpoint(t6_cfg))
    out, meta = {}, {}

    s = Sae("interplm_tiny_l1", 64, 128, "relu", norm="sqrt_d", rescale=rand("interplm_tiny_l1.rescale", [128], 0.5, 1.0))
    s.save_interplm(os.path.join(OUT, "interplm_tiny_l1.pt"), optional_keys=True)
    record(tiny, tok, s, 1, seqs, "interplm_tiny_l1", out, meta)

    s = Sae("interplm_tiny_l2", 64, 128, "relu")
    s.save_interplm(os.path.join(OUT, "interplm_tiny_l2.pt"), optional_keys=False)
    record(tiny, tok, s, 2, seqs, "interplm_tiny_l2", out, meta)

    s = Sae("saelens_standard_tiny_l1", 64, 128, "relu")
    s.save_saelens(os.path.join(OUT, "saelens_standard_tiny_l1"), 1)
    record(tiny, tok, s, 1, seqs, "saelens_standard_tiny_l1", out, meta)

    s = Sae("saelens_topk_tiny_l1", 64, 128, "topk", k=8, norm="layer_norm")
    s.save_saelens(os.path.join(OUT, "saelens_topk_tiny_l1"), 1)
    record(tiny, tok, s, 1, seqs, "saelens_topk_tiny_l1", out, meta)

    s = Sae("saelens_jumprelu_tiny_l2", 64, 128, "jumprelu", b_dec_in=False)
    s.save_saelens(os.path.join(OUT, "saelens_jumprelu_tiny_l2"), 2)
    record(tiny, tok, s, 2, seqs, "saelens_jumprelu_tiny_l2", out, meta)

    s = Sae("interprot_tiny_l1_k8", 64, 128, "topk", k=8, norm="layer_norm")
    s.save_interprot(os.path.join(OUT, "interprot_tiny_l1_k8.safetensors"))
    record(tiny, tok, s, 1, seqs, "interprot_tiny_l1_k8", out, meta)

    s = Sae("interplm_t6_l3", 320, 256, "relu", rescale=rand("interplm_t6_l3.rescale", [256], 0.5, 1.0))
    s.save_interplm(os.path.join(OUT, "interplm_t6_l3.pt"), optional_keys=True)
    record(t6, tok, s, 3, seqs, "interplm_t6_l3", out, meta)

    meta_json = {"sequences": json.dumps(seqs), "edits": json.dumps(meta)}
    save_file(out, os.path.join(OUT, "expected.safetensors"), metadata=meta_json)


if __name__ == "__main__":
    main()
