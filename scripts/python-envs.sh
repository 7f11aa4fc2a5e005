#!/usr/bin/env bash
# Installs (idempotently) the three Python environments that benchmarks and scripts use,
# exactly as each installs its own on first use:
#   target/bench-venv     the benchmarks' references (tessera bench: onnxruntime, faiss, hnswlib)
#   target/finetune-venv  models/finetune.sh (JAX on the CPU)
#   target/ray-venv       examples/ray/build.sh (Ray)
# scripts/test.sh runs it in the background while the native tests compile: pip waits on
# the network, the compiler on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# The same requirement files, in the same order, as src/cli/bench/python.rs hashes for its stamp.
ensure_venv target/bench-venv bench/requirements.txt models/requirements.txt
ensure_venv target/finetune-venv models/finetune-requirements.txt models/requirements.txt
ensure_venv target/ray-venv examples/ray/requirements.txt
