#!/usr/bin/env bash
# Rebuilds the demo's committed data from ../shared/data:
#   www/demo/index.tsi  `tessera build --thumbnails` over all LC25000 lung tiles (labelled
#                       lung_aca / lung_n / lung_scc) and the tissue tiles of the CMU-1
#                       slide region
#   www/demo/slide.jpg  the CMU-1 region (CC0), shown by the page's slide viewer
# Both are committed so the demo runs from a fresh clone without ../shared.
# `cargo test --release --test native demo_index::` checks that the index matches models/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_shared_data
cargo_env
data=../shared/data
out=www/demo

step "cargo build --release (tessera CLI)"
cargo build --release --bin tessera

mkdir -p "$out"
step "tessera build → $out/index.tsi"
# The file must stay small enough to ship (~10 MB): 72 px thumbnails (~2.7 kB each) are
# most of it; int8 vectors take 384 B/tile.
target/release/tessera build "$data/lc25000-lung.csv" "$data/slides/CMU-1-Small-Region.svs" \
    --thumbnails --thumbnail-size 72 --quant int8 --tile-size 224 --min-tissue 0.5 \
    -o "$out/index.tsi"
cp "$data/slides/CMU-1-Small-Region.jpg" "$out/slide.jpg"
chmod 644 "$out/index.tsi" "$out/slide.jpg"
# The page pins the index's SHA-256 (www/deployment.json): a built page gets the new pin.
if [ -f www/deployment.json ]; then
    step "deployment → www/deployment.json (the new index's pin)"
    node scripts/deployment.mjs
fi
ls -l "$out"
