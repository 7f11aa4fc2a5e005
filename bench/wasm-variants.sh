#!/usr/bin/env bash
# What link-time optimisation and wasm-opt buy the one-thread engine, measured side by side
# in one run: size (raw, gzip -9) and per-view embedding time in headless Chromium of
#   shipped   scripts/build-web.sh's www/pkg/ (release: codegen-units 16, no LTO)
#   lto       fat LTO and codegen-units 1 (CARGO_PROFILE_RELEASE_*; target/wasm-lto)
#   lto+opt   the same through wasm-opt -O3 (npm binaryen; Debian's binaryen 108 corrupts it)
# Each variant is checked to embed like the shipped one (cosine ≥ 0.9999). Writes
# bench/results/wasm-variants.json (bench/web/variants.mjs). Builds take ~15 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

apt_install chromium
scripts/build-web.sh
if [ ! -x bench/web/node_modules/.bin/wasm-opt ] || [ bench/web/package-lock.json -nt bench/web/node_modules/.package-lock.json ]; then
    step "npm ci (bench/web: onnxruntime-web, binaryen)"
    npm ci --prefix bench/web --no-audit --no-fund --loglevel=error
fi
out=target/wasm-variants
rm -rf "$out" && mkdir -p "$out"
cp -r www/pkg "$out/shipped"

step "lto: fat LTO, codegen-units 1"
CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    cargo build --target wasm32-unknown-unknown --release --lib --no-default-features --features gpu --target-dir target/wasm-lto
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$out/lto" \
    target/wasm-lto/wasm32-unknown-unknown/release/tessera.wasm

step "lto+opt: wasm-opt -O3"
cp -r "$out/lto" "$out/lto+opt"
# The features Rust's wasm32 target emits (plus simd128, .cargo/config.toml).
bench/web/node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$out/lto/tessera_bg.wasm" -o "$out/lto+opt/tessera_bg.wasm"

step "measure (headless Chromium)"
node bench/web/variants.mjs "$out" shipped lto lto+opt
