#!/usr/bin/env bash
# qcowboot against damaged images (made by make_bad_images.py, which also
# states what is expected of each command on each image and why).
#
# Every command runs under `timeout 20` and must not time out nor print a
# sanitizer report. A command expected to refuse must exit non-zero (check:
# 1 or 2, never 0 or 3) with an error on stderr that names the problem (the
# case's regex); `corrupt` means check exits 2 with its findings on stderr
# (`leaks`: 3); `same` means the command succeeds and agrees with qemu-img
# (info JSON on the shared keys, map JSON, converted bytes).
#
# Images live in a temporary directory under build/tests/, removed at the end
# (QB_KEEP=1 keeps it).
set -u
. "$(dirname "$0")/../lib.sh"

HERE=$QB_ROOT/tests/bad
TOOL=(python3 "$QB_ROOT/tests/conformance/conftool.py")
mkdir -p "$QB_ROOT/build/tests"
T=$(mktemp -d "$QB_ROOT/build/tests/bad.XXXXXX")
if [ "${QB_KEEP:-0}" = 1 ]; then echo "images kept in $T"; else trap 'rm -rf "$T"' EXIT; fi
O=$T/out
mkdir -p "$O"

require_qb
if ! python3 "$HERE/make_bad_images.py" "$T" >"$O/gen.log" 2>&1; then
    fail "generate" "$(tail -n 5 "$O/gen.log" | tr '\n' ' ')"
    finish; exit 1
fi
cd "$T" || exit 1

sanitizer_report() {
    grep -m1 -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$1"
}
errtail() { head -c 300 "$1" | tr '\n' ' '; }

# judge LABEL EXPECT RC REGEX [COMPARE-CMD...]: one pass/fail line for a
# qcowboot run whose status is RC and stderr is $O/err; COMPARE-CMD decides
# `same`.
judge() {
    local label=$1 expect=$2 rc=$3 regex=$4; shift 4
    local rep why
    if [ "$rc" -eq 124 ]; then fail "$label" "timed out"; return; fi
    if rep=$(sanitizer_report "$O/err"); then fail "$label" "sanitizer: $rep"; return; fi
    if [ "$rc" -ge 128 ]; then fail "$label" "killed by signal $((rc - 128))"; return; fi
    case $expect in
    refuse|corrupt|leaks)
        if [ "$rc" -eq 0 ]; then fail "$label" "exit 0, expected $expect naming /$regex/"; return; fi
        if [ "$expect" = corrupt ] && [ "$rc" -ne 2 ]; then
            fail "$label" "exit $rc, expected 2 (corruptions found): $(errtail "$O/err")"; return; fi
        if [ "$expect" = leaks ] && [ "$rc" -ne 3 ]; then
            fail "$label" "exit $rc, expected 3 (leaks only): $(errtail "$O/err")"; return; fi
        if [ "$expect" = refuse ] && [ "${label##* }" = check ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
            fail "$label" "exit $rc, expected 1 (not completed) or 2 (corruptions)"; return; fi
        if [ ! -s "$O/err" ]; then fail "$label" "exit $rc with nothing on stderr"; return; fi
        if ! grep -qiP -- "$regex" "$O/err"; then
            fail "$label" "stderr does not match /$regex/: $(errtail "$O/err")"; return; fi
        pass "$label" ;;
    ok)
        if [ "$rc" -ne 0 ]; then fail "$label" "exit $rc: $(errtail "$O/err")"; return; fi
        pass "$label" ;;
    same)
        if [ "$rc" -ne 0 ]; then fail "$label" "exit $rc: $(errtail "$O/err")"; return; fi
        if why=$("$@" 2>&1); then pass "$label"; else fail "$label" "differs from qemu-img: $why"; fi ;;
    *)
        fail "$label" "bad expectation '$expect' in the manifest" ;;
    esac
}

qb() { timeout 20 "$QB" "$@" >"$O/out" 2>"$O/err"; }

# One manifest line per case and command; for `same`, qemu-img runs on the
# same image and cmpcmd compares the two results.
nlines=0
while IFS=$'\t' read -r name cmd expect regex image args; do
    nlines=$((nlines + 1))
    extra=()
    [ "$args" != - ] && IFS=, read -ra extra <<<"$args"
    label="$name $cmd"
    cmpcmd=()
    case $cmd in
    info)
        if [ "$expect" = same ]; then
            qb info --json "${extra[@]}" "$image"; rc=$?
            cp "$O/out" "$O/b.json"
            qemu-img info --output=json "${extra[@]}" "$image" >"$O/q.json" 2>/dev/null
            cmpcmd=("${TOOL[@]}" cmp-info "$O/q.json" "$O/b.json")
        else
            qb info "${extra[@]}" "$image"; rc=$?
        fi ;;
    info-chain)
        qb info --backing-chain "${extra[@]}" "$image"; rc=$? ;;
    map)
        qb map --json "${extra[@]}" "$image"; rc=$?
        cp "$O/out" "$O/b.json"
        [ "$expect" = same ] && qemu-img map --output=json "${extra[@]}" "$image" >"$O/q.json" 2>/dev/null
        cmpcmd=("${TOOL[@]}" cmp-map "$O/q.json" "$O/b.json") ;;
    check)
        qb check "${extra[@]}" "$image"; rc=$? ;;
    convert|convert-snap=*)
        snap=()
        [ "$cmd" != convert ] && snap=(-l "${cmd#convert-snap=}")
        rm -f "$O/b.raw" "$O/q.raw"
        qb convert "${snap[@]}" "${extra[@]}" "$image" "$O/b.raw"; rc=$?
        [ "$expect" = same ] && qemu-img convert "${snap[@]}" "${extra[@]}" -O raw "$image" "$O/q.raw" 2>/dev/null
        cmpcmd=(cmp "$O/q.raw" "$O/b.raw") ;;
    *)
        fail "$label" "unknown command in the manifest"; continue ;;
    esac
    judge "$label" "$expect" "$rc" "$regex" "${cmpcmd[@]}"
    rm -f "$O/b.raw" "$O/q.raw"
done <manifest.tsv
[ "$nlines" -gt 0 ] || fail "manifest" "no cases generated"

# Bad output, not bad input: a full device must stop convert with the
# reason, once, and a non-zero exit.
qemu-img create -q -f qcow2 "$O/full.qcow2" 4M
qemu-io -c 'write -P 0x5a 0 1M' "$O/full.qcow2" >/dev/null
timeout 20 "$QB" convert "$O/full.qcow2" /dev/full >/dev/null 2>"$O/full.err"; rc=$?
nmsg=$(grep -c 'No space left on device' "$O/full.err")
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$nmsg" -eq 1 ] && ! sanitizer_report "$O/full.err" >/dev/null; then
    pass "convert to a full device"
else
    fail "convert to a full device" "exit $rc, $nmsg messages: $(head -c 300 "$O/full.err")"
fi

finish
