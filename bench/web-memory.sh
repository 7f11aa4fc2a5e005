#!/usr/bin/env bash
# Memory over many calls in one page (bench/web/memory.mjs): the engine's WebAssembly memory
# and the page's and the worker's JS heaps, sampled over 10,000 searches and 1,000 embeds by
# default (arguments go to memory.mjs). Writes bench/results/web-memory.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

apt_install chromium
scripts/build-web.sh
ensure_npm_packages
step "web memory benchmark (headless Chromium)"
node bench/web/memory.mjs "$@"
