#!/usr/bin/env bash
# Smoke test of the fine-tune chain on a fresh machine, in about two minutes: installs
# JAX into target/finetune-venv, trains two steps on the CC0 slide region, runs the same
# command again (it must resume from the checkpoint, not restart), exports the weights
# in the shipped graph shape, and embeds a real tile with it through tract (the Rust
# runtime), compared with the export's own onnxruntime reference.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_shared_data
out=target/finetune-smoke
rm -rf "$out"
train=(models/finetune.sh --source ../shared/data/slides/CMU-1-Small-Region.jpg --out "$out"
       --steps 2 --batch 4 --minutes 5)
step "fine-tune smoke: two steps"
"${train[@]}"
step "fine-tune smoke: the same command resumes from the checkpoint"
"${train[@]}" 2>&1 | tee "$out/resume.log"
grep -q "resuming at step 2/2" "$out/resume.log" || { echo "the second run did not resume" >&2; exit 1; }
step "fine-tune smoke: export in the shipped graph shape"
models/finetune.sh --export --weights "$out/weights.npz" --out "$out/model" --input-size 112
grep -q '"weights_sha256"' "$out/model/vit-s14-int8.json"
[ -f target/release/tessera ] || cargo build --release -q
step "fine-tune smoke: tract embeds with the fine-tuned model"
tile=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tiles"][0])' "$out/model/reference/embeddings.json")
target/release/tessera embed --json --model "$out/model/vit-s14-int8.onnx" "../shared/data/$tile" > "$out/embedding.json"
"$out/../finetune-venv/bin/python" - "$out" <<'PY'
import json, sys
import numpy as np
out = sys.argv[1]
ours = np.array(json.loads(open(f"{out}/embedding.json").readline())["embedding"])
reference = np.array(json.load(open(f"{out}/model/reference/embeddings.json"))["onnxruntime_int8"][0])
model = json.load(open(f"{out}/model/vit-s14-int8.json"))
assert model["id"].endswith("-ft-int8"), model["id"]
assert model["finetune"]["steps_done"] == 2, model["finetune"]
cosine = float(ours @ reference / np.linalg.norm(ours) / np.linalg.norm(reference))
print(f"fine-tuned model {model['id']} (sha256 {model['sha256'][:12]}): tract vs onnxruntime cosine {cosine:.5f}")
# Pixels differ slightly (Rust vs PIL resize of the same file), hence not 0.9999.
assert cosine > 0.995, cosine
PY
