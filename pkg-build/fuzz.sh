#!/usr/bin/env bash
# Fuzzes every reader of untrusted input with libFuzzer (cargo-fuzz, nightly, AddressSanitizer):
# fuzz/fuzz_targets/{pt,safetensors,sae,text}.rs, SECONDS_EACH seconds each (default 15: the smoke
# run of pkg-build/test.sh). Seeds are made here from the repo's own fixtures and the edit
# grammar's cases, so nothing binary is committed; what a run finds stays in its corpus under
# $HOME/.cache/plmscope-fuzz-corpus. Prints one line per target: executions, peak RSS, crashes.
# A crash fails the script and leaves its input in fuzz/artifacts/TARGET/ (each becomes a test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
export CARGO_TARGET_DIR="${PLMSCOPE_FUZZ_TARGET:-$HOME/.cache/plmscope-fuzz-target}"
corpus="${PLMSCOPE_FUZZ_CORPUS:-$HOME/.cache/plmscope-fuzz-corpus}"
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

fx=tests/reference/fixtures
mkdir -p "$seeds"/{pt,safetensors,sae,text}
cp "$fx"/sae/*.pt "$fx"/tiny/*.pt "$seeds/pt/"
cp "$fx"/tiny/model.safetensors "$seeds/safetensors/"
python3 - "$seeds" <<'PY'
import json, sys, pathlib, struct
seeds = pathlib.Path(sys.argv[1])
# The sae target's input: a u32 length, the first file, the second (fuzz/fuzz_targets/sae.rs).
sae = pathlib.Path("tests/reference/fixtures/sae")
for f in list(sae.glob("*.pt")) + list(sae.glob("*.safetensors")):
    b = f.read_bytes()
    (seeds / "sae" / f.name).write_bytes(struct.pack("<I", len(b)) + b)
for d in sae.iterdir():
    if (d / "cfg.json").exists():
        w = (d / "sae_weights.safetensors").read_bytes()
        (seeds / "sae" / d.name).write_bytes(struct.pack("<I", len(w)) + w + (d / "cfg.json").read_bytes())
out = seeds / "text"
cases = json.load(open("tests/reference/edit_grammar.json"))
for i, (text, _) in enumerate(cases["edits"] + cases["steers"]):
    (out / f"edit{i}").write_text(text)
(out / "fasta").write_text(">a\nMKTAYIAKQR\n>b desc\nMK<mask>A*\n")
(out / "uniprot").write_text(json.dumps({"primaryAccession": "P0X", "sequence": {"value": "MKTAYIAKQR"}, "features": [
    {"type": "Signal", "location": {"start": {"value": 1}, "end": {"value": 3}}},
    {"type": "Domain", "description": "SH3", "location": {"start": {"value": 5}, "end": {"value": 6}}}]}))
(out / "explorer").write_text(json.dumps({"meta": {"model": "facebook/esm2_t6_8M_UR50D"}, "features": [{"layer": 5, "feature": 3, "examples": [
    {"accession": "Q1", "sequence": "MKTAYI", "behavior": "tm", "behavior_segments": [[0, 0], [3, 5]], "feature_segments": [[1, 2]],
     "top_positions": [{"pos": 1, "act": 2.5}], "max_act": 2.5}]}]}))
(out / "graph").write_text(json.dumps({"nodes": [{"id": "behavior:tm", "kind": "behavior"}, {"id": "L2:F1", "kind": "feature", "layer": 2, "feature": 1, "importance": 0.1}],
    "edges": [{"src": "L2:F1", "dst": "behavior:tm", "weight": 0.1, "kind": "feat->behavior"}], "meta": {"behavior": "tm"}}))
(out / "probe").write_text(json.dumps({"format": "plmscope-probe/1", "concept": "Signal", "layer": 1, "input": "residual", "mean": [0.0], "std": [1.0],
    "weights": [0.5], "bias": 0.0, "trainedOn": [], "heldOutProteins": [], "train": {"residues": 1, "positives": 1, "precision": None, "recall": None, "f1": None, "auroc": None}, "heldOut": None}))
PY
# An atlas partial (text) and an atlas zip (pt), made by the CLI when it is built (test.sh builds
# it first): the tiny model and a SAELens fixture over three proteins.
cli="${PLMSCOPE_CLI:-$HOME/.cache/plmscope-target/release/plmscope}"
if [ -x "$cli" ]; then
  # UniProt JSON with annotations, so that the partial holds concept counts too.
  python3 -c 'import json, sys; at = lambda a, b: {"start": {"value": a}, "end": {"value": b}}; print(json.dumps({"results": [
      {"primaryAccession": n, "sequence": {"value": s}, "features": [{"type": "Signal", "location": at(1, 4)}, {"type": "Helix", "location": at(3, 7)}]}
      for n, s in [("a", "MKTAYIAKQRQISFVK"), ("b", "MWLLPAAW"), ("c", "MKKLLAGVSE")]]}))' > "$seeds/atlas.json"
  w=(--model "$fx/tiny" --sae "$fx/sae/saelens_standard_tiny_l1" --layer 1 --corpus "$seeds/atlas.json" --top 2 --sample 3)
  "$cli" atlas build "${w[@]}" --shard 0/2 --out "$seeds/text/atlas-partial" 2>/dev/null
  "$cli" atlas build "${w[@]}" --out "$seeds/pt/atlas.zip" 2>/dev/null
  rm "$seeds/atlas.json"
fi

(cd fuzz && cargo +nightly fuzz build -O >/dev/null 2>&1) || (cd fuzz && cargo +nightly fuzz build -O)
status=0
for target in pt safetensors sae text; do
  mkdir -p "$corpus/$target"
  log=$(mktemp)
  found=0
  # Inputs up to 1 MiB; one allocation over 512 MB, or 2 GB resident, is a finding (the loaders'
  # stated bound: a small multiple of the input).
  if ! (cd fuzz && cargo +nightly fuzz run -O "$target" "$corpus/$target" "$seeds/$target" -- \
        -max_total_time="$seconds" -max_len=1048576 -malloc_limit_mb=512 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    status=1 found=1
    tail -40 "$log"
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz $target: $runs executions in ${seconds} s, peak RSS $rss MB, $( [ $found = 0 ] && echo 'no crash' || echo 'CRASH (fuzz/artifacts)')"
  rm -f "$log"
done
exit $status
