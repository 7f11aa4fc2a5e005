#!/usr/bin/env bash
# Runs models/finetune.py (or, with --export, models/export.py) in target/finetune-venv,
# creating or updating that virtualenv from models/finetune-requirements.txt first
# (idempotent: a stamp of the requirements' hash skips pip when nothing changed).
#   models/finetune.sh --source ../shared/data/slides/CMU-1-Small-Region.jpg --out target/finetune/cmu
#   models/finetune.sh --export --weights target/finetune/cmu/weights.npz --out target/finetune/cmu/model --input-size 112
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# finetune-requirements.txt includes models/requirements.txt: both are named so that a
# change to either reinstalls.
venv=target/finetune-venv
ensure_venv "$venv" models/finetune-requirements.txt models/requirements.txt
script=models/finetune.py
if [ "${1:-}" = "--export" ]; then
    shift
    script=models/export.py
fi
exec "$venv/bin/python" "$script" "$@"
