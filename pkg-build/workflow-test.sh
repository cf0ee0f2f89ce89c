#!/usr/bin/env bash
# The atlas workflow (workflow/Snakefile) run by Snakemake on 2 cores, 3 shards and a merge,
# against one `plmscope atlas build` over the same corpus: every file must be the same; the same
# for its SAE training from harvested shards against `train-sae` on the whole FASTA.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
bin="$CARGO_TARGET_DIR/release/plmscope"
snakemake="${PLMSCOPE_SNAKEMAKE:-$HOME/.cache/plmscope-snakemake/bin/snakemake}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model="$PWD/tests/reference/fixtures/tiny"
sae="$PWD/tests/reference/fixtures/sae/saelens_standard_tiny_l1"
python3 - "$work/corpus.fasta" <<'PY'
import random, sys
random.seed(17)
with open(sys.argv[1], "w") as f:
    for i in range(24):
        f.write(f">W{i:02d}\n{''.join(random.choice('ACDEFGHIKLMNPQRSTVWY') for _ in range(random.randint(20, 80)))}\n")
PY
"$snakemake" -s "$PWD/workflow/Snakefile" --directory "$work" --cores 2 --quiet all \
  --config plmscope="$bin" model="$model" sae="$sae" layer=1 corpus="$work/corpus.fasta" shards=3 out="$work/run" description="24 random proteins"
RAYON_NUM_THREADS=1 "$bin" atlas build --model "$model" --sae "$sae" --layer 1 --corpus "$work/corpus.fasta" --description "24 random proteins" --out "$work/single"
# Snakemake marks a directory output with a timestamp file of its own.
diff -r -x .snakemake_timestamp "$work/run/atlas" "$work/single"
echo "the workflow's atlas (3 shards, merged) equals a single build: $(find "$work/single" -type f | wc -l) files"

# SAE training at scale: 3 harvest shards and one training job on them against `train-sae` on the
# whole FASTA: the same weights, bit for bit.
train="--steps 30 --d-sae 64 --k 8 --batch 128 --seed 3"
"$snakemake" sae -s "$PWD/workflow/Snakefile" --directory "$work" --cores 2 --quiet all \
  --config plmscope="$bin" model="$model" layer=1 corpus="$work/corpus.fasta" shards=3 out="$work/run" train="$train"
# shellcheck disable=SC2086
RAYON_NUM_THREADS=1 "$bin" train-sae --model "$model" --layer 1 $train --fasta "$work/corpus.fasta" --out "$work/sae-single" 2>/dev/null
cmp "$work/run/sae/sae_weights.safetensors" "$work/sae-single/sae_weights.safetensors"
echo "the workflow's SAE (3 harvest shards, one training job) equals train-sae on the whole FASTA: $(stat -c %s "$work/sae-single/sae_weights.safetensors") bytes of weights"

# The publishing script (pkg-build/atlas/publish.sh, which .github/workflows/atlas.yml runs against
# the real hosts) against local mirrors of the hub and of UniProt's search: the CLI's random
# esm2_t6_8M-shaped model, the t6 InterPLM-format SAE fixture at layers 1 and 2, 12 entries.
mirror="$work/mirror"
mkdir -p "$mirror/facebook/esm2_t6_8M_UR50D/resolve/main"
"$bin" random-model --out "$mirror/facebook/esm2_t6_8M_UR50D/resolve/main" 2>/dev/null
for layer in 1 2; do
  mkdir -p "$mirror/Elana/InterPLM-esm2-8m/resolve/main/layer_$layer"
  cp tests/reference/fixtures/sae/interplm_t6_l3.pt "$mirror/Elana/InterPLM-esm2-8m/resolve/main/layer_$layer/ae_normalized.pt"
done
python3 - "$work/corpus.fasta" "$mirror/uniprot.json" <<'PY'
import json, sys
records = open(sys.argv[1]).read().split(">")[1:13]
entries = [{"primaryAccession": r.split("\n")[0], "sequence": {"value": "".join(r.split("\n")[1:])},
            "features": [{"type": "Transmembrane", "location": {"start": {"value": 2}, "end": {"value": 9}}}]} for r in records]
json.dump({"results": entries}, open(sys.argv[2], "w"))
PY
port=$((9300 + RANDOM % 500))
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$mirror" >/dev/null 2>&1 &
server=$!
trap 'kill $server; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
HUB="http://127.0.0.1:$port" UNIPROT="http://127.0.0.1:$port/uniprot.json" PROTEINS=12 LAYERS="1 2" SHARDS=2 \
  pkg-build/atlas/publish.sh "$work/site" 2>&1 | tail -1
# One thread, as each shard job has: burn's matmul sums in another order on other thread counts.
RAYON_NUM_THREADS=1 "$bin" atlas build --model "$mirror/facebook/esm2_t6_8M_UR50D/resolve/main" --sae tests/reference/fixtures/sae/interplm_t6_l3.pt \
  --layer 2 --corpus "$mirror/uniprot.json" --description "Swiss-Prot sample, 12 reviewed entries of 50-1022 residues" --out "$work/layer2" 2>/dev/null
# The names differ (the script names what it downloaded); everything counted is the same.
python3 - "$work/site/atlas/layer_2" "$work/layer2" <<'PY'
import json, os, sys
a, b = sys.argv[1], sys.argv[2]
ma, mb = (json.load(open(os.path.join(d, "manifest.json"))) for d in (a, b))
for m in (ma, mb):
    m["subject"]["sae"]["name"] = m["subject"]["model"]["name"] = None
assert ma == mb, "the published manifest differs from a direct build's"
for f in sorted(os.listdir(os.path.join(a, "blocks"))):
    assert open(os.path.join(a, "blocks", f)).read() == open(os.path.join(b, "blocks", f)).read(), f
print(f"the published atlas of layer 2 equals a direct build: {ma['proteins']} proteins, {ma['blocks']} blocks")
PY
