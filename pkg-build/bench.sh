#!/usr/bin/env bash
# Runs the benchmarks and writes BENCHMARKS.md. Timings are medians within one run on this
# machine; compare ratios, not milliseconds across machines.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
cargo build --release --bin plmscope
bin="$CARGO_TARGET_DIR/release/plmscope"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`pkg-build/bench.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m)); native CPU build (burn Flex backend)."
  echo
  echo "## Speed against the peers (pkg-build/bench/speed.sh)"
  echo
  echo "The same random-weight esm2_t6_8M and 10,240-feature SAE (layer 3) in every engine, the same inputs,"
  echo "one run: plmscope natively (burn Flex with its SIMD kernels and rayon; RAYON_NUM_THREADS 1 and 2),"
  echo "transformers on torch and onnxruntime (intra-op threads 1 and 2) on peers.py's ONNX export, and in"
  echo "headless Chromium plmscope's CPU builds (wasm SIMD; in a module worker, as the page runs them) beside"
  echo "onnxruntime-web 1.30 on the same ONNX files: 1 thread without isolation, as GitHub Pages serves, and"
  echo "2 threads behind COOP/COEP (plmscope's cpu-threads build, which sw.js gives the page there). In the"
  echo "browser, plmscope and onnxruntime-web share a page and take turns run by run, so that both see the"
  echo "same spells of this noisy machine; natively, peers.py runs torch and onnxruntime and drives"
  echo "plmscope's CLI (\`bench-cases --serve\`), and the three take turns the same way. Results"
  echo "are read back in every engine. GFLOP counts the multiply-adds (×2) of the work the case needs; for"
  echo "the intervention that is plmscope's (blocks after layer 3 from its cache), so a peer's GFLOP/s there"
  echo "is an effective rate. WebGPU is not timed here: Chromium's software adapter says nothing about a GPU"
  echo "(\`node pkg-build/bench/browser.mjs DIR --webgpu\` adds it as a record)."
  echo
  echo "One bias of taking turns natively, measured and not corrected: onnxruntime's intra-op threads go on"
  echo "spinning for longer than the 25 ms pause after its run, and slow the engine that runs next. At 1×100 on"
  echo "2 threads plmscope took 21–23 ms alone and 27–36 ms in turns with onnxruntime; with onnxruntime's"
  echo "spinning off (session.intra_op.allow_spinning 0), 21.9 ms in turns, with onnxruntime at 22.4. With"
  echo "pauses of 0.1–1 s its threads go to sleep as well: plmscope then took 25.8–29.0 ms and onnxruntime"
  echo "29.2–31.2. So the short native shapes on 2 threads lean towards onnxruntime."
  echo
  cat pkg-build/bench/changes.md
  echo
  pkg-build/bench/speed.sh
  echo
  echo "## An intervention at layer L against a full forward"
  echo
  echo "esm2_t6_8M shape with random weights, one 300-residue sequence, a 10,240-feature ReLU SAE at layer L,"
  echo "one feature ablated on every residue. The intervention starts from the cached forward pass and the SAE"
  echo "encoding the page already shows, so it costs the patch and the blocks after L (plus the LM head)."
  echo "The encode column is the one-off cost of showing a layer's features."
  echo
  "$bin" bench
  echo
  echo "## The page (CPU build): Run → heatmap, circuits"
  echo
  echo "Headless Chromium, the CPU (WebAssembly) build as the page picks it (sw.js isolates the page, so the cpu-threads package on 2 threads), random esm2_t6_8M weights and the demo's random"
  echo "10,240-feature SAE, weights already in memory (a second visit reads them from the Cache API)."
  echo
  node pkg-build/bench-page.mjs
  echo
  echo "## Circuits"
  echo
  echo "The cost of a circuit is one forward per protein (selection) and then, per ablated feature, the"
  echo "blocks from its layer to the last layer read: (features ablated) × (layers after L), not more."
  echo
  "$bin" bench-circuit
  echo
  echo "The page's times for the same circuits are in the previous section."
  echo
  echo "## The feature atlas"
  echo
  echo "\`plmscope bench-atlas\`: the atlas of the demo's random 10,240-feature SAE at layer 3 (random esm2_t6_8M"
  echo "weights) over random proteins of 50–500 residues, through the session as \`atlas build\` runs it. The"
  echo "demo SAE fires on thousands of features a residue, far denser than a trained one; \`--top-k 32\` keeps"
  echo "the 32 largest per residue, a trained top-k SAE's sparsity. One JSON line per run; with --merge, the"
  echo "two shards' merge (parsing the partials, merging, the direct effects, the files) and that it equals"
  echo "the single build."
  echo
  echo '```'
  for t in 1 2; do RAYON_NUM_THREADS=$t "$bin" bench-atlas --proteins 500 --top-k 32 --merge; done
  RAYON_NUM_THREADS=2 "$bin" bench-atlas --proteins 200
  echo '```' 
  echo
  echo "## Steered generation and SAE training"
  echo
  echo "A generation round is one forward with the steered layer's features patched; the fixed part of a"
  echo "run is the unsteered pseudo-log-likelihood (one masked forward per residue, 16 per batch) and the"
  echo "final encode. Training steps are timed after the first; the CPU build's numbers (from its own"
  echo "controls) are in the section on the page above."
  echo
  "$bin" bench-design
  echo
  echo "## Wasm sizes"
  echo
  echo "| package | wasm (release, wasm-opt -O) | gzip -9 |"
  echo "|---|---|---|"
  for p in gpu cpu cpu-threads; do
    f="www/pkg/$p/plmscope_bg.wasm"
    [ -f "$f" ] && echo "| www/pkg/$p | $(du -b "$f" | awk '{printf "%.2f MB", $1/1e6}') | $(gzip -9c "$f" | wc -c | awk '{printf "%.2f MB", $1/1e6}') |"
  done
  echo
  echo "A browser without WebGPU downloads only one CPU package: cpu-threads when the page is cross-origin isolated, else cpu."
  echo
  cat pkg-build/bench/sizes.md
} > BENCHMARKS.md
cat BENCHMARKS.md
