"""Markdown for BENCHMARKS.md from the speed suite's JSON lines (stdin): plmscope natively
(`plmscope bench-cases`), torch and onnxruntime (peers.py), and the browser engines
(browser.mjs). Medians from one run; ratios are plmscope's time ÷ the peer's (< 1: plmscope is
faster)."""

import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
# peers.py's first line: the ESM-2 size and the layer of the SAE and the intervention.
model = next((r for r in rows if "model" in r), {"model": "8M", "layer": 3, "layers": 6})
size = "" if model["model"] == "8M" else f"ESM-2 {model['model']}: "
L = model["layer"]
checks = [r for r in rows if "check" in r]
runs = [r for r in rows if "engine" in r and "ms" in r]
memory = [r for r in rows if r.get("case") == "memory"]
gflop = {(r["case"], r["shape"]): r["gflop"] for r in runs if "gflop" in r}
ms = {(r["engine"], str(r["threads"]), r["case"], r["shape"]): r["ms"] for r in runs}
engines = []
for r in runs:
    key = (r["engine"], str(r["threads"]))
    if key not in engines:
        engines.append(key)

NATIVE = [("plmscope", "1"), ("plmscope", "2"), ("onnxruntime", "1"), ("onnxruntime", "2"), ("torch", "1"), ("torch", "2")]
BROWSER = [("plmscope-wasm", "1"), ("onnxruntime-web", "1"), ("plmscope-wasm", "2"), ("onnxruntime-web", "2"), ("plmscope-webgpu-swiftshader", "1")]
RATIOS = [
    ("plmscope ÷ onnxruntime, 2 threads", ("plmscope", "2"), ("onnxruntime", "2")),
    ("plmscope ÷ torch, 2 threads", ("plmscope", "2"), ("torch", "2")),
    ("wasm: plmscope ÷ onnxruntime-web, 1 thread", ("plmscope-wasm", "1"), ("onnxruntime-web", "1")),
    ("wasm: plmscope ÷ onnxruntime-web, 2 threads (cross-origin isolated)", ("plmscope-wasm", "2"), ("onnxruntime-web", "2")),
]


def name(e):
    return f"{e[0]} ({e[1]} thread{'s' if e[1] != '1' else ''})"


for c in {c["check"]: c for c in checks}.values():  # each plmscope run checks; one line says it
    print(f"Same model: {c['check']}: max |Δ| = {c['max_abs_diff']:.2e} over {c['n']} values.\n")

print("### Matmul peak ([1024, 1024] · [1024, 1024], 2.15 GFLOP)\n")
print("| engine | ms | GFLOP/s |")
print("|---|---|---|")
for e in engines:
    t = ms.get((*e, "matmul", "1024x1024"))
    if t:
        print(f"| {name(e)} | {t:.1f} | {2 * 1024**3 / t / 1e6:.1f} |")
print()

for case, title in [("forward", f"{size}Forward (logits, every hidden state kept)"), ("sae", f"{size}Forward + SAE encode at layer {L} (10,240 features, every position)"),
                    ("intervene", f"{size}Intervention at layer {L} (feature 17 ablated; plmscope re-runs blocks {L + 1}–{model['layers']} from its cache, the peers a full forward with a patch)")]:
    shapes = [s for s in ["1x100", "1x300", "1x1000", "32x300"] if (case, s) in gflop]
    if not shapes:
        continue
    print(f"### {title}\n")
    for group, label in [(NATIVE, "native"), (BROWSER, "in headless Chromium")]:
        cols = [e for e in group if any((*e, case, s) in ms for s in shapes)]
        if not cols:
            continue
        print(f"{label}: median ms (GFLOP/s)\n")
        print("| shape | GFLOP | " + " | ".join(name(e) for e in cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for s in shapes:
            g = gflop[(case, s)]
            cells = []
            for e in cols:
                t = ms.get((*e, case, s))
                cells.append(f"{t:.1f} ({g / t * 1e3:.1f})" if t else "–")
            print(f"| {s} | {g:.2f} | " + " | ".join(cells) + " |")
        print()
    present = [(label, a, b) for label, a, b in RATIOS if any((*a, case, s) in ms and (*b, case, s) in ms for s in shapes)]
    if present:
        print("| shape | " + " | ".join(label for label, _, _ in present) + " |")
        print("|---|" + "---|" * len(present))
        for s in shapes:
            cells = []
            for _, a, b in present:
                ta, tb = ms.get((*a, case, s)), ms.get((*b, case, s))
                cells.append(f"{ta / tb:.2f}" if ta and tb else "–")
            print(f"| {s} | " + " | ".join(cells) + " |")
        print()

if memory:
    print("### Memory: one protein's features at every layer (the 10,240-feature demo SAE at each of the 6)\n")
    print("Native: resident set (/proc/self/status) after loading the model and the six SAEs, and its peak after one")
    print("forward pass and the features of every layer as the page computes them; in the browser: the CPU build's")
    print("wasm heap after loading and after the same calls of the page (the heap never shrinks: its size is the peak).\n")
    print("| engine | protein | after loading, MB | peak, MB |")
    print("|---|---|---|---|")
    for r in memory:
        print(f"| {r['engine']} | {r['shape'].split('x')[1]} residues | {r['loadedMb']} | {r['peakMb']} |")
    print()
    native = next((r for r in memory if "denseBytes" in r["layers"][0]), None)
    if native:
        print("Features per layer (random demo SAEs, their bias shifted by −2.5; trained SAEs fire far fewer features):\n")
        print("| layer | features per residue (L0) | dense [residues, 10,240] f32, MB | sparse lists, MB |")
        print("|---|---|---|---|")
        for l in native["layers"]:
            print(f"| {l['layer']} | {l['l0']:.0f} | {l['denseBytes'] / 2**20:.1f} | {l['sparseBytes'] / 2**20:.1f} |")
        print()
