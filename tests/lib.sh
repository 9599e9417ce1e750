# Shared helpers for the shell test suites. Source it, call `check NAME CMD...`
# or `pass NAME` / `fail NAME WHY`, and end with `finish`, which prints the
# `N passed, N failed` line and exits non-zero if anything failed.

QB_ROOT=${QB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
QB=${QB:-$QB_ROOT/build/host/qcowboot}
PASSED=0
FAILED=0
FAILED_NAMES=()

pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
    printf 'FAIL %s%s\n' "$1" "${2:+: $2}"
}
# check NAME CMD...: passes when CMD exits 0.
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(printf '%s' "$out" | tail -n 5)"; fi
}
finish() {
    if [ "$FAILED" -ne 0 ]; then printf 'failed: %s\n' "${FAILED_NAMES[*]}"; fi
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    [ "$FAILED" -eq 0 ]
}
