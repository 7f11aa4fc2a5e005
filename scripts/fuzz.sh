#!/usr/bin/env bash
# Fuzzes every reader of untrusted bytes (fuzz/fuzz_targets/*.rs) with libFuzzer:
#   scripts/fuzz.sh [--dev] TARGET|all|without-model SECONDS
# `without-model` is every target but those that load a model (model_bytes): their build
# leaves tract out and takes half the time (the test command's smoke; tests/native covers
# model_bytes there by replaying mutations of its seed, fuzz_regressions.rs).
# --dev builds the targets unoptimised (debug assertions on, no debug info) and without
# AddressSanitizer: a fraction of the build time for 4-60× fewer executions per second, the
# trade the test command's 15-s smoke wants (panics and hangs on every reader); long runs
# use the default optimised build under AddressSanitizer (docs/reliability.md).
# Installs cargo-fuzz once. Runs on the installed stable toolchain: RUSTC_BOOTSTRAP=1 lets
# it take the -Z flags cargo-fuzz passes (sanitizer, coverage), so no nightly is needed.
# Each target runs SECONDS with memory and time per input bounded; its corpus grows in
# fuzz/corpus/TARGET (the seed-* files are committed), crashes are written to
# fuzz/artifacts/TARGET and fail the script. docs/reliability.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

profile=()
if [ "${1:-}" = --dev ]; then
    # ASan's instrumentation of every crate costs 2 of the build's 7 minutes on 2 cores.
    profile=(--dev --sanitizer none)
    # Full debug info of every dependency slows the build and its eight links; a crash's
    # input and panic message are what the smoke needs.
    export CARGO_PROFILE_DEV_DEBUG=0
    shift
fi
[ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [--dev] TARGET|all|without-model SECONDS" >&2; exit 2; }
cargo_env
if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz (once)"
    # Unoptimised: it only runs cargo, and builds in half the time (37 s against 72 s here).
    cargo install -q --debug cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# fuzz SUBCOMMAND ARGS...: cargo fuzz on fuzz/, building in target/fuzz.
fuzz() { local sub=$1; shift; cargo fuzz "$sub" --fuzz-dir fuzz "${profile[@]}" "$@"; }

mapfile -t all < <(cargo fuzz list --fuzz-dir fuzz)
[ ${#all[@]} -gt 0 ] || { echo "cargo fuzz list found no targets in fuzz/" >&2; exit 1; }
# The targets that need the model runtime (fuzz/Cargo.toml: required-features = ["model"]).
model_targets=(model_bytes)
case $1 in
    all) targets=("${all[@]}") ;;
    without-model) mapfile -t targets < <(printf '%s\n' "${all[@]}" | grep -vxF -f <(printf '%s\n' "${model_targets[@]}")) ;;
    *) targets=("$1") ;;
esac
features=()
for target in "${targets[@]}"; do
    if printf '%s\n' "${model_targets[@]}" | grep -qx "$target"; then features=(--features model); fi
done
for target in "${targets[@]}"; do
    printf '%s\n' "${all[@]}" | grep -qx "$target" || { echo "no fuzz target $target (have: ${all[*]})" >&2; exit 2; }
done

# Longest input per target: a few times its largest seed (fuzz/corpus/TARGET/seed-*).
max_len() {
    case $1 in
        index | partitioned | slide | model_bytes | image) echo 131072 ;;
        *) echo 16384 ;;
    esac
}

step "fuzz build (${targets[*]})"
if [ ${#targets[@]} -gt 1 ]; then
    fuzz build --target-dir target/fuzz "${features[@]}"
else
    fuzz build --target-dir target/fuzz "${features[@]}" "${targets[0]}"
fi

# fuzz_one TARGET SECONDS: one target's run, its log in target/fuzz/logs/TARGET.log.
fuzz_one() {
    local target=$1 log="target/fuzz/logs/$1.log"
    mkdir -p "fuzz/corpus/$target"
    if ! fuzz run --target-dir target/fuzz "${features[@]}" "$target" -- \
        -max_total_time="$2" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$target")" \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/ (log $log)" >&2
        return 1
    fi
    { echo "$target:"; grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$log"; } >&2 || true
}

# libFuzzer runs on one core: as many targets at once as there are cores.
mkdir -p target/fuzz/logs
jobs=$(nproc)
step "fuzz ${targets[*]} for $2 s each, $jobs at a time"
failed=0
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
    pids=()
    for target in "${targets[@]:i:jobs}"; do
        fuzz_one "$target" "$2" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
done
[ "$failed" -eq 0 ] || exit 1
