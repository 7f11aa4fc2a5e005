#!/usr/bin/env bash
# Runs examples/ray/build.py in target/ray-venv, installing Ray there first (idempotent).
#   examples/ray/build.sh --shards 8 -o slides.tsi slides/*.svs -- --thumbnails
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/scripts/lib.sh"
(cd "$root" && ensure_venv target/ray-venv examples/ray/requirements.txt)
exec "$root/target/ray-venv/bin/python" "$root/examples/ray/build.py" "$@"
