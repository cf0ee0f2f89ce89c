#!/usr/bin/env bash
# The atlases published beside the page: for each default SAE layer (Elana/InterPLM-esm2-8m
# layer_N/ae_normalized.pt on facebook/esm2_t6_8M_UR50D), the atlas over a Swiss-Prot sample
# (reviewed entries of at most 1,022 residues, with their annotations), built by the Snakemake
# workflow (workflow/Snakefile) and written to OUT/atlas/layer_N/, where the page looks for it.
#   pkg-build/atlas/publish.sh OUT
# Environment (defaults are the real hosts; the tests point them at local mirrors):
#   HUB       a mirror of the hub's paths            (https://huggingface.co)
#   UNIPROT   a UniProt REST search, JSON, ≤ 500 a page (reviewed, length 50–1022, annotations)
#   PROTEINS  entries in the sample                   (20000)
#   LAYERS    the layers                              (1 2 3 4 5 6)
#   SHARDS    shards per layer                        (the cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "$1")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plmscope-target}"
bin="$CARGO_TARGET_DIR/release/plmscope"
snakemake="${PLMSCOPE_SNAKEMAKE:-$HOME/.cache/plmscope-snakemake/bin/snakemake}"
hub="${HUB:-https://huggingface.co}"
fields="accession,sequence,ft_transmem,ft_signal,ft_binding,ft_motif,ft_domain,ft_helix,ft_strand,ft_turn"
uniprot="${UNIPROT:-https://rest.uniprot.org/uniprotkb/search?format=json&size=500&fields=$fields&query=reviewed:true%20AND%20length:%5B50%20TO%201022%5D}"
proteins="${PROTEINS:-20000}"
layers="${LAYERS:-1 2 3 4 5 6}"
shards="${SHARDS:-$(nproc)}"
work="$out/.work"
mkdir -p "$work/model" "$out/atlas"

get() { curl --fail --silent --show-error --location --retry 3 -o "$2" "$1"; }
get "$hub/facebook/esm2_t6_8M_UR50D/resolve/main/config.json" "$work/model/config.json"
get "$hub/facebook/esm2_t6_8M_UR50D/resolve/main/model.safetensors" "$work/model/model.safetensors"
python3 pkg-build/atlas/fetch_uniprot.py "$uniprot" "$proteins" "$work/swissprot.json"
start=$(date +%s)
for layer in $layers; do
  mkdir -p "$work/sae_$layer"
  get "$hub/Elana/InterPLM-esm2-8m/resolve/main/layer_$layer/ae_normalized.pt" "$work/sae_$layer/ae_normalized.pt"
  "$snakemake" -s "$PWD/workflow/Snakefile" --directory "$work" --cores "$shards" --quiet all \
    --config plmscope="$bin" model="$work/model" sae="$work/sae_$layer/ae_normalized.pt" layer="$layer" \
      corpus="$work/swissprot.json" shards="$shards" out="$work/layer_$layer" \
      description="Swiss-Prot sample, $proteins reviewed entries of 50-1022 residues"
  rm -rf "$out/atlas/layer_$layer"
  cp -r "$work/layer_$layer/atlas" "$out/atlas/layer_$layer"
  rm -f "$out/atlas/layer_$layer/.snakemake_timestamp"
done
echo "atlases of layers $layers over $proteins proteins in $(( $(date +%s) - start )) s → $out/atlas"
