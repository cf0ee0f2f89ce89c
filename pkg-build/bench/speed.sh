#!/usr/bin/env bash
# The speed suite: the same random-weight esm2_t6_8M and 10,240-feature SAE through plmscope
# (native, 1 and 2 threads; its CPU wasm build in headless Chromium), transformers on torch and
# onnxruntime (1 and 2 threads), and onnxruntime-web (1 thread, and 2 behind COOP/COEP), on the
# same inputs, in one run. Prints Markdown (pkg-build/bench.sh puts it into BENCHMARKS.md).
# Installs the Python peers (torch, transformers, onnx, onnxruntime) when they are missing;
# the ONNX export is kept in ~/.cache/plmscope-bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
bin="$CARGO_TARGET_DIR/release/plmscope"
# BENCH_MODEL=35M|150M: that ESM-2 size natively (peers.py) and in the CPU build beside
# onnxruntime-web (browser.mjs, plmscope streaming the random hub folder load.mjs also reads).
onnx="$HOME/.cache/plmscope-bench${BENCH_MODEL:+-$BENCH_MODEL}"
python3 -c 'import torch, transformers, onnx, onnxruntime' 2>/dev/null \
  || pip install --quiet torch transformers onnx onnxruntime safetensors >&2
[ -f "$onnx/model_sae.onnx" ] || python3 pkg-build/bench/peers.py export "$onnx" >&2
[ -f www/pkg/bench-cpu/plmscope_bg.wasm ] || PLMSCOPE_BENCH=1 pkg-build/build.sh >&2
results="$(mktemp)"
# Natively plmscope (its CLI as a server), torch and onnxruntime take turns run by run, as the
# browser engines do in browser.mjs.
python3 pkg-build/bench/peers.py time "$onnx" "$bin" >> "$results"
if [ -z "${BENCH_MODEL:-}" ]; then
  "$bin" bench-memory --residues 1000 >> "$results"
else
  repo="$(node -e "import('./www/loader.js').then((m) => console.log(m.MODELS[process.argv[1]].repo))" "$BENCH_MODEL")"
  hub="$HOME/.cache/plmscope-bench/hub/$repo/resolve/main"
  if [ ! -f "$hub/model.safetensors" ]; then
    python3 -c 'import json, sys; print(json.dumps(json.load(open("tests/reference/fixtures/sizes.json"))[sys.argv[1]]["config"]))' "${repo#facebook/}" > "$results.config.json"
    "$bin" random-model --config "$results.config.json" --out "$hub" >&2
  fi
fi
node pkg-build/bench/browser.mjs "$onnx" >> "$results"
python3 pkg-build/bench/report.py < "$results"
cp "$results" "${SPEED_JSONL:-/dev/null}"
rm -f "$results" "$results.config.json"
