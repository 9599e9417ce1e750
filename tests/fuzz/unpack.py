#!/usr/bin/env python3
"""Splits a fuzz input (tests/fuzz/fuzz_image.c layout) into files, so the
CLI can be run on it: DIR/image and DIR/backing, plus a symlink to backing
under the backing file name the image's header gives (when it is a plain
relative name).

  unpack.py INPUT DIR
"""
import os
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
if len(data) >= 4:
    split = min(struct.unpack("<I", data[:4])[0], len(data) - 4)
    image, backing = data[4:4 + split], data[4 + split:]
else:
    image, backing = data, b""
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "image"), "wb").write(image)
open(os.path.join(out, "backing"), "wb").write(backing)
if len(image) >= 20 and image[:4] == b"QFI\xfb":
    off, size = struct.unpack(">QI", image[8:20])
    name = image[off:off + size].decode("latin-1") if 0 < size < 1024 else ""
    if name and "/" not in name and name not in ("image", "backing", ".", ".."):
        link = os.path.join(out, name)
        if not os.path.lexists(link):
            os.symlink("backing", link)
        print("backing file name: %r -> backing" % name)
print("image %d bytes, backing %d bytes in %s" % (len(image), len(backing), out))
