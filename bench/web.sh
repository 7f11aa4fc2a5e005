#!/usr/bin/env bash
# The web benchmark (bench/web/run.mjs): time to first result, per-tile embedding and
# search latency in headless Chromium, with onnxruntime-web on the same model as the
# reference. Writes bench/results/web.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

apt_install chromium
scripts/build-web.sh
if [ ! -d bench/web/node_modules/onnxruntime-web ] || [ bench/web/package-lock.json -nt bench/web/node_modules/.package-lock.json ]; then
    step "npm ci (bench/web: onnxruntime-web)"
    npm ci --prefix bench/web --no-audit --no-fund --loglevel=error
fi
step "web benchmark (headless Chromium)"
node bench/web/run.mjs
