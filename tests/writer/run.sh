#!/usr/bin/env bash
# The writer suite: every script tests/writer/*.sh except this one and the
# libraries (lib*.sh), each ending with `N passed, N failed`, run through
# tests/run-all.sh, whose closing line sums them (a script that ends without
# that line, or fails without a failed count, counts as one failure). New
# scripts join the suite by being there.
#
# The scripts run the CLI named by QB, by default the sanitized build.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export QB=${QB:-$root/build/host-san/qcowboot}
scripts=()
for s in "$root"/tests/writer/*.sh; do
    case ${s##*/} in
    run.sh | lib*.sh) ;;
    *) scripts+=("tests/writer/${s##*/}") ;;
    esac
done
exec bash "$root/tests/run-all.sh" "${scripts[@]}"
