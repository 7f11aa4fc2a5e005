#!/usr/bin/env bash
# What link-time optimisation and wasm-opt buy the one-thread engine, measured side by side
# in one run: size (raw, gzip -9) and per-view embedding time in headless Chromium of
#   shipped   scripts/build-web.sh's www/pkg/ (release: codegen-units 16, no LTO)
#   lto       fat LTO and codegen-units 1 (CARGO_PROFILE_RELEASE_*; target/wasm-lto)
#   lto+opt   the same through wasm-opt -O3 (npm binaryen; Debian's binaryen 108 corrupts it)
#   shipped+oz  the shipped build through wasm-opt -Oz (for size)
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

# wasm_opt FROM TO FLAG: a copy of variant FROM whose .wasm went through wasm-opt FLAG, with
# the features Rust's wasm32 target emits (plus simd128, .cargo/config.toml).
wasm_opt() {
    step "$2: wasm-opt $3"
    cp -r "$out/$1" "$out/$2"
    bench/web/node_modules/.bin/wasm-opt "$3" --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$out/$1/tessera_bg.wasm" -o "$out/$2/tessera_bg.wasm"
}
wasm_opt lto lto+opt -O3
wasm_opt shipped shipped+oz -Oz

step "measure (headless Chromium)"
node bench/web/variants.mjs "$out" shipped lto lto+opt shipped+oz
