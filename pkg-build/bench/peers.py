"""The peers of plmscope's benchmark: transformers (torch) and onnxruntime on the CPU, on the same
random-weight esm2_t6_8M and 10,240-feature SAE at layer 3 that plmscope builds (the same bits:
tests/reference/generate_esm.py's generator, which src/weights/random.rs reproduces).

    python3 peers.py export OUT_DIR      # model.onnx, model_sae.onnx, model_intervene.onnx, matmul.onnx
    python3 peers.py time OUT_DIR        # JSON lines: {"engine", "threads", "case", "shape", "ms"}

Cases, as in plmscope (src/bench.rs): `forward` (logits), `sae` (logits and the SAE's features
of hidden state 3), `intervene` (feature 17 ablated at layer 3 on every residue, then the rest of
the model: a full forward with a patch, which is what a peer without plmscope's cache runs).
Needs torch, transformers, onnx, onnxruntime; never installed by CI.
"""

import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import generate_esm as g  # noqa: E402

LAYER = 3
D_SAE = 10_240
FEATURE = 17
SHAPES = [(1, 100), (1, 300), (1, 1000), (32, 300)]
CASES = ["forward", "sae", "intervene"]


def random_sae(d_in):
    """src/weights/sae.rs random_interplm(d_in, 10240, SEED ^ layer): InterPLM names, b_enc − 2.5."""
    seed = g.SEED ^ LAYER
    w_enc = g.random_tensor("encoder.weight", (D_SAE, d_in), seed)
    b_enc = g.random_tensor("encoder.bias", (D_SAE,), seed) - np.float32(2.5)
    w_dec = g.random_tensor("decoder.weight", (d_in, D_SAE), seed)
    # Rust's init rule gives every 1-D tensor (0, 0.1); the Python one names hub tensors only.
    b_dec = g.uniform_pm1("bias", d_in, seed) * np.float32(0.1)
    return [torch.from_numpy(np.ascontiguousarray(t)) for t in (w_enc, b_enc, w_dec, b_dec)]


class Case(torch.nn.Module):
    """One benchmark case around transformers' EsmForMaskedLM."""

    def __init__(self, model, sae, case):
        super().__init__()
        self.model, self.case = model, case
        w_enc, b_enc, w_dec, b_dec = sae
        self.register_buffer("w_enc", w_enc)
        self.register_buffer("b_enc", b_enc)
        self.register_buffer("w_dec", w_dec)
        self.register_buffer("b_dec", b_dec)
        if case == "intervene":
            model.esm.encoder.layer[LAYER - 1].register_forward_hook(self.patch)

    def encode(self, x):
        return torch.relu((x - self.b_dec) @ self.w_enc.T + self.b_enc)

    def patch(self, _module, _inputs, output):
        # x' = x + decode(f') − decode(f) = x − f_j · W_dec[:, j] (ablation of feature j).
        h = output[0] if isinstance(output, tuple) else output
        f = self.encode(h)[..., FEATURE : FEATURE + 1]
        h = h - f * self.w_dec[:, FEATURE]
        return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.case == "sae")
        if self.case == "sae":
            return out.logits, self.encode(out.hidden_states[LAYER])
        return out.logits


def build():
    cfg = g.hub_config(320, 6, 20, 1280)
    cfg["attn_implementation"] = "eager"
    model = g.load_model(cfg, g.random_checkpoint(cfg))
    return model, random_sae(320)


def inputs(batch, residues):
    """<cls> residues <eos>, residue i of sequence b = amino acid (7i + 13b + i // 3) mod 20: the
    same formula as src/bench.rs."""
    i = np.arange(residues)
    ids = np.stack([4 + (7 * i + 13 * b + i // 3) % 20 for b in range(batch)]).astype(np.int64)  # tokens 4..23
    ids = np.concatenate([np.zeros((batch, 1), np.int64), ids, np.full((batch, 1), 2, np.int64)], axis=1)
    return ids, np.ones_like(ids)


def export(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model, sae = build()
    ids, mask = inputs(1, 20)
    for case in CASES:
        m = Case(model, sae, case).eval()
        names = ["logits", "features"] if case == "sae" else ["logits"]
        axes = {"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, **{n: {0: "b", 1: "t"} for n in names}}
        path = os.path.join(out_dir, "model.onnx" if case == "forward" else f"model_{case}.onnx")
        with torch.no_grad():
            torch.onnx.export(m, (torch.from_numpy(ids), torch.from_numpy(mask)), path, input_names=["input_ids", "attention_mask"],
                              output_names=names, dynamic_axes=axes, opset_version=17, dynamo=False)
        # A fresh model per case: the intervention's hook stays on its own copy.
        model, sae = build()
    # A bare matmul, to measure the engines' peak: [n, n] · [n, n].
    a = torch.nn.Linear(1024, 1024, bias=False)
    with torch.no_grad():
        torch.onnx.export(a, (torch.zeros(1024, 1024),), os.path.join(out_dir, "matmul.onnx"), input_names=["a"], output_names=["c"],
                          opset_version=17, dynamo=False)
    # The logits of 1×100, for plmscope to check that it runs the same model.
    from safetensors.numpy import save_file
    ids, mask = inputs(1, 100)
    with torch.no_grad():
        logits = Case(*build(), "forward")(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    save_file({"logits": logits[0]}, os.path.join(out_dir, "logits_1x100.safetensors"))
    print(f"ONNX files → {out_dir}", file=sys.stderr)


def median_ms(run, repeats):
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)[len(times) // 2]


def repeats_for(batch, residues):
    return 3 if batch * residues >= 1000 else 7


def emit(engine, threads, case, shape, ms):
    print(json.dumps({"engine": engine, "threads": threads, "case": case, "shape": f"{shape[0]}x{shape[1]}", "ms": round(ms, 2)}), flush=True)


def time_all(out_dir):
    import onnxruntime as ort

    model, sae = build()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        modules = {case: Case(model, sae, case).eval() if case != "intervene" else None for case in CASES}
        for case in CASES:
            m = modules[case] or Case(*build(), case).eval()
            for shape in SHAPES:
                ids, mask = (torch.from_numpy(a) for a in inputs(*shape))
                with torch.no_grad():
                    ms = median_ms(lambda: m(ids, mask), repeats_for(*shape))
                emit("torch", threads, case, shape, ms)
        a = torch.randn(1024, 1024)
        emit("torch", threads, "matmul", (1024, 1024), median_ms(lambda: a @ a, 9))

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        for case in CASES:
            path = os.path.join(out_dir, "model.onnx" if case == "forward" else f"model_{case}.onnx")
            s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            for shape in SHAPES:
                ids, mask = inputs(*shape)
                emit("onnxruntime", threads, case, shape, median_ms(lambda: s.run(None, {"input_ids": ids, "attention_mask": mask}), repeats_for(*shape)))
        s = ort.InferenceSession(os.path.join(out_dir, "matmul.onnx"), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
        emit("onnxruntime", threads, "matmul", (1024, 1024), median_ms(lambda: s.run(None, {"a": x}), 9))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "time"):
        sys.exit(__doc__)
    (export if sys.argv[1] == "export" else time_all)(sys.argv[2])
