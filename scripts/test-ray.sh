#!/usr/bin/env bash
# The distributed build on a local Ray instance with 2 workers: 4 shards of real LC25000
# tiles (one of them failing its first attempt, so the retry path runs), merged, must be
# byte-identical to a single-process `tessera build` of the same manifest and options.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_shared_data
cargo_env
[ -x target/release/tessera ] || cargo build --release --bin tessera
out=target/ray-smoke
rm -rf "$out"
mkdir -p "$out"
awk -F, -v data="$(cd ../shared/data && pwd)" 'NR == 1 { print "path,label,group"; next }
    NR % 40 == 2 { print data "/" $1 "," $2 "," $3 }' ../shared/data/lc25000-lung.csv > "$out/manifest.csv"
options=(--views 1 --thumbnails)
step "ray smoke: single-process build"
target/release/tessera build "$out/manifest.csv" -o "$out/single.tsi" "${options[@]}" 2> "$out/single.log"
step "ray smoke: 4 shards on a local Ray instance with 2 workers, then merge"
timeout 900 examples/ray/build.sh --shards 4 --num-cpus 2 --fail-once 2 -o "$out/ray.tsi" "$out/manifest.csv" -- "${options[@]}" | tee "$out/ray.log"
grep -q "^\[4/4\]" "$out/ray.log" || { echo "not every shard reported" >&2; exit 1; }
cmp "$out/single.tsi" "$out/ray.tsi" || { echo "the Ray build differs from the single-process build" >&2; exit 1; }
echo "ray smoke: $(($(wc -l < "$out/manifest.csv") - 1)) tiles in 4 shards, merged index identical to the single build"
