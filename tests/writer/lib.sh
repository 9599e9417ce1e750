# Helpers for the writer suites, sourced after tests/lib.sh: running
# qcowboot and qemu-io on lists of qemu-io commands, and asserting that an
# image is clean and holds the expected virtual disk. (run.sh does not run
# this file: it is a library.)
#
# Helpers that assert something return non-zero and leave the reason in WHY;
# `expect NAME CMD...` turns that into one pass/fail line.

WRITER_DIR=$QB_ROOT/tests/writer
WORKLOAD=(python3 "$WRITER_DIR/workload.py")
CONFTOOL=(python3 "$QB_ROOT/tests/conformance/conftool.py")
WHY=
# The file where qb_run and qemu_io_ops leave the last run's output: set it
# before sourcing this file.
: "${RUN_LOG:?set RUN_LOG before sourcing tests/writer/lib.sh}"

# expect NAME CMD...: passes NAME when CMD succeeds, else fails it with WHY
# (and returns 1).
expect() {
    local name=$1; shift
    WHY=
    if "$@"; then pass "$name"; else fail "$name" "${WHY:-failed: $*}"; return 1; fi
}

# Short form of a log for a failure line.
log_tail() { tail -c 400 "$1" | tr '\n' ' '; }

# qb_run ARGS...: runs qcowboot (120 s at most). Succeeds when it exits 0
# without a sanitizer report.
qb_run() {
    local rc rep
    timeout 120 "$QB" "$@" >"$RUN_LOG" 2>&1
    rc=$?
    if rep=$(grep -m1 -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$RUN_LOG"); then
        WHY="sanitizer report from qcowboot $1: $rep"; return 1
    fi
    if [ $rc -eq 124 ]; then WHY="qcowboot $1 timed out"; return 1; fi
    if [ $rc -ne 0 ]; then
        WHY="qcowboot $(printf '%.160s' "$*") exited $rc: $(log_tail "$RUN_LOG")"; return 1
    fi
}

# qb_refuses ARGS...: qcowboot must exit non-zero with a message, without
# a crash, a timeout or a sanitizer report.
qb_refuses() {
    if qb_run "$@"; then WHY="qcowboot $* succeeded"; return 1; fi
    case $WHY in "sanitizer"*|*"timed out") return 1 ;; esac
    if ! grep -q . "$RUN_LOG"; then WHY="qcowboot $* failed without a message"; return 1; fi
    WHY=
}

# cmd_args OPS [FIRST LAST]: one `-c LINE` per line of OPS (lines FIRST..LAST)
# in CMD_ARGS.
cmd_args() {
    local ops=$1 first=${2:-1} last=${3:-999999} n=0 line
    CMD_ARGS=()
    while IFS= read -r line; do
        n=$((n + 1))
        [ $n -ge "$first" ] && [ $n -le "$last" ] && [ -n "$line" ] && CMD_ARGS+=(-c "$line")
    done <"$ops"
}

# qb_io FMT IMG OPS [PARTS]: runs the commands of OPS with `qcowboot io`, in
# PARTS invocations (default 2: the image is closed and reopened between
# them, and every invocation costs an ASan start-up, so not one per command).
qb_io() {
    local fmt=$1 img=$2 ops=$3 parts=${4:-2} n first last
    n=$(grep -c . "$ops")
    for ((first = 1; first <= n; first = last + 1)); do
        last=$((first + (n + parts - 1) / parts - 1))
        cmd_args "$ops" $first $last
        qb_run io -f "$fmt" "$img" "${CMD_ARGS[@]}" || return 1
    done
}

# qemu_io_ops FMT IMG OPS: the same commands with qemu-io, which must report no
# failure (it exits non-zero on one, but keeps going).
qemu_io_ops() {
    cmd_args "$3"
    qemu-io -f "$1" "${CMD_ARGS[@]}" "$2" >"$RUN_LOG" 2>&1
    local rc=$?
    if [ $rc -ne 0 ] || grep -q -i -E 'failed|error' "$RUN_LOG"; then
        WHY="qemu-io on $2 (exit $rc): $(grep -m2 -i -E 'failed|error' "$RUN_LOG" | tr '\n' ' ')"
        return 1
    fi
}

# clean IMG: qemu-img check finds no corruption and no leak.
clean() {
    local out
    out=$(qemu-img check "$1" 2>&1) && return 0
    WHY="qemu-img check $1 (exit $?): $(printf '%s' "$out" | grep -v '^$' | head -n 6 | tr '\n' ' ')"
    return 1
}

# same FMT_A A FMT_B B: the two virtual disks are equal (qemu-img compare;
# not -s, which would also compare how ranges are allocated).
same() {
    local out
    out=$(qemu-img compare -f "$1" -F "$3" "$2" "$4" 2>&1) && return 0
    WHY="qemu-img compare $2 $4: $(printf '%s' "$out" | head -n 3 | tr '\n' ' ')"
    return 1
}

# snapshot_same IMG SNAPSHOT RAW: the snapshot's disk, as qemu-img reads it,
# is RAW.
snapshot_same() {
    local out=$1.snap.raw
    rm -f "$out"
    if ! qemu-img convert -l "snapshot.name=$2" -O raw "$1" "$out" 2>"$RUN_LOG"; then
        WHY="qemu-img convert -l $2 $1: $(log_tail "$RUN_LOG")"; return 1
    fi
    if ! cmp -s "$out" "$3"; then WHY="snapshot $2 of $1 differs from $3: $(cmp "$out" "$3" 2>&1 | head -n 1)"; rm -f "$out"; return 1; fi
    rm -f "$out"
}

# snapshots_are IMG NAME...: qemu-img snapshot -l lists exactly these names,
# in this order.
snapshots_are() {
    local img=$1; shift
    local got want="$*"
    got=$(qemu-img snapshot -l "$img" 2>&1 | awk 'NR > 2 { print $2 }' | tr '\n' ' ')
    got=${got% }
    [ "$got" = "$want" ] && return 0
    WHY="snapshots of $img: '$got', expected '$want'"
    return 1
}

# hdr IMG FIELD: a qcow2 header field.
hdr() { "${CONFTOOL[@]}" hdr "$1" "$2"; }

# zeros FILE SIZE: a sparse all-zero raw file.
zeros() { rm -f "$1"; truncate -s "$2" "$1"; }
