#!/usr/bin/env bash
# Every test: native (unit tests, parity with transformers, load errors, the CLI), the native
# wgpu backend on a software Vulkan device, the GPU benchmark's smoke run, the atlas
# workflow under Snakemake, a smoke run of every fuzz target, the same parity
# in headless Chromium on burn's WebGPU and CPU backends, and the built page driven by Playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"

echo "== native"
cargo test --release

echo "== the native wgpu backend (Vulkan; here Mesa's software device, lavapipe) against the same fixtures"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# One test at a time: the f16 test counts the device memory its models hold.
cargo test --release --features wgpu --test gpu -- --test-threads=1

echo "== the GPU benchmark, end to end on tiny shapes: the binary it takes to a GPU, on the CPU and lavapipe"
smoke="$(pkg-build/bench/gpu.sh --smoke)"
echo "$smoke"
# Every case timed on both backends, wgpu also with f16 weights (lavapipe has shaderFloat16);
# CUDA timed, or refused in words where the build or the machine lacks it.
grep -Eq "^\| size \| case \| shape \| plmscope-cpu \(ms\) \| plmscope-wgpu \(ms\) \| plmscope-wgpu-f16 \(ms\) " <<< "$smoke" || { echo "the table's columns are not cpu, wgpu, wgpu-f16" >&2; exit 1; }
for row in "8M | forward | 1x20" "8M | sae | 4x20" "8M | intervene | 1x20"; do
  grep -Eq "^\| $row \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ " <<< "$smoke" || { echo "no plmscope-cpu, plmscope-wgpu and plmscope-wgpu-f16 times for $row" >&2; exit 1; }
done
grep -Eq "^- Skipped plmscope-cuda at 8M: .*(\"cuda\" is not in this build|CUDA)|^\| size .*plmscope-cuda" <<< "$smoke" || { echo "CUDA neither timed nor refused in words" >&2; exit 1; }

echo "== the atlas workflow (Snakemake, 3 shards on 2 cores) against one atlas build"
pkg-build/workflow-test.sh

echo "== fuzzing: a short run of every target (pkg-build/fuzz.sh; SECURITY.md has the long run)"
pkg-build/fuzz.sh 15

echo "== wasm in headless Chromium (WebGPU and CPU backends)"
export CHROMEDRIVER=/usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT=900
export WASM_BINDGEN_TEST_ONLY_WEB=1
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/webdriver.json"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo test --release --target wasm32-unknown-unknown --no-default-features --features cpu,webgpu --test web

echo "== the page in headless Chromium"
pkg-build/build.sh
node --test tests/e2e/
