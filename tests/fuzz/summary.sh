#!/usr/bin/env bash
# Summary of a `make fuzz` run (libFuzzer in fork mode):
#   tests/fuzz/summary.sh LOG CORPUS_DIR CRASH_DIR
set -u
log=$1 corpus=$2 crashes=$3
# Fork-mode progress lines: "#EXECS: cov: C ft: F corp: N exec/s E oom/timeout/crash: a/b/c time: Ts ..."
last=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -n 1)
execs=$(sed -nE 's/^#([0-9]+): .*/\1/p' <<<"$last")
secs=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
cov=$(sed -nE 's/.* cov: ([0-9]+) .*/\1/p' <<<"$last")
ft=$(sed -nE 's/.* ft: ([0-9]+) .*/\1/p' <<<"$last")
otc=$(sed -nE 's|.* oom/timeout/crash: ([0-9]+/[0-9]+/[0-9]+) .*|\1|p' <<<"$last")
rate=n/a
if [ -n "$execs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ]; then rate=$((execs / secs)); fi
ncorp=$(find "$corpus" -type f | wc -l)
csize=$(du -sh "$corpus" 2>/dev/null | cut -f1)
mapfile -t found < <(find "$crashes" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
                         -o -name 'leak-*' -o -name 'slow-unit-*' \) | sort)
echo "---- fuzz summary ----"
echo "executions:   ${execs:-n/a} in ${secs:-n/a} s (${rate} exec/s)"
echo "coverage:     ${cov:-n/a} edges, ${ft:-n/a} features"
echo "corpus:       $ncorp inputs ($csize) in $corpus"
echo "oom/timeout/crash events: ${otc:-n/a}"
echo "saved inputs: ${#found[@]} in $crashes"
for f in "${found[@]}"; do echo "  $f ($(stat -c %s "$f") bytes)"; done
