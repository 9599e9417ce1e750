#!/usr/bin/env bash
# Convert throughput of qcowboot against qemu-img, and peak memory on a huge
# sparse image. Never fails on timing; it fails only when an image cannot be
# made or an output differs from the raw equivalent.
#
#   tests/bench/run.sh            generate what is missing, then measure
#   tests/bench/run.sh --gen      only generate the images
#
# Environment: QB (default build/host/qcowboot), BENCH_DIR (build/bench),
# BENCH_RUNS (3: each tool runs that many times, interleaved, best kept),
# BENCH_ONLY (space-separated image names to measure, default all),
# BENCH_SINK (directory for outputs; default a directory in /dev/shm when it
# has room, else BENCH_DIR/sink).
#
# Images (1 GiB virtual each, made once and kept in BENCH_DIR; data from
# gendata.py: text, random, low-entropy and structured 4 KiB blocks, about
# 1.5x compressible, no all-zero block):
#   c64k-seq    64 KiB clusters, qemu-img convert (allocated in order)
#   c64k-frag   64 KiB clusters, 16384 qemu-io writes of 64 KiB in shuffled
#               order: guest-contiguous clusters are scattered in the file
#   c4k         4 KiB clusters, qemu-img convert
#   c2M         2 MiB clusters, qemu-img convert
#   xl2-4k      64 KiB clusters with extended L2 entries (2 KiB subclusters);
#               qemu-io writes 4 KiB at every 8 KiB offset, in order: half the
#               subclusters of every cluster hold data, the other half are
#               unallocated (read as zeros) -> 262144 alternating extents
#   zlib        qemu-img convert -c, compression_type=zlib, 64 KiB clusters
#   zstd        qemu-img convert -c, compression_type=zstd, 64 KiB clusters
#   chain3      3 layers, 64 KiB clusters: base = full copy of the data;
#               mid = 256 KiB written at every 1 MiB; top = 64 KiB written
#               at every 256 KiB + 128 KiB (reads hit all three layers)
# For each: `qcowboot convert IMG OUT` and `qemu-img convert -O raw IMG OUT`
# alternately into the sink (output deleted before every run), and
# `cat RAW > OUT` of the image's raw equivalent as the limit. Ratio is
# qemu-img time / qcowboot time (>1: qcowboot is faster).
# Then: peak RSS of both tools converting a 2 TiB image with a few written
# clusters to a sparse file.
set -u
QB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QB=${QB:-$QB_ROOT/build/host/qcowboot}
D=${BENCH_DIR:-$QB_ROOT/build/bench}
RUNS=${BENCH_RUNS:-3}
GIB=$((1024 * 1024 * 1024))
IMAGES=(c64k-seq c64k-frag c4k c2M xl2-4k zlib zstd chain3)
HERE=$QB_ROOT/tests/bench
GEN_ONLY=0
[ "${1:-}" = --gen ] && GEN_ONLY=1

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

mkdir -p "$D"
cd "$D" || exit 1

# ---------------------------------------------------------------------------
# Generation (each file is made under a temporary name and renamed when
# complete, so an interrupted run never leaves a half-made image behind)

# qemu-io NAME.tmp < command file
qio() { qemu-io -f qcow2 "$1" < "$2" > /dev/null || die "qemu-io on $1 failed"; }

# patterns SIZE: 64 pattern files of SIZE bytes cut from the data, for
# qemu-io write -s (which fills its buffer from the file).
patterns() {
    local sz=$1 i
    mkdir -p pat
    for i in $(seq 0 63); do
        [ -s pat/$sz.$i ] || dd if=src.raw of=pat/$sz.$i bs=$sz count=1 \
            skip=$((i * 16777216 + 12345 * i)) iflag=skip_bytes status=none || die "dd"
    done
}

gen_src() {
    [ -s src.raw ] && return
    say "generating src.raw (1 GiB of data)"
    python3 "$HERE/gendata.py" src.raw.tmp $GIB 1 && mv src.raw.tmp src.raw || die "gendata failed"
}

# convert_img NAME OPTIONS [-c]
convert_img() {
    local n=$1 opts=$2 c=${3:-}
    [ -s $n.qcow2 ] && return
    say "generating $n.qcow2"
    qemu-img convert $c -O qcow2 -o "$opts" src.raw $n.tmp.qcow2 && mv $n.tmp.qcow2 $n.qcow2 ||
        die "qemu-img convert for $n failed"
}

gen_frag() {
    [ -s c64k-frag.qcow2 ] && return
    say "generating c64k-frag.qcow2 (16384 shuffled 64 KiB writes)"
    patterns 65536
    qemu-img create -q -f qcow2 -o cluster_size=64k c64k-frag.tmp.qcow2 1G || die "create"
    seq 0 16383 | shuf --random-source=<(yes) |
        awk -v d="$D" '{ printf "write -q -s %s/pat/65536.%d %d 64k\n", d, NR % 64, $1 * 65536 }' \
        > frag.cmds
    qio c64k-frag.tmp.qcow2 frag.cmds
    mv c64k-frag.tmp.qcow2 c64k-frag.qcow2
}

gen_xl2() {
    [ -s xl2-4k.qcow2 ] && return
    say "generating xl2-4k.qcow2 (131072 writes of 4 KiB at every 8 KiB)"
    patterns 4096
    qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on xl2-4k.tmp.qcow2 1G || die "create"
    awk -v d="$D" 'BEGIN { for (i = 0; i < 131072; i++)
        printf "write -q -s %s/pat/4096.%d %d 4k\n", d, i % 64, i * 8192 }' > xl2.cmds
    qio xl2-4k.tmp.qcow2 xl2.cmds
    mv xl2-4k.tmp.qcow2 xl2-4k.qcow2
}

gen_chain() {
    [ -s chain3.qcow2 ] && return
    say "generating chain3 (chain3-base.qcow2 <- chain3-mid.qcow2 <- chain3.qcow2)"
    patterns 262144
    patterns 65536
    [ -s chain3-base.qcow2 ] || { qemu-img convert -O qcow2 src.raw chain3-base.tmp.qcow2 &&
        mv chain3-base.tmp.qcow2 chain3-base.qcow2; } || die "chain base"
    if [ ! -s chain3-mid.qcow2 ]; then
        qemu-img create -q -f qcow2 -b chain3-base.qcow2 -F qcow2 chain3-mid.tmp.qcow2 1G || die "mid"
        awk -v d="$D" 'BEGIN { for (i = 0; i < 1024; i++)
            printf "write -q -s %s/pat/262144.%d %d 256k\n", d, i % 64, i * 1048576 }' > mid.cmds
        qio chain3-mid.tmp.qcow2 mid.cmds
        mv chain3-mid.tmp.qcow2 chain3-mid.qcow2
    fi
    qemu-img create -q -f qcow2 -b chain3-mid.qcow2 -F qcow2 chain3.tmp.qcow2 1G || die "top"
    awk -v d="$D" 'BEGIN { for (i = 0; i < 4096; i++)
        printf "write -q -s %s/pat/65536.%d %d 64k\n", d, (i * 7) % 64, i * 262144 + 131072 }' \
        > top.cmds
    qio chain3.tmp.qcow2 top.cmds
    # The backing name inside the image is the final one already (qemu-img
    # create was given chain3-mid.qcow2), so renaming the top is safe.
    mv chain3.tmp.qcow2 chain3.qcow2
}

gen_sparse() {
    [ -s sparse-2T.qcow2 ] && return
    say "generating sparse-2T.qcow2"
    qemu-img create -q -f qcow2 sparse-2T.tmp.qcow2 2T || die "create"
    qemu-io -f qcow2 -c "write -q -P 0x11 0 64k" -c "write -q -P 0x22 1G 1M" \
        -c "write -q -P 0x33 100G 64k" -c "write -q -P 0x44 1T 256k" \
        -c "write -q -P 0x55 $((2 * 1024 ** 4 - 65536)) 64k" sparse-2T.tmp.qcow2 > /dev/null ||
        die "qemu-io sparse"
    mv sparse-2T.tmp.qcow2 sparse-2T.qcow2
}

# The raw equivalent of each image (the `cat` limit and the reference the
# outputs are compared with). The converted images share src.raw.
raw_of() {
    case $1 in
    c64k-seq|c4k|c2M|zlib|zstd) echo src.raw ;;
    *) echo $1.raw ;;
    esac
}
gen_raw() {
    local r; r=$(raw_of $1)
    [ -s $r ] && return
    say "generating $r"
    qemu-img convert -O raw $1.qcow2 $r.tmp && mv $r.tmp $r || die "raw of $1"
}

gen_all() {
    command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || die "qemu-img/qemu-io missing"
    gen_src
    convert_img c64k-seq cluster_size=64k
    gen_frag
    convert_img c4k cluster_size=4k
    convert_img c2M cluster_size=2M
    gen_xl2
    convert_img zlib cluster_size=64k,compression_type=zlib -c
    convert_img zstd cluster_size=64k,compression_type=zstd -c
    gen_chain
    gen_sparse
    local n
    for n in "${IMAGES[@]}"; do gen_raw $n; done
}

gen_all
[ $GEN_ONLY = 1 ] && { say "images ready in $D"; exit 0; }
[ -x "$QB" ] || die "$QB is missing (make build/host/qcowboot)"

# ---------------------------------------------------------------------------
# Measurement

if [ -n "${BENCH_SINK:-}" ]; then
    SINK=$BENCH_SINK
elif [ "$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -n 1)" -gt $((3 * GIB)) ] 2>/dev/null; then
    SINK=$(mktemp -d /dev/shm/qb-bench.XXXXXX)
else
    SINK=$D/sink
fi
mkdir -p "$SINK"
trap 'rm -f "$SINK"/out.raw; [ -z "${BENCH_SINK:-}" ] && rmdir "$SINK" 2>/dev/null' EXIT
OUT=$SINK/out.raw
ERR=$D/last.err

now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }
# timed CMD...: runs CMD (output file removed first); prints "WALL_US CPU_US"
# (CPU = user + system time of CMD and its threads), or "-1 -1" on failure.
timed() {
    rm -f "$OUT"
    local s e u y
    s=$(now_us)
    if ! /usr/bin/time -f '%U %S' -o "$D/cpu.out" "$@" > /dev/null 2> "$ERR"; then
        echo "bench: failed: $* ($(head -c 300 "$ERR"))" >&2; echo "-1 -1"; return
    fi
    e=$(now_us)
    read -r u y < "$D/cpu.out"
    echo "$((e - s)) $(awk -v u="$u" -v y="$y" 'BEGIN { printf "%d", (u + y) * 1e6 }')"
}
run_qb() { "$QB" convert "$1" "$OUT"; }
# best "W C" "W C" ...: the pair with the smallest wall time.
best() { printf '%s\n' "$@" | awk '$1 >= 0' | sort -n | head -n 1 | grep . || echo "-1 -1"; }

files_of() {
    case $1 in
    chain3) echo chain3.qcow2 chain3-mid.qcow2 chain3-base.qcow2 ;;
    *) echo $1.qcow2 ;;
    esac
}

MISMATCH=0
declare -A T_QB T_QEMU T_CAT
only=" ${BENCH_ONLY:-${IMAGES[*]}} "
echo "sink: $SINK; $RUNS runs per tool, interleaved, best kept; qcowboot: $QB"
for n in "${IMAGES[@]}"; do
    [[ $only == *" $n "* ]] || continue
    raw=$(raw_of $n)
    # Warm the page cache so every tool reads from memory alike.
    cat $(files_of $n) "$raw" > /dev/null
    # Correctness first (untimed): qcowboot's output must equal the raw file.
    rm -f "$OUT"
    run_qb $n.qcow2 2> "$ERR" || die "qcowboot convert $n failed: $(head -c 300 "$ERR")"
    if ! cmp -s "$OUT" "$raw"; then
        echo "bench: MISMATCH: qcowboot convert $n.qcow2 differs from $raw" >&2
        MISMATCH=1
    fi
    qb=() qe=() ct=()
    for i in $(seq 1 "$RUNS"); do
        qb+=("$(timed "$QB" convert $n.qcow2 "$OUT")")
        qe+=("$(timed qemu-img convert -O raw $n.qcow2 "$OUT")")
        ct+=("$(timed sh -c 'cat "$1" > "$2"' _ "$raw" "$OUT")")
    done
    T_QB[$n]=$(best "${qb[@]}")
    T_QEMU[$n]=$(best "${qe[@]}")
    T_CAT[$n]=$(best "${ct[@]}")
    echo "  $n (wall_us cpu_us): qcowboot ${qb[*]}; qemu-img ${qe[*]}; cat ${ct[*]}" >&2
done
rm -f "$OUT"

echo
printf '%-10s %10s %10s %6s %8s %8s %7s %7s %7s %7s %7s\n' image qcowboot_s qemu-img_s ratio \
    qb_GiB/s qemu_GiB/s cat_s qb_%cat qemu_%cat qb_cpu qemu_cpu
for n in "${IMAGES[@]}"; do
    [ -n "${T_QB[$n]:-}" ] || continue
    awk -v n=$n -v a="${T_QB[$n]}" -v b="${T_QEMU[$n]}" -v c="${T_CAT[$n]}" 'BEGIN {
        split(a, A, " "); split(b, B, " "); split(c, C, " ")
        if (A[1] <= 0 || B[1] <= 0 || C[1] <= 0) { printf "%-10s (a run failed)\n", n; exit }
        printf "%-10s %10.3f %10.3f %6.2f %8.2f %8.2f %7.3f %6.0f%% %6.0f%% %7.2f %7.2f\n", n,
            A[1]/1e6, B[1]/1e6, B[1]/A[1], 1e6/A[1], 1e6/B[1], C[1]/1e6, 100*C[1]/A[1],
            100*C[1]/B[1], A[2]/1e6, B[2]/1e6 }'
done
for n in "${IMAGES[@]}"; do
    [ -n "${T_QB[$n]:-}" ] && echo "${T_QB[$n]} ${T_QEMU[$n]}"
done | awk '$1 > 0 && $3 > 0 { s += log($3 / $1); k++ } END {
    if (k) printf "geometric mean of ratios (qemu-img / qcowboot): %.2f over %d images\n", exp(s / k), k }'
echo "(1 GiB virtual each; times are the best of $RUNS by wall clock; GiB/s = virtual GiB per"
echo " wall second; %cat = cat time / tool time (cat is a single-threaded copy, so tools that"
echo " overlap reading and writing can beat it); *_cpu = user+system CPU seconds of that run)"

# Peak memory on a 2 TiB sparse image, output to a sparse file on disk.
echo
SP=$D/sparse-out.raw
for tool in qcowboot qemu-img; do
    rm -f "$SP"
    if [ $tool = qcowboot ]; then cmd=("$QB" convert sparse-2T.qcow2 "$SP")
    else cmd=(qemu-img convert -O raw sparse-2T.qcow2 "$SP"); fi
    if /usr/bin/time -f '%M %e' -o "$D/time.out" "${cmd[@]}" > /dev/null 2> "$ERR"; then
        read -r rss secs < "$D/time.out"
        printf '2 TiB sparse image (5 written ranges), %-8s peak RSS %6d KiB, %s s, output %s allocated\n' \
            $tool "$rss" "$secs" "$(du -h "$SP" | cut -f1)"
    else
        echo "2 TiB sparse image: $tool failed: $(head -c 300 "$ERR")"
    fi
done
rm -f "$SP"

[ $MISMATCH = 0 ]
