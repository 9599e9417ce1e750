"""Minimal qcow2 reader/editor for the test generators (stdlib only).

Parses the header, header extensions, L1/L2 tables, refcount structures and
the snapshot table of an image made by qemu-img, and offers the handful of
in-place edits the conformance and bad-image suites need. It trusts the
image it is given: it is meant for valid images before they are damaged.
"""

import struct

MAGIC = b"QFI\xfb"

EXT_END = 0x00000000
EXT_BACKING_FMT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1

# Header field layout: name -> (offset, struct format)
FIELDS = {
    "magic": (0, ">4s"),
    "version": (4, ">I"),
    "backing_file_offset": (8, ">Q"),
    "backing_file_size": (16, ">I"),
    "cluster_bits": (20, ">I"),
    "size": (24, ">Q"),
    "crypt_method": (32, ">I"),
    "l1_size": (36, ">I"),
    "l1_table_offset": (40, ">Q"),
    "refcount_table_offset": (48, ">Q"),
    "refcount_table_clusters": (56, ">I"),
    "nb_snapshots": (60, ">I"),
    "snapshots_offset": (64, ">Q"),
    "incompatible_features": (72, ">Q"),
    "compatible_features": (80, ">Q"),
    "autoclear_features": (88, ">Q"),
    "refcount_order": (96, ">I"),
    "header_length": (100, ">I"),
}


class Image:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        if self.data[:4] != MAGIC:
            raise ValueError("%s: not a qcow2 image" % path)
        self.h = {}
        for name, (off, fmt) in FIELDS.items():
            if self.h.get("version", 3) == 2 and off >= 72:
                continue
            self.h[name] = struct.unpack_from(fmt, self.data, off)[0]
        if self.h["version"] == 2:
            self.h.update(incompatible_features=0, compatible_features=0,
                          autoclear_features=0, refcount_order=4, header_length=72)
        self.cluster_bits = self.h["cluster_bits"]
        self.cluster_size = 1 << self.cluster_bits
        self.extended_l2 = bool(self.h["incompatible_features"] & (1 << 4))
        self.l2_entry_size = 16 if self.extended_l2 else 8
        self.l2_entries = self.cluster_size // self.l2_entry_size
        self.refcount_bits = 1 << self.h["refcount_order"]

    # ---- raw access -------------------------------------------------------
    def u64(self, off):
        return struct.unpack_from(">Q", self.data, off)[0]

    def u32(self, off):
        return struct.unpack_from(">I", self.data, off)[0]

    def put64(self, off, v):
        struct.pack_into(">Q", self.data, off, v)

    def put32(self, off, v):
        struct.pack_into(">I", self.data, off, v)

    def set_field(self, name, value):
        off, fmt = FIELDS[name]
        struct.pack_into(fmt, self.data, off, value)
        self.h[name] = value

    def field_offset(self, name):
        return FIELDS[name][0]

    def save(self, path=None):
        with open(path or self.path, "wb") as f:
            f.write(self.data)

    # ---- header extensions -----------------------------------------------
    def extensions(self):
        """List of (type, data_offset, length) up to the end marker."""
        out = []
        off = self.h["header_length"]
        end = self.cluster_size
        if self.h["backing_file_offset"]:
            end = min(end, self.h["backing_file_offset"])
        while off + 8 <= end:
            t, ln = struct.unpack_from(">II", self.data, off)
            if t == EXT_END:
                break
            out.append((t, off + 8, ln))
            off += 8 + ((ln + 7) & ~7)
        return out

    def ext_area_end(self):
        """Offset of the end-of-extensions marker."""
        off = self.h["header_length"]
        for t, doff, ln in self.extensions():
            off = doff + ((ln + 7) & ~7)
        return off

    def find_ext(self, etype):
        for t, doff, ln in self.extensions():
            if t == etype:
                return doff, ln
        return None

    def rewrite_extensions(self, exts):
        """Replaces the extension area with exts: list of (type, bytes).
        The backing file name (if any) is moved right after the new area."""
        backing = b""
        if self.h["backing_file_offset"]:
            bo, bs = self.h["backing_file_offset"], self.h["backing_file_size"]
            backing = bytes(self.data[bo:bo + bs])
        blob = b""
        for t, d in exts:
            blob += struct.pack(">II", t, len(d)) + d + b"\0" * (-len(d) % 8)
        blob += struct.pack(">II", 0, 0)
        start = self.h["header_length"]
        if start + len(blob) + len(backing) > self.cluster_size:
            raise ValueError("extensions do not fit in the header cluster")
        self.data[start:self.cluster_size] = b"\0" * (self.cluster_size - start)
        self.data[start:start + len(blob)] = blob
        if backing:
            self.set_field("backing_file_offset", start + len(blob))
            bo = start + len(blob)
            self.data[bo:bo + len(backing)] = backing

    def ext_list(self):
        return [(t, bytes(self.data[d:d + ln])) for t, d, ln in self.extensions()]

    # ---- mapping ------------------------------------------------------------
    def l1_table(self, offset=None, size=None):
        offset = self.h["l1_table_offset"] if offset is None else offset
        size = self.h["l1_size"] if size is None else size
        return [self.u64(offset + 8 * i) for i in range(size)]

    def l2_tables(self, l1=None):
        """Host offsets of the L2 tables referenced by the (active) L1."""
        l1 = self.l1_table() if l1 is None else l1
        return [e & L1E_OFFSET_MASK for e in l1 if e & L1E_OFFSET_MASK]

    def l2_entry_offsets(self, l1=None):
        """(virtual cluster index, file offset of the L2 entry) for every L2
        slot of every allocated L2 table."""
        l1 = self.l1_table() if l1 is None else l1
        out = []
        for i, e in enumerate(l1):
            l2 = e & L1E_OFFSET_MASK
            if not l2:
                continue
            for j in range(self.l2_entries):
                out.append((i * self.l2_entries + j, l2 + j * self.l2_entry_size))
        return out

    def compressed_geometry(self):
        x = 62 - (self.cluster_bits - 8)
        return x, (1 << x) - 1

    def data_clusters(self):
        """[(vcluster, l2 entry file offset, entry, kind)] for allocated
        entries; kind is 'normal', 'compressed' or 'zero-alloc'."""
        out = []
        for vc, eoff in self.l2_entry_offsets():
            e = self.u64(eoff)
            if e & OFLAG_COMPRESSED:
                out.append((vc, eoff, e, "compressed"))
            elif e & L2E_OFFSET_MASK:
                kind = "zero-alloc" if (e & OFLAG_ZERO and not self.extended_l2) else "normal"
                out.append((vc, eoff, e, kind))
        return out

    def compressed_span(self, entry):
        """(host offset, byte length in whole sectors) of a compressed entry."""
        x, mask = self.compressed_geometry()
        off = entry & mask
        nsect = ((entry & ((1 << 62) - 1)) >> x) + 1
        return off, (off & ~511) + nsect * 512 - off

    # ---- refcounts ----------------------------------------------------------
    def refcount_table(self):
        off = self.h["refcount_table_offset"]
        n = self.h["refcount_table_clusters"] * self.cluster_size // 8
        return [self.u64(off + 8 * i) for i in range(n)]

    def refcount_slot(self, cluster_index):
        """(refcount block offset, index in block) for a host cluster."""
        per_block = self.cluster_size * 8 // self.refcount_bits
        t = self.refcount_table()
        ti, bi = divmod(cluster_index, per_block)
        if ti >= len(t) or not t[ti]:
            raise ValueError("no refcount block for cluster %d" % cluster_index)
        return t[ti] & ~(self.cluster_size - 1), bi

    def get_refcount(self, cluster_index):
        blk, i = self.refcount_slot(cluster_index)
        bits = self.refcount_bits
        if bits >= 8:
            n = bits // 8
            return int.from_bytes(self.data[blk + i * n:blk + (i + 1) * n], "big")
        byte = self.data[blk + i * bits // 8]
        shift = (i * bits) % 8
        return (byte >> shift) & ((1 << bits) - 1)

    def set_refcount(self, cluster_index, value):
        blk, i = self.refcount_slot(cluster_index)
        bits = self.refcount_bits
        if bits >= 8:
            n = bits // 8
            self.data[blk + i * n:blk + (i + 1) * n] = value.to_bytes(n, "big")
            return
        pos = blk + i * bits // 8
        shift = (i * bits) % 8
        m = ((1 << bits) - 1) << shift
        self.data[pos] = (self.data[pos] & ~m) | ((value << shift) & m)

    # ---- snapshots ----------------------------------------------------------
    def snapshots(self):
        """[(entry offset, entry length, dict)]"""
        out = []
        off = self.h["snapshots_offset"]
        for _ in range(self.h["nb_snapshots"]):
            l1_off, l1_size, id_len, name_len, dsec, dnsec, vmclk, vmst, extra = \
                struct.unpack_from(">QIHHIIQII", self.data, off)
            p = off + 40 + extra
            sid = bytes(self.data[p:p + id_len]).decode()
            name = bytes(self.data[p + id_len:p + id_len + name_len]).decode()
            ln = 40 + extra + id_len + name_len
            ln += -ln % 8
            out.append((off, ln, dict(l1_table_offset=l1_off, l1_size=l1_size,
                                      id=sid, name=name, extra_size=extra)))
            off += ln
        return out
