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

# variant NAME POOLING [EXPORT_ARGS...]: the model exported into target/pool-exp/NAME, evaluated.
variant() {
    local name=$1 pooling=$2 out=target/pool-exp/$1
    shift 2
    step "models/export.py --pooling $pooling $* → $out"
    mkdir -p "$out"
    target/bench-venv/bin/python models/export.py --input-size 112 --pooling "$pooling" "$@" --out "$out"
    evaluate "$name" "$out/vit-s14-int8.onnx" "$out/vit-s14-int8.json"
}

evaluate patch-mean models/vit-s14-int8.onnx models/vit-s14-int8.json
variant gem gem
variant cls-attention cls-attention
variant patch-mean+b4 patch-mean --concat-block 4
