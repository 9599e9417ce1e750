#!/usr/bin/env bash
# Fuzz smoke suite: builds the libFuzzer targets (build/fuzz/fuzz_image,
# build/fuzz/fuzz_write) and their seed corpora, runs every seed once, then
# every committed reproducer in tests/fuzz/regressions/ (fuzz_image) and
# tests/fuzz/write-regressions/ (fuzz_write): inputs that once crashed, hung
# or leaked. Any sanitizer report, crash, leak or timeout fails.
set -u
. "$(dirname "$0")/../lib.sh"

mkdir -p "$QB_ROOT/build/fuzz"
if ! out=$(make -s -C "$QB_ROOT" build/fuzz/fuzz_image build/fuzz/seeds/.done \
                build/fuzz/fuzz_write build/fuzz/write-seeds/.done 2>&1); then
    fail "build fuzz targets and seeds" "$(printf '%s' "$out" | tail -n 5)"
    finish; exit 1
fi
pass "build fuzz targets and seeds"

# report NAME LOGFILE: the first sanitizer/libFuzzer/target error line, for fail().
report() { grep -m1 -E 'ERROR: |runtime error:|SUMMARY: |==[0-9]+== |^fuzz_write: ' "$1" | head -c 300; }

shopt -s nullglob
# smoke TARGET SEEDS REGRESSIONS: every seed, then every regression input.
smoke() {
    local target=$1 seeds=$2 reg=$3 bin=$QB_ROOT/build/fuzz/$1 n f name
    local log=$QB_ROOT/build/fuzz/smoke-$1.log
    n=$(find "$seeds" -name '*.seed' | wc -l)
    if "$bin" -runs=0 -timeout=60 -rss_limit_mb=2048 "$seeds" > "$log" 2>&1; then
        pass "$target: seeds ($n inputs)"
    else
        fail "$target: seeds ($n inputs)" "$(report "$log"); see $log"
    fi
    for f in "$reg"/*; do
        [ -f "$f" ] || continue
        name="$target: regression $(basename "$f")"
        if "$bin" -runs=1 -timeout=60 -rss_limit_mb=2048 "$f" > "$log.1" 2>&1; then
            pass "$name"
        else
            fail "$name" "$(report "$log.1")"
        fi
    done
}
smoke fuzz_image "$QB_ROOT/build/fuzz/seeds" "$QB_ROOT/tests/fuzz/regressions"
smoke fuzz_write "$QB_ROOT/build/fuzz/write-seeds" "$QB_ROOT/tests/fuzz/write-regressions"
finish
