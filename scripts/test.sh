#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs the whole suite:
#   1. native unit + integration tests (model parity, index, search, eval, slides, bad input,
#      the GPU kernels and forward pass on Mesa's lavapipe, a Vulkan driver on the CPU)
#      and a fuzz smoke: every libFuzzer target of scripts/fuzz.sh but model_bytes for 15 s
#      (built --dev, without tract; model_bytes is replayed natively, fuzz_regressions.rs);
#   2. the browser tests (scripts/test-web.sh): wasm-bindgen-test and Playwright end to end
#      in headless Debian chromium;
#   3. the benchmark chain at small sizes (bench/run --quick) and its generated report;
#   4. the fine-tune chain (scripts/test-finetune.sh): two training steps, resume, export,
#      tract embedding with the exported model;
#   5. the distributed build (scripts/test-ray.sh): shards on a local Ray instance, merged.
# What steps 2-5 download (npm packages, Python environments: scripts/downloads.sh) comes
# in the background during step 1. `.ci/run` calls this and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_shared_data
cargo_env
# Every step's Debian packages in one apt run: lavapipe (the GPU tests run on any machine,
# and fail, not skip, without an adapter), Chromium for the browser tests, Node.js.
debian=(mesa-vulkan-drivers chromium chromium-driver)
command -v npm >/dev/null || debian+=(nodejs npm)
apt_install "${debian[@]}"
# What steps 2-5 download (npm packages, Python environments), fetched while step 1
# compiles (downloads wait on the network, the compiler on the CPU); waited for before step 2.
mkdir -p target
scripts/downloads.sh > target/downloads.log 2>&1 &
downloads=$!
step "native tests (release: tract is slow unoptimized)"
# cargo-nextest (on these machines) runs the test binaries side by side: half the time of
# `cargo test`, whose binaries run one after another, most holding one long test.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release --all-targets --no-fail-fast
else
    cargo test --release --all-targets --no-fail-fast
fi
step "fuzz smoke (scripts/fuzz.sh --dev without-model 15: every reader of untrusted bytes but the model, 15 s each, unoptimised build)"
scripts/fuzz.sh --dev without-model 15

step "the downloads of steps 2-5 (scripts/downloads.sh, started with step 1)"
wait "$downloads" || { cat target/downloads.log >&2; echo "scripts/downloads.sh failed" >&2; exit 1; }
scripts/test-web.sh

step "benchmark smoke (bench/run --quick): every benchmark at small sizes, then the report"
bench/run --quick
for section in "## Embedding, native" "## Embedding, GPU" "## Search" "## HNSW graph build" "## Whole-slide builds" "## Retrieval quality"; do
    grep -q "$section" target/bench-quick/REPORT.md || { echo "bench report lacks '$section'" >&2; exit 1; }
done
# The run timed its own steps (not a "Skipped" section).
grep -q '^| \*\*all steps\*\* |' target/bench-quick/REPORT.md || { echo "bench report lacks the step times" >&2; exit 1; }
ls target/bench-quick/plots/embed-native.png target/bench-quick/plots/gpu.png target/bench-quick/plots/search.png > /dev/null

scripts/test-finetune.sh

step "distributed build (scripts/test-ray.sh): 4 shards on a local Ray instance, merged = single build"
scripts/test-ray.sh
step "all tests passed"
