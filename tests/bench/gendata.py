#!/usr/bin/env python3
"""Benchmark data: SIZE bytes of guest-like content, deterministic per SEED.

  gendata.py OUT SIZE SEED

Every 4 KiB block is one of (by share):
  35% text        slices of a word salad (compresses ~3x)
  25% random      incompressible (already compressed media, encrypted data)
  25% low entropy bytes from a 16-symbol alphabet (compresses ~2x)
  15% structured  tables of little-endian counters and small fields (~4x+)
No block is all zeros, so every cluster of an image made from it is
allocated, and compressed images come out at roughly half the size.
"""
import random
import struct
import sys

BLOCK = 4096


def main():
    out, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    r = random.Random(seed)
    words = (b"the of and to in is that for it as with was on be by this are qcow2 cluster "
             b"refcount snapshot backing table offset guest host kernel boot firmware image "
             b"disk sector block virtual machine config usr lib bin etc var log systemd "
             b"ERROR WARNING INFO 2024-01-01T00:00:00Z /dev/vda1 ext4 rw,relatime 0x7f").split()
    text = bytearray()
    while len(text) < (4 << 20):
        line = b" ".join(r.choice(words) for _ in range(r.randrange(4, 16)))
        text += line + (b".\n" if r.randrange(3) else b"\n")
    text = bytes(text)
    structured = bytearray()
    n = 0
    while len(structured) < (4 << 20):
        structured += struct.pack("<IIHHQ", n, n * 3 + 7, n & 0xff, 0x8000 | (n % 97),
                                  0x0000_7f00_0000_0000 + n * 4096)
        n += 1
    structured = bytes(structured)
    symbols = bytes(r.sample(range(1, 256), 16))
    low_table = bytes(symbols[i & 15] for i in range(256))

    with open(out, "wb") as f:
        left = size
        batch = []
        while left > 0:
            k = r.random()
            if k < 0.35:
                o = r.randrange(len(text) - BLOCK)
                blk = text[o:o + BLOCK]
            elif k < 0.60:
                blk = r.randbytes(BLOCK)
            elif k < 0.85:
                blk = r.randbytes(BLOCK).translate(low_table)
            else:
                o = r.randrange(0, len(structured) - BLOCK, 24)
                blk = structured[o:o + BLOCK]
            blk = blk[:left]
            batch.append(blk)
            left -= len(blk)
            if len(batch) == 1024:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))


if __name__ == "__main__":
    main()
