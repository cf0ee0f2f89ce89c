#!/usr/bin/env bash
# The GPU benchmark, one command: plmscope's CLI on its wgpu (and CUDA) backends beside transformers'
# EsmForMaskedLM on torch CUDA (eager and SDPA attention), random weights of the ESM-2 8M, 150M
# and 650M shapes: forward 1×300 and 32×300, forward + SAE, an intervention at the middle layer,
# the atlas build's proteins/s and the peak GPU memory (gpu.py). Prints BENCHMARKS.md's section.
#
#   pkg-build/bench/gpu.sh [BINARY]    # on a GPU machine; about 5 minutes on an H200
#   pkg-build/bench/gpu.sh --smoke     # anywhere (CI): builds, then the CPU, wgpu (a software
#                                      # Vulkan device will do) and CUDA backends (skipped in words
#                                      # where the build or the machine lacks it), 8M, tiny shapes
#
# BINARY: a plmscope built with `--features bench,wgpu` (the GPU machine reaches no registry, so
# it is built beside the sources and carried there: `pkg-build/bench/gpu.sh --build` builds it
# into target-gpu/plmscope and stops). Without BINARY, that path is used. PLMSCOPE_CUDA=1 builds
# the CUDA backend in too: burn's CUDA runtime needs no toolkit to compile, but its cubecl-llvm
# dependency downloads tracel-ai's LLVM bundle from GitHub at build time, which this project's
# machines cannot reach; elsewhere it builds, and `--backend cuda` is timed.
# Needs python3; torch, transformers and numpy where torch is to be timed.
# GPU_SIZES=8M,35M narrows the sizes, BACKENDS=wgpu the backends.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
smoke=""
if [ "${1:-}" = --build ] || [ "${1:-}" = --smoke ]; then
  [ "$1" = --smoke ] && smoke=--smoke
  features=bench,wgpu${PLMSCOPE_CUDA:+,cuda}
  cargo build --release --quiet --features "$features" --bin plmscope
  mkdir -p target-gpu
  cp "$CARGO_TARGET_DIR/release/plmscope" target-gpu/plmscope
  [ -z "$smoke" ] && { echo "target-gpu/plmscope (features $features)"; exit 0; }
fi
bin="${smoke:+target-gpu/plmscope}"
bin="${bin:-${1:-target-gpu/plmscope}}"
[ -x "$bin" ] || { echo "no plmscope at $bin: run pkg-build/bench/gpu.sh --build first" >&2; exit 1; }

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
python3 pkg-build/bench/gpu.py "$bin" $smoke | tee "${GPU_JSONL:-/dev/null}" > "$results"

gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)"
torch="$(python3 -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")' 2>/dev/null || echo 'no torch')"
echo "### GPU: ${gpu:-no GPU (smoke run)} — $(date -u +%Y-%m-%d)"
echo
runs="5 runs"
[ -n "$smoke" ] && runs="1 run (a smoke run: the numbers mean nothing)"
echo "plmscope $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)'), $torch; $(nproc) CPU threads. Median ms of $runs in turns after a warm-up, results read back to the host."
echo
python3 pkg-build/bench/gpu.py report < "$results"
