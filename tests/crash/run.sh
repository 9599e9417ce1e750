#!/usr/bin/env bash
# Crash-consistency suite: build/tests/crash_test (tests/crash/crash_test.c)
# runs each write workload over a fault-injecting backend, crashes it at
# every backend call (or a stride that keeps the calls around flushes),
# and checks each image a reboot could find with `qemu-img check` and by
# reading it back against the model. One line per workload and group:
# the clean run, the crash points, writing again after a crash.
#
# CRASH_POINTS (default 100): about how many crash points per workload
# when it makes more backend calls than that. Images that failed are kept
# in build/tests/crash-failures/ (with their backing files).
set -u
. "$(dirname "$0")/../lib.sh"

BIN=$QB_ROOT/build/tests/crash_test
KEEP=$QB_ROOT/build/tests/crash-failures

if ! command -v qemu-img >/dev/null; then
    fail "qemu-img" "not installed"
    finish; exit 1
fi
if ! out=$(make -s -C "$QB_ROOT" build/tests/crash_test 2>&1); then
    fail "build crash_test" "$(printf '%s' "$out" | tail -n 5)"
    finish; exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qb-crash.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
rm -rf "$KEEP"

"$BIN" "$WORK" --points "${CRASH_POINTS:-100}" --keep "$KEEP" >"$WORK/log" 2>&1
rc=$?
while IFS= read -r line; do
    case $line in
    "ok   "*) pass "${line#ok   }" ;;
    "FAIL "*) fail "${line#FAIL }" ;;
    *) printf '%s\n' "$line" ;;   # details under a FAIL, sanitizer reports
    esac
done <"$WORK/log"
if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$WORK/log"; then
    fail "crash_test" "exit status $rc without a FAIL line (see the output above)"
fi
[ -d "$KEEP" ] && echo "images that failed: $KEEP"
finish
