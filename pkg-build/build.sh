#!/usr/bin/env bash
# Builds the page: its JavaScript bundle and the two WebAssembly packages the page chooses between, so that a visitor downloads only
# the one that will run: www/pkg/gpu (burn-wgpu on WebGPU, with the CPU backend inside so a lost
# device can fall back without another download; the same features as the browser tests, so the
# two share compiled dependencies) and www/pkg/cpu (burn's Flex CPU backend alone, about a tenth of
# the size, for browsers without WebGPU). wasm-opt comes from the npm package binaryen (Debian's
# is too old: its output fails to load).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
export PATH="$PWD/pkg-build/node_modules/.bin:$PATH"

build() { # name, cargo features
  wasm-pack build --release --target web --no-pack --out-dir "www/pkg/$1" --out-name plmscope . \
    -- --no-default-features --features "$2"
  rm -f "www/pkg/$1/.gitignore"
}
build gpu cpu,webgpu
build cpu cpu
# The page's own modules and its npm dependencies (Cytoscape) in one file: nothing from a CDN.
NODE_PATH=pkg-build/node_modules esbuild www/app.js --bundle --format=esm --minify --sourcemap --outfile=www/dist/app.js
for b in gpu cpu; do
  printf 'www/pkg/%s/plmscope_bg.wasm: %s bytes, %s gzipped\n' "$b" \
    "$(stat -c %s www/pkg/$b/plmscope_bg.wasm)" "$(gzip -9 -c www/pkg/$b/plmscope_bg.wasm | wc -c)"
done
