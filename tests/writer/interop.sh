#!/usr/bin/env bash
# Interoperability of qcowboot's writer with qemu-img / qemu-io 7.2.
#
# Images written by `qcowboot create/io/snapshot/commit/convert` must pass
# `qemu-img check` (no corruption, no leak) and hold the virtual disk a model
# says they must (`qemu-img compare` with a raw reference file). The model
# is tests/writer/workload.py: it makes seeded random lists of qemu-io
# commands, and applies them to a raw file as the virtual disk must change.
# The same list also runs through qemu-io on a copy of the starting image,
# and `qemu-img compare` must find the two images equal: qcowboot behaves as
# qemu-io does, zero writes and discards included. (A qemu-io run that
# fails or disagrees with the model is reported as `setup`: the test, not
# qcowboot, is wrong then.)
#
# Cases:
#   rand CONFIG sN       a random workload on one image configuration
#   alternate ...        one workload in four parts, qemu-io and qcowboot
#                        taking turns on the same image, checked after each
#   zero-discard ...     a fixed list of zero writes and discards at the
#                        awkward places (partial clusters, compressed and
#                        never-written clusters, the disk's end)
#   snapshots ...        create, write, apply, delete; every snapshot's disk
#                        read back by qemu-img convert -l
#   commit ...           an overlay written by qcowboot, committed into
#                        qcow2, raw and compressed backing files
#   convert ...          a chain, a raw file and a compressed image
#                        converted to qcow2 (plain, compressed, other
#                        options); then writes into the results
#   repair ...           images qemu left dirty or leaking, repaired
#
# Images live in a temporary directory under build/tests/, removed at the end
# (QB_KEEP=1 keeps it; QB_ONLY=REGEX runs only the cases whose names match).
# Backing files are named relative to the overlay (../base/...), and every
# tool runs from the temporary directory.
set -u
QB=${QB:-$(cd "$(dirname "$0")/../.." && pwd)/build/host-san/qcowboot}
. "$(dirname "$0")/../lib.sh"
mkdir -p "$QB_ROOT/build/tests"
T=$(mktemp -d "$QB_ROOT/build/tests/writer-interop.XXXXXX")
if [ "${QB_KEEP:-0}" = 1 ]; then echo "images kept in $T"; else trap 'rm -rf "$T"' EXIT; fi
RUN_LOG=$T/run.log
. "$QB_ROOT/tests/writer/lib.sh"
cd "$T" || exit 1

require_qb
# A private copy of the CLI: the shared build directory may be relinked
# while the suite runs.
cp "$QB" "$T/qcowboot" && QB=$T/qcowboot

# The disk most cases use: 6 MiB + 7 KiB, so the last cluster is partial
# for every cluster size above 4 KiB. Its data (mixed compressibility, some
# all-zero 64 KiB chunks) is the content of every backing file and of the
# images qemu-img converts.
SIZE=$((6 * 1024 * 1024 + 7 * 1024))
mkdir -p base
"${CONFTOOL[@]}" gendata base/src.raw $SIZE 11
SETUP_LOG=$T/setup.log

# selected NAME: the case is to run (QB_ONLY).
selected() { [ -z "${QB_ONLY:-}" ] || [[ $1 =~ $QB_ONLY ]]; }

# setup NAME CMD...: a construction step that must work; a failure is
# reported as `NAME: setup` (and the caller skips what depends on it).
setup() {
    local name=$1; shift
    "$@" >"$SETUP_LOG" 2>&1 && return 0
    fail "$name: setup" "$* => $(log_tail "$SETUP_LOG")"
    return 1
}

setup "bases" qemu-img convert -O qcow2 -o cluster_size=4k base/src.raw base/b4k.qcow2
setup "bases" qemu-img convert -c -O qcow2 -o cluster_size=64k,compression_type=zstd \
    base/src.raw base/zstd64k.qcow2
setup "bases" qemu-img convert -c -O qcow2 -o cluster_size=4k,compression_type=zlib \
    base/src.raw base/zlib4k.qcow2
# A backing file shorter than its overlays (2 MiB + 3 KiB): past its end
# they read zeros. short-disk.raw is what such an overlay shows.
head -c $((2 * 1024 * 1024 + 3 * 1024)) base/src.raw >base/short.raw
cp base/short.raw base/short-disk.raw && truncate -s $SIZE base/short-disk.raw

# ---------------------------------------------------------------------------
# What an image configuration implies. OPTS is a qemu-img -o list.

opt_of() {   # opt_of OPTS KEY DEFAULT
    local v
    v=$(tr ',' '\n' <<<"$1" | sed -n "s/^$2=//p" | tail -n 1)
    echo "${v:-$3}"
}
cluster_of() { numfmt --from=iec "$(opt_of "$1" cluster_size 64K | tr 'a-z' 'A-Z')"; }
is_v2() { [ "$(opt_of "$1" compat 1.1)" = 0.10 ]; }
is_xl2() { [ "$(opt_of "$1" extended_l2 off)" = on ]; }
# How a discard changes the disk (see workload.py): qemu refuses to discard
# on v2 images with a backing file.
discard_mode() {   # discard_mode OPTS BASE
    if is_v2 "$1" && [ -n "$2" ]; then echo keep; else echo zero; fi
}

# make_start NAME START BASE DISK OUT: the starting image (see `rand`).
make_start() {
    local name=$1 start=$2 base=$3 disk=$4 out=$5
    local how=${start%%:*} opts=${start#*:} b=()
    [ -n "$base" ] && b=(-b "../base/${base%:*}" -F "${base#*:}")
    case $how in
    qb)
        expect "$name: create" qb_run create -f qcow2 -o "$opts" "${b[@]}" "$out" "$disk" &&
            expect "$name: created image is clean" clean "$out"
        ;;
    qemu) setup "$name" qemu-img create -f qcow2 -o "$opts" "${b[@]}" "$out" "$disk" ;;
    conv) setup "$name" qemu-img convert -O qcow2 -o "$opts" ../base/src.raw "$out" ;;
    convc) setup "$name" qemu-img convert -c -O qcow2 -o "$opts" ../base/src.raw "$out" ;;
    esac
}

# start_ref START BASE DISK OUT: the raw disk of the starting image.
start_ref() {
    case $1:$2 in
    conv:* | convc:*) cp ../base/src.raw "$4" ;;
    *:) zeros "$4" "$3" ;;
    *:short.raw:raw) cp ../base/short-disk.raw "$4" ;;
    *) cp ../base/src.raw "$4" ;;
    esac
}

# model OPS REF OPTS BASE: applies OPS to the raw reference REF.
model() {
    "${WORKLOAD[@]}" apply "$1" "$2" --cluster "$(cluster_of "$3")" --discard "$(discard_mode "$3" "$4")"
}

# gen_ops OUT SEED OPTS DISK GEN...: a workload for an image of OPTS.
gen_ops() {
    local out=$1 seed=$2 opts=$3 disk=$4; shift 4
    local x=()
    is_xl2 "$opts" && x=(--xl2)
    "${WORKLOAD[@]}" gen --seed "$seed" --size "$disk" --cluster "$(cluster_of "$opts")" "${x[@]}" "$@" >"$out"
}

# reaches OPS OPTS DISK l2|end: OPS has commands that cross an L2 table
# boundary (l2; and reach the disk's end) or that reach the disk's end (end)
# - what a case named for them must have.
reaches() {
    local x=() cross end
    is_xl2 "$2" && x=(--xl2)
    read -r cross end < <("${WORKLOAD[@]}" reach "$1" --size "$3" --cluster "$(cluster_of "$2")" "${x[@]}")
    WHY="$cross commands cross an L2 table boundary, $end reach the end"
    [ "${end:-0}" -gt 0 ] && { [ "$4" = end ] || [ "${cross:-0}" -gt 0 ]; }
}

# ---------------------------------------------------------------------------
# rand NAME SEEDS START [BASE]: random workloads on one configuration.
#   START  qb:OPTS     made by qcowboot create -o OPTS (over BASE if given)
#          qemu:OPTS   made by qemu-img create
#          conv:OPTS   qemu-img convert of the data; convc:OPTS compressed
#   BASE   FILE:FMT in base/, the backing file
# Environment: GEN, more workload.py gen options (--compress on fresh
# images); DISK, the virtual size (default SIZE); QEMU=no for workloads
# qemu-io cannot run (then only the model judges); REACH=l2|end asserts
# that the workloads reach what the case is named for (see reaches).
# Lines per seed: io (qcowboot io ran, in two invocations), clean,
# = model, = qemu-io.
rand() {
    local name="rand $1" seeds=$2 start=$3 base=${4:-} disk=${DISK:-$SIZE} gen=(${GEN:-})
    selected "$name" || return
    local opts=${start#*:} dir=$T/$1 seed s
    mkdir -p "$dir" && cd "$dir" || return
    make_start "$name" "$start" "$base" "$disk" start.qcow2 || { cd "$T"; return; }
    for seed in $seeds; do
        s="$name s$seed"
        gen_ops s$seed.ops $seed "$opts" "$disk" "${gen[@]}"
        [ -n "${REACH:-}" ] &&
            expect "$s: the workload reaches $([ "$REACH" = l2 ] && echo "L2 table boundaries and ")the disk's end" \
                reaches s$seed.ops "$opts" "$disk" "$REACH"
        start_ref "$start" "$base" "$disk" s$seed.raw
        model s$seed.ops s$seed.raw "$opts" "$base"
        cp start.qcow2 qb-s$seed.qcow2
        if [ "${QEMU:-yes}" = yes ]; then
            cp start.qcow2 qemu-s$seed.qcow2
            qemu_io_ops qcow2 qemu-s$seed.qcow2 s$seed.ops &&
                same qcow2 qemu-s$seed.qcow2 raw s$seed.raw ||
                fail "$s: setup" "qemu-io and the model disagree: $WHY"
        fi
        expect "$s: io" qb_io qcow2 qb-s$seed.qcow2 s$seed.ops
        expect "$s: clean" clean qb-s$seed.qcow2
        expect "$s: = model" same qcow2 qb-s$seed.qcow2 raw s$seed.raw
        [ "${QEMU:-yes}" = yes ] &&
            expect "$s: = qemu-io" same qcow2 qb-s$seed.qcow2 qcow2 qemu-s$seed.qcow2
    done
    cd "$T"
}

# --- cluster sizes x versions; images qcowboot and qemu-img made -------------
GEN=--compress rand v3-c64k "1 2" qb:compat=1.1
GEN=--compress rand v2-c64k "1 2" qb:compat=0.10
REACH=l2 GEN=--compress rand v3-c512 "1 2" qb:compat=1.1,cluster_size=512
GEN=--compress rand v2-c512 "1" qemu:compat=0.10,cluster_size=512
GEN=--compress rand v3-c2M "1" qb:cluster_size=2M
rand v2-c2M "1" qemu:compat=0.10,cluster_size=2M
GEN=--compress rand v3-c4k-qemu "1" qemu:cluster_size=4k
GEN=--compress rand v3-c16k-zstd "1" qb:cluster_size=16k,compression_type=zstd

# --- backing chains: COW of partial clusters from the backing file ----------
GEN=--compress rand v3-c4k-backing "1 2" qb:cluster_size=4k b4k.qcow2:qcow2
GEN=--compress rand v2-c64k-backing "1 2" qb:compat=0.10 b4k.qcow2:qcow2
rand v2-c512-backing "1" qemu:compat=0.10,cluster_size=512 b4k.qcow2:qcow2
rand v3-c64k-raw-backing "1" qb:compat=1.1 src.raw:raw
GEN="--hot 2100224" rand v3-c16k-short-backing "1" qb:cluster_size=16k short.raw:raw
GEN="--hot 2100224" rand xl2-c64k-short-backing "1" qb:extended_l2=on short.raw:raw

# --- extended L2: partly written clusters keep reading from the backing file -
GEN=--compress rand xl2-c64k-backing "1 2" qb:extended_l2=on b4k.qcow2:qcow2
rand xl2-c16k-zstd-backing "1" qb:extended_l2=on,cluster_size=16k zstd64k.qcow2:qcow2
rand xl2-c32k-raw-backing "1" qb:extended_l2=on,cluster_size=32k src.raw:raw
GEN=--compress rand xl2-c2M "1" qb:extended_l2=on,cluster_size=2M
GEN=--compress rand xl2-c16k-qemu "1" qemu:extended_l2=on,cluster_size=16k

# --- compressed images: writes into compressed clusters (COW from them) -----
rand compressed-zlib-c4k "1 2" convc:cluster_size=4k,compression_type=zlib
rand compressed-zstd-c64k "1" convc:cluster_size=64k,compression_type=zstd
rand compressed-v2-c512 "1" convc:compat=0.10,cluster_size=512
rand v3-c4k-over-compressed "1" qb:cluster_size=4k zlib4k.qcow2:qcow2
# Compressed writes mixed with every other command: qemu 7.2 itself breaks
# there (see workload.py), so the model alone judges.
QEMU=no GEN=--compress-anywhere rand compress-anywhere-c4k "1 2" qb:cluster_size=4k
QEMU=no GEN=--compress-anywhere rand compress-anywhere-c64k-backing "1" qb:compat=1.1 b4k.qcow2:qcow2

# --- refcount widths -----------------------------------------------------------
GEN=--compress rand refcount-bits-1 "1" qb:cluster_size=4k,refcount_bits=1
GEN=--compress rand refcount-bits-64 "1" qb:cluster_size=4k,refcount_bits=64
rand refcount-bits-2-v3 "1" qemu:cluster_size=4k,refcount_bits=2

# A refcount table that must grow: with 512-byte clusters and 64-bit
# refcounts a refcount block covers 32 KiB of file and a table cluster 64
# blocks (2 MiB), so writing 4 MiB more needs a larger table.
GEN="--bulk 4194304" DISK=$((8 << 20)) rand refcount-table-grows "1" \
    qb:cluster_size=512,refcount_bits=64
rt_grew() {
    local before after
    before=$(hdr "$1" refcount_table_clusters) && after=$(hdr "$2" refcount_table_clusters) || {
        WHY="cannot read the headers"; return 1; }
    [ "$after" -gt "$before" ] && return 0
    WHY="refcount table of $before cluster(s) before, $after after"
    return 1
}
d=refcount-table-grows
[ -f $d/qb-s1.qcow2 ] && expect "rand $d s1: the refcount table grew" rt_grew $d/start.qcow2 $d/qb-s1.qcow2

# --- preallocated images (every cluster allocated before the writes) ----------
rand prealloc-metadata-v3 "1 2" qb:preallocation=metadata
rand prealloc-metadata-v2-c4k "1" qb:compat=0.10,cluster_size=4k,preallocation=metadata
rand prealloc-metadata-qemu-c16k "1" qemu:cluster_size=16k,preallocation=metadata
rand prealloc-metadata-xl2-backing "1" qb:extended_l2=on,cluster_size=16k,preallocation=metadata b4k.qcow2:qcow2

# --- L2 table boundaries and the disk's end -------------------------------------
# Four in ten of each workload's commands land near or across an L2 table
# boundary or the disk's end (see workload.py); these disks are large
# enough to have boundaries with 64 KiB and 32 KiB clusters; the last disk's
# final cluster holds 512 bytes.
REACH=l2 DISK=$((1024 * 1024 * 1024 + 7 * 1024)) GEN="--front 4194304" rand l2-boundaries-c64k "1" qb:compat=1.1
REACH=l2 DISK=$((200 * 1024 * 1024 + 7 * 1024)) GEN="--front 4194304 --compress" rand l2-boundaries-xl2-c32k "1" \
    qb:extended_l2=on,cluster_size=32k
REACH=end DISK=$((300 * 1024 * 1024 + 512)) GEN="--front 4194304" rand disk-end-v2-c64k-odd-size "1" \
    qb:compat=0.10

# Writes reaching past the disk's end are refused and change nothing.
past_end() {
    local img=$1 ref=$2 fmt=$3 size=$4
    qb_refuses io -f "$fmt" "$img" -c "write -P 9 $((size - 512)) 1024" || return 1
    qb_refuses io -f "$fmt" "$img" -c "write -z $size 512" || return 1
    qb_refuses io -f "$fmt" "$img" -c "discard $((size - 4096)) 8192" || return 1
    same "$fmt" "$img" raw "$ref"
}
d=v3-c64k
[ -f $d/qb-s1.qcow2 ] && expect "rand $d s1: writes past the end refused, image unchanged" \
    past_end $d/qb-s1.qcow2 $d/s1.raw qcow2 $SIZE &&
    expect "rand $d s1: clean after the refused writes" clean $d/qb-s1.qcow2

# --- raw images -------------------------------------------------------------------
raw_case() {
    local n="raw" dir=$T/raw
    selected "$n" || return
    mkdir -p "$dir" && cd "$dir" || return
    if expect "$n: create -f raw" qb_run create -f raw img.raw $SIZE; then
        "${WORKLOAD[@]}" gen --seed 1 --size $SIZE --cluster 512 --no-discard >s1.ops
        zeros ref.raw $SIZE
        "${WORKLOAD[@]}" apply s1.ops ref.raw --cluster 512 --discard keep
        zeros qemu.raw $SIZE
        qemu_io_ops raw qemu.raw s1.ops || fail "$n: setup" "$WHY"
        expect "$n: io" qb_io raw img.raw s1.ops
        expect "$n: = model" same raw img.raw raw ref.raw
        expect "$n: = qemu-io" same raw img.raw raw qemu.raw
        expect "$n: writes past the end refused, image unchanged" past_end img.raw ref.raw raw $SIZE
    fi
    cd "$T"
}
raw_case

# ---------------------------------------------------------------------------
# alternate NAME FIRST SEED START [BASE]: one workload in four parts on the
# same image, qemu-io and qcowboot taking turns (FIRST: qemu or qb); the
# image must stay clean after every part and hold the model's disk at the
# end. Each tool thus continues on what the other wrote.
alternate() {
    local name="alternate $1" who=$2 seed=$3 start=$4 base=${5:-}
    selected "$name" || return
    local opts=${start#*:} dir=$T/alt-$1 n part first last
    mkdir -p "$dir" && cd "$dir" || return
    make_start "$name" "$start" "$base" $SIZE img.qcow2 || { cd "$T"; return; }
    gen_ops all.ops $seed "$opts" $SIZE --ops 100 ${GEN:-}
    start_ref "$start" "$base" $SIZE ref.raw
    model all.ops ref.raw "$opts" "$base"
    n=$(wc -l <all.ops)
    for part in 1 2 3 4; do
        first=$(((part - 1) * n / 4 + 1)); last=$((part * n / 4))
        sed -n "${first},${last}p" all.ops >part$part.ops
        if [ "$who" = qb ]; then
            expect "$name: part $part by qcowboot io" qb_io qcow2 img.qcow2 part$part.ops 1
            who=qemu
        else
            expect "$name: part $part by qemu-io" qemu_io_ops qcow2 img.qcow2 part$part.ops
            who=qb
        fi
        expect "$name: clean after part $part" clean img.qcow2
    done
    expect "$name: = model" same qcow2 img.qcow2 raw ref.raw
    cd "$T"
}
GEN=--compress alternate v3-c64k-qemu-first qemu 3 qb:compat=1.1
GEN=--compress alternate v3-c64k-qcowboot-first qb 4 qemu:compat=1.1
alternate v2-c512-backing-qcowboot-first qb 5 qb:compat=0.10,cluster_size=512 b4k.qcow2:qcow2
alternate xl2-c32k-backing-qemu-first qemu 6 qemu:extended_l2=on,cluster_size=32k b4k.qcow2:qcow2
alternate compressed-c4k-qcowboot-first qb 7 convc:cluster_size=4k
alternate refcount-bits-1-qemu-first qemu 8 qemu:cluster_size=4k,refcount_bits=1

# ---------------------------------------------------------------------------
# zero-discard NAME START [BASE]: zero writes (aligned, unaligned, over data,
# over never-written and compressed clusters) and discards (whole, partial,
# of compressed clusters, of the disk's partial last cluster), then writes
# into the zeroed and discarded clusters; 64 KiB clusters. The compressed
# writes come first (qemu 7.2 may break a compressed write that follows
# a freed compressed cluster; see workload.py).
ZD_OPS=(
    # compressed clusters at 4M, 4M+128k, 4M+256k (into never-written ones)
    "write -c -P 6 4194304 65536"
    "write -c -P 8 4325376 65536"
    "write -c -P 9 4456448 65536"
    # data in the first 16 clusters, then zeros: a whole cluster, part of
    # one, and a range with partial clusters at both ends
    "write -P 1 0 1048576"
    "write -z 65536 65536"
    "write -z 133120 3072"
    "write -z 194560 204800"
    # zeros over never-written clusters (the backing file must not show),
    # whole and partial, then data into part of a zeroed cluster
    "write -z 2097152 131072"
    "write -z 2229248 1024"
    "write -P 2 2101248 1024"
    # discards: whole clusters of data, a range of which one cluster is
    # whole, never-written clusters; then data into part of a discarded one
    "discard 524288 131072"
    "discard 716800 102400"
    "discard 3145728 65536"
    "write -P 3 532480 1024"
    # zeros over fresh data, then data into part of that cluster
    "write -P 4 1048576 65536"
    "write -z 1048576 65536"
    "write -P 5 1049600 512"
    # into part of a compressed cluster; discard and zero compressed ones,
    # then data into part of the zeroed one
    "write -P 7 4200000 1000"
    "discard 4325376 65536"
    "write -z 4456448 65536"
    "write -P 12 4460000 100"
    # the partial last cluster (7 KiB): data, zeros to the end, a discard of
    # all of it, data again, zeros from two clusters before to the end
    "write -P 10 6291456 7168"
    "write -z 6296576 2048"
    "discard 6291456 7168"
    "write -P 11 6291456 512"
    "write -z 6160384 138240"
    "flush"
    "read -P 0 65536 65536"
    "read -P 2 2101248 1024"
    "read -P 0 2097152 4096"
    "read -P 7 4200000 1000"
)
zero_discard() {
    local name="zero-discard $1" start=$2 base=${3:-}
    selected "$name" || return
    local opts=${start#*:} dir=$T/zd-$1
    mkdir -p "$dir" && cd "$dir" || return
    make_start "$name" "$start" "$base" $SIZE start.qcow2 || { cd "$T"; return; }
    printf '%s\n' "${ZD_OPS[@]}" >zd.ops
    start_ref "$start" "$base" $SIZE ref.raw
    model zd.ops ref.raw "$opts" "$base"
    cp start.qcow2 qemu.qcow2
    cp start.qcow2 qb.qcow2
    qemu_io_ops qcow2 qemu.qcow2 zd.ops && same qcow2 qemu.qcow2 raw ref.raw ||
        fail "$name: setup" "qemu-io and the model disagree: $WHY"
    expect "$name: io" qb_io qcow2 qb.qcow2 zd.ops 1
    expect "$name: clean" clean qb.qcow2
    expect "$name: = qemu-io" same qcow2 qb.qcow2 qcow2 qemu.qcow2
    expect "$name: = model" same qcow2 qb.qcow2 raw ref.raw
    cd "$T"
}
zero_discard v3 qb:compat=1.1
zero_discard v2 qb:compat=0.10
zero_discard v3-backing qb:compat=1.1 b4k.qcow2:qcow2
zero_discard v2-backing qb:compat=0.10 b4k.qcow2:qcow2
zero_discard xl2-backing qb:extended_l2=on b4k.qcow2:qcow2
zero_discard xl2 qb:extended_l2=on
zero_discard v3-qemu-created qemu:compat=1.1 b4k.qcow2:qcow2

# ---------------------------------------------------------------------------
# snapshots NAME START [BASE]: writes, snapshot s1, writes, snapshot s2,
# writes; apply s1 and write over clusters the snapshots share; delete s2,
# then s1. After each step the image is clean, its disk and every remaining
# snapshot's (qemu-img convert -l) are the model's, and qemu-img lists the
# right snapshots. At the end qemu-io writes into it once more.

# snap_step LABEL CMD...: one qcowboot command on img.qcow2 of the calling
# case (its $name), then the image is clean.
snap_step() {
    local label=$1; shift
    expect "$name: $label" "$@" && expect "$name: clean after $label" clean img.qcow2
}
# snap_writes N: the workload wN.ops by qcowboot io, and into the model
# cur.raw (the calling case's $opts and $base).
snap_writes() {
    model w$1.ops cur.raw "$opts" "$base"
    snap_step "writes $1" qb_io qcow2 img.qcow2 w$1.ops 1
}
snapshots() {
    local name="snapshots $1" start=$2 base=${3:-}
    selected "$name" || return
    local opts=${start#*:} dir=$T/snap-$1 i
    mkdir -p "$dir" && cd "$dir" || return
    make_start "$name" "$start" "$base" $SIZE img.qcow2 || { cd "$T"; return; }
    start_ref "$start" "$base" $SIZE cur.raw
    for i in 1 2 3 4 5; do
        local g=()
        [ $i = 1 ] && [ "${start%%:*}" = qb ] && g=(--compress)
        gen_ops w$i.ops $((40 + i)) "$opts" $SIZE --ops 30 "${g[@]}"
    done
    snap_writes 1
    cp cur.raw s1.raw
    snap_step "snapshot -c s1" qb_run snapshot -c s1 img.qcow2
    snap_writes 2
    cp cur.raw s2.raw
    snap_step "snapshot -c s2" qb_run snapshot -c s2 img.qcow2
    snap_writes 3
    expect "$name: disk = model" same qcow2 img.qcow2 raw cur.raw
    expect "$name: s1 = model" snapshot_same img.qcow2 s1 s1.raw
    expect "$name: s2 = model" snapshot_same img.qcow2 s2 s2.raw
    expect "$name: qemu-img lists s1 s2" snapshots_are img.qcow2 s1 s2

    cp s1.raw cur.raw
    snap_step "snapshot -a s1" qb_run snapshot -a s1 img.qcow2
    expect "$name: disk = s1 after apply" same qcow2 img.qcow2 raw cur.raw
    snap_writes 4
    expect "$name: disk = model after writes over shared clusters" same qcow2 img.qcow2 raw cur.raw
    expect "$name: s1 unchanged by them" snapshot_same img.qcow2 s1 s1.raw
    expect "$name: s2 unchanged by them" snapshot_same img.qcow2 s2 s2.raw

    snap_step "snapshot -d s2" qb_run snapshot -d s2 img.qcow2
    expect "$name: qemu-img lists s1" snapshots_are img.qcow2 s1
    expect "$name: s1 = model after deleting s2" snapshot_same img.qcow2 s1 s1.raw
    expect "$name: disk = model after deleting s2" same qcow2 img.qcow2 raw cur.raw
    snap_step "snapshot -d s1" qb_run snapshot -d s1 img.qcow2
    expect "$name: no snapshots left" snapshots_are img.qcow2
    expect "$name: disk = model after deleting s1" same qcow2 img.qcow2 raw cur.raw

    model w5.ops cur.raw "$opts" "$base"
    expect "$name: qemu-io writes afterwards" qemu_io_ops qcow2 img.qcow2 w5.ops
    expect "$name: clean after qemu-io" clean img.qcow2
    expect "$name: = model after qemu-io" same qcow2 img.qcow2 raw cur.raw
    cd "$T"
}
snapshots v3-c64k qb:compat=1.1
snapshots v2-c4k qb:compat=0.10,cluster_size=4k
snapshots v3-c512 qb:cluster_size=512
snapshots xl2-c32k-backing qb:extended_l2=on,cluster_size=32k b4k.qcow2:qcow2
snapshots refcount-bits-64-qemu qemu:cluster_size=16k,refcount_bits=64
snapshots compressed-c4k convc:cluster_size=4k

# With 1-bit refcounts no cluster can be shared: a snapshot is refused,
# and the image stays clean and unchanged.
snapshot_refused() {
    local name="snapshots refused with refcount_bits=1" dir=$T/snap-rb1
    selected "$name" || return
    mkdir -p "$dir" && cd "$dir" || return
    make_start "$name" qb:cluster_size=4k,refcount_bits=1 "" $SIZE img.qcow2 || { cd "$T"; return; }
    gen_ops w.ops 91 cluster_size=4k $SIZE --ops 20
    zeros ref.raw $SIZE
    model w.ops ref.raw cluster_size=4k ""
    expect "$name: writes" qb_io qcow2 img.qcow2 w.ops 1
    expect "$name: snapshot -c refused" qb_refuses snapshot -c s1 img.qcow2
    expect "$name: clean" clean img.qcow2
    expect "$name: no snapshot" snapshots_are img.qcow2
    expect "$name: disk unchanged" same qcow2 img.qcow2 raw ref.raw
    cd "$T"
}
snapshot_refused

# Snapshots made by one tool, applied and deleted by the other.
snapshots_mixed() {
    local name="snapshots qemu-img/qcowboot" dir=$T/snap-mixed
    selected "$name" || return
    mkdir -p "$dir" && cd "$dir" || return
    setup "$name" qemu-img convert -O qcow2 -o cluster_size=16k ../base/src.raw img.qcow2 || { cd "$T"; return; }
    cp ../base/src.raw q1.raw
    gen_ops w1.ops 51 cluster_size=16k $SIZE --ops 30
    gen_ops w2.ops 52 cluster_size=16k $SIZE --ops 30
    setup "$name" qemu-img snapshot -c q1 img.qcow2
    cp q1.raw b1.raw
    model w1.ops b1.raw cluster_size=16k ""
    expect "$name: qcowboot writes after qemu-img snapshot -c" qb_io qcow2 img.qcow2 w1.ops 1
    expect "$name: qcowboot snapshot -c b1" qb_run snapshot -c b1 img.qcow2
    cp b1.raw cur.raw
    model w2.ops cur.raw cluster_size=16k ""
    expect "$name: qemu-io writes after qcowboot snapshot -c" qemu_io_ops qcow2 img.qcow2 w2.ops
    expect "$name: clean" clean img.qcow2
    expect "$name: disk = model" same qcow2 img.qcow2 raw cur.raw
    expect "$name: qcowboot snapshot -a q1 (made by qemu-img)" qb_run snapshot -a q1 img.qcow2
    expect "$name: clean after apply q1" clean img.qcow2
    expect "$name: disk = q1" same qcow2 img.qcow2 raw q1.raw
    expect "$name: qemu-img snapshot -a b1 (made by qcowboot)" qemu-img snapshot -a b1 img.qcow2
    expect "$name: disk = b1" same qcow2 img.qcow2 raw b1.raw
    expect "$name: qcowboot snapshot -d q1" qb_run snapshot -d q1 img.qcow2
    expect "$name: clean after delete q1" clean img.qcow2
    expect "$name: qemu-img lists b1" snapshots_are img.qcow2 b1
    expect "$name: qemu-img snapshot -d b1 (made by qcowboot)" qemu-img snapshot -d b1 img.qcow2
    expect "$name: clean after qemu-img deletes b1" clean img.qcow2
    expect "$name: disk = b1 at the end" same qcow2 img.qcow2 raw b1.raw
    cd "$T"
}
snapshots_mixed

# ---------------------------------------------------------------------------
# commit NAME BASE-MAKE OVERLAY-OPTS: an overlay written by qcowboot io,
# committed into its backing file. BASE-MAKE: qcow2:OPTS (qemu-img convert),
# qcow2c:OPTS (compressed) or raw. The backing file must be clean and hold
# the overlay's disk; so must the overlay (emptied or not).
commit_case() {
    local name="commit $1" bmake=$2 oopts=$3 dir=$T/commit-$1 bfmt=qcow2 bfile
    selected "$name" || return
    mkdir -p "$dir" && cd "$dir" || return
    case $bmake in
    qcow2:*) bfile=base.qcow2; setup "$name" qemu-img convert -O qcow2 -o "${bmake#*:}" ../base/src.raw $bfile ;;
    qcow2c:*) bfile=base.qcow2; setup "$name" qemu-img convert -c -O qcow2 -o "${bmake#*:}" ../base/src.raw $bfile ;;
    raw) bfile=base.raw bfmt=raw; cp ../base/src.raw $bfile ;;
    esac || { cd "$T"; return; }
    if ! expect "$name: create overlay" qb_run create -f qcow2 -o "$oopts" -b $bfile -F $bfmt ov.qcow2 $SIZE; then
        cd "$T"; return
    fi
    gen_ops w.ops 61 "$oopts" $SIZE --compress
    cp ../base/src.raw ref.raw
    model w.ops ref.raw "$oopts" base
    expect "$name: writes" qb_io qcow2 ov.qcow2 w.ops
    expect "$name: commit" qb_run commit ov.qcow2
    [ $bfmt = qcow2 ] && expect "$name: backing file clean" clean $bfile
    expect "$name: backing file = model" same $bfmt $bfile raw ref.raw
    expect "$name: overlay clean" clean ov.qcow2
    expect "$name: overlay = model" same qcow2 ov.qcow2 raw ref.raw
    cd "$T"
}
commit_case v3-c64k-into-v3-c4k qcow2:cluster_size=4k cluster_size=64k
commit_case xl2-c16k-into-v2-c512 qcow2:compat=0.10,cluster_size=512 extended_l2=on,cluster_size=16k
commit_case v2-c64k-into-raw raw compat=0.10
commit_case v3-c4k-into-compressed qcow2c:cluster_size=4k cluster_size=4k
commit_case v3-c2M-into-refcount-bits-1 qcow2:cluster_size=64k,refcount_bits=1 cluster_size=2M

# A three-level chain: committing the top into the middle leaves the bottom
# as it was.
commit_chain() {
    local name="commit top of three" dir=$T/commit-chain
    selected "$name" || return
    mkdir -p "$dir" && cd "$dir" || return
    expect "$name: create mid" qb_run create -f qcow2 -o cluster_size=16k -b ../base/b4k.qcow2 -F qcow2 mid.qcow2 $SIZE &&
        expect "$name: create top" qb_run create -f qcow2 -o cluster_size=64k -b mid.qcow2 -F qcow2 top.qcow2 $SIZE ||
        { cd "$T"; return; }
    gen_ops m.ops 71 cluster_size=16k $SIZE
    gen_ops t.ops 72 cluster_size=64k $SIZE
    cp ../base/src.raw ref.raw
    model m.ops ref.raw cluster_size=16k base
    model t.ops ref.raw cluster_size=64k base
    expect "$name: writes into mid" qb_io qcow2 mid.qcow2 m.ops
    expect "$name: writes into top" qb_io qcow2 top.qcow2 t.ops
    expect "$name: commit" qb_run commit top.qcow2
    expect "$name: mid clean" clean mid.qcow2
    expect "$name: mid = model" same qcow2 mid.qcow2 raw ref.raw
    expect "$name: top = model" same qcow2 top.qcow2 raw ref.raw
    expect "$name: bottom unchanged" same qcow2 ../base/b4k.qcow2 raw ../base/src.raw
    cd "$T"
}
commit_chain

# ---------------------------------------------------------------------------
# convert_one NAME SRC FMT REF OUT SEED ARGS...: `qcowboot convert -f FMT
# ARGS -O qcow2 SRC OUT` makes a clean qcow2 image without backing file
# whose disk is REF (with -c: that has compressed clusters). Then a workload
# (seed SEED) by qcowboot io into it, checked as in `rand`: with -c, partial
# writes copy the rest of their cluster from compressed data.
convert_one() {
    local n=$1 src=$2 fmt=$3 ref=$4 out=$5 seed=$6; shift 6
    local info cs opts stats
    expect "$n" qb_run convert -f "$fmt" "$@" -O qcow2 "$src" "$out" || return
    expect "$n: clean" clean "$out"
    expect "$n: = source" same qcow2 "$out" raw "$ref"
    info=$(qemu-img info --output=json "$out")
    expect "$n: no backing file" eval '! grep -q backing-filename <<<"$info"'
    if [[ " $* " == *" -c "* ]]; then
        stats=$("${CONFTOOL[@]}" compressed-stats "$out" 2>&1)
        expect "$n: has compressed clusters ($stats)" test "${stats%% *}" -gt 0 2>/dev/null
    fi
    cs=$(sed -n 's/.*"cluster-size": \([0-9]*\).*/\1/p' <<<"$info")
    opts=cluster_size=${cs:-65536}
    grep -q '"extended-l2": true' <<<"$info" && opts+=,extended_l2=on
    gen_ops $out.ops "$seed" "$opts" $SIZE
    cp "$ref" $out.raw
    model $out.ops $out.raw "$opts" ""
    cp "$out" qemu-$out
    qemu_io_ops qcow2 qemu-$out $out.ops || fail "$n: setup" "$WHY"
    expect "$n: writes into it" qb_io qcow2 "$out" $out.ops
    expect "$n: clean after the writes" clean "$out"
    expect "$n: = model after the writes" same qcow2 "$out" raw $out.raw
    expect "$n: = qemu-io after the writes" same qcow2 "$out" qcow2 qemu-$out
}

# A chain qemu-io wrote (16 KiB clusters over 4 KiB ones, some compressed),
# a raw file and a compressed image, converted with various options.
convert_cases() {
    local name=convert dir=$T/convert
    selected "$name" || return
    mkdir -p "$dir" && cd "$dir" || return
    setup "$name" qemu-img create -f qcow2 -o cluster_size=16k -b ../base/b4k.qcow2 -F qcow2 ov.qcow2 $SIZE ||
        { cd "$T"; return; }
    gen_ops w.ops 81 cluster_size=16k $SIZE --compress
    cp ../base/src.raw ref.raw
    model w.ops ref.raw cluster_size=16k base
    qemu_io_ops qcow2 ov.qcow2 w.ops || fail "$name: setup" "$WHY"
    convert_one "convert chain" ov.qcow2 qcow2 ref.raw out.qcow2 82
    convert_one "convert -c chain" ov.qcow2 qcow2 ref.raw outc.qcow2 83 -c
    convert_one "convert -c -o cluster_size=4k,compression_type=zstd chain" ov.qcow2 qcow2 ref.raw \
        outc4k.qcow2 84 -c -o cluster_size=4k,compression_type=zstd
    convert_one "convert -o compat=0.10,cluster_size=512 chain" ov.qcow2 qcow2 ref.raw \
        out-v2.qcow2 85 -o compat=0.10,cluster_size=512
    convert_one "convert -o extended_l2=on,cluster_size=32k chain" ov.qcow2 qcow2 ref.raw \
        out-xl2.qcow2 86 -o extended_l2=on,cluster_size=32k
    convert_one "convert raw" ../base/src.raw raw ../base/src.raw fromraw.qcow2 87
    convert_one "convert compressed -o refcount_bits=64" ../base/zlib4k.qcow2 qcow2 ../base/src.raw \
        rb64.qcow2 88 -o refcount_bits=64
    cd "$T"
}
convert_cases

# ---------------------------------------------------------------------------
# repair: images qemu left dirty (lazy refcounts, killed) or leaking,
# repaired by qcowboot check -r; qemu-img check then finds them clean, and
# the disk is unchanged.
repair_cases() {
    local name="repair lazy-refcounts dirty" dir=$T/repair
    selected "$name" || return
    mkdir -p "$dir" && cd "$dir" || return
    setup "$name" qemu-img convert -O qcow2 -o lazy_refcounts=on,cluster_size=4k ../base/src.raw dirty.qcow2 &&
        {
            (qemu-io -f qcow2 -c "write -P 0xb1 2M 100k" -c "write -P 0xb2 64k 4k" -c "sigraise 9" \
                dirty.qcow2 >/dev/null 2>&1; true) 2>/dev/null
            cp ../base/src.raw ref.raw
            printf '%s\n' "write -P 177 2097152 102400" "write -P 178 65536 4096" >w.ops
            model w.ops ref.raw cluster_size=4k ""
            if [ "$(hdr dirty.qcow2 incompatible_features)" = 1 ]; then
                expect "$name: check -r all" qb_run check -r all dirty.qcow2
                expect "$name: clean" clean dirty.qcow2
                expect "$name: = model" same qcow2 dirty.qcow2 raw ref.raw
            else
                fail "$name: setup" "the dirty bit is not set"
            fi
        }
    name="repair leaks"
    setup "$name" qemu-img convert -O qcow2 ../base/src.raw leaks.qcow2 &&
        setup "$name" "${CONFTOOL[@]}" edit-leak leaks.qcow2 &&
        {
            expect "$name: check -r leaks" qb_run check -r leaks leaks.qcow2
            expect "$name: clean" clean leaks.qcow2
            expect "$name: = source" same qcow2 leaks.qcow2 raw ../base/src.raw
        }
    cd "$T"
}
repair_cases

finish
