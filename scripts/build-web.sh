#!/usr/bin/env bash
# Builds the browser side into www/ (all of it gitignored, rebuilt from the repository):
#   www/pkg/     the WASM engine (cargo --target wasm32-unknown-unknown + wasm-bindgen CLI)
#   www/model/   the model and its manifest, copied from models/
#   www/vendor/  OpenSeadragon, from npm
# and from those the widget's npm-style package, target/package/tessera-widget/
# (scripts/package-widget.mjs; docs/embedding.md).
# Installs what it needs, idempotently: the wasm32 target, wasm-bindgen-cli at the exact
# version in Cargo.lock, Node.js/npm and the npm packages. Fails if the .wasm is over
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

step "cargo build --target wasm32-unknown-unknown --release --lib"
cargo build --target wasm32-unknown-unknown --release --lib --no-default-features
target_dir="${CARGO_TARGET_DIR:-target}"
wasm="$target_dir/wasm32-unknown-unknown/release/tessera.wasm"

step "wasm-bindgen → www/pkg/"
rm -rf www/pkg
# Names are 2 MB of the module; panics still print their message (console_error_panic_hook).
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir www/pkg "$wasm"

step "model and viewer → www/model/, www/vendor/"
mkdir -p www/model www/vendor
cp -u models/vit-s14-int8.onnx models/vit-s14-int8.json www/model/
cp -u node_modules/openseadragon/build/openseadragon/openseadragon.min.js www/vendor/
cp -u node_modules/openseadragon/LICENSE.txt www/vendor/openseadragon-LICENSE.txt

raw=$(stat -c %s www/pkg/tessera_bg.wasm)
gz=$(gzip -9 -c www/pkg/tessera_bg.wasm | wc -c)
awk -v raw="$raw" -v gz="$gz" -v budget="$WASM_BUDGET_GZIP" 'BEGIN {
    printf "www/pkg/tessera_bg.wasm: %.2f MB raw, %.2f MB gzipped (budget %.0f MB gzipped)\n", raw / 1048576, gz / 1048576, budget / 1048576 }'
if [ "$gz" -gt "$WASM_BUDGET_GZIP" ]; then
    echo "the .wasm is over budget: $gz bytes gzipped > $WASM_BUDGET_GZIP" >&2
    exit 1
fi

step "widget package → target/package/tessera-widget/"
node scripts/package-widget.mjs
