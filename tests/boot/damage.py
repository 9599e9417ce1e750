#!/usr/bin/env python3
"""Damages a qcow2 image in place for the boot tests' negative cases.

Usage:
  damage.py l1-past-eof IMG
      the L1 table offset points past the end of the file: the image
      cannot be opened.
  damage.py unaligned-data IMG RAW PAYLOAD
      IMG is a plain qcow2 of disk RAW, which stores file PAYLOAD
      contiguously (the guest's boot loader): the L2 entry of the cluster
      in the middle of PAYLOAD gets an offset that is not cluster aligned,
      which QEMU reports as corruption. The image opens; reading that
      cluster (loading the boot loader) fails.
"""
import struct
import sys


def header(f):
    f.seek(0)
    h = f.read(72)
    if h[:4] != b"QFI\xfb":
        sys.exit("damage: not a qcow2 image")
    cluster_bits = struct.unpack(">I", h[20:24])[0]
    l1_size = struct.unpack(">I", h[36:40])[0]
    l1_off = struct.unpack(">Q", h[40:48])[0]
    return cluster_bits, l1_size, l1_off


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mode, img = sys.argv[1], sys.argv[2]
    with open(img, "r+b") as f:
        cluster_bits, l1_size, l1_off = header(f)
        cluster = 1 << cluster_bits
        if mode == "l1-past-eof":
            f.seek(0, 2)
            past = (f.tell() // cluster + 1024) * cluster
            f.seek(40)
            f.write(struct.pack(">Q", past))
            return
        if mode != "unaligned-data" or len(sys.argv) != 5:
            sys.exit(__doc__)
        disk = open(sys.argv[3], "rb").read()
        payload = open(sys.argv[4], "rb").read()
        at = disk.find(payload)
        if at < 0:
            sys.exit("damage: payload not stored contiguously on the disk")
        c = (at + len(payload) // 2) // cluster
        per_l2 = cluster // 8
        if c // per_l2 >= l1_size:
            sys.exit("damage: cluster outside the L1 table")
        f.seek(l1_off + 8 * (c // per_l2))
        l2_off = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
        if not l2_off:
            sys.exit("damage: no L2 table for the payload")
        ent_at = l2_off + 8 * (c % per_l2)
        f.seek(ent_at)
        ent = struct.unpack(">Q", f.read(8))[0]
        if ent & (1 << 62) or not ent & 0x00FFFFFFFFFFFE00:
            sys.exit("damage: the payload's cluster is compressed or unallocated")
        f.seek(ent_at)
        f.write(struct.pack(">Q", ent + 512))
        return


if __name__ == "__main__":
    main()
