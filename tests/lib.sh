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

# unit_binary NAME TARGET: builds make TARGET (a host test program), runs
# it and turns each of its `ok   X` / `FAIL X` lines into a pass or fail
# here. A build failure, or a failing exit without a FAIL line, fails NAME.
unit_binary() {
    local name=$1 target=$2 log out rc line
    log=$(mktemp)
    if ! make -s -C "$QB_ROOT" "$target" >"$log" 2>&1; then
        fail "$name: build" "$(tail -n 5 "$log")"
        rm -f "$log"
        return
    fi
    rm -f "$log"
    out=$("$QB_ROOT/$target" 2>&1)
    rc=$?
    while IFS= read -r line; do
        case $line in
        "ok   "*) pass "${line#ok   }" ;;
        "FAIL "*) fail "$name" "${line#FAIL }" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
        fail "$name" "exit $rc: $(tail -n 5 <<<"$out")"
    fi
}

# require_qb: the suites that run the CLI stop early without it, and say
# when it is not the sanitized build (sanitizer checks then see nothing).
require_qb() {
    if [ ! -x "$QB" ]; then
        fail "build" "$QB is missing (make build/host-san/qcowboot)"
        finish
        exit 1
    fi
    if ! grep -qa -e __asan_init -e __ubsan_handle "$QB"; then
        echo "note: $QB is not built with ASan/UBSan; sanitizer checks see nothing"
    fi
}
