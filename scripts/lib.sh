# Shared helpers for scripts/*.sh: idempotent installs on a fresh Debian machine.

# step MESSAGE: a heading with the minutes since the outermost script started (CI's budget
# is in minutes; the headings show where they go).
export TESSERA_T0=${TESSERA_T0:-$(date +%s)}
step() { printf '\n==> [%s, +%d min] %s\n' "$(date +%T)" $((($(date +%s) - TESSERA_T0) / 60)) "$*" >&2; }

# Rust comes with the machine (rustup); make sure cargo is on PATH in a fresh shell.
cargo_env() {
    if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        source "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
}

# apt_install PKG...: installs the Debian packages that are missing (one apt-get update at most).
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "apt-get install ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# pip_install_requirements FILE: the Python packages for reference scripts and benchmarks
# (never needed by the product or the tests).
pip_install_requirements() {
    python3 -m pip install -q --disable-pip-version-check -r "$1"
}

# ensure_venv VENV REQUIREMENTS...: a virtualenv holding exactly these requirement files,
# (re)installed only when their content changed (a stamp of their hash).
ensure_venv() {
    local venv=$1
    shift
    local want
    want=$(cat "$@" | sha256sum | cut -d' ' -f1)
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/requirements.sha256" 2>/dev/null)" != "$want" ]; then
        step "installing $* into $venv"
        python3 -m venv "$venv"
        local file
        for file in "$@"; do
            "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$file"
        done
        echo "$want" > "$venv/requirements.sha256"
    fi
}

need_shared_data() {
    if [ ! -d ../shared/data ]; then
        echo "../shared/data not found: the tests use the real H&E data beside the repository" >&2
        exit 1
    fi
}

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
ensure_wasm_bindgen_cli() {
    local want
    want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
    [ -n "$want" ] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
        step "cargo install wasm-bindgen-cli $want (a few minutes, once)"
        # No default features: its TLS stack (rustls, ring) only serves remote WebDriver
        # servers over https; the test runner talks to chromedriver on localhost.
        cargo install -q wasm-bindgen-cli --version "$want" --no-default-features
    fi
}

# Node.js + npm and the repository's npm packages (package-lock.json); never a browser
# download: the tests drive Debian's chromium.
ensure_npm_packages() {
    command -v npm >/dev/null || apt_install nodejs npm
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        step "npm ci"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    fi
}
