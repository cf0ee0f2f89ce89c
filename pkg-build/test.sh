#!/usr/bin/env bash
# Every test: native (unit tests, parity with transformers, load errors, the CLI), the native
# wgpu backend on a software Vulkan device, the atlas
# workflow under Snakemake, a smoke run of every fuzz target, the same parity
# in headless Chromium on burn's WebGPU and CPU backends, and the built page driven by Playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"

echo "== native"
cargo test --release

echo "== the native wgpu backend (Vulkan; here Mesa's software device, lavapipe) against the same fixtures"
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" cargo test --release --features wgpu --test gpu

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
