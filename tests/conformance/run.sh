#!/usr/bin/env bash
# Conformance of the qcowboot CLI with qemu-img on images made by qemu-img
# and qemu-io. For every image:
#   convert NAME   qcowboot convert  == qemu-img convert -O raw (cmp)
#   map NAME       qcowboot map --json == qemu-img map --output=json (parsed)
#   check NAME     qcowboot check --json vs qemu-img check --output=json:
#                  same exit code and the same counters
#   info NAME      qcowboot info --json vs qemu-img info --output=json on the
#                  keys qcowboot shares with it (--backing-chain for chains)
# plus `setup ...` lines for images whose construction is itself asserted
# (e.g. compressed clusters that really cross host cluster boundaries).
# Every qcowboot run must also be free of sanitizer reports.
#
# Images live in a temporary directory under build/tests/, removed at the end
# (set QB_KEEP=1 to keep it). Both tools always run from that directory with
# the same relative path, so file names in the JSON outputs are comparable and
# relative backing/data file names must be resolved against the image's own
# directory, not the working directory.
set -u
. "$(dirname "$0")/../lib.sh"

HERE=$QB_ROOT/tests/conformance
TOOL=(python3 "$HERE/conftool.py")
export TZ=UTC
mkdir -p "$QB_ROOT/build/tests"
T=$(mktemp -d "$QB_ROOT/build/tests/conformance.XXXXXX")
if [ "${QB_KEEP:-0}" = 1 ]; then echo "images kept in $T"; else trap 'rm -rf "$T"' EXIT; fi
cd "$T" || exit 1
O=$T/out
mkdir -p "$O"

require_qb

# ---------------------------------------------------------------------------
# Running the tools

# qb OUT ERR ARGS...: runs qcowboot; returns its exit status (124: timeout).
qb() {
    local out=$1 err=$2; shift 2
    timeout 60 "$QB" "$@" >"$out" 2>"$err"
}
# First sanitizer or crash report in a stderr file, if any.
sanitizer_report() {
    grep -m1 -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$1"
}
# Short form of a stderr file for a failure line.
errtail() { head -c 400 "$1" | tr '\n' ' '; }

# qb_ok NAME RC ERR: fails NAME (and returns 1) when qcowboot timed out or
# printed a sanitizer report.
qb_ok() {
    local name=$1 rc=$2 err=$3 rep
    if [ "$rc" -eq 124 ]; then fail "$name" "qcowboot timed out"; return 1; fi
    if rep=$(sanitizer_report "$err"); then fail "$name" "sanitizer: $rep"; return 1; fi
    return 0
}

# t_convert NAME IMG [QEMU_SNAPSHOT_OPT QB_SNAPSHOT]
t_convert() {
    local name=$1 img=$2 qsnap=${3:-} bsnap=${4:-} rc
    local qraw=$O/q.raw braw=$O/b.raw
    rm -f "$qraw" "$braw"
    if ! qemu-img convert ${qsnap:+-l "$qsnap"} -O raw "$img" "$qraw" 2>$O/qerr; then
        fail "$name" "qemu-img convert failed: $(errtail $O/qerr)"; return
    fi
    qb $O/bout $O/berr convert ${bsnap:+-l "$bsnap"} "$img" "$braw"; rc=$?
    qb_ok "$name" $rc $O/berr || return
    if [ $rc -ne 0 ]; then fail "$name" "exit $rc: $(errtail $O/berr)"; return; fi
    local why
    if why=$(cmp "$qraw" "$braw" 2>&1); then pass "$name"; else fail "$name" "$why"; fi
    rm -f "$qraw" "$braw"
}

# t_map NAME IMG
t_map() {
    local name=$1 img=$2 rc why
    qemu-img map --output=json "$img" >$O/q.json 2>$O/qerr || {
        fail "$name" "qemu-img map failed: $(errtail $O/qerr)"; return; }
    qb $O/b.json $O/berr map --json "$img"; rc=$?
    qb_ok "$name" $rc $O/berr || return
    if [ $rc -ne 0 ]; then fail "$name" "exit $rc: $(errtail $O/berr)"; return; fi
    if why=$("${TOOL[@]}" cmp-map $O/q.json $O/b.json 2>&1); then pass "$name"; else fail "$name" "$why"; fi
}

# t_check NAME IMG
t_check() {
    local name=$1 img=$2 qrc rc why
    qemu-img check --output=json "$img" >$O/q.json 2>$O/qerr; qrc=$?
    qb $O/b.json $O/berr check --json "$img"; rc=$?
    qb_ok "$name" $rc $O/berr || return
    if why=$("${TOOL[@]}" cmp-check $O/q.json $qrc $O/b.json $rc 2>&1); then
        pass "$name"
    else
        fail "$name" "$why"
    fi
}

# t_info NAME IMG [--backing-chain]
t_info() {
    local name=$1 img=$2 chain=${3:-} rc why
    qemu-img info --output=json $chain "$img" >$O/q.json 2>$O/qerr || {
        fail "$name" "qemu-img info failed: $(errtail $O/qerr)"; return; }
    qb $O/b.json $O/berr info --json $chain "$img"; rc=$?
    qb_ok "$name" $rc $O/berr || return
    if [ $rc -ne 0 ]; then fail "$name" "exit $rc: $(errtail $O/berr)"; return; fi
    if why=$("${TOOL[@]}" cmp-info $O/q.json $O/b.json 2>&1); then pass "$name"; else fail "$name" "$why"; fi
}

# t_snaplist NAME IMG
t_snaplist() {
    local name=$1 img=$2 rc why
    qemu-img snapshot -l "$img" >$O/q.txt 2>$O/qerr || {
        fail "$name" "qemu-img snapshot -l failed: $(errtail $O/qerr)"; return; }
    qb $O/b.txt $O/berr snapshot -l "$img"; rc=$?
    qb_ok "$name" $rc $O/berr || return
    if [ $rc -ne 0 ]; then fail "$name" "exit $rc: $(errtail $O/berr)"; return; fi
    if why=$("${TOOL[@]}" cmp-snaplist $O/q.txt $O/b.txt 2>&1); then pass "$name"; else fail "$name" "$why"; fi
}

# conform NAME IMG [--backing-chain]: the four standard checks.
conform() {
    local name=$1 img=$2 chain=${3:-}
    t_convert "convert $name" "$img"
    t_map "map $name" "$img"
    t_check "check $name" "$img"
    t_info "info $name" "$img" $chain
}

# ---------------------------------------------------------------------------
# Building images. A failing construction step is reported as `setup NAME`
# and the image's checks are skipped (they would only repeat the failure).

SETUP_OK=1
# step NAME CMD...: runs a construction command, quietly.
step() {
    local name=$1; shift
    [ $SETUP_OK = 1 ] || return 1
    if ! "$@" >$O/setup.log 2>&1; then
        SETUP_OK=0
        fail "setup $name" "$* => $(tail -n 3 $O/setup.log | tr '\n' ' ')"
        return 1
    fi
}
begin() { SETUP_OK=1; }
ready() { [ $SETUP_OK = 1 ]; }

# io NAME IMG CMD...: qemu-io with one -c per argument.
io() {
    local name=$1 img=$2; shift 2
    local args=() c
    for c in "$@"; do args+=(-c "$c"); done
    step "$name" qemu-io -f qcow2 "${args[@]}" "$img"
}

# A source of test data shared by most images: 4 MiB + 6 KiB (not a multiple
# of any cluster size above 2 KiB), mixed content, some all-zero chunks.
SIZE=4200448
"${TOOL[@]}" gendata src.raw $SIZE 1
"${TOOL[@]}" gendata src2.raw 2097152 2

# Writes on top of an image made from src.raw: partial-cluster writes (COW),
# zero writes over allocated and unallocated ranges, with and without unmap,
# a discard of allocated data, and the unaligned tail of the disk.
STD_WRITES=(
    "write -P 0x11 0 100k"
    "write -P 0x22 300k 5k"
    "write -P 0x33 1000k 8k"
    "write -z 1002k 1k"
    "write -z 1536k 256k"
    "write -P 0x44 2M 512k"
    "discard 2M 256k"
    "write -P 0x55 3M 128k"
    "write -z -u 3M 64k"
    "write -P 0x66 4196352 4096"
)

# --- cluster sizes x compat ---------------------------------------------------
for compat in 0.10 1.1; do
    v=v3; [ $compat = 0.10 ] && v=v2
    for cs in 512 4k 64k 2M; do
        n=$v-c$cs
        begin
        step $n qemu-img convert -O qcow2 -o compat=$compat,cluster_size=$cs src.raw $n.qcow2
        io $n $n.qcow2 "${STD_WRITES[@]}"
        ready && conform $n $n.qcow2
    done
done

# --- compressed clusters mixed with plain ones ---------------------------------
# qemu-img convert -c compresses every cluster that shrinks; qemu-io then
# overwrites parts of compressed clusters (decompress + COW), whole clusters,
# zeroes and discards some, and adds a compressed write of its own (into a
# discarded cluster: qemu compresses only into unallocated clusters). With small
# clusters qemu packs compressed data back to back, so descriptors cross
# host cluster boundaries; `setup ... crossing` asserts that they do.
for spec in v3:512:zlib v3:512:zstd v3:4k:zlib v3:4k:zstd v3:64k:zlib v3:64k:zstd \
            v3:2M:zstd v2:4k:zlib v2:64k:zlib; do
    IFS=: read -r v cs ct <<<"$spec"
    compat=1.1; [ $v = v2 ] && compat=0.10
    n=$v-c$cs-$ct
    opts=compat=$compat,cluster_size=$cs
    [ $v = v3 ] && opts=$opts,compression_type=$ct
    csb=$(numfmt --from=iec "${cs^^}")
    begin
    step $n qemu-img convert -c -O qcow2 -o $opts src.raw $n.qcow2
    io $n $n.qcow2 "write -P 0x5a 64k 3k" "write -P 0x5b 1M 128k" "write -z 1536k 64k" \
        "discard 2M 64k" "discard $((csb * (3145728 / csb))) $csb" \
        "write -c -P 0x5c $((csb * (3145728 / csb))) $csb" \
        "write -P 0x5d $((3145728 + csb / 2)) 1k"
    if ready; then
        read -r ncomp ncross < <("${TOOL[@]}" compressed-stats $n.qcow2)
        if [ "${ncomp:-0}" -lt 1 ]; then
            fail "setup $n compressed" "no compressed clusters"
        elif [ "$csb" -le 4096 ]; then
            if [ "${ncross:-0}" -gt 0 ]; then
                pass "setup $n crossing ($ncross of $ncomp compressed clusters cross a host cluster end)"
            else
                fail "setup $n crossing" "no compressed cluster crosses a host cluster boundary"
            fi
        fi
        conform $n $n.qcow2
    fi
done

# --- extended L2 entries (subclusters) over a backing file ---------------------
for cs in 64k 32k; do
    n=xl2-c$cs
    begin
    step $n qemu-img convert -O qcow2 -o cluster_size=4k src.raw $n-base.qcow2
    step $n qemu-img create -f qcow2 -o extended_l2=on,cluster_size=$cs -b $n-base.qcow2 -F qcow2 $n.qcow2
    io $n $n.qcow2 "write -P 1 4k 2k" "write -P 2 70k 8k" "write -P 3 129k 1k" \
        "write -z 200k 6k" "write -P 4 400k 64k" "discard 410k 4k" "write -z 1M 64k" \
        "write -P 5 1200k 32k" "write -z -u 1200k 4k" "write -P 6 2050k 1536" \
        "write -c -P 7 3M $cs"
    ready && conform $n $n.qcow2 --backing-chain
done
n=xl2-c16k-nobacking
begin
step $n qemu-img create -f qcow2 -o extended_l2=on,cluster_size=16k $n.qcow2 $SIZE
io $n $n.qcow2 "write -P 1 1k 1k" "write -P 2 33k 3k" "write -z 100k 20k" \
    "write -P 3 200k 64k" "discard 204k 2k" "write -c -P 4 512k 16k" "write -P 5 4194304 6144"
ready && conform $n $n.qcow2

# --- 3-deep chain, relative backing names, backing shorter than overlay --------
# chain/base/base.qcow2 (2 MiB, 4k clusters) <- chain/mid/mid.qcow2 (3 MiB,
# v2, 64k clusters, "../base/base.qcow2") <- chain/top/top.qcow2 (4 MiB + 6
# KiB, 16k clusters, "../mid/mid.qcow2"). Tools run from the temp dir, so
# resolving backing names against the working directory finds nothing.
n=chain3
begin
mkdir -p chain/base chain/mid chain/top
step $n qemu-img convert -O qcow2 -o cluster_size=4k src2.raw chain/base/base.qcow2
step $n qemu-img create -f qcow2 -o compat=0.10 -b ../base/base.qcow2 -F qcow2 chain/mid/mid.qcow2 3M
io $n chain/mid/mid.qcow2 "write -P 0x21 60k 8k" "write -P 0x22 1M 200k" "write -z 1500k 100k" \
    "write -P 0x23 2040k 64k" "write -P 0x24 2600k 4k"
step $n qemu-img create -f qcow2 -o cluster_size=16k -b ../mid/mid.qcow2 -F qcow2 chain/top/top.qcow2 $SIZE
io $n chain/top/top.qcow2 "write -P 0x31 0 2k" "write -P 0x32 1100k 16k" "write -z 1900k 40k" \
    "discard 1040k 16k" "write -P 0x33 3M 64k" "write -P 0x34 4194304 6144"
ready && conform $n chain/top/top.qcow2 --backing-chain

# --- backing file without a recorded format; absolute backing file name -------
n=backing-nofmt
begin
mkdir -p nofmt
step $n qemu-img convert -O qcow2 -o cluster_size=16k src2.raw nofmt/base.qcow2
step $n qemu-img create -f qcow2 -b base.qcow2 -F qcow2 nofmt/ov.qcow2 3M
io $n nofmt/ov.qcow2 "write -P 0x35 100k 4k" "write -z 1M 64k"
step $n "${TOOL[@]}" edit-drop-backing-fmt nofmt/ov.qcow2
ready && conform $n nofmt/ov.qcow2 --backing-chain
n=backing-abs
begin
step $n qemu-img create -f qcow2 -b "$T/src2.raw" -F raw $n.qcow2 3M
io $n $n.qcow2 "write -P 0x36 1000k 4k"
ready && conform $n $n.qcow2 --backing-chain

# --- raw backing file (shorter than the overlay) --------------------------------
# src2.raw is written in full (no holes): for a raw file qemu-img map asks the
# host file system for holes, which qcow2 metadata cannot tell.
n=raw-backing
begin
mkdir -p rawb
cp src2.raw rawb/base.raw
step $n qemu-img create -f qcow2 -b base.raw -F raw rawb/ov.qcow2 3M
io $n rawb/ov.qcow2 "write -P 0x41 4k 4k" "write -z 1M 128k" "discard 1536k 64k" \
    "write -P 0x42 2080k 64k"
ready && conform $n rawb/ov.qcow2 --backing-chain

# --- external data files ----------------------------------------------------------
# qemu 7.2 resolves a relative data file name against its working directory
# (unlike backing file names), so for relative names both tools run from the
# image's directory; datafile-abs stores an absolute name and runs from $T.
for raw in off on; do
    n=datafile-raw-$raw
    begin
    mkdir -p df-$raw
    cd df-$raw
    step $n qemu-img create -f qcow2 -o data_file=img.data,data_file_raw=$raw img.qcow2 $SIZE
    io $n img.qcow2 "write -P 0x51 0 100k" "write -P 0x52 1M 64k" "write -z 1M 4k" \
        "write -P 0x53 2M 256k" "discard 2M 64k" "write -z 3M 64k" "write -P 0x54 4194304 6144"
    ready && conform $n img.qcow2
    cd "$T"
done
n=datafile-abs
begin
mkdir -p df-abs
step $n qemu-img create -f qcow2 -o data_file="$T/df-abs/data.raw" df-abs/img.qcow2 $SIZE
io $n df-abs/img.qcow2 "write -P 0x55 64k 100k" "write -z 70k 4k" "write -P 0x56 3M 64k"
ready && conform $n df-abs/img.qcow2

# --- internal snapshots ---------------------------------------------------------------
# s1 and "second" taken between writes; convert -l by name and by id.
for compat in 1.1 0.10; do
    v=v3; [ $compat = 0.10 ] && v=v2
    n=snap-$v
    begin
    step $n qemu-img convert -O qcow2 -o compat=$compat src.raw $n.qcow2
    step $n qemu-img snapshot -c s1 $n.qcow2
    io $n $n.qcow2 "write -P 0x61 64k 64k" "write -P 0x62 1M 1k" "discard 2M 128k"
    step $n qemu-img snapshot -c second $n.qcow2
    io $n $n.qcow2 "write -P 0x63 0 4k" "write -z 3M 128k" "write -P 0x64 1M 64k"
    if ready; then
        conform $n $n.qcow2
        t_convert "convert $n -l s1" $n.qcow2 snapshot.name=s1 s1
        t_convert "convert $n -l 2" $n.qcow2 snapshot.id=2 2
        t_snaplist "snapshot-list $n" $n.qcow2
    fi
done
# Snapshot fields qemu-img leaves at zero (VM clock, VM state size, icount),
# set by editing the snapshot table.
n=snap-fields
begin
step $n qemu-img convert -O qcow2 src2.raw $n.qcow2
step $n qemu-img snapshot -c withstate $n.qcow2
step $n "${TOOL[@]}" edit-snapshot-fields $n.qcow2
if ready; then
    t_info "info $n" $n.qcow2
    t_check "check $n" $n.qcow2
    t_snaplist "snapshot-list $n" $n.qcow2
    t_convert "convert $n -l withstate" $n.qcow2 snapshot.name=withstate withstate
fi
# A snapshot of an overlay: clusters unallocated in the snapshot read from
# the backing file.
n=snap-overlay
begin
step $n qemu-img convert -O qcow2 src2.raw $n-base.qcow2
step $n qemu-img create -f qcow2 -b $n-base.qcow2 -F qcow2 $n.qcow2 $SIZE
io $n $n.qcow2 "write -P 0x65 64k 64k" "write -z 1M 64k"
step $n qemu-img snapshot -c s1 $n.qcow2
io $n $n.qcow2 "write -P 0x66 0 1M" "write -P 0x67 3M 64k"
if ready; then
    conform $n $n.qcow2 --backing-chain
    t_convert "convert $n -l s1" $n.qcow2 snapshot.name=s1 s1
fi
# A snapshot taken before the disk grew: qemu-img convert -l keeps the
# current virtual size and reads zeros past the snapshot's L1 table.
n=snap-resized
begin
step $n qemu-img create -f qcow2 $n.qcow2 2M
io $n $n.qcow2 "write -P 0x71 0 2M"
step $n qemu-img snapshot -c small $n.qcow2
step $n qemu-img resize $n.qcow2 $SIZE
io $n $n.qcow2 "write -P 0x72 3M 64k"
if ready; then
    conform $n $n.qcow2
    # A snapshot is opened with its own virtual size (2 MiB here). qemu-img
    # only swaps the L1 table and keeps today's size, padding with zeros, so
    # its output must be ours followed by nothing but zeros.
    rm -f $O/q.raw $O/b.raw
    qemu-img convert -l snapshot.name=small -O raw $n.qcow2 $O/q.raw 2>$O/qerr
    qb $O/bout $O/berr convert -l small $n.qcow2 $O/b.raw; rc=$?
    if qb_ok "convert $n -l small" $rc $O/berr; then
        bsize=$(stat -c %s $O/b.raw 2>/dev/null || echo missing)
        if [ $rc -ne 0 ]; then
            fail "convert $n -l small" "exit $rc: $(errtail $O/berr)"
        elif [ "$bsize" != 2097152 ]; then
            fail "convert $n -l small" "output is $bsize bytes, not the snapshot's 2097152"
        elif ! cmp -s -n 2097152 $O/q.raw $O/b.raw; then
            fail "convert $n -l small" "first 2 MiB differ from qemu-img's"
        elif ! tail -c +2097153 $O/q.raw | cmp -s - <(head -c $(( $(stat -c %s $O/q.raw) - 2097152 )) /dev/zero); then
            fail "convert $n -l small" "qemu-img's output past the snapshot's size is not zeros"
        else
            pass "convert $n -l small"
        fi
    fi
fi

# --- preallocation ---------------------------------------------------------------------
# For preallocation=metadata, qemu-img map asks the host file system which
# preallocated clusters are holes and reports them as "zero": true. That is
# a property of the host file, not of the qcow2 metadata, so map is compared
# on a copy with every block written (cp --sparse=never); the other checks
# use the image as created.
for p in metadata falloc full; do
    n=prealloc-$p
    begin
    step $n qemu-img create -f qcow2 -o preallocation=$p $n.qcow2 $SIZE
    io $n $n.qcow2 "write -P 0x81 64k 64k" "write -P 0x82 1000k 3k" "write -z 2M 64k" \
        "discard 3M 64k"
    if ready; then
        if [ $p = metadata ]; then
            cp --sparse=never $n.qcow2 $n-dense.qcow2
            t_convert "convert $n" $n.qcow2
            t_map "map $n (dense copy)" $n-dense.qcow2
            t_check "check $n" $n.qcow2
            t_info "info $n" $n.qcow2
        else
            conform $n $n.qcow2
        fi
    fi
done

# --- 2 TiB sparse image -------------------------------------------------------------------
# Converting it makes a 2 TiB raw file; both outputs are sparse files on the
# test file system (ext4 or tmpfs both allow it), and cmp would read 4 TiB of
# holes, so the comparison walks SEEK_DATA/SEEK_HOLE extents and compares only
# the bytes either file actually holds (also failing if qcowboot's output
# holds more than 64 MiB of data, i.e. did not leave zero ranges as holes).
n=sparse-2T
begin
step $n qemu-img create -f qcow2 $n.qcow2 2T
io $n $n.qcow2 "write -P 0x91 0 64k" "write -P 0x92 12345k 3k" "write -P 0x93 1T 100k" \
    "write -P 0x94 $((2 * 1024 ** 4 - 65536)) 64k" "write -z $((2 * 1024 ** 4 - 200 * 1024)) 8k"
if ready; then
    name="convert $n"
    rm -f $O/q.raw $O/b.raw
    if ! qemu-img convert -O raw $n.qcow2 $O/q.raw 2>$O/qerr; then
        fail "$name" "qemu-img convert failed: $(errtail $O/qerr)"
    else
        qb $O/bout $O/berr convert $n.qcow2 $O/b.raw; rc=$?
        if qb_ok "$name" $rc $O/berr; then
            if [ $rc -ne 0 ]; then fail "$name" "exit $rc: $(errtail $O/berr)"
            elif why=$("${TOOL[@]}" sparse-cmp $O/q.raw $O/b.raw 2>&1); then pass "$name"
            else fail "$name" "$why"; fi
        fi
    fi
    rm -f $O/q.raw $O/b.raw
    t_map "map $n" $n.qcow2
    t_check "check $n" $n.qcow2
    t_info "info $n" $n.qcow2
fi

# --- refcount widths --------------------------------------------------------------------------
for rb in 1 64; do
    n=refcount-bits-$rb
    begin
    step $n qemu-img convert -O qcow2 -o refcount_bits=$rb,cluster_size=4k src.raw $n.qcow2
    io $n $n.qcow2 "write -P 0xa1 100k 10k" "discard 1M 64k" "write -z 2M 8k"
    [ $rb = 64 ] && step $n qemu-img snapshot -c s $n.qcow2 && io $n $n.qcow2 "write -P 0xa2 0 8k"
    ready && conform $n $n.qcow2
done

# --- lazy refcounts, left dirty ----------------------------------------------------------------
# qemu-io kills itself (SIGKILL) after the writes: the dirty bit stays set and
# the refcounts of the new clusters were never written.
n=lazy-dirty
begin
step $n qemu-img convert -O qcow2 -o lazy_refcounts=on src2.raw $n.qcow2
(qemu-io -f qcow2 -c "write -P 0xb1 2M 100k" -c "write -P 0xb2 64k 4k" -c "sigraise 9" \
    $n.qcow2 >/dev/null 2>&1; true) 2>/dev/null
if ready; then
    if [ "$("${TOOL[@]}" hdr $n.qcow2 incompatible_features)" = 1 ]; then
        pass "setup $n (dirty bit set)"
        conform $n $n.qcow2
    else
        fail "setup $n" "dirty bit not set"
    fi
fi

# --- leaks and corruption (check exit codes 3 and 2) -------------------------------------------
n=leaks
begin
step $n qemu-img convert -O qcow2 src2.raw $n.qcow2
step $n "${TOOL[@]}" edit-leak $n.qcow2
ready && conform $n $n.qcow2
n=corrupt-refcount
begin
step $n qemu-img convert -O qcow2 src2.raw $n.qcow2
step $n "${TOOL[@]}" edit-corrupt $n.qcow2
ready && conform $n $n.qcow2

# --- virtual size not a multiple of 512 -----------------------------------------
# qemu counts the disk in whole sectors and drops a partial last one.
n=size-not-sector-multiple
begin
step $n qemu-img convert -O qcow2 src2.raw $n.qcow2
step $n "${TOOL[@]}" edit-size $n.qcow2 2000001
ready && conform $n $n.qcow2

# --- raw image whose size is not a multiple of 512 ------------------------------
# qemu rounds a raw file's size up to whole sectors (the tail reads as zeros).
n=raw-odd-size
head -c 1000000 src.raw >$n.raw
t_convert "convert $n" $n.raw
t_map "map $n" $n.raw
t_info "info $n" $n.raw

# --- things a reader must ignore -----------------------------------------------------------------
n=unknown-ext-compat
begin
step $n qemu-img convert -O qcow2 -o compression_type=zstd src2.raw $n.qcow2
step $n "${TOOL[@]}" edit-unknown-ext $n.qcow2
ready && conform $n $n.qcow2
n=unknown-autoclear
begin
step $n qemu-img convert -O qcow2 src2.raw $n.qcow2
step $n "${TOOL[@]}" edit-unknown-autoclear $n.qcow2
ready && conform $n $n.qcow2
n=bitmaps
begin
step $n qemu-img convert -O qcow2 src2.raw $n.qcow2
step $n qemu-img bitmap --add $n.qcow2 b0
step $n qemu-img bitmap --add -g 128k $n.qcow2 b1
io $n $n.qcow2 "write -P 0xc1 64k 64k"
ready && conform $n $n.qcow2

finish
