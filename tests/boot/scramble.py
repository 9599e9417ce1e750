#!/usr/bin/env python3
"""Damages a copy of a guest disk where an overlay will repair it.

Usage: scramble.py DISK OUT PATCHDIR CONTIG_FILE [CHUNKED_FILE...]

CONTIG_FILE and CHUNKED_FILE are host copies of files stored on DISK, read by
the guest's boot (the EFI boot loader, the kernel). CONTIG_FILE must be
stored contiguously (a file copied onto a fresh FAT); a CHUNKED_FILE may be
fragmented (ext4): only 4 KiB pieces of it are located.

Writes OUT, a copy of DISK with regions inside those files overwritten, and
for each region PATCHDIR/N.bin holding the original bytes; prints one
`OFFSET LENGTH PATCHFILE` line per region. Writing the patches into an
overlay of OUT gives DISK back. With 64 KiB clusters of 2 KiB subclusters
(extended L2) the regions are: one whole subcluster, 512 bytes inside a
subcluster, 6 KiB across a cluster boundary, 1000 bytes at an unaligned
offset in the cluster of the first one, and one subcluster in each chunked
file.
"""
import os
import sys

CLUSTER = 65536
SUB = CLUSTER // 32
PIECE = 4096


def align_up(x, a):
    return (x + a - 1) // a * a


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    disk_path, out_path, patch_dir, contig = sys.argv[1:5]
    chunked = sys.argv[5:]
    with open(disk_path, "rb") as f:
        disk = bytearray(f.read())

    regions = []
    data = open(contig, "rb").read()
    start = disk.find(data)
    if start < 0:
        sys.exit(f"scramble: {contig} is not stored contiguously on {disk_path}")
    n = len(data)
    s1 = align_up(start + n // 4, CLUSTER) + 6 * SUB
    regions.append((s1, SUB))
    regions.append((align_up(start + n // 2, CLUSTER) + 10 * SUB + 1024, 512))
    b = align_up(start + 3 * n // 4, CLUSTER)
    regions.append((b - 3072, 6144))
    regions.append((s1 + 8 * SUB + 512, 1000))
    for off, length in regions:
        if off < start or off + length > start + n:
            sys.exit(f"scramble: {contig} is too small for the regions")

    for path in chunked:
        data = open(path, "rb").read()
        fo = len(data) // 3 // PIECE * PIECE
        piece = bytes(data[fo:fo + PIECE])
        at = disk.find(piece)
        if at < 0:
            sys.exit(f"scramble: no 4 KiB piece of {path} found on {disk_path}")
        if disk.find(piece, at + 1) >= 0:
            sys.exit(f"scramble: the piece of {path} is not unique on {disk_path}")
        regions.append((align_up(at, SUB), SUB))
        if regions[-1][0] + SUB > at + PIECE:
            sys.exit(f"scramble: piece of {path} at {at} holds no whole subcluster")

    os.makedirs(patch_dir, exist_ok=True)
    for i, (off, length) in enumerate(regions):
        patch = os.path.join(patch_dir, f"{i}.bin")
        orig = bytes(disk[off:off + length])
        with open(patch, "wb") as f:
            f.write(orig)
        bad = bytes((c ^ 0xA5) for c in orig)
        disk[off:off + length] = bad
        print(off, length, patch)
    with open(out_path, "wb") as f:
        f.write(disk)


if __name__ == "__main__":
    main()
