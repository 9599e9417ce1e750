#!/usr/bin/env python3
"""Helpers for tests/conformance/run.sh: test data, image edits and the
comparisons of qcowboot's output with qemu-img's.

  conftool.py gendata OUT SIZE SEED        dense file of mixed-compressibility data
  conftool.py cmp-map QEMU.json QB.json    qemu-img map vs qcowboot map
  conftool.py cmp-info QEMU.json QB.json   qemu-img info vs qcowboot info (shared keys)
  conftool.py cmp-check QEMU.json QRC QB.json BRC
  conftool.py cmp-snaplist QEMU.txt QB.txt
  conftool.py sparse-cmp A B               compare two (huge) sparse files by extents
  conftool.py compressed-stats IMG         "<compressed> <crossing host cluster end>"
  conftool.py edit-unknown-ext IMG         unknown header extension + compatible bit
  conftool.py edit-unknown-autoclear IMG   unknown autoclear bit
  conftool.py edit-leak IMG                two leaked clusters
  conftool.py edit-corrupt IMG             a cluster referenced twice with refcount 1
  conftool.py edit-snapshot-fields IMG     VM clock, VM state size, icount of snapshot 1
  conftool.py edit-drop-backing-fmt IMG    no backing format extension
  conftool.py edit-size IMG SIZE           set the virtual size field
  conftool.py hdr IMG FIELD                print a header field

Comparisons print the first difference and exit 1 when they disagree.
"""

import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2img  # noqa: E402


def die(msg):
    print(msg)
    sys.exit(1)


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception as e:  # noqa: BLE001
        with open(path, errors="replace") as f:
            head = f.read(300)
        die("%s: not valid JSON (%s): %r" % (what, e, head))


# ---------------------------------------------------------------------------
def gendata(out, size, seed):
    """Writes every byte (no holes, so host-file sparseness cannot leak into
    qemu-img map's answer). One 64 KiB chunk in five is all zeros (so
    qemu-img convert leaves it unallocated); the others are 512-byte blocks
    of varied kinds: random (incompressible), low-entropy (compresses to
    roughly half), text-like (compresses well), a repeated byte, zeros."""
    rnd = random.Random(seed)
    words = [b"qcow2", b"cluster", b"refcount", b"snapshot", b"backing", b"L2",
             b"table", b"offset", b"zero", b"data", b"guest", b"host"]
    out_blocks = []
    nblocks = (size + 511) // 512
    i = 0
    while i < nblocks:
        if i % 128 == 0 and rnd.randrange(5) == 0:
            n = min(128, nblocks - i)
            out_blocks.append(bytes(512 * n))
            i += n
            continue
        k = rnd.randrange(10)
        if k < 2:
            b = rnd.randbytes(512)
        elif k < 6:
            alpha = rnd.randbytes(16)
            b = rnd.randbytes(512).translate(bytes(alpha[j & 15] for j in range(256)))
        elif k < 8:
            s = b""
            while len(s) < 512:
                s += rnd.choice(words) + b" "
            b = s[:512]
        elif k < 9:
            b = bytes([rnd.randrange(1, 256)]) * 512
        else:
            b = bytes(512)
        out_blocks.append(b)
        i += 1
    with open(out, "wb") as f:
        f.write(b"".join(out_blocks)[:size])


# ---------------------------------------------------------------------------
MAP_KEYS = ["start", "length", "depth", "present", "zero", "data", "offset"]


def cmp_map(qpath, bpath):
    q = load_json(qpath, "qemu-img map")
    b = load_json(bpath, "qcowboot map")
    if not isinstance(b, list):
        die("qcowboot map: top level is %s, not a list" % type(b).__name__)
    for i in range(max(len(q), len(b))):
        qe = q[i] if i < len(q) else None
        be = b[i] if i < len(b) else None
        if qe != be:
            die("entry %d of %d/%d differs: qemu-img %s qcowboot %s"
                % (i, len(q), len(b), json.dumps(qe), json.dumps(be)))


# ---------------------------------------------------------------------------
# The keys qcowboot promises, with qemu-img's names. qemu-img omits a key when
# it does not apply (no backing file, v2 image); presence must match too.
INFO_KEYS = ["virtual-size", "filename", "format", "cluster-size",
             "backing-filename", "full-backing-filename", "backing-filename-format",
             "dirty-flag", "snapshots", "format-specific"]
FS_KEYS = ["compat", "compression-type", "lazy-refcounts", "refcount-bits",
           "corrupt", "extended-l2", "data-file", "data-file-raw"]
SNAP_KEYS = ["id", "name", "vm-state-size", "date-sec", "date-nsec",
             "vm-clock-sec", "vm-clock-nsec", "icount"]


def cmp_info_obj(q, b, where):
    if not isinstance(b, dict):
        return "%s: qcowboot gives %s, not an object" % (where, type(b).__name__)
    if "actual-size" in b:
        return "%s: qcowboot prints actual-size, which it promises to omit" % where
    for k in INFO_KEYS:
        qv, bv = q.get(k), b.get(k)
        if k == "snapshots" and not qv and not bv:
            continue  # qemu-img omits an empty list; accept absent or []
        if k == "format-specific":
            if (qv is None) != (bv is None):
                return "%s: format-specific: qemu-img %s qcowboot %s" % (
                    where, json.dumps(qv), json.dumps(bv))
            if qv is None:
                continue
            if qv.get("type") != bv.get("type"):
                return "%s: format-specific.type: qemu-img %r qcowboot %r" % (
                    where, qv.get("type"), bv.get("type"))
            qd, bd = qv.get("data", {}), bv.get("data", {})
            for fk in FS_KEYS:
                if (fk in qd) != (fk in bd) or qd.get(fk) != bd.get(fk):
                    return "%s: format-specific.data.%s: qemu-img %s qcowboot %s" % (
                        where, fk, json.dumps(qd.get(fk, "<absent>")),
                        json.dumps(bd.get(fk, "<absent>")))
            continue
        if k == "snapshots":
            if not isinstance(bv, list) or len(qv) != len(bv):
                return "%s: snapshots: qemu-img %s qcowboot %s" % (
                    where, json.dumps(qv), json.dumps(bv))
            for i, (qs, bs) in enumerate(zip(qv, bv)):
                for sk in SNAP_KEYS:
                    if qs.get(sk, "<absent>") != bs.get(sk, "<absent>"):
                        return "%s: snapshots[%d].%s: qemu-img %s qcowboot %s" % (
                            where, i, sk, json.dumps(qs.get(sk, "<absent>")),
                            json.dumps(bs.get(sk, "<absent>")))
            continue
        if (k in q) != (k in b) or qv != bv:
            return "%s: %s: qemu-img %s qcowboot %s" % (
                where, k, json.dumps(q.get(k, "<absent>")), json.dumps(b.get(k, "<absent>")))
    return None


def cmp_info(qpath, bpath):
    q = load_json(qpath, "qemu-img info")
    b = load_json(bpath, "qcowboot info")
    if isinstance(q, list):
        if not isinstance(b, list):
            die("qcowboot info --backing-chain: not a JSON array")
        if len(q) != len(b):
            die("backing chain length: qemu-img %d qcowboot %d (qcowboot files: %s)"
                % (len(q), len(b), [x.get("filename") for x in b if isinstance(x, dict)]))
        for i, (qo, bo) in enumerate(zip(q, b)):
            err = cmp_info_obj(qo, bo, "chain[%d]" % i)
            if err:
                die(err)
    else:
        err = cmp_info_obj(q, b, "info")
        if err:
            die(err)


# ---------------------------------------------------------------------------
# qemu-img check omits counters that are zero. All of these are defined by
# the image's metadata alone (fragmented-clusters counts active-L1 data
# clusters whose host offset does not follow the previous one, compressed
# clusters always), so they must agree.
CHECK_COUNTS = ["check-errors", "corruptions", "leaks", "allocated-clusters",
                "total-clusters", "compressed-clusters", "fragmented-clusters",
                "image-end-offset"]


def cmp_check(qpath, qrc, bpath, brc):
    qrc, brc = int(qrc), int(brc)
    if qrc != brc:
        try:
            with open(bpath) as f:
                head = f.read(200)
        except OSError:
            head = ""
        die("exit code: qemu-img %d qcowboot %d (qcowboot output %r)" % (qrc, brc, head))
    q = load_json(qpath, "qemu-img check")
    b = load_json(bpath, "qcowboot check")
    if not isinstance(b, dict):
        die("qcowboot check: not a JSON object")
    for k in ["filename", "format"]:
        if q.get(k) != b.get(k):
            die("%s: qemu-img %r qcowboot %r" % (k, q.get(k), b.get(k)))
    for k in CHECK_COUNTS:
        if q.get(k, 0) != b.get(k, 0):
            die("%s: qemu-img %s qcowboot %s" % (k, q.get(k, 0), b.get(k, "<absent>")))


# ---------------------------------------------------------------------------
def cmp_snaplist(qpath, bpath):
    """Same rows and fields; column widths may differ."""
    with open(qpath) as f:
        q = [ln.split() for ln in f.read().splitlines() if ln.strip()]
    with open(bpath) as f:
        b = [ln.split() for ln in f.read().splitlines() if ln.strip()]
    for i in range(max(len(q), len(b))):
        ql = q[i] if i < len(q) else None
        bl = b[i] if i < len(b) else None
        if ql != bl:
            die("line %d: qemu-img %r qcowboot %r" % (i + 1, ql and " ".join(ql),
                                                        bl and " ".join(bl)))


# ---------------------------------------------------------------------------
def data_extents(fd, size):
    ext = []
    off = 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        ext.append((d, h))
        off = h
    return ext


def sparse_cmp(a, b):
    """Byte comparison that only reads the data extents of either file:
    outside them both files are holes and read as zeros."""
    sa, sb = os.path.getsize(a), os.path.getsize(b)
    if sa != sb:
        die("size: %s %d, %s %d" % (a, sa, b, sb))
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    ext = sorted(data_extents(fa, sa) + data_extents(fb, sb))
    total = sum(e - s for s, e in ext)
    if total > (64 << 20):
        die("data extents cover %d bytes: output is not sparse" % total)
    for s, e in ext:
        off = s
        while off < e:
            n = min(e - off, 1 << 20)
            x, y = os.pread(fa, n, off), os.pread(fb, n, off)
            if x != y:
                for i in range(n):
                    if x[i:i + 1] != y[i:i + 1]:
                        die("differ at byte %d" % (off + i))
            off += n


# ---------------------------------------------------------------------------
def compressed_stats(path):
    img = qcow2img.Image(path)
    n = cross = 0
    for vc, eoff, e, kind in img.data_clusters():
        if kind != "compressed":
            continue
        n += 1
        off, ln = img.compressed_span(e)
        if (off % img.cluster_size) + ln > img.cluster_size:
            cross += 1
    print(n, cross)


def edit_unknown_ext(path):
    """An unknown header extension (before the known ones), an unknown
    compatible feature bit with its feature-name-table entry, and padding
    bytes in the extension that are not zero. Readers must ignore all of it."""
    img = qcow2img.Image(path)
    exts = img.ext_list()
    feat = [(t, d) for t, d in exts if t == qcow2img.EXT_FEATURE_TABLE]
    rest = [(t, d) for t, d in exts if t != qcow2img.EXT_FEATURE_TABLE]
    table = feat[0][1] if feat else b""
    table += struct.pack(">BB46s", 1, 13, b"future compatible feature")
    unknown = (0x7A7A0001, b"unknown extension, 37 bytes of data..")
    img.rewrite_extensions([unknown] + rest + [(qcow2img.EXT_FEATURE_TABLE, table)])
    img.set_field("compatible_features", img.h["compatible_features"] | (1 << 13))
    img.save()


def edit_unknown_autoclear(path):
    img = qcow2img.Image(path)
    img.set_field("autoclear_features", img.h["autoclear_features"] | (1 << 40))
    img.save()


def edit_leak(path):
    """Leaks two clusters: one appended at the end of the file with
    refcount 1, and a data cluster whose refcount goes from 1 to 2."""
    img = qcow2img.Image(path)
    cs = img.cluster_size
    if len(img.data) % cs:
        img.data += bytes(cs - len(img.data) % cs)
    img.data += bytes(cs)
    img.set_refcount(len(img.data) // cs - 1, 1)
    normal = [x for x in img.data_clusters() if x[3] == "normal"]
    e = normal[0][2]
    img.set_refcount((e & qcow2img.L2E_OFFSET_MASK) // cs, 2)
    img.save()


def edit_corrupt(path):
    """Points the L2 entry of one data cluster at another data cluster, so
    that cluster has refcount 1 and two references."""
    img = qcow2img.Image(path)
    normal = [x for x in img.data_clusters() if x[3] == "normal"]
    img.put64(normal[1][1], normal[0][2])
    img.save()


def edit_snapshot_fields(path):
    """Gives the first snapshot what qemu-img cannot make: a VM clock, a
    VM state size (64-bit field in the extra data, and a different stale
    32-bit one that readers must ignore) and an icount."""
    img = qcow2img.Image(path)
    off, ln, sn = img.snapshots()[0]
    if sn["extra_size"] < 24:
        die("snapshot extra data too short: %d" % sn["extra_size"])
    img.put64(off + 24, 12345 * 10**9 + 678901234)   # vm_clock_nsec
    img.put32(off + 32, 7)                           # 32-bit vm_state_size
    img.put64(off + 40, 0x123456)                    # 64-bit vm_state_size
    img.put64(off + 56, 987654)                      # icount
    img.save()


def edit_drop_backing_fmt(path):
    """Removes the backing file format extension (as in images made before
    qemu recorded it): readers must probe the backing file's format."""
    img = qcow2img.Image(path)
    img.rewrite_extensions([(t, d) for t, d in img.ext_list()
                            if t != qcow2img.EXT_BACKING_FMT])
    img.save()


def edit_size(path, size):
    qcow2img_img = qcow2img.Image(path)
    qcow2img_img.set_field("size", int(size))
    qcow2img_img.save()


def hdr(path, field):
    print(qcow2img.Image(path).h[field])


def main():
    a = sys.argv[1:]
    if not a:
        die(__doc__)
    cmd, args = a[0], a[1:]
    fn = {
        "gendata": lambda o, s, seed: gendata(o, int(s), int(seed)),
        "cmp-map": cmp_map,
        "cmp-info": cmp_info,
        "cmp-check": cmp_check,
        "cmp-snaplist": cmp_snaplist,
        "sparse-cmp": sparse_cmp,
        "compressed-stats": compressed_stats,
        "edit-unknown-ext": edit_unknown_ext,
        "edit-unknown-autoclear": edit_unknown_autoclear,
        "edit-leak": edit_leak,
        "edit-corrupt": edit_corrupt,
        "edit-snapshot-fields": edit_snapshot_fields,
        "edit-drop-backing-fmt": edit_drop_backing_fmt,
        "edit-size": edit_size,
        "hdr": hdr,
    }.get(cmd)
    if fn is None:
        die("unknown command %s" % cmd)
    fn(*args)


if __name__ == "__main__":
    main()
