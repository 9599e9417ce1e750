#!/usr/bin/env bash
# Fuzz smoke suite: builds the libFuzzer target (build/fuzz/fuzz_image) and
# the seed corpus, runs every seed once, then every committed reproducer in
# tests/fuzz/regressions/ (inputs that once crashed, hung or leaked). Any
# sanitizer report, crash, leak or timeout fails.
set -u
. "$(dirname "$0")/../lib.sh"

BIN=$QB_ROOT/build/fuzz/fuzz_image
SEEDS=$QB_ROOT/build/fuzz/seeds
REG=$QB_ROOT/tests/fuzz/regressions
LOG=$QB_ROOT/build/fuzz/smoke.log

mkdir -p "$QB_ROOT/build/fuzz"
if ! out=$(make -s -C "$QB_ROOT" build/fuzz/fuzz_image build/fuzz/seeds/.done 2>&1); then
    fail "build fuzz target and seeds" "$(printf '%s' "$out" | tail -n 5)"
    finish; exit 1
fi
pass "build fuzz target and seeds"

# report NAME LOGFILE: the first sanitizer/libFuzzer error line, for fail().
report() { grep -m1 -E 'ERROR: |runtime error:|SUMMARY: |==[0-9]+== ' "$1" | head -c 300; }

n=$(find "$SEEDS" -name '*.seed' | wc -l)
if "$BIN" -runs=0 -timeout=60 -rss_limit_mb=2048 "$SEEDS" > "$LOG" 2>&1; then
    pass "seeds ($n inputs)"
else
    fail "seeds ($n inputs)" "$(report "$LOG"); see $LOG"
fi

shopt -s nullglob
for f in "$REG"/*; do
    [ -f "$f" ] || continue
    name="regression $(basename "$f")"
    if "$BIN" -runs=1 -timeout=60 -rss_limit_mb=2048 "$f" > "$LOG.1" 2>&1; then
        pass "$name"
    else
        fail "$name" "$(report "$LOG.1")"
    fi
done
finish
