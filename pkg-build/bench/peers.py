"""The peers of plmscope's benchmark: transformers (torch) and onnxruntime on the CPU, on the same
random-weight esm2_t6_8M (or the ESM-2 size BENCH_MODEL names) and 10,240-feature SAE at its
middle layer (3) that plmscope builds (the same bits: tests/reference/generate_esm.py's generator,
which src/weights/random.rs reproduces).

    python3 peers.py export OUT_DIR      # model.onnx, model_sae.onnx, model_intervene.onnx, matmul.onnx
    python3 peers.py time OUT_DIR [PLMSCOPE]
        # JSON lines: {"engine", "threads", "case", "shape", "ms"}. With the path of plmscope's
        # CLI, plmscope runs too (`bench-cases --serve`), and the engines take turns run by run.

Cases, as in plmscope (src/bench.rs): `forward` (logits), `sae` (logits and the SAE's features
of hidden state 3), `intervene` (feature 17 ablated at layer 3 on every residue, then the rest of
the model: a full forward with a patch, which is what a peer without plmscope's cache runs).
Needs torch, transformers, onnx, onnxruntime; never installed by CI.
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import generate_esm as g  # noqa: E402
from turns import SIZES, Plmscope, clocked, emit, inputs, take_turns  # noqa: E402

# BENCH_MODEL=35M: another ESM-2 size (turns.SIZES), random weights from the same generator.
SIZE = os.environ.get("BENCH_MODEL", "8M")
HIDDEN, LAYERS, HEADS, FFN = SIZES[SIZE]
LAYER = LAYERS // 2  # src/bench.rs `layer`: 3 of esm2_t6_8M's 6
D_SAE = 10_240
FEATURE = 17
# BENCH_SHAPES=1x100,1x300 narrows a run, as in browser.mjs.
SHAPES = [tuple(map(int, s.split("x"))) for s in os.environ.get("BENCH_SHAPES", "1x100,1x300,1x1000,32x300").split(",")]
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
    cfg = g.hub_config(HIDDEN, LAYERS, HEADS, FFN)
    cfg["attn_implementation"] = "eager"
    model = g.load_model(cfg, g.random_checkpoint(cfg))
    return model, random_sae(HIDDEN)


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


def repeats_for(batch, residues):
    return 3 if batch * residues >= 1000 else 7


def time_all(out_dir, plmscope_binary=None):
    import onnxruntime as ort

    model, sae = build()
    print(json.dumps({"model": SIZE, "layer": LAYER, "layers": LAYERS}), flush=True)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        modules = {case: Case(model, sae, case).eval() if case != "intervene" else Case(*build(), case).eval() for case in CASES}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sessions = {case: ort.InferenceSession(os.path.join(out_dir, "model.onnx" if case == "forward" else f"model_{case}.onnx"), opts,
                                               providers=["CPUExecutionProvider"]) for case in CASES}
        sessions["matmul"] = ort.InferenceSession(os.path.join(out_dir, "matmul.onnx"), opts, providers=["CPUExecutionProvider"])
        plmscope = Plmscope(plmscope_binary, threads, os.path.join(out_dir, "logits_1x100.safetensors"), [f"--size={SIZE}"]) if plmscope_binary else None
        if plmscope:
            print(json.dumps(plmscope.check), flush=True)
        for case in CASES + ["matmul"]:
            for shape in [(1024, 1024)] if case == "matmul" else SHAPES:
                runs = {}
                if case == "matmul":
                    a = torch.randn(1024, 1024)
                    x = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
                    runs["torch"] = clocked(lambda: a @ a)
                    runs["onnxruntime"] = clocked(lambda: sessions["matmul"].run(None, {"a": x}))
                else:
                    ids, mask = inputs(*shape)
                    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
                    m, s = modules[case], sessions[case]
                    runs["torch"] = clocked(lambda: torch_run(m, t_ids, t_mask))
                    runs["onnxruntime"] = clocked(lambda: s.run(None, {"input_ids": ids, "attention_mask": mask}))
                own = plmscope and plmscope.prepare(case, shape)
                if own:
                    runs["plmscope"], gflop = own
                medians = take_turns(runs, 9 if case == "matmul" else repeats_for(*shape))
                for engine, ms in medians.items():
                    emit(engine, threads, case, shape, ms, **({"gflop": gflop} if engine == "plmscope" else {}))
        if plmscope:
            plmscope.close()


def torch_run(module, ids, mask):
    with torch.no_grad():
        module(ids, mask)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("export", "time") or len(sys.argv) > (3 if sys.argv[1] == "export" else 4):
        sys.exit(__doc__)
    (export if sys.argv[1] == "export" else time_all)(*sys.argv[2:])
