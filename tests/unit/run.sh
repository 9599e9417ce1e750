#!/usr/bin/env bash
# Host unit tests: the engine's own tests and libc-mini's, both under
# ASan+UBSan. Each binary ends with its own `N passed, N failed`; this
# suite counts a binary as one test each and prints the combined line.
set -u
source "$(dirname "$0")/../lib.sh"
for bin in "$QB_ROOT/build/tests/unit_tests" "$QB_ROOT/build/tests/libc_mini_test"; do
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then fail "$name" "not built"; continue; fi
    if out=$("$bin" 2>&1); then
        printf '%s\n' "$out" | sed 's/^/    /'
        pass "$name"
    else
        printf '%s\n' "$out" | sed 's/^/    /'
        fail "$name" "$(printf '%s' "$out" | tail -n 1)"
    fi
done
finish
