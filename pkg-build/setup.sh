#!/usr/bin/env bash
# Installs what building and testing plmscope needs, skipping whatever is already there.
# Nothing here downloads a prebuilt binary: Rust tools build from crates.io, Chromium comes from
# Debian, wasm-opt from the npm package `binaryen`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32 target"
  rustup target add wasm32-unknown-unknown
fi

# The page's packages (pkg-build/build.sh) rebuild std, with atomics for threads and without panic
# formatting for the rest: a nightly toolchain with its source. PLMSCOPE_NIGHTLY pins one
# (default: the installed `nightly`).
nightly="${PLMSCOPE_NIGHTLY:-nightly}"
if ! rustup run "$nightly" rustc --version >/dev/null 2>&1; then
  say "installing the $nightly toolchain"
  rustup toolchain install "$nightly" --profile minimal --component rust-src
elif [ ! -d "$(rustup run "$nightly" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
  say "adding rust-src to $nightly"
  rustup component add rust-src --toolchain "$nightly"
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen that Cargo.lock holds.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (have: ${have:-none})"
  # Not --locked: the locked webpki-roots of the CLI is missing from the registry mirror.
  cargo install wasm-bindgen-cli --version "$want"
fi

# Fuzzing (pkg-build/fuzz.sh): cargo-fuzz drives libFuzzer on the nightly toolchain above.
if ! command -v cargo-fuzz >/dev/null; then
  say "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing Debian's chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# Mesa's software Vulkan device (lavapipe), on which tests/gpu.rs runs the native wgpu backend:
# the GPU code path checked without a GPU.
if [ ! -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]; then
  say "installing Debian's mesa-vulkan-drivers (lavapipe)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

# The atlas workflow's engine (workflow/Snakefile, pkg-build/workflow-test.sh), from PyPI, in its own venv.
snakemake_venv="$HOME/.cache/plmscope-snakemake"
if ! "$snakemake_venv/bin/snakemake" --version >/dev/null 2>&1; then
  say "installing snakemake into $snakemake_venv"
  python3 -m venv "$snakemake_venv"
  "$snakemake_venv/bin/pip" install --quiet 'snakemake==9.27.1'
fi

if [ ! -x pkg-build/node_modules/.bin/wasm-opt ]; then
  say "installing npm packages of pkg-build/"
  (cd pkg-build && npm ci --no-audit --no-fund)
fi
say "ready"
