#!/usr/bin/env python3
"""Builds the seed corpus of tests/fuzz/fuzz_write.c from that of
fuzz_image.c (tests/fuzz/make_seeds.sh): each image seed, whose layout is
    4-byte LE image length, image, second file (the rest)
becomes
    4-byte LE image length, image, 4-byte LE second-file length, second file,
    operations
with a few operation lists (see fuzz_write.c for their encoding): one mixed
list of every kind, one of writes and flushes only whose file fails part
way, and one at the end of the disk (odd window byte). Deterministic: the lists come from a PRNG seeded
with the seed's name.

    make_write_seeds.py IMAGE_SEEDS_DIR OUTDIR
"""
import os
import random
import struct
import sys

WRITE, ZERO, DISCARD, FLUSH, SNAP_CREATE, SNAP_DELETE = 0, 3, 4, 5, 6, 7


def op(kind, align, off, length, name=0):
    """One 8-byte operation: kind | align << 3, offset (LE32), length (LE24)."""
    b1 = struct.pack("<I", off)
    if kind in (SNAP_CREATE, SNAP_DELETE):
        b1 = bytes([name]) + b1[1:]
    return bytes([kind | align << 3]) + b1 + struct.pack("<I", length)[:3]


def mixed(r, n):
    """Every kind; snapshots are created under free names and deleted only
    when they exist (the target stops at the first refusal)."""
    out, snaps = [], set()
    for _ in range(n):
        k = r.choice([WRITE] * 5 + [ZERO, ZERO, DISCARD, DISCARD, FLUSH, SNAP_CREATE, SNAP_DELETE])
        name = r.randrange(4)
        if k == SNAP_CREATE:
            free = [i for i in range(4) if i not in snaps]
            if not free:
                k = FLUSH
            else:
                name = r.choice(free)
                snaps.add(name)
        elif k == SNAP_DELETE:
            if not snaps:
                k = SNAP_CREATE
                snaps.add(name)
            else:
                name = r.choice(sorted(snaps))
                snaps.discard(name)
        out.append(op(k, r.randrange(4), r.randrange(1 << 22), r.randrange(1, 1 << 17), name))
    return out


def writes(r, n):
    out = []
    for i in range(n):
        if i % 5 == 4:
            out.append(op(FLUSH, 0, 0, 0))
        else:
            out.append(op(WRITE, r.randrange(4), r.randrange(1 << 22), r.randrange(1, 1 << 16)))
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    names = sorted(f for f in os.listdir(src) if f.endswith(".seed"))
    for name in names:
        data = open(os.path.join(src, name), "rb").read()
        if len(data) < 4:
            continue
        (ilen,) = struct.unpack("<I", data[:4])
        image = data[4:4 + ilen]
        second = data[4 + len(image):]
        # The image seeds drop the trailing zeros of a backing file, which
        # can leave its tables past the end: pad a qcow2 one back to whole
        # 64 KiB so that the chain opens and the writes reach past it.
        if second[:4] == b"QFI\xfb" and len(second) % 65536:
            second += bytes(65536 - len(second) % 65536)
        files = struct.pack("<I", len(image)) + image + struct.pack("<I", len(second)) + second
        base = name[:-len(".seed")]
        r = random.Random(base)
        # The first byte: bit 0 the window at the end, bits 1-7 the file's
        # failure from call 3*F on (writes: at call 21).
        lists = {
            "mixed": b"\0" + b"".join(mixed(r, 24)),
            "writes": bytes([7 << 1]) + b"".join(writes(r, 16)),
            "end": b"\1" + b"".join(mixed(r, 12)),
        }
        for tag, ops in lists.items():
            with open(os.path.join(dst, "%s-%s.seed" % (base, tag)), "wb") as f:
                f.write(files + ops)
    print("make_write_seeds: %d seeds in %s" % (3 * len(names), dst))


main()
