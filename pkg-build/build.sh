#!/usr/bin/env bash
# Builds the page: its JavaScript bundle and the three WebAssembly packages the page chooses between, so that a visitor downloads only
# the one that will run: www/pkg/gpu (burn-wgpu on WebGPU alone: a lost device moves the worker to
# the CPU package, as a browser without WebGPU starts on it), www/pkg/cpu (burn's Flex CPU backend
# alone, for browsers without WebGPU) and www/pkg/cpu-threads (the same on several threads, for a
# cross-origin isolated page). wasm-opt comes from the npm package binaryen (Debian's
# is too old: its output fails to load).
# PLMSCOPE_BENCH=1 builds the same three with the `bench` feature (the speed suite's cases,
# benchPrepare/benchRun) as www/pkg/bench-{gpu,cpu,cpu-threads} for pkg-build/bench/ instead:
# the page's packages never carry them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
export PATH="$PWD/pkg-build/node_modules/.bin:$PATH"

# wasm-opt -O in place. It takes minutes on the larger packages (6 on gpu), and its output depends
# only on its input and its version, so results are kept by the hash of both (like cargo's target
# directory, outside the repo): a rebuild of unchanged Rust costs a copy.
opt_cache="${PLMSCOPE_WASM_OPT_CACHE:-$HOME/.cache/plmscope-wasm-opt}"
opt() { # file
  mkdir -p "$opt_cache"
  local key
  key=$( { wasm-opt --version; cat "$1"; } | sha256sum | cut -c1-40)
  if [ ! -f "$opt_cache/$key.wasm" ]; then
    wasm-opt -O "$1" -o "$opt_cache/$key.tmp"
    mv "$opt_cache/$key.tmp" "$opt_cache/$key.wasm"
  fi
  cp "$opt_cache/$key.wasm" "$1"
  # Only the newest results are worth keeping: every Rust change makes new ones.
  ls -t "$opt_cache"/*.wasm | tail -n +13 | xargs -r rm -f
}

prefix="" extra=""
if [ "${PLMSCOPE_BENCH:-}" = 1 ]; then prefix="bench-" extra=",bench"; fi

# The gpu and cpu packages abort on a panic without formatting it (`-C panic=immediate-abort`, on
# the nightly toolchain's rebuilt std): a panic is a trap either way, and the page shows the trap
# and restarts the engine, never the panic's message (console_error_panic_hook wrote that to the
# console only). Every panic site's message and location go, 8 % of the cpu package gzipped.
# Flags other than the stable build's, so a target directory of their own. They go in as --config,
# which adds to .cargo/config.toml's flags (simd128), where RUSTFLAGS would replace them.
abort_target="${CARGO_TARGET_DIR}-abort"
build() { # name, cargo features
  RUSTUP_TOOLCHAIN="${PLMSCOPE_NIGHTLY:-nightly}" CARGO_TARGET_DIR="$abort_target" \
    cargo build --config 'target.wasm32-unknown-unknown.rustflags=["-Zunstable-options", "-Cpanic=immediate-abort"]' \
    --release --lib --target wasm32-unknown-unknown -Z build-std=std,panic_abort \
    --no-default-features --features "$2$extra"
  wasm-bindgen --target web --out-dir "www/pkg/$prefix$1" --out-name plmscope "$abort_target/wasm32-unknown-unknown/release/plmscope.wasm"
  opt "www/pkg/$prefix$1/plmscope_bg.wasm"
}
build gpu webgpu
build cpu cpu
# www/pkg/cpu-threads: the CPU build on rayon's Web Workers, for a cross-origin isolated page
# (sw.js makes it so). Threads share the wasm memory, which needs std rebuilt with atomics: a
# nightly toolchain's `-Z build-std` (setup.sh installs it). Every crate then builds with other
# flags, so it has a target directory of its own.
# The module imports one shared memory and exports what wasm-bindgen needs to set up each thread's
# TLS: those link arguments go to the last crate only (`cargo rustc`). The 4 GiB limit stays in
# RUSTFLAGS, where every dependency was built with it: moving it would rebuild them all. Panics
# abort without formatting here too (a trap in any thread, as plain panic=abort was).
threads_target="${CARGO_TARGET_DIR}-threads"
RUSTUP_TOOLCHAIN="${PLMSCOPE_NIGHTLY:-nightly}" CARGO_TARGET_DIR="$threads_target" \
  RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C link-arg=--max-memory=4294967296 -Zunstable-options -Cpanic=immediate-abort" \
  cargo rustc --release --lib --target wasm32-unknown-unknown -Z build-std=panic_abort,std \
  --no-default-features --features "threads$extra" -- -C link-arg=--shared-memory -C link-arg=--import-memory \
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
  -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
wasm-bindgen --target web --out-dir "www/pkg/${prefix}cpu-threads" --out-name plmscope "$threads_target/wasm32-unknown-unknown/release/plmscope.wasm"
opt "www/pkg/${prefix}cpu-threads/plmscope_bg.wasm"
[ -n "$prefix" ] && exit 0
# The page's own modules and its npm dependencies, and the app shell sw.js keeps.
pkg-build/bundle.sh
for b in gpu cpu cpu-threads; do
  printf 'www/pkg/%s/plmscope_bg.wasm: %s bytes, %s gzipped\n' "$b" \
    "$(stat -c %s www/pkg/$b/plmscope_bg.wasm)" "$(gzip -9 -c www/pkg/$b/plmscope_bg.wasm | wc -c)"
done
