#!/usr/bin/env bash
# Builds the browser side into www/ (all of it gitignored, rebuilt from the repository):
#   www/pkg/     the WASM engine (cargo --target wasm32-unknown-unknown + wasm-bindgen CLI)
#   www/pkg-threads/  the same with threads (shared memory, wasm-bindgen-rayon; target/wasm-threads)
#   www/pkg-relaxed/, www/pkg-relaxed-threads/  both again with relaxed SIMD (fused multiply-add)
#   www/model/   the model and its manifest, copied from models/
#   www/vendor/  OpenSeadragon, from npm
#   www/demo/slide.dzi, slide_files/  the demo slide's Deep Zoom pyramid (tessera dzi)
#   www/deployment.json  what the demo page shows and the SHA-256s it pins (scripts/deployment.mjs)
# and from those the widget's npm-style package, target/package/tessera-widget/
# (scripts/package-widget.mjs; docs/embedding.md).
# Installs what it needs, idempotently: the wasm32 target, wasm-bindgen-cli at the exact
# version in Cargo.lock, Node.js/npm and the npm packages. Fails if a .wasm is over
# budget (4 MB gzipped).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

WASM_BUDGET_GZIP=$((4 * 1024 * 1024))

cargo_env
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi
ensure_wasm_bindgen_cli
ensure_npm_packages

# wasm_build OUT_DIR CARGO_ARGS...: cargo build of the library for wasm32, then wasm-bindgen
# into OUT_DIR. Names are 2 MB of a module; panics still print their message
# (console_error_panic_hook).
wasm_build() {
    local out=$1 target_dir=$2
    shift 2
    cargo build --target wasm32-unknown-unknown --release --lib --no-default-features --target-dir "$target_dir" "$@"
    rm -rf "$out"
    wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$out" \
        "$target_dir/wasm32-unknown-unknown/release/tessera.wasm"
}
target_dir="${CARGO_TARGET_DIR:-target}"

# Both builds carry the WebGPU path (feature gpu, src/gpu): the worker starts it when the
# browser has WebGPU.
step "one-thread engine → www/pkg/"
wasm_build www/pkg "$target_dir" --features gpu

# Threads need std rebuilt with atomics (-Z build-std; RUSTC_BOOTSTRAP=1 allows it on the
# stable toolchain) and a shared, imported memory with the TLS exports wasm-bindgen's thread
# start-up calls (wasm-bindgen-rayon's README). RUSTFLAGS replaces .cargo/config.toml's, so
# +simd128 is repeated. Its own target dir: other flags would rebuild the one-thread build's.
step "threaded engine → www/pkg-threads/ (std rebuilt with atomics)"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    step "rustup component add rust-src"
    rustup component add rust-src
fi
THREADS_RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+simd128 \
-C link-arg=--shared-memory -C link-arg=--max-memory=2147483648 -C link-arg=--import-memory \
-C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
-C link-arg=--export=__tls_align -C link-arg=--export=__tls_base"
RUSTC_BOOTSTRAP=1 RUSTFLAGS="$THREADS_RUSTFLAGS" \
    wasm_build www/pkg-threads "$target_dir/wasm-threads" --features threads,gpu -Z build-std=panic_abort,std

# Relaxed SIMD: the GEMM kernel (src/model/wasm_gemm.rs) fuses its multiply-adds
# (f32x4.relaxed_madd) when built with +relaxed-simd, ×0.87 the time per view in Chromium on a
# 2-core AMD EPYC (bench/web.sh, bench/REPORT.md).
# Not every browser has relaxed SIMD, so both builds are made again with it, and the worker
# picks these where the browser validates a relaxed-SIMD module. Own target dirs again.
step "one-thread engine with relaxed SIMD → www/pkg-relaxed/"
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
    wasm_build www/pkg-relaxed "$target_dir/wasm-relaxed" --features gpu
step "threaded engine with relaxed SIMD → www/pkg-relaxed-threads/"
RUSTC_BOOTSTRAP=1 RUSTFLAGS="${THREADS_RUSTFLAGS/+simd128/+simd128,+relaxed-simd}" \
    wasm_build www/pkg-relaxed-threads "$target_dir/wasm-relaxed-threads" --features threads,gpu -Z build-std=panic_abort,std

step "model and viewer → www/model/, www/vendor/"
mkdir -p www/model www/vendor
cp -u models/vit-s14-int8.onnx models/vit-s14-int8.json www/model/
cp -u node_modules/openseadragon/build/openseadragon/openseadragon.min.js www/vendor/
cp -u node_modules/openseadragon/LICENSE.txt www/vendor/openseadragon-LICENSE.txt

for wasm in www/pkg{,-threads,-relaxed,-relaxed-threads}/tessera_bg.wasm; do
    raw=$(stat -c %s "$wasm")
    gz=$(gzip -9 -c "$wasm" | wc -c)
    awk -v f="$wasm" -v raw="$raw" -v gz="$gz" -v budget="$WASM_BUDGET_GZIP" 'BEGIN {
        printf "%s: %.2f MB raw, %.2f MB gzipped (budget %.0f MB gzipped)\n", f, raw / 1048576, gz / 1048576, budget / 1048576 }'
    if [ "$gz" -gt "$WASM_BUDGET_GZIP" ]; then
        echo "$wasm is over budget: $gz bytes gzipped > $WASM_BUDGET_GZIP" >&2
        exit 1
    fi
done

# The viewer's Deep Zoom pyramid of the demo slide (clicks are cut from its full-resolution
# tiles by www/deepzoom.js), remade when the slide is newer.
if [ ! -f www/demo/slide.dzi ] || [ www/demo/slide.jpg -nt www/demo/slide.dzi ]; then
    step "Deep Zoom pyramid → www/demo/slide.dzi, www/demo/slide_files/ (tessera dzi)"
    cargo build --release --bin tessera --target-dir "$target_dir"
    "$target_dir/release/tessera" dzi www/demo/slide.jpg -o www/demo/slide
fi

# The demo page's deployment: its data, the SHA-256 of model, index and the four .wasm builds
# (checked on every load and cache hit), and links allowed to name other data in demo/ only.
step "deployment → www/deployment.json (pins, allowed links)"
node scripts/deployment.mjs

step "widget package → target/package/tessera-widget/"
node scripts/package-widget.mjs
