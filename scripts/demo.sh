#!/usr/bin/env bash
# The demo: builds the browser side (scripts/build-web.sh) and serves www/ on localhost.
#   scripts/demo.sh            → http://127.0.0.1:8080/
#   PORT=9000 scripts/demo.sh
# The page loads the committed demo index (www/demo/, rebuilt by
# scripts/build-demo-index.sh from ../shared/data) and runs everything in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/build-web.sh
[ -f www/demo/index.tsi ] || { echo "www/demo/index.tsi is missing: run scripts/build-demo-index.sh" >&2; exit 1; }
step "serving www/ (Ctrl-C stops)"
echo "open http://127.0.0.1:${PORT:-8080}/ (the widget example: /embed-example.html)"
exec node scripts/serve.mjs --root www --port "${PORT:-8080}"
