#!/usr/bin/env bash
# Other poolings of the frozen backbone (issue 14 §2's "cheaper feature changes"): the same
# 6-block ViT exported by models/export.py with GeM (p = 3), CLS-attention-weighted pooling,
# and the mean of block 4's patch tokens concatenated to block 5's (into target/pool-exp/),
# each evaluated like the shipped model in the same way: 4 views, fused with the
# √histogram at 0.3, plain descriptors only (no adapter: nothing is trained, so nothing can
# leak), exact search. Writes bench/results/eval-pooling-<variant>.json, the shipped
# model's as eval-pooling-patch-mean.json. About 4 min per model on 2 cores (embedding
# every tile's 4 views; the shipped model's are usually cached).
#   bench/eval-pooling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
cargo_env
need_shared_data
ensure_venv target/bench-venv bench/requirements.txt models/requirements.txt

step "cargo build --release --bin tessera"
cargo build --release --bin tessera
tessera=target/release/tessera

# evaluate NAME MODEL MANIFEST
evaluate() {
    step "tessera eval: $1"
    "$tessera" eval --model "$2" --model-manifest "$3" --input-size 112 --views 4 --fuse-weight 0.3 \
        --no-adapter --no-recall --json "bench/results/eval-pooling-$1.json" > /dev/null
}

evaluate patch-mean models/vit-s14-int8.onnx models/vit-s14-int8.json
for variant in "gem" "cls-attention" "patch-mean+b4:--concat-block 4"; do
    name=${variant%%:*}
    # shellcheck disable=SC2086 # the variant's extra arguments, split on purpose
    extra=$([ "$variant" != "$name" ] && echo "${variant#*:}" || true)
    out=target/pool-exp/$name
    step "models/export.py --pooling ${name%%+*} $extra → $out"
    mkdir -p "$out"
    # shellcheck disable=SC2086
    target/bench-venv/bin/python models/export.py --input-size 112 --pooling "${name%%+*}" $extra --out "$out"
    evaluate "$name" "$out/vit-s14-int8.onnx" "$out/vit-s14-int8.json"
done
