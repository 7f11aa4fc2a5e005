#!/usr/bin/env bash
# The browser tests, in headless Debian chromium (installed here if missing):
#   1. wasm-bindgen-test: the bindings (tests/wasm.rs) — embedding parity with native,
#      search equal to native search, bad input → JS Error; the GEMM kernel tract runs in the
#      browser (tests/wasm_gemm.rs);
#   2. Playwright end to end (tests/e2e/*.test.mjs): the demo page, the widget, the
#      widget package (target/package/tessera-widget/: its .d.ts checked, tsc, CSP, CORS),
#      and a partitioned index read by HTTP Range (target/e2e/demo.tsp, made here).
# Builds www/ first (scripts/build-web.sh). Screenshots: tests/e2e/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

apt_install chromium chromium-driver
scripts/build-web.sh

step "wasm-bindgen-test in headless Chromium (tests/wasm.rs, tests/wasm_gemm.rs)"
# The runner adds headless/no-sandbox; tests/wasm-webdriver.json names Debian's chromium.
# The library's features are the one-thread build's (`gpu`): its unit is reused, not
# rebuilt (a cdylib's output has no hash in its name, so a build with other features would
# overwrite www/pkg's and make the next build-web.sh compile it again).
# The runner gives chromedriver a few seconds to listen and kills it otherwise ("driver
# failed to bind port during startup", seen here once in a few runs, a known spurious
# failure: wasm-bindgen#5110): that start, and only that, is retried.
wasm_tests() {
    CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_WEBDRIVER_JSON=tests/wasm-webdriver.json \
        WASM_BINDGEN_TEST_TIMEOUT=900 \
        cargo test --release --target wasm32-unknown-unknown --no-default-features --features gpu --test wasm --test wasm_gemm
}
mkdir -p target
for attempt in 1 2 3; do
    if wasm_tests 2>&1 | tee target/wasm-tests.log; then break; fi
    if [ $attempt -eq 3 ] || ! grep -q "driver failed to bind port during startup" target/wasm-tests.log; then exit 1; fi
    echo "chromedriver did not start in time; starting the browser tests again ($((attempt + 1)) of 3)" >&2
done

step "a partitioned demo index for the e2e tests (tessera partition → target/e2e/demo.tsp)"
cargo build --release --bin tessera
mkdir -p target/e2e
target/release/tessera partition www/demo/index.tsi -o target/e2e/demo.tsp --partitions 12 --nprobe 3
step "the same with int8 codes of a 64-d PCA and the vectors as re-ranking rows (→ target/e2e/demo-rows.tsp)"
target/release/tessera partition www/demo/index.tsi -o target/e2e/demo-rows.tsp --partitions 12 --nprobe 3 --pca 64

step "Playwright end to end (tests/e2e, two files at a time)"
# Each file has its own server and browser. Two at a time on 2 cores: 4 min 13 s against
# about 7 min one at a time (a test waits on page loads and workers as much as on the CPU).
node --test --test-concurrency=2 tests/e2e/
