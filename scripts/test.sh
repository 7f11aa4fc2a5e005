#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs the whole suite:
# native unit + integration tests (model parity, index, search, eval, bad input).
# `.ci/run` calls this and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_shared_data
cargo_env
step "native tests (release: tract is slow unoptimized)"
cargo test --release --all-targets
