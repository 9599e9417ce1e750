#!/usr/bin/env bash
# Runs every test suite of `make test` and sums their `N passed, N failed`
# lines into one closing line. A suite that ends without such a line, or
# exits non-zero, counts as a failure of its own.
set -u
cd "$(dirname "$0")/.."
total_pass=0; total_fail=0; broken=(); times=()
for suite in "$@"; do
    echo "=== $suite"
    log=$(mktemp)
    started=$SECONDS
    bash "$suite" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    times+=("$(printf '%5d s  %s' $((SECONDS - started)) "$suite")")
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$line" ]; then
        broken+=("$suite (no result line, exit $rc)"); total_fail=$((total_fail + 1)); continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then broken+=("$suite (exit $rc)"); total_fail=$((total_fail + 1)); fi
done
echo "==="
[ "$#" -gt 1 ] && printf 'time per suite:\n' && printf '  %s\n' "${times[@]}"
for b in "${broken[@]+"${broken[@]}"}"; do echo "broken suite: $b"; done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
