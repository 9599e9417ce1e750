#!/usr/bin/env bash
# Write speed of `qcowboot io` against `qemu-io`, in the same run, on the
# same command lists. Never fails on timing; it fails only when a run fails,
# an image cannot be made, or a result is wrong (qemu-img check not clean, or
# qcowboot's image not equal to qemu-io's).
#
#   tests/bench/write.sh
#
# Environment: QB (default build/host/qcowboot), BENCH_RUNS (5: each tool
# runs that many times, interleaved, best kept), BENCH_ONLY (space-separated
# case names, default all), BENCH_WORK (directory for the images; default a
# new directory in /dev/shm when it has room, else build/bench/write-work),
# BENCH_SEED (1: seed of the random offsets), BENCH_RANDOM_WRITES (16384).
#
# Cases (1 GiB virtual disks, 64 KiB clusters, every image made by qemu-img
# so both tools start from the same bytes; each write has its own -P byte,
# 0x01..0xff in turn, so a write applied out of order shows in the compare):
#   seq-1M      1024 writes of 1 MiB in order into a fresh image
#   rand-4k     the random 4 KiB writes into a fresh image (each first write
#               to a cluster allocates it; the rest of it reads as zeros)
#   rand-4k-alloc   the same writes into a copy of a fully allocated image
#               (qemu-img create -o preallocation=full): overwrites in place
#   rand-4k-cow the same writes into a fresh overlay of a 1 GiB base filled
#               with data (-b base -F qcow2): each first write to a cluster
#               copies the other 60 KiB from the backing file
# The random writes are BENCH_RANDOM_WRITES 4 KiB-aligned offsets drawn by a
# seeded generator (repeats allowed, as a guest would), the same list for
# both tools. Each tool gets the whole list as -c arguments of one
# invocation, then `-c flush`.
#
# Cache mode, the same on both sides: write-back through the page cache, no
# O_DIRECT, a final `flush` command (fdatasync) and the flush at close.
# qemu-io opens images write-through unless told otherwise (it then flushes
# after every write), so it is run with `-t writeback`; qcowboot io always
# writes back.
#
# Ratio is qemu-io time / qcowboot time (>1: qcowboot is faster). Before
# every timed run the image is made afresh (qemu-img create, or cp of the
# prepared image); that is not timed. The results of the first round are
# checked: `qemu-img check` clean on both, `qemu-img compare` equal.
set -u
QB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$QB_ROOT/tests/lib.sh"
QB=${QB:-$QB_ROOT/build/host/qcowboot}
RUNS=${BENCH_RUNS:-5}
SEED=${BENCH_SEED:-1}
NRAND=${BENCH_RANDOM_WRITES:-16384}
GIB=$((1024 * 1024 * 1024))
CASES=(seq-1M rand-4k rand-4k-alloc rand-4k-cow)

die() { echo "bench-write: $*" >&2; exit 1; }
say() { echo "bench-write: $*" >&2; }

command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || die "qemu-img/qemu-io missing"
[ -x "$QB" ] || die "$QB is missing (make build/host/qcowboot)"

# The images live in memory when /dev/shm has room for the largest moment
# (base, preallocated image and two results: 4 GiB, plus slack).
MADE_WORK=0
if [ -n "${BENCH_WORK:-}" ]; then
    W=$BENCH_WORK
elif [ "$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -n 1)" -gt $((6 * GIB)) ] 2>/dev/null; then
    W=$(mktemp -d /dev/shm/qb-wbench.XXXXXX) && MADE_WORK=1
else
    W=$QB_ROOT/build/bench/write-work
fi
mkdir -p "$W" || die "cannot make $W"
W=$(cd "$W" && pwd)
cleanup() {
    rm -f "$W"/{qb,qemu}.qcow2 "$W"/base{,.tmp}.qcow2 "$W"/alloc.qcow2 "$W"/*.cmds "$W"/*.err "$W"/cpu.out
    [ $MADE_WORK = 1 ] && rmdir "$W" 2>/dev/null
}
trap cleanup EXIT
cd "$W" || exit 1
case $(df --output=fstype "$W" | tail -n 1) in
tmpfs) WHERE="$W (tmpfs: in memory, fdatasync costs nothing)" ;;
*) WHERE="$W (on disk: fdatasync waits for the device)" ;;
esac

# ---------------------------------------------------------------------------
# Command lists (one qemu-io command per line) and prepared images

python3 - "$SEED" "$NRAND" <<'EOF' || die "cannot write the command lists"
import random, sys
seed, n = int(sys.argv[1]), int(sys.argv[2])
mib, gib = 1 << 20, 1 << 30
with open("seq.cmds", "w") as f:
    for i in range(gib // mib):
        f.write("write -q -P 0x%02x %d 1M\n" % (i % 255 + 1, i * mib))
r = random.Random(seed)
with open("rand.cmds", "w") as f:
    for i in range(n):
        f.write("write -q -P 0x%02x %d 4k\n" % (i % 255 + 1, r.randrange(gib // 4096) * 4096))
EOF

# A list as arguments must fit the kernel's limit with room for the
# environment; past it, both tools would fail alike with E2BIG.
for f in seq.cmds rand.cmds; do
    bytes=$(awk '{ s += length($0) + 1 + 3 + 16 } END { print s }' $f)
    [ "$bytes" -lt $(($(getconf ARG_MAX) / 2)) ] ||
        die "$f needs $bytes bytes of arguments (ARG_MAX $(getconf ARG_MAX)); lower BENCH_RANDOM_WRITES"
done

fresh() { qemu-img create -q -f qcow2 -o cluster_size=64k "$1" 1G || { say "qemu-img create $1 failed"; return 1; }; }

prepare_alloc() {
    [ -s alloc.qcow2 ] && return
    say "preparing alloc.qcow2 (1 GiB, preallocation=full)"
    qemu-img create -q -f qcow2 -o cluster_size=64k,preallocation=full alloc.qcow2 1G ||
        die "qemu-img create alloc.qcow2"
}
# The base of the COW case: every cluster allocated, 1 MiB runs of one
# byte each (the seq-1M list, written by qemu-io).
prepare_base() {
    [ -s base.qcow2 ] && return
    say "preparing base.qcow2 (1 GiB of data)"
    fresh base.tmp.qcow2 || exit 1
    qemu-io -t writeback -f qcow2 base.tmp.qcow2 "${SEQ_ARGS[@]}" > /dev/null || die "qemu-io base"
    mv base.tmp.qcow2 base.qcow2
}

# The target image of CASE for TOOL (qb or qemu), made afresh.
setup() {
    local img=$2.qcow2
    rm -f "$img"
    case $1 in
    seq-1M|rand-4k) fresh "$img" ;;
    rand-4k-alloc) cp --sparse=never alloc.qcow2 "$img" || { say "cp alloc.qcow2 failed"; return 1; } ;;
    rand-4k-cow) qemu-img create -q -f qcow2 -o cluster_size=64k -b "$W/base.qcow2" -F qcow2 \
        "$img" 1G || { say "qemu-img create of the overlay failed"; return 1; } ;;
    esac
}

to_args() { local l; ARGS=(); while IFS= read -r l; do ARGS+=(-c "$l"); done < "$1"; ARGS+=(-c flush); }
to_args seq.cmds; SEQ_ARGS=("${ARGS[@]}")
to_args rand.cmds; RAND_ARGS=("${ARGS[@]}")

# ---------------------------------------------------------------------------
# Measurement

now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }
# timed TOOL CASE: runs TOOL's command list on its fresh image of CASE;
# prints "WALL_US CPU_US" (CPU = user + system of the tool and its threads),
# or "-1 -1" on failure.
timed() {
    local tool=$1 c=$2 s e u y list=RAND_ARGS
    [ $c = seq-1M ] && list=SEQ_ARGS
    local -n args=$list
    setup $c $tool || { echo "-1 -1"; return; }
    local cmd=("$QB" io -f qcow2 $tool.qcow2)
    [ $tool = qemu ] && cmd=(qemu-io -t writeback -f qcow2 $tool.qcow2)
    s=$(now_us)
    if ! /usr/bin/time -f '%U %S' -o cpu.out "${cmd[@]}" "${args[@]}" > /dev/null 2> $tool.err; then
        echo "bench-write: failed: ${cmd[*]} on $c ($(head -c 300 $tool.err))" >&2
        echo "-1 -1"; return
    fi
    e=$(now_us)
    read -r u y < cpu.out
    echo "$((e - s)) $(awk -v u="$u" -v y="$y" 'BEGIN { printf "%d", (u + y) * 1e6 }')"
}
# best "W C" "W C" ...: the smallest wall time and, apart, the smallest CPU
# time (CPU time suffers less when other work shares the machine).
best() {
    printf '%s\n' "$@" | awk '$1 >= 0 { if (!k++ || $1 < w) w = $1; if (k == 1 || $2 < c) c = $2 }
        END { if (k) print w, c; else print "-1 -1" }'
}

# verify CASE: the two results of the round just run are clean and equal.
verify() {
    local c=$1 t
    for t in qb qemu; do
        check "$c: qemu-img check of the $t result" qemu-img check -q $t.qcow2
    done
    check "$c: qcowboot's result equals qemu-io's" qemu-img compare -q qb.qcow2 qemu.qcow2
}

declare -A T_QB T_QEMU
only=" ${BENCH_ONLY:-${CASES[*]}} "
echo "images: $WHERE"
echo "qcowboot: $QB; $RUNS runs per tool, interleaved (order alternating), best kept"
for c in "${CASES[@]}"; do
    [[ $only == *" $c "* ]] || continue
    case $c in
    rand-4k-alloc) prepare_alloc ;;
    rand-4k-cow) prepare_base ;;
    esac
    qb=() qe=()
    for i in $(seq 1 "$RUNS"); do
        if [ $((i % 2)) = 1 ]; then
            qb+=("$(timed qb $c)"); qe+=("$(timed qemu $c)")
        else
            qe+=("$(timed qemu $c)"); qb+=("$(timed qb $c)")
        fi
        [ $i = 1 ] && verify $c
    done
    for r in "${qb[@]}" "${qe[@]}"; do
        [ "$r" = "-1 -1" ] && { fail "$c: every run completes" "see bench-write: failed above"; break; }
    done
    T_QB[$c]=$(best "${qb[@]}")
    T_QEMU[$c]=$(best "${qe[@]}")
    echo "  $c (wall_us cpu_us): qcowboot ${qb[*]}; qemu-io ${qe[*]}" >&2
    rm -f qb.qcow2 qemu.qcow2
    [ $c = rand-4k-alloc ] && rm -f alloc.qcow2
    [ $c = rand-4k-cow ] && rm -f base.qcow2
done

echo
printf '%-14s %8s %10s %10s %6s %10s %10s %7s %8s %9s\n' case writes qcowboot_s qemu-io_s ratio \
    qb_MiB/s qemu_MiB/s qb_cpu qemu_cpu cpu_ratio
for c in "${CASES[@]}"; do
    [ -n "${T_QB[$c]:-}" ] || continue
    if [ $c = seq-1M ]; then n=1024 mib=1024; else n=$NRAND mib=$((NRAND / 256)); fi
    awk -v c=$c -v n=$n -v m=$mib -v a="${T_QB[$c]}" -v b="${T_QEMU[$c]}" 'BEGIN {
        split(a, A, " "); split(b, B, " ")
        if (A[1] <= 0 || B[1] <= 0) { printf "%-14s (a run failed)\n", c; exit }
        printf "%-14s %8d %10.3f %10.3f %6.2f %10.1f %10.1f %7.2f %8.2f %9s\n", c, n,
            A[1]/1e6, B[1]/1e6, B[1]/A[1], m*1e6/A[1], m*1e6/B[1], A[2]/1e6, B[2]/1e6,
            (A[2] > 0 ? sprintf("%.2f", B[2]/A[2]) : "-") }'
done
for c in "${CASES[@]}"; do
    [ -n "${T_QB[$c]:-}" ] && echo "${T_QB[$c]} ${T_QEMU[$c]}"
done | awk '$1 > 0 && $3 > 0 { s += log($3 / $1); k++ } END {
    if (k) printf "geometric mean of ratios (qemu-io / qcowboot): %.2f over %d cases\n", exp(s / k), k }'
echo "(1 GiB virtual disks, 64 KiB clusters; times are the best of $RUNS by wall clock and"
echo " include opening, the final flush command and closing; cache mode on both sides:"
echo " write-back, no O_DIRECT, fdatasync at the flush command and at close (qemu-io"
echo " -t writeback); MiB/s = data written per wall second; *_cpu = user+system CPU"
echo " seconds, all threads, the least of the $RUNS runs; cpu_ratio = qemu_cpu / qb_cpu,"
echo " steadier than wall time when other work shares the machine)"
echo
finish
