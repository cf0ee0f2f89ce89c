"""The GPU benchmark (pkg-build/bench/gpu.sh): plmscope's CLI on each GPU backend it was built
with, beside transformers' EsmForMaskedLM on torch (CUDA; eager and SDPA attention), on random
weights of ESM-2 shapes, in turns run by run (turns.py).

    python3 gpu.py PLMSCOPE [--smoke]
        # JSON lines: {"engine", "size", "case", "shape", "ms"}, {"engine", "size", "peak_mib"},
        # {"engine", "atlas_proteins_per_s"} and {"engine", "skipped": why}
    python3 gpu.py report < LINES     # those lines as a Markdown section

Cases as in src/bench.rs, at the middle layer of each size: `forward` (logits read back), `sae`
(and a 10,240-feature ReLU SAE's features of that hidden state), `intervene` (feature 17 ablated
there: plmscope runs the blocks after it from its cache, torch a full forward with a hook, which is
what a peer without that cache runs). torch's weights are its own random init of the same
shapes: the times do not depend on the values.

plmscope's GPU backends run twice: the dense layers' weights in f32 and in f16 (`-f16`).
`--smoke` (CI, no GPU): plmscope on the CPU backend, on wgpu (a software Vulkan device will do)
and on CUDA where there is a driver; 8M at tiny shapes; torch on the CPU where it is installed, else skipped.
Peak memory: nvidia-smi's figure for the process (so with its CUDA or Vulkan context), and for
torch also its allocator's peak; none without nvidia-smi.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
from turns import SIZES, Plmscope, clocked, inputs, take_turns  # noqa: E402

SMOKE = "--smoke" in sys.argv
RUN_SIZES = os.environ.get("GPU_SIZES", "8M" if SMOKE else "8M,150M,650M").split(",")
BACKENDS = os.environ.get("BACKENDS", "cpu,wgpu,cuda" if SMOKE else "wgpu,cuda").split(",")
SHAPES = [(1, 20), (4, 20)] if SMOKE else [(1, 300), (32, 300)]
CASES = ["forward", "sae", "intervene"]
ROUNDS = 1 if SMOKE else 5
D_SAE = 10_240
FEATURE = 17


def out(**record):
    print(json.dumps(record), flush=True)


class GpuMemory:
    """The largest GPU memory nvidia-smi reports for `pid` while sampling (MiB), or None."""

    def __init__(self, pid):
        self.pid, self.peak, self.running = str(pid), None, bool(shutil.which("nvidia-smi"))
        if self.running:
            self.thread = threading.Thread(target=self.sample, daemon=True)
            self.thread.start()

    def sample(self):
        while self.running:
            q = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True)
            for line in q.stdout.splitlines():
                pid, _, mib = line.partition(",")
                if pid.strip() == self.pid and mib.strip().isdigit():
                    self.peak = max(self.peak or 0, int(mib))
            time.sleep(0.2)

    def stop(self):
        if self.running:
            self.running = False
            self.thread.join()
        return self.peak


def torch_engines(size):
    """name → (torch module per case) for transformers on torch, or (None, why)."""
    try:
        import torch
        import transformers
    except ImportError as e:
        return None, f"torch or transformers not installed ({e.name})"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not SMOKE:
        return None, "torch sees no CUDA device"
    import generate_esm as g

    hidden, layers, heads, ffn = SIZES[size]
    at = layers // 2
    cfg = g.hub_config(hidden, layers, heads, ffn)
    g = torch.Generator().manual_seed(0)
    w_enc = (torch.randn(D_SAE, hidden, generator=g) * hidden ** -0.5).to(device)
    b_enc = torch.full((D_SAE,), -2.5).to(device)
    w_dec = (torch.randn(hidden, D_SAE, generator=g) * D_SAE ** -0.5).to(device)
    b_dec = torch.zeros(hidden).to(device)

    def encode(h):
        return torch.relu((h - b_dec) @ w_enc.T + b_enc)

    engines = {}
    for attention in ("eager", "sdpa"):
        try:
            model = transformers.EsmForMaskedLM(transformers.EsmConfig(**{**cfg, "attn_implementation": attention})).to(device).eval()
        except (ValueError, ImportError) as e:
            engines[f"torch-{attention}"] = str(e).splitlines()[0]
            continue

        def patch(_module, _inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            h = h - encode(h)[..., FEATURE:FEATURE + 1] * w_dec[:, FEATURE]
            return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

        def run(case, ids, mask, model=model):
            with torch.no_grad():
                hook = model.esm.encoder.layer[at - 1].register_forward_hook(patch) if case == "intervene" else None
                o = model(input_ids=ids, attention_mask=mask, output_hidden_states=case == "sae")
                if case == "sae":
                    encode(o.hidden_states[at]).cpu()
                o.logits.cpu()  # read back, as plmscope does; it waits for the device
                if hook:
                    hook.remove()

        engines[f"torch-{attention}"] = run
    return (engines, torch, device), None


def bench_size(binary, size):
    torch_side, why = torch_engines(size)
    if why:
        out(engine="torch", size=size, skipped=why)
    servers = {}
    # Each GPU backend twice: its dense weights in f32, and in f16 (`--precision f16`).
    for backend, precision in [(b, p) for b in BACKENDS for p in (["f32"] if b == "cpu" else ["f32", "f16"])]:
        name = f"plmscope-{backend}" + ("-f16" if precision == "f16" else "")
        server = Plmscope(binary, os.cpu_count(), options=[f"--backend={backend}", f"--precision={precision}", f"--size={size}"])
        # A backend the build lacks, no device, or no f16 on it: the server ends at its first request.
        try:
            server.ask({"case": "forward", "shape": "1x10"})
            server.ask({"run": True})
        except SystemExit as e:  # its words, from turns.Plmscope
            out(engine=name, size=size, skipped=str(e))
            continue
        servers[name] = (server, GpuMemory(server.process.pid))
    engines, torch, device = torch_side if torch_side else ({}, None, None)
    for name, run in list(engines.items()):
        if isinstance(run, str):
            out(engine=name, size=size, skipped=run)
            del engines[name]
    if torch and device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    mine = GpuMemory(os.getpid())
    for case in CASES:
        for shape in SHAPES:
            runs = {}
            for name, (server, _) in servers.items():
                if case == "intervene" and shape[0] != 1:
                    continue  # plmscope's intervention is on one sequence, from its cache
                server.ask({"case": case, "shape": f"{shape[0]}x{shape[1]}"})
                runs[name] = lambda server=server: server.ask({"run": True})["ms"]
            if torch and (case != "intervene" or shape[0] == 1):
                ids, mask = (torch.from_numpy(a).to(device) for a in inputs(*shape))
                for name, run in engines.items():
                    runs[name] = clocked(lambda run=run: run(case, ids, mask))
            for engine, ms in take_turns(runs, ROUNDS).items():
                out(engine=engine, size=size, case=case, shape=f"{shape[0]}x{shape[1]}", ms=round(ms, 2))
    torch_peak = mine.stop()
    for name, (server, memory) in servers.items():
        server.close()
        peak = memory.stop()
        if name != "plmscope-cpu":
            out(engine=name, size=size, peak_mib=peak)
    if engines:
        allocated = round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None
        out(engine="torch", size=size, peak_mib=torch_peak, allocated_mib=allocated)


def atlas(binary):
    """The atlas of the 8M demo's layer-3 SAE over random proteins, per backend (plmscope only)."""
    for backend in BACKENDS:
        q = subprocess.run([binary, f"--backend={backend}", "bench-atlas", "--proteins", "20" if SMOKE else "500"], capture_output=True, text=True)
        if q.returncode:
            out(engine=f"plmscope-{backend}", skipped=(q.stderr.strip().splitlines() or ["no output"])[-1])
            continue
        out(engine=f"plmscope-{backend}", atlas_proteins_per_s=round(json.loads(q.stdout.splitlines()[0])["proteinsPerSecond"], 1))


def report(lines):
    """The JSON lines as BENCHMARKS.md's section: a table per size, then memory, atlas, skips."""
    records = [json.loads(line) for line in lines if line.startswith("{")]
    engines = list(dict.fromkeys(r["engine"] for r in records if "ms" in r))
    print("| size | case | shape | " + " | ".join(f"{e} (ms)" for e in engines) + " |")
    print("|---|---|---|" + "---:|" * len(engines))
    rows = {}
    for r in records:
        if "ms" in r:
            rows.setdefault((r["size"], r["case"], r["shape"]), {})[r["engine"]] = r["ms"]
    for (size, case, shape), ms in rows.items():
        print(f"| {size} | {case} | {shape} | " + " | ".join(str(ms.get(e, "–")) for e in engines) + " |")
    print()
    for r in records:
        if "peak_mib" in r:
            also = f"; its allocator's peak {r['allocated_mib']} MiB" if r.get("allocated_mib") is not None else ""
            peak = "not measured (no nvidia-smi)" if r["peak_mib"] is None else f"{r['peak_mib']} MiB"
            print(f"- Peak GPU memory, {r['engine']} at {r['size']}: {peak}{also}.")
        elif "atlas_proteins_per_s" in r:
            print(f"- Atlas build (8M, layer 3, random proteins of 50–500 residues), {r['engine']}: {r['atlas_proteins_per_s']} proteins/s.")
        elif "skipped" in r:
            print(f"- Skipped {r['engine']}{' at ' + r['size'] if 'size' in r else ''}: {r['skipped']}.")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--smoke"]
    if args == ["report"]:
        sys.exit(report(sys.stdin))
    if len(args) != 1:
        sys.exit(__doc__)
    for size in RUN_SIZES:
        bench_size(args[0], size)
    atlas(args[0])
