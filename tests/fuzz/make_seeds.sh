#!/usr/bin/env bash
# Builds the seed corpus of tests/fuzz/fuzz_image.c: small images made by
# qemu-img and qemu-io, each stored in the target's input layout
#   4-byte little-endian image length, image bytes, backing-file bytes
# where the "backing file" is whatever the image names (backing image, raw
# backing file or external data file; the target serves every name other
# than "image" from it).
#
#   tests/fuzz/make_seeds.sh OUTDIR
#
# Seeds stay under 1 MiB (the fuzzer's -max_len): trailing zeros of the last
# file are dropped (reads past the end of a file give zeros), and of the
# image too when the pair would not fit otherwise. 2 MiB-cluster images
# cannot fit and are left to mutation of cluster_bits.
set -euo pipefail

OUT=${1:?usage: make_seeds.sh OUTDIR}
MAX=$((1024 * 1024))
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/qb-seeds.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"

# Deterministic, mixed-compressibility data: random, low-entropy, text-like
# and repeated-byte 512-byte blocks, with an all-zero 64 KiB chunk now and then.
gendata() {
    python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
out, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
words = [b"qcow2 ", b"cluster ", b"refcount ", b"snapshot ", b"backing ", b"table ", b"boot "]
buf = bytearray()
while len(buf) < size:
    if len(buf) % 65536 == 0 and r.randrange(6) == 0:
        buf += bytes(65536); continue
    k = r.randrange(4)
    if k == 0:
        blk = bytes(r.randrange(256) for _ in range(512))
    elif k == 1:
        blk = bytes(r.choice(b"\x00\x01\x02\x03") for _ in range(512))
    elif k == 2:
        blk = b"".join(r.choice(words) for _ in range(80))[:512]
    else:
        blk = bytes([r.randrange(1, 256)]) * 512
    buf += blk
open(out, "wb").write(bytes(buf[:size]))
EOF
}

# pack NAME IMAGE [BACKING]: writes OUT/NAME in the split layout.
pack() {
    python3 - "$OUT/$1.seed" "$MAX" "$2" "${3:-}" <<'EOF'
import struct, sys
out, cap, img_path, back_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
img = open(img_path, "rb").read()
back = open(back_path, "rb").read().rstrip(b"\0") if back_path else b""
if back_path == "":
    img = img if 4 + len(img) <= cap else img.rstrip(b"\0")
elif 4 + len(img) + len(back) > cap:
    img = img.rstrip(b"\0")
data = struct.pack("<I", len(img)) + img + back
if len(data) > cap:
    print("make_seeds: %s is %d bytes, over %d: skipped" % (out, len(data), cap))
    sys.exit(0)
open(out, "wb").write(data)
EOF
}

io() {
    local img=$1; shift
    local args=() c
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
}

# Small on purpose: the fuzzer mutates every byte of a seed.
gendata src.raw 205312 1      # 200.5 KiB: not a multiple of any cluster size
gendata small.raw 65536 2

WRITES=("write -P 0x11 0 20k" "write -P 0x22 100k 5k" "write -z 110k 4k"
        "write -z -u 128k 16k" "discard 160k 8k" "write -P 0x33 204800 512")

# Plain images: compat x cluster size.
for compat in 0.10 1.1; do
    v=v3; [ $compat = 0.10 ] && v=v2
    for cs in 512 4k 64k; do
        qemu-img convert -O qcow2 -o compat=$compat,cluster_size=$cs small.raw $v-c$cs.qcow2
        qemu-img resize -q $v-c$cs.qcow2 205312
        io $v-c$cs.qcow2 "${WRITES[@]}"
        pack $v-c$cs $v-c$cs.qcow2
    done
done
qemu-img create -q -f qcow2 -o cluster_size=4k empty.qcow2 64M
pack empty empty.qcow2

# Compressed clusters (qemu-img convert -c), plus a compressed write by qemu-io.
for spec in v3:512:zlib v3:4k:zlib v3:4k:zstd v3:64k:zlib v3:64k:zstd v2:4k:zlib; do
    IFS=: read -r v cs ct <<<"$spec"
    compat=1.1; [ $v = v2 ] && compat=0.10
    opts=compat=$compat,cluster_size=$cs
    [ $v = v3 ] && opts=$opts,compression_type=$ct
    n=comp-$v-c$cs-$ct
    qemu-img convert -c -O qcow2 -o $opts src.raw $n.qcow2
    io $n.qcow2 "write -P 0x5a 64k 3k" "write -z 100k 4k" "discard 128k 64k" \
        "write -c -P 0x5c 128k 64k"
    pack $n $n.qcow2
done

# Extended L2 entries: subcluster writes, zeroes and discards, alone and over
# a backing file.
for cs in 16k 64k; do
    n=xl2-c$cs
    qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs $n.qcow2 1M
    io $n.qcow2 "write -P 1 1k 1k" "write -P 2 33k 3k" "write -z 100k 20k" "write -P 3 200k 64k" \
        "discard 204k 2k" "write -c -P 4 512k $cs" "write -P 5 1040384 8192"
    pack $n $n.qcow2
done
qemu-img convert -O qcow2 -o cluster_size=4k small.raw xl2-base.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=32k -b xl2-base.qcow2 -F qcow2 xl2-ov.qcow2 512k
io xl2-ov.qcow2 "write -P 1 4k 2k" "write -P 2 70k 8k" "write -z 129k 4k" "discard 160k 4k"
pack xl2-backing xl2-ov.qcow2 xl2-base.qcow2

# Internal snapshots (v2 and v3), one taken before a resize.
for compat in 1.1 0.10; do
    v=v3; [ $compat = 0.10 ] && v=v2
    n=snap-$v
    qemu-img convert -O qcow2 -o compat=$compat,cluster_size=4k small.raw $n.qcow2
    qemu-img snapshot -c s1 $n.qcow2
    io $n.qcow2 "write -P 0x61 32k 8k" "discard 48k 8k"
    qemu-img snapshot -c second $n.qcow2
    io $n.qcow2 "write -P 0x63 0 4k"
    pack $n $n.qcow2
done
qemu-img create -q -f qcow2 -o cluster_size=4k snap-resized.qcow2 64k
io snap-resized.qcow2 "write -P 0x71 0 64k"
qemu-img snapshot -c small snap-resized.qcow2
qemu-img resize -q snap-resized.qcow2 1M
pack snap-resized snap-resized.qcow2

# Backing chains: qcow2 and raw backing files, shorter than the overlay; a
# chain whose backing names itself ("image") and one whose backing file
# names itself (both loops).
qemu-img convert -O qcow2 -o cluster_size=4k small.raw base.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k -b base.qcow2 -F qcow2 ov.qcow2 1M
io ov.qcow2 "write -P 0x31 0 2k" "write -z 100k 8k" "discard 160k 4k" "write -P 0x33 300k 8k"
pack backing-qcow2 ov.qcow2 base.qcow2
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k -b base.qcow2 ov2.qcow2 512k 2>/dev/null || \
    qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k -b base.qcow2 -F qcow2 ov2.qcow2 512k
io ov2.qcow2 "write -P 0x32 4k 4k"
pack backing-v2 ov2.qcow2 base.qcow2
cp small.raw base.raw
qemu-img create -q -f qcow2 -o cluster_size=4k -b base.raw -F raw ovr.qcow2 1M
io ovr.qcow2 "write -P 0x41 4k 4k" "write -z 64k 64k"
pack backing-raw ovr.qcow2 base.raw
qemu-img create -q -f qcow2 -o cluster_size=4k -b image -F qcow2 -u self.qcow2 1M
pack backing-self self.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k -b m.qcow2 -F qcow2 -u l.qcow2 1M
qemu-img create -q -f qcow2 -o cluster_size=4k -b l.qcow2 -F qcow2 -u ovl.qcow2 1M
pack backing-loop ovl.qcow2 l.qcow2

# External data files (the data file is the second buffer).
for raw in off on; do
    n=datafile-raw-$raw
    qemu-img create -q -f qcow2 -o data_file=$n.data,data_file_raw=$raw,cluster_size=4k $n.qcow2 512k
    io $n.qcow2 "write -P 0x51 0 20k" "write -z 64k 4k" "write -P 0x53 128k 16k" "discard 128k 4k"
    pack $n $n.qcow2 $n.data
done

# Refcount widths, lazy refcounts left dirty, bitmaps, metadata preallocation.
for rb in 1 8 64; do
    qemu-img convert -O qcow2 -o refcount_bits=$rb,cluster_size=4k small.raw rb$rb.qcow2
    io rb$rb.qcow2 "write -P 0xa1 10k 10k" "discard 32k 8k"
    pack refcount-bits-$rb rb$rb.qcow2
done
qemu-img convert -O qcow2 -o lazy_refcounts=on,cluster_size=4k small.raw lazy.qcow2
(qemu-io -f qcow2 -c "write -P 0xb1 16k 16k" -c "sigraise 9" lazy.qcow2 >/dev/null 2>&1 || true) 2>/dev/null
pack lazy-dirty lazy.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k bitmaps.qcow2 1M
io bitmaps.qcow2 "write -P 0xc1 0 8k"
qemu-img bitmap --add bitmaps.qcow2 b0 2>/dev/null && qemu-img bitmap --add -g 65536 bitmaps.qcow2 b1 2>/dev/null || true
pack bitmaps bitmaps.qcow2
qemu-img create -q -f qcow2 -o preallocation=metadata,cluster_size=4k prealloc.qcow2 1M
io prealloc.qcow2 "write -P 0xd1 4k 4k"
pack prealloc-metadata prealloc.qcow2
qemu-img create -q -f qcow2 huge.qcow2 2T
io huge.qcow2 "write -P 0xe1 0 512" "write -P 0xe2 1T 1k" "write -P 0xe3 $((2 * 1024 ** 4 - 512)) 512"
pack sparse-2T huge.qcow2

# An encrypted image (the engine must refuse it cleanly), if it fits.
if qemu-img create -q --object secret,id=s0,data=fuzz -f qcow2 \
        -o encrypt.format=aes,encrypt.key-secret=s0,compat=0.10,cluster_size=4k enc.qcow2 1M 2>/dev/null; then
    pack encrypted-aes enc.qcow2
fi

# A raw "image" (probing must fall back to raw).
head -c 4096 small.raw > raw.img
pack raw raw.img

n=$(find "$OUT" -name '*.seed' | wc -l)
echo "make_seeds: $n seeds in $OUT"
