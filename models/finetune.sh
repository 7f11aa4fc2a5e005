#!/usr/bin/env bash
# Runs models/finetune.py (or, with --export, models/export.py) in target/finetune-venv,
# creating or updating that virtualenv from models/finetune-requirements.txt first
# (idempotent: a stamp of the requirements' hash skips pip when nothing changed).
#   models/finetune.sh --source ../shared/data/slides/CMU-1-Small-Region.jpg --out target/finetune/cmu
#   models/finetune.sh --export --weights target/finetune/cmu/weights.npz --out target/finetune/cmu/model --input-size 112
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/finetune-venv
stamp="$venv/requirements.sha256"
want=$(cat models/finetune-requirements.txt models/requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing models/finetune-requirements.txt into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r models/finetune-requirements.txt
    echo "$want" > "$stamp"
fi
script=models/finetune.py
if [ "${1:-}" = "--export" ]; then
    shift
    script=models/export.py
fi
exec "$venv/bin/python" "$script" "$@"
