#!/usr/bin/env bash
# Installs (idempotently) what the later steps of scripts/test.sh download, exactly as each
# installs it on first use:
#   node_modules/         the npm packages (Playwright's driver, onnxruntime-web, OpenSeadragon)
#   target/bench-venv     the benchmarks' references (tessera bench: onnxruntime, faiss, hnswlib)
#   target/finetune-venv  models/finetune.sh (JAX on the CPU)
#   target/ray-venv       examples/ray/build.sh (Ray)
# scripts/test.sh runs it in the background while the native tests compile: downloads wait
# on the network, the compiler on the CPU. Needs npm installed (no apt here: it would race
# the foreground's).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_npm_packages
# The same requirement files, in the same order, as src/cli/bench/python.rs hashes for its stamp.
ensure_venv target/bench-venv bench/requirements.txt models/requirements.txt
ensure_venv target/finetune-venv models/finetune-requirements.txt models/requirements.txt
ensure_venv target/ray-venv examples/ray/requirements.txt
