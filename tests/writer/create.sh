#!/usr/bin/env bash
# `qcowboot create` and `qcowboot convert -O qcow2` against qemu-img 7.2.
#
#   same OPTS        an image made by `qcowboot create` and one made by
#                    `qemu-img create` with the same options: the same bytes,
#                    the same `qemu-img info` fields, `qemu-img map` and file
#                    length (preallocation), and a clean `qemu-img check`
#   refuse ...       impossible options: non-zero exit, qemu-img's message,
#                    and no file left behind
#   raw ...          raw images: size, sparse or zero-filled
#   convert ...      sources made with qemu-img/qemu-io (random data, zero
#                    writes, holes, a backing chain, compressed clusters)
#                    converted plain, with -c (zlib, zstd) and other layouts:
#                    `qemu-img compare` equal, `qemu-img check` clean, the
#                    same clusters allocated as qemu-img convert allocates,
#                    compressed clusters where the data compresses, and
#                    qemu-img's -c output and ours read the same
#
# QB is the CLI under test (default build/host-san/qcowboot); QB_KEEP=1
# keeps the temporary directory.
set -u
QB_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QB=${QB:-$QB_ROOT/build/host-san/qcowboot}
case $QB in /*) ;; *) QB=$PWD/$QB ;; esac
. "$QB_ROOT/tests/lib.sh"
mkdir -p "$QB_ROOT/build/tests"
T=$(mktemp -d "$QB_ROOT/build/tests/writer-create.XXXXXX")
if [ "${QB_KEEP:-0}" = 1 ]; then echo "images kept in $T"; else trap 'rm -rf "$T"' EXIT; fi
cd "$T" || exit 1
require_qb
cp "$QB" "$T/qcowboot" && QB=$T/qcowboot

LOG=$T/log
last() { tail -n 5 "$LOG"; }

# The fields of `qemu-img info` that describe the image (not its file).
info_fields() {
    qemu-img info --output=json "$1" |
        jq -S '{ "virtual-size", "cluster-size", "format", "format-specific",
                 "backing-filename", "backing-filename-format", "full-backing-filename",
                 "dirty-flag" }'
}
# `qemu-img map` without offsets (where data lands may differ legitimately).
map_shape() { qemu-img map --output=json "$1" | jq -c '.[] | del(.offset)'; }

# --- same: qcowboot create vs qemu-img create -------------------------------

qemu-img create -q -f qcow2 base.qcow2 3M
qemu-img create -q -f raw base.raw 5M

# same NAME SIZE ARGS...: both tools create an image with ARGS and SIZE
# ("" for none: the backing file's size).
same() {
    local name=$1 size=$2; shift 2
    rm -f q.qcow2 b.qcow2
    if ! qemu-img create -q -f qcow2 "$@" q.qcow2 $size >"$LOG" 2>&1; then
        fail "same $name: qemu-img create" "$(last)"
        return
    fi
    if ! "$QB" create -q -f qcow2 "$@" b.qcow2 $size >"$LOG" 2>&1; then
        fail "same $name: create" "$(last)"
        return
    fi
    local prealloc=0
    [[ "$*" == *preallocation=* && "$*" != *preallocation=off* ]] && prealloc=1
    if cmp -s q.qcow2 b.qcow2; then pass "same $name: bytes"
    else fail "same $name: bytes" "$(cmp q.qcow2 b.qcow2 2>&1 | head -1)"; fi
    if [ "$(info_fields q.qcow2)" = "$(info_fields b.qcow2)" ]; then pass "same $name: info"
    else fail "same $name: info" "$(diff <(info_fields q.qcow2) <(info_fields b.qcow2) | head -5)"; fi
    if qemu-img check b.qcow2 >"$LOG" 2>&1; then pass "same $name: check"
    else fail "same $name: check" "$(last)"; fi
    if [ $prealloc = 1 ]; then
        if [ "$(qemu-img map --output=json q.qcow2)" = "$(qemu-img map --output=json b.qcow2)" ]
        then pass "same $name: map"
        else fail "same $name: map" "$(diff <(qemu-img map --output=json q.qcow2) \
                                          <(qemu-img map --output=json b.qcow2) | head -4)"; fi
        if [ "$(stat -c %s q.qcow2)" = "$(stat -c %s b.qcow2)" ]; then pass "same $name: length"
        else fail "same $name: length" "$(stat -c %s q.qcow2) vs $(stat -c %s b.qcow2)"; fi
    fi
}

same default 1G
same zero-size 0
same odd-size 1000
same v2 1G -o compat=0.10
same v2-name 100M -o compat=v2,cluster_size=4k
same v3-512 64M -o cluster_size=512
same v3-2M 10G -o cluster_size=2M
same refcount1 1G -o refcount_bits=1
same refcount64 1G -o refcount_bits=64
same refcount64-512 64M -o refcount_bits=64,cluster_size=512
same refcount1-512 256M -o refcount_bits=1,cluster_size=512
same grown-reftable 20G -o cluster_size=512
same extended-l2 1G -o extended_l2=on
same extended-l2-16k 1G -o extended_l2=on,cluster_size=16k
same zstd 1G -o compression_type=zstd
same lazy 1G -o lazy_refcounts=on
same everything 5G -o cluster_size=32k,refcount_bits=8,extended_l2=on,lazy_refcounts=on,compression_type=zstd
same backing-qcow2 "" -b base.qcow2 -F qcow2
same backing-raw "" -b base.raw -F raw
same backing-sized 1G -b base.qcow2 -F qcow2
same backing-v2 "" -o compat=0.10 -b base.qcow2 -F qcow2
same backing-512 "" -o cluster_size=512 -b base.qcow2 -F qcow2
same backing-4k "" -o cluster_size=4k,backing_file=base.qcow2,backing_fmt=qcow2
same backing-prealloc "" -o extended_l2=on,preallocation=metadata -b base.qcow2 -F qcow2
same metadata 1100M -o preallocation=metadata
same metadata-v2 100M -o preallocation=metadata,compat=0.10
same metadata-odd 1000 -o preallocation=metadata
same metadata-512 4M -o preallocation=metadata,cluster_size=512
same metadata-512-r64 2M -o preallocation=metadata,cluster_size=512,refcount_bits=64
same metadata-4k-r1 50M -o preallocation=metadata,cluster_size=4k,refcount_bits=1
same metadata-2M 5G -o preallocation=metadata,cluster_size=2M
same metadata-extl2 100M -o preallocation=metadata,extended_l2=on,cluster_size=16k
same falloc 100M -o preallocation=falloc
same falloc-4k 10M -o preallocation=falloc,cluster_size=4k
same full 30M -o preallocation=full
same full-4k 10M -o preallocation=full,cluster_size=4k
same full-512-r64 1M -o preallocation=full,cluster_size=512,refcount_bits=64
same full-zero 0 -o preallocation=full
same full-extl2 3M -o preallocation=full,extended_l2=on,cluster_size=32k

# full preallocation writes the data clusters: the file has no holes there.
rm -f full.qcow2
"$QB" create -q -f qcow2 -o preallocation=full full.qcow2 8M
blocks=$(( $(stat -c %b full.qcow2) * $(stat -c %B full.qcow2) ))
if [ "$blocks" -ge $((8 << 20)) ]; then pass "full: data clusters written"
else fail "full: data clusters written" "only $blocks bytes allocated"; fi

# --- refuse: impossible options ---------------------------------------------

# refuse NAME MESSAGE ARGS...: create fails, says MESSAGE, leaves no file.
refuse() {
    local name=$1 msg=$2; shift 2
    rm -f bad.img
    if "$QB" create "$@" >"$LOG" 2>&1; then
        fail "refuse $name" "exit 0: $(last)"
    elif ! grep -qF -- "$msg" "$LOG"; then
        fail "refuse $name" "message: $(last)"
    elif [ -e bad.img ]; then
        fail "refuse $name" "bad.img was created"
    else
        pass "refuse $name"
    fi
}

refuse v2-refcount "Different refcount widths than 16 bits" -o compat=0.10,refcount_bits=8 bad.img 1M
refuse v2-lazy "Lazy refcounts" -o compat=0.10,lazy_refcounts=on bad.img 1M
refuse v2-zstd "Non-zlib compression type" -o compat=0.10,compression_type=zstd bad.img 1M
refuse v2-extl2 "Extended L2 entries" -o compat=0.10,extended_l2=on bad.img 1M
refuse extl2-8k "at least 16384 bytes" -o extended_l2=on,cluster_size=8k bad.img 1M
refuse cluster-1000 "Cluster size must be a power of two" -o cluster_size=1000 bad.img 1M
refuse cluster-4M "Cluster size must be a power of two" -o cluster_size=4M bad.img 1M
refuse cluster-256 "Cluster size must be a power of two" -o cluster_size=256 bad.img 1M
refuse refcount-3 "Refcount width must be a power of two" -o refcount_bits=3 bad.img 1M
refuse refcount-128 "Refcount width must be a power of two" -o refcount_bits=128 bad.img 1M
refuse refcount-word "expects a number" -o refcount_bits=abc bad.img 1M
refuse prealloc-backing "only be used at the same time if extended_l2 is on" \
    -o preallocation=metadata -b base.qcow2 -F qcow2 bad.img
refuse compat-1.0 "does not accept value '1.0'" -o compat=1.0 bad.img 1M
refuse lz4 "does not accept value 'lz4'" -o compression_type=lz4 bad.img 1M
refuse prealloc-word "does not accept value 'bogus'" -o preallocation=bogus bad.img 1M
refuse bool-word "expects 'on' or 'off'" -o extended_l2=maybe bad.img 1M
refuse unknown "Invalid parameter 'foo'" -o foo=bar bad.img 1M
refuse no-backing-fmt "Backing file specified without backing format" -b base.qcow2 bad.img 1M
refuse backing-missing "Could not open backing image" -b nonexistent.qcow2 -F qcow2 bad.img 1M
refuse backing-wrong-fmt "Could not open backing image" -b base.raw -F qcow2 bad.img
refuse no-size "Image creation needs a size parameter" bad.img
refuse unsafe-no-size "Image creation needs a size parameter" -u -b base.qcow2 -F qcow2 bad.img
refuse size-twice "must be specified only once" -o size=1M bad.img 2M
refuse size-word "Invalid image size specified" bad.img 12Q
refuse size-huge "Must be between 0 and 9223372036854775807" bad.img 8E
refuse size-too-large "The image size is too large for file format 'qcow2'" bad.img 100P
refuse size-too-large-512 "The image size is too large" -o cluster_size=512 bad.img 1T
refuse long-backing-name "does not fit in the 512-byte header cluster" -u \
    -o cluster_size=512 -b "$(printf 'x%.0s' {1..400})" -F qcow2 bad.img 1M
refuse format "format 'vmdk' is not supported" -f vmdk bad.img 1M
refuse raw-option "Invalid parameter 'cluster_size'" -f raw -o cluster_size=4k bad.img 1M
refuse raw-metadata "Unsupported preallocation mode: metadata" -f raw -o preallocation=metadata bad.img 1M
refuse raw-backing "Backing file not supported for file format 'raw'" -f raw -b base.raw -F raw bad.img 1M

# -u: the backing file is recorded without being opened.
rm -f u.qcow2
if "$QB" create -q -u -b missing.qcow2 -F qcow2 u.qcow2 1M >"$LOG" 2>&1 &&
   [ "$(qemu-img info --output=json -U u.qcow2 | jq -r '."backing-filename"')" = missing.qcow2 ]; then
    pass "unsafe backing"
else
    fail "unsafe backing" "$(last)"
fi

if "$QB" create --help >"$LOG" 2>&1 && grep -q "Usage: create" "$LOG"; then pass "help"
else fail "help" "$(last)"; fi
if "$QB" create -o help >"$LOG" 2>&1 && grep -q "cluster_size" "$LOG"; then pass "-o help"
else fail "-o help" "$(last)"; fi

# The Formatting line is qemu-img's.
rm -f f.qcow2 fq.qcow2
a=$("$QB" create -f qcow2 -o cluster_size=4k,compat=1.1 -b base.qcow2 -F qcow2 f.qcow2 5M 2>&1)
b=$(qemu-img create -f qcow2 -o cluster_size=4k,compat=1.1 -b base.qcow2 -F qcow2 fq.qcow2 5M 2>&1)
if [ "${a/f.qcow2/fq.qcow2}" = "$b" ]; then pass "formatting line"
else fail "formatting line" "'$a' vs '$b'"; fi

# --- raw ----------------------------------------------------------------------

rm -f r.raw rf.raw
if "$QB" create -q -f raw r.raw 1000 >"$LOG" 2>&1 && [ "$(stat -c %s r.raw)" = 1024 ] &&
   [ "$(stat -c %b r.raw)" = 0 ]; then
    pass "raw: sparse, size rounded to 512"
else
    fail "raw: sparse, size rounded to 512" "$(last; ls -ls r.raw)"
fi
if "$QB" create -q -f raw -o preallocation=full rf.raw 3M >"$LOG" 2>&1 &&
   [ "$(stat -c %s rf.raw)" = $((3 << 20)) ] &&
   [ $(( $(stat -c %b rf.raw) * $(stat -c %B rf.raw) )) -ge $((3 << 20)) ] &&
   cmp -s rf.raw <(head -c $((3 << 20)) /dev/zero); then
    pass "raw: full preallocation"
else
    fail "raw: full preallocation" "$(last; ls -ls rf.raw)"
fi

# --- convert -O qcow2 ---------------------------------------------------------

# Sources: random data, a pattern that compresses, explicit zero data,
# zero clusters, holes, a partial last cluster; a small-cluster image, a
# backing chain, a compressed image.
head -c $((3 << 20)) /dev/urandom >rand.bin
qemu-img create -q -f qcow2 src.qcow2 $((40 * 1024 * 1024 + 3 * 1024))
qemu-io -f qcow2 -c "write -P 0x5a 0 1M" -c "write -P 0 2M 1M" -c "write -P 0x33 3M 7k" \
    -c "write -z 8M 2M" -c "write -s rand.bin 12M 3M" -c "write -P 0x77 20M 64k" \
    -c "write -P 0x78 $((40 * 1024 * 1024)) 3k" src.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=512 small.qcow2 5M
qemu-io -f qcow2 -c "write -P 0x11 1k 3k" -c "write -s rand.bin 1M 1M" -c "write -P 0 3M 1M" \
    small.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 top.qcow2
qemu-io -f qcow2 -c "write -P 0x99 512k 1M" -c "write -z 12M 1M" top.qcow2 >/dev/null
qemu-img convert -c -O qcow2 -o compression_type=zstd src.qcow2 zsrc.qcow2

# converted NAME SRC OUT ARGS...: qcowboot convert ARGS SRC OUT is equal to
# SRC and clean.
converted() {
    local name=$1 src=$2 out=$3; shift 3
    rm -f "$out"
    if ! "$QB" convert -O qcow2 "$@" "$src" "$out" >"$LOG" 2>&1; then
        fail "convert $name" "$(last)"
        return 1
    fi
    if ! qemu-img compare "$src" "$out" >"$LOG" 2>&1; then
        fail "convert $name: compare" "$(last)"
        return 1
    fi
    if ! qemu-img check "$out" >"$LOG" 2>&1; then
        fail "convert $name: check" "$(last)"
        return 1
    fi
    pass "convert $name"
}

# same_allocation NAME OURS THEIRS: the same ranges allocated, zero and data.
same_allocation() {
    if [ "$(map_shape "$2")" = "$(map_shape "$3")" ]; then pass "$1: allocation as qemu-img"
    else fail "$1: allocation as qemu-img" "$(diff <(map_shape "$2") <(map_shape "$3") | head -4)"; fi
}

# compressed_pct IMAGE: qemu-img check's share of compressed clusters.
compressed_pct() {
    qemu-img check "$1" 2>/dev/null | sed -n 's/.*fragmented, \([0-9.]*\)% compressed.*/\1/p'
}

for src in src small top zsrc; do
    if converted "$src plain" $src.qcow2 $src-plain.qcow2; then
        qemu-img convert -O qcow2 $src.qcow2 $src-qemu.qcow2
        same_allocation "convert $src plain" $src-plain.qcow2 $src-qemu.qcow2
    fi
    if converted "$src -c" $src.qcow2 $src-c.qcow2 -c; then
        qemu-img convert -c -O qcow2 $src.qcow2 $src-qemu-c.qcow2
        same_allocation "convert $src -c" $src-c.qcow2 $src-qemu-c.qcow2
        # Both compressed outputs hold the same disk, read by either tool.
        if qemu-img compare $src-c.qcow2 $src-qemu-c.qcow2 >"$LOG" 2>&1; then
            pass "convert $src -c: equal to qemu-img -c"
        else
            fail "convert $src -c: equal to qemu-img -c" "$(last)"
        fi
        rm -f a.raw b.raw
        if "$QB" convert $src-qemu-c.qcow2 a.raw >"$LOG" 2>&1 &&
           qemu-img convert -O raw $src-c.qcow2 b.raw && cmp -s a.raw b.raw; then
            pass "convert $src -c: qcowboot reads qemu-img's, qemu-img reads ours"
        else
            fail "convert $src -c: qcowboot reads qemu-img's, qemu-img reads ours" "$(last)"
        fi
    fi
    if converted "$src -c zstd" $src.qcow2 $src-z.qcow2 -c -o compression_type=zstd; then
        t=$(qemu-img info --output=json $src-z.qcow2 | jq -r '."format-specific".data."compression-type"')
        if [ "$t" = zstd ]; then pass "convert $src -c zstd: compression type"
        else fail "convert $src -c zstd: compression type" "$t"; fi
    fi
done
for out in src-c src-z top-c; do
    pct=$(compressed_pct $out.qcow2)
    if [ -n "$pct" ] && [ "${pct%.*}" -ge 20 ]; then pass "convert $out: clusters compressed"
    else fail "convert $out: clusters compressed" "${pct:-none}% compressed"; fi
done

converted "2M clusters -c" src.qcow2 c2m.qcow2 -c -o cluster_size=2M,compression_type=zstd
converted "512 B clusters" src.qcow2 c512.qcow2 -o cluster_size=512,refcount_bits=1
converted "v2" top.qcow2 cv2.qcow2 -o compat=0.10
converted "extended L2" top.qcow2 cext.qcow2 -o extended_l2=on,cluster_size=32k
converted "metadata preallocation" src.qcow2 cpre.qcow2 -o preallocation=metadata
qemu-img snapshot -c s1 src.qcow2
qemu-io -f qcow2 -c "write -P 0x44 0 4M" src.qcow2 >/dev/null
rm -f csnap.qcow2 snap.raw
if "$QB" convert -O qcow2 -l snapshot.name=s1 src.qcow2 csnap.qcow2 >"$LOG" 2>&1 &&
   qemu-img convert -l snapshot.name=s1 -O raw src.qcow2 snap.raw &&
   qemu-img compare -f raw -F qcow2 snap.raw csnap.qcow2 >"$LOG" 2>&1; then
    pass "convert -l snapshot"
else
    fail "convert -l snapshot" "$(last)"
fi
if [ "$(qemu-img info --output=json cv2.qcow2 | jq -r '."format-specific".data.compat')" = 0.10 ] &&
   [ "$(qemu-img info --output=json cext.qcow2 | jq -r '."format-specific".data."extended-l2"')" = true ] &&
   ! qemu-img info --output=json cv2.qcow2 | jq -e '."backing-filename"' >/dev/null; then
    pass "convert: output options applied, no backing file"
else
    fail "convert: output options applied, no backing file"
fi

# convert_refuse NAME MESSAGE ARGS...
convert_refuse() {
    local name=$1 msg=$2; shift 2
    rm -f bad.img
    if "$QB" convert "$@" >"$LOG" 2>&1; then fail "convert refuse $name" "exit 0"
    elif ! grep -qF -- "$msg" "$LOG"; then fail "convert refuse $name" "message: $(last)"
    elif [ -e bad.img ]; then fail "convert refuse $name" "bad.img was created"
    else pass "convert refuse $name"; fi
}
convert_refuse raw-c "-c needs -O qcow2" -c src.qcow2 bad.img
convert_refuse raw-o "-o needs -O qcow2" -o cluster_size=4k src.qcow2 bad.img
convert_refuse c-prealloc "Compression and preallocation" -O qcow2 -c -o preallocation=full src.qcow2 bad.img
convert_refuse size "takes the size of IMAGE" -O qcow2 -o size=1M src.qcow2 bad.img
convert_refuse v2-zstd "Non-zlib compression type" -O qcow2 -o compat=0.10,compression_type=zstd src.qcow2 bad.img
convert_refuse format "output format 'vmdk' is not supported" -O vmdk src.qcow2 bad.img

finish
