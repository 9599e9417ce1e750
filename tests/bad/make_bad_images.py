#!/usr/bin/env python3
"""Makes damaged qcow2 images for tests/bad/run.sh.

  make_bad_images.py OUTDIR

Starts from small valid images made by qemu-img/qemu-io, damages copies of
them, and writes OUTDIR/manifest.tsv, one line per case and command:

  name <TAB> command <TAB> expectation <TAB> regex <TAB> image <TAB> extra args

command is info, info-chain (info --backing-chain), map (map --json),
check, convert, or convert-snap=NAME (convert -l NAME); image is relative
to OUTDIR; extra args (comma separated, or '-') go before the image; regex
(Perl syntax, matched case-insensitively) must match the stderr of a
command that fails. Expectations:

  refuse   exit status non-zero (check: non-zero and not 3), with an error
           on stderr matching regex
  corrupt  (check only) exit status 2, findings on stderr matching regex
  leaks    (check only) exit status 3, findings on stderr matching regex
  ok       exit status 0
  same     exit status 0 and the same result as qemu-img (info: shared keys,
           map: same JSON, convert: same bytes)

The expectations follow qemu-img 7.2's judgement of each image: where
qemu-img refuses, qcowboot must refuse. Where qemu-img reads an image that
violates the format (it reads tables past the end of the file as zeros, for
one), the comment of the case says what qcowboot does instead, and the
expectation asserts that.
"""

import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))
import qcow2img  # noqa: E402
from qcow2img import Image  # noqa: E402

OUT = None
CASES = []


def run(*cmd, cwd=None):
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def qemu_img(*args, cwd=None):
    run("qemu-img", *args, cwd=cwd)


def qemu_io(path, *cmds, cwd=None):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    run(*args, path, cwd=cwd)


def p(*parts):
    return os.path.join(OUT, *parts)


def case(name, image, regex, info=None, map=None, check=None, convert=None,
         args="-", **more):
    """One damaged image and what each command must do with it. An
    expectation is a word or (word, regex) to override the case's regex;
    more commands come as keyword arguments (info_chain=, convert_snap_NAME=)."""
    cmds = [("info", info), ("map", map), ("check", check), ("convert", convert)]
    for k, v in more.items():
        if k == "info_chain":
            cmds.append(("info-chain", v))
        elif k.startswith("convert_snap_"):
            cmds.append(("convert-snap=" + k[len("convert_snap_"):], v))
        else:
            raise ValueError(k)
    for cmd, exp in cmds:
        if exp is None:
            continue
        rx = regex
        if isinstance(exp, tuple):
            exp, rx = exp
        CASES.append((name, cmd, exp, rx, image, args))


def copy(base, name):
    dst = p(name + ".qcow2")
    shutil.copyfile(p("base", base + ".qcow2"), dst)
    return dst


def edit(base, name, fn):
    """Copies base image to NAME.qcow2 and applies fn(Image)."""
    path = copy(base, name)
    img = Image(path)
    fn(img)
    img.save()
    return name + ".qcow2"


def make_bases():
    os.makedirs(p("base"), exist_ok=True)
    # 64 KiB clusters, 4 MiB: plain data, a compressed cluster, a snapshot-free
    # v3 image with L1 (1 entry), one L2 table.
    qemu_img("create", "-f", "qcow2", p("base", "b64k.qcow2"), "4M")
    qemu_io(p("base", "b64k.qcow2"), "write -P 0x11 0 192k", "write -P 0x22 1M 64k",
            "write -c -P 0x33 2M 64k", "write -z 3M 64k")
    # 512-byte clusters, 4 MiB: a two-cluster L1 table (128 entries) and many
    # L2 tables.
    qemu_img("create", "-f", "qcow2", "-o", "cluster_size=512", p("base", "b512.qcow2"), "4M")
    qemu_io(p("base", "b512.qcow2"), "write -P 0x44 0 64k", "write -P 0x55 2M 64k",
            "write -P 0x66 4032k 64k")
    # v2 image.
    qemu_img("create", "-f", "qcow2", "-o", "compat=0.10", p("base", "v2.qcow2"), "1M")
    qemu_io(p("base", "v2.qcow2"), "write -P 0x77 0 64k")
    # Image with two snapshots.
    qemu_img("create", "-f", "qcow2", p("base", "snap.qcow2"), "1M")
    qemu_io(p("base", "snap.qcow2"), "write -P 0x88 0 64k")
    qemu_img("snapshot", "-c", "first", p("base", "snap.qcow2"))
    qemu_io(p("base", "snap.qcow2"), "write -P 0x99 0 4k")
    qemu_img("snapshot", "-c", "second", p("base", "snap.qcow2"))
    # zstd image (header_length 112: has the compression_type field).
    qemu_img("create", "-f", "qcow2", "-o", "compression_type=zstd", p("base", "zstd.qcow2"), "1M")
    qemu_io(p("base", "zstd.qcow2"), "write -c -P 0xaa 0 64k")


def first_l2(img):
    return img.l2_tables()[0]


def data_entries(img, kind="normal"):
    return [x for x in img.data_clusters() if x[3] == kind]


def truncate(base, name, at):
    path = copy(base, name)
    with open(path, "r+b") as f:
        f.truncate(at)
    return name + ".qcow2"


def set_ext(img, etype, data):
    exts = [(t, d) for t, d in img.ext_list() if t != etype]
    img.rewrite_extensions([(etype, data)] + exts)


def feature_table_with(img, ftype, bit, name):
    exts = img.ext_list()
    table = b"".join(d for t, d in exts if t == qcow2img.EXT_FEATURE_TABLE)
    table += struct.pack(">BB46s", ftype, bit, name)
    set_ext(img, qcow2img.EXT_FEATURE_TABLE, table)


def make_cases():
    R = "refuse"
    ALL_REFUSE = dict(info=R, map=R, check=R, convert=R)

    # --- header fields ------------------------------------------------------------
    def bad_magic(i):
        i.data[0:4] = b"QFI\xfa"
    img = edit("b64k", "bad-magic", bad_magic)
    case("bad-magic", img, r"magic|not a qcow2", args="-f,qcow2", **ALL_REFUSE)
    # Without -f the format is probed: qemu-img reads a file without the
    # qcow2 magic as a raw image, and so does qcowboot; check has no
    # metadata to check in a raw file and fails. (The copy is padded to
    # whole sectors: qemu rounds a raw file's size up to a multiple of 512,
    # which the conformance suite's raw-odd-size case covers.)
    def bad_magic_padded(i):
        bad_magic(i)
        i.data += bytes(-len(i.data) % 512)
    img = edit("b64k", "bad-magic-probed", bad_magic_padded)
    case("bad-magic-probed", img, r"raw|format", info="ok", map="same", check=R,
         convert="same")

    # Version 0 with -f qcow2: probing would take it for a raw image (qemu
    # probes qcow2 only for version >= 2), version 1 is the old qcow format
    # that qemu-img refuses as such.
    img = edit("b64k", "version-0", lambda i: i.set_field("version", 0))
    case("version-0", img, r"version", args="-f,qcow2", **ALL_REFUSE)
    for v in (1, 4):
        img = edit("b64k", "version-%d" % v, lambda i, v=v: i.set_field("version", v))
        case("version-%d" % v, img, r"version", **ALL_REFUSE)

    for cb in (8, 22, 63):
        img = edit("b64k", "cluster-bits-%d" % cb, lambda i, cb=cb: i.set_field("cluster_bits", cb))
        case("cluster-bits-%d" % cb, img, r"cluster[_ ]?(bits|size)", **ALL_REFUSE)

    img = edit("b64k", "size-huge", lambda i: i.set_field("size", 1 << 63))
    case("size-huge", img, r"size|too (big|large)", **ALL_REFUSE)

    img = edit("b64k", "l1-size-huge", lambda i: i.set_field("l1_size", 0x7FFFFFFF))
    case("l1-size-huge", img, r"l1", **ALL_REFUSE)
    img = edit("b64k", "l1-size-zero", lambda i: i.set_field("l1_size", 0))
    case("l1-size-zero", img, r"l1", **ALL_REFUSE)

    img = edit("b64k", "l1-offset-unaligned",
               lambda i: i.set_field("l1_table_offset", i.h["l1_table_offset"] + 512))
    case("l1-offset-unaligned", img, r"l1.*(align|offset)", **ALL_REFUSE)

    # The L1 table lies past the end of the file. qemu-img reads it as zeros
    # (an empty disk; only check complains); qcowboot refuses to open it.
    img = edit("b64k", "l1-offset-past-eof",
               lambda i: i.set_field("l1_table_offset", 1 << 40))
    case("l1-offset-past-eof", img, r"l1.*(end of|past|beyond|eof|outside)", **ALL_REFUSE)

    img = edit("b64k", "refcount-table-unaligned",
               lambda i: i.set_field("refcount_table_offset", i.h["refcount_table_offset"] + 4096))
    case("refcount-table-unaligned", img, r"refcount.*(align|offset)", **ALL_REFUSE)
    img = edit("b64k", "refcount-table-huge",
               lambda i: i.set_field("refcount_table_clusters", 0xFFFFFFFF))
    case("refcount-table-huge", img, r"refcount", **ALL_REFUSE)
    img = edit("b64k", "refcount-order-7", lambda i: i.set_field("refcount_order", 7))
    case("refcount-order-7", img, r"refcount", **ALL_REFUSE)

    # The refcount table starts where the L1 table is. Reading needs no
    # refcounts: qemu-img and qcowboot read the disk; check cannot complete
    # (the "refcount block" the L1 entry names lies outside the file).
    img = edit("b64k", "refcount-table-overlaps-l1",
               lambda i: i.set_field("refcount_table_offset", i.h["l1_table_offset"]))
    case("refcount-table-overlaps-l1", img, r"refcount", info="same", map="same", check=R,
         convert="same")

    # header_length must be a multiple of 8 (qemu-img does not check it and
    # reads the extensions from the odd offset; qcowboot refuses) and at
    # least 104 for version 3.
    img = edit("b64k", "header-length-105", lambda i: i.set_field("header_length", 105))
    case("header-length-105", img, r"header.?length", **ALL_REFUSE)
    img = edit("b64k", "header-length-96", lambda i: i.set_field("header_length", 96))
    case("header-length-96", img, r"header.?length|header too short", **ALL_REFUSE)

    def long_backing(i):
        i.set_field("backing_file_offset", i.ext_area_end() + 8)
        i.set_field("backing_file_size", 2000)
    img = edit("b64k", "backing-name-2000", long_backing)
    case("backing-name-2000", img, r"backing", **ALL_REFUSE)

    # The backing file name lies outside the header cluster.
    def backing_past_cluster(i):
        i.set_field("backing_file_offset", 2 * i.cluster_size)
        i.set_field("backing_file_size", 8)
    img = edit("b64k", "backing-offset-past-cluster", backing_past_cluster)
    case("backing-offset-past-cluster", img, r"backing", **ALL_REFUSE)

    # --- header extensions and feature bits --------------------------------------------
    def ext_overrun(i):
        off = i.h["header_length"]
        exts = i.ext_list()
        i.rewrite_extensions([(0x7A7A0002, b"12345678")] + exts)
        i.put32(off + 4, 0xFFFF0000)
    img = edit("b64k", "ext-length-overrun", ext_overrun)
    case("ext-length-overrun", img, r"extension", **ALL_REFUSE)

    # An extension whose data runs one byte past the header cluster.
    def ext_overrun_by_1(i):
        off = i.h["header_length"]
        exts = i.ext_list()
        i.rewrite_extensions([(0x7A7A0003, b"12345678")] + exts)
        i.put32(off + 4, i.cluster_size - (off + 8) + 1)
    img = edit("b64k", "ext-length-overrun-by-1", ext_overrun_by_1)
    case("ext-length-overrun-by-1", img, r"extension", **ALL_REFUSE)

    def unknown_incompat(i):
        # Drop qemu's feature name table: nothing names the bit.
        i.rewrite_extensions([(t, d) for t, d in i.ext_list() if t != qcow2img.EXT_FEATURE_TABLE])
        i.set_field("incompatible_features", i.h["incompatible_features"] | (1 << 20))
    img = edit("b64k", "incompat-unknown", unknown_incompat)
    case("incompat-unknown", img, r"incompatible", **ALL_REFUSE)

    def named_incompat(name):
        def fn(i):
            feature_table_with(i, 0, 20, name)
            i.set_field("incompatible_features", i.h["incompatible_features"] | (1 << 20))
        return fn
    img = edit("b64k", "incompat-named", named_incompat(b"frobnication"))
    case("incompat-named", img, r"frobnication", **ALL_REFUSE)
    # A name of the full 46 bytes, with no terminating zero.
    full = b"frobnication-of-the-quantum-flux-capacitor-xyz"
    assert len(full) == 46
    img = edit("b64k", "incompat-named-46", named_incompat(full))
    case("incompat-named-46", img, full.decode() + r"(?![\w-])", **ALL_REFUSE)

    img = edit("zstd", "compression-type-7", lambda i: i.data.__setitem__(104, 7))
    case("compression-type-7", img, r"compression", **ALL_REFUSE)

    # The external data file bit without a data file name: qemu-img info
    # opens no data file and prints the header; qcowboot refuses to open
    # the image at all.
    img = edit("b64k", "datafile-bit-no-name",
               lambda i: i.set_field("incompatible_features", i.h["incompatible_features"] | 4))
    case("datafile-bit-no-name", img, r"data.?file", **ALL_REFUSE)

    img = edit("b64k", "extended-l2-4k-clusters",
               lambda i: (i.set_field("incompatible_features", i.h["incompatible_features"] | 16),
                          i.set_field("cluster_bits", 12)))
    case("extended-l2-4k-clusters", img, r"extended|subcluster", **ALL_REFUSE)

    # --- L1/L2 entries -------------------------------------------------------------------
    # An L2 table offset that is not cluster aligned: both open the image
    # (info), refuse to read through that L1 entry, and check finds it.
    def l2_unaligned(i):
        off = i.h["l1_table_offset"]
        i.put64(off, i.u64(off) + 512)
    img = edit("b64k", "l2-table-unaligned", l2_unaligned)
    case("l2-table-unaligned", img, r"l2.*align|align.*l2", info="same", map=R, check="corrupt",
         convert=R)

    # The L2 table lies past the end of the file: qemu-img reads it as
    # zeros; qcowboot refuses to read through it; check finds it.
    def l2_past_eof(i):
        off = i.h["l1_table_offset"]
        i.put64(off, (1 << 63) | (1 << 40))
    img = edit("b64k", "l2-table-past-eof", l2_past_eof)
    case("l2-table-past-eof", img, r"end of|past|beyond|eof|outside", info="same", map=R,
         check="corrupt", convert=R)

    # A data cluster at host offset 0 (the header) with the COPIED flag:
    # without an external data file, offset 0 means "unallocated" and both
    # read zeros there; its old cluster is now leaked.
    def l2_offset0(i):
        i.put64(data_entries(i)[1][1], 1 << 63)
    img = edit("b64k", "l2-entry-offset0", l2_offset0)
    case("l2-entry-offset0", img, r"leak", info="same", map="same", check="leaks",
         convert="same")

    # A data cluster that is the refcount table: both read the table's bytes
    # as guest data; check finds the cluster referenced twice.
    def l2_metadata(i):
        e = data_entries(i)[0]
        i.put64(e[1], (1 << 63) | i.h["refcount_table_offset"])
    img = edit("b64k", "l2-entry-at-refcount-table", l2_metadata)
    case("l2-entry-at-refcount-table", img, r"refcount|reference", info="same", map="same",
         check="corrupt", convert="same")

    # Reserved bits 56-61 set in a data cluster's L2 entry: reading ignores
    # them (both read the cluster); check reports them.
    def l2_reserved(i):
        e = data_entries(i)[0]
        i.put64(e[1], e[2] | (0x3F << 56))
    img = edit("b64k", "l2-entry-reserved-bits", l2_reserved)
    case("l2-entry-reserved-bits", img, r"reserved", info="same", map="same", check="corrupt",
         convert="same")

    # A data cluster offset that is not cluster aligned.
    def l2_data_unaligned(i):
        e = data_entries(i)[0]
        i.put64(e[1], e[2] + 512)
    img = edit("b64k", "l2-entry-unaligned", l2_data_unaligned)
    case("l2-entry-unaligned", img, r"align", info="same", map=R, check="corrupt", convert=R)

    # A data cluster past the end of the file: both read zeros (as for any
    # read past the end of the file); check finds it.
    def l2_data_past_eof(i):
        e = data_entries(i)[0]
        i.put64(e[1], (1 << 63) | (1 << 40))
    img = edit("b64k", "l2-entry-past-eof", l2_data_past_eof)
    case("l2-entry-past-eof", img, r"end of|past|beyond|eof|outside", info="same", map="same",
         check="corrupt", convert="same")

    # A compressed cluster whose data lies past the end of the file.
    def comp_past_eof(i):
        e = data_entries(i, "compressed")[0]
        x, mask = i.compressed_geometry()
        i.put64(e[1], (e[2] & ~mask) | (1 << 40))
    img = edit("b64k", "compressed-past-eof", comp_past_eof)
    case("compressed-past-eof", img, r"end of|past|beyond|eof|outside", info="same",
         map="same", check="corrupt", convert=R)

    # A compressed cluster descriptor pointing at a plain data cluster: the
    # bytes are no deflate stream, decompression must fail cleanly; check
    # finds that cluster referenced twice.
    def comp_garbage(i):
        e = data_entries(i, "compressed")[0]
        plain = data_entries(i)[0][2] & qcow2img.L2E_OFFSET_MASK
        x, mask = i.compressed_geometry()
        i.put64(e[1], (e[2] & ~mask) | plain)
    img = edit("b64k", "compressed-garbage", comp_garbage)
    case("compressed-garbage", img, r"compress|inflate|deflate", info="same", map="same",
         check=("corrupt", r"refcount|reference"), convert=R)

    # A refcount block offset that is not cluster aligned: reading needs no
    # refcounts; check cannot complete.
    def rb_unaligned(i):
        off = i.h["refcount_table_offset"]
        i.put64(off, i.u64(off) + 512)
    img = edit("b64k", "refcount-block-unaligned", rb_unaligned)
    case("refcount-block-unaligned", img, r"refcount.*(align|block)", info="same", map="same",
         check=R, convert="same")

    # --- truncated files ---------------------------------------------------------------------
    img = truncate("b64k", "truncated-100", 100)
    case("truncated-100", img, r"header|short|truncat|end of|eof", **ALL_REFUSE)
    # Cut in the middle of the (two-cluster) L1 table: qemu-img reads the
    # missing half as zeros, and every L2 table is gone too; qcowboot
    # refuses to open an image whose L1 table is not all in the file.
    b = Image(p("base", "b512.qcow2"))
    assert b.h["l1_size"] * 8 > b.cluster_size
    img = truncate("b512", "truncated-mid-l1", b.h["l1_table_offset"] + b.h["l1_size"] * 4)
    case("truncated-mid-l1", img, r"l1.*(end of|past|beyond|eof|truncat|short)", **ALL_REFUSE)
    # Cut in the middle of the L2 table: the header and L1 table are intact
    # (info works); reading through the cut table is refused; check finds
    # clusters past the end.
    b = Image(p("base", "b64k.qcow2"))
    img = truncate("b64k", "truncated-mid-l2", first_l2(b) + b.cluster_size // 2)
    case("truncated-mid-l2", img, r"l2|end of|past|beyond|eof|truncat|short", info="same",
         map=R, check="corrupt", convert=R)

    # --- snapshot table -------------------------------------------------------------------------
    img = edit("snap", "snapshots-nb-huge", lambda i: i.set_field("nb_snapshots", 0x7FFFFFFF))
    case("snapshots-nb-huge", img, r"snapshot", **ALL_REFUSE)
    # The snapshot table past the end of the file: qemu-img reads it as
    # zeros (and check reports incomplete entries); qcowboot refuses.
    img = edit("snap", "snapshots-offset-past-eof",
               lambda i: i.set_field("snapshots_offset", 1 << 40))
    case("snapshots-offset-past-eof", img, r"snapshot", **ALL_REFUSE)
    img = edit("snap", "snapshots-offset-unaligned",
               lambda i: i.set_field("snapshots_offset", i.h["snapshots_offset"] + 8))
    case("snapshots-offset-unaligned", img, r"snapshot", **ALL_REFUSE)

    def snap_extra_overflow(i):
        off, ln, sn = i.snapshots()[0]
        i.put32(off + 36, 0xFFFFFFF0)           # extra data size
    img = edit("snap", "snapshot-extra-overflow", snap_extra_overflow)
    case("snapshot-extra-overflow", img, r"snapshot", **ALL_REFUSE)

    # ID and name lengths of 65535 each: the entry runs past the end of the
    # file. qemu-img reads zeros there and lists a snapshot with a long NUL
    # name; qcowboot refuses.
    def snap_names_overflow(i):
        off, ln, sn = i.snapshots()[1]
        struct.pack_into(">HH", i.data, off + 12, 0xFFFF, 0xFFFF)
    img = edit("snap", "snapshot-names-overflow", snap_names_overflow)
    case("snapshot-names-overflow", img, r"snapshot", **ALL_REFUSE)

    # A snapshot's L1 table offset not cluster aligned: the active disk is
    # unaffected and both read it; check finds the bad entry; converting
    # that snapshot is refused.
    def snap_l1_unaligned(i):
        off, ln, sn = i.snapshots()[0]
        i.put64(off, sn["l1_table_offset"] + 512)
    img = edit("snap", "snapshot-l1-unaligned", snap_l1_unaligned)
    case("snapshot-l1-unaligned", img, r"snapshot|l1", info="same", map="same",
         check="corrupt", convert="same", convert_snap_first=R)

    # --- backing files ---------------------------------------------------------------------------
    # qemu-img info (without --backing-chain) does not open backing files,
    # and neither do qcowboot info and check (check examines this file's
    # metadata only), so they succeed. qemu-img map/check/convert loop
    # forever on a backing loop; qcowboot detects it.
    os.makedirs(p("loop"), exist_ok=True)
    qemu_img("create", "-f", "qcow2", p("loop", "self.qcow2"), "1M")
    qemu_img("rebase", "-u", "-b", "self.qcow2", "-F", "qcow2", p("loop", "self.qcow2"))
    case("backing-self", "loop/self.qcow2", r"loop", info="ok", map=R, check="ok", convert=R,
         info_chain=R)

    qemu_img("create", "-f", "qcow2", p("loop", "a.qcow2"), "1M")
    qemu_img("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", p("loop", "b.qcow2"))
    qemu_img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", p("loop", "a.qcow2"))
    case("backing-loop-2", "loop/a.qcow2", r"loop", info="ok", map=R, check="ok", convert=R,
         info_chain=R)

    # 40 images: qemu-img follows any depth; qcowboot opens at most 32
    # (QB_DEFAULT_MAX_CHAIN) and says so.
    os.makedirs(p("deep"), exist_ok=True)
    qemu_img("create", "-f", "qcow2", p("deep", "d00.qcow2"), "1M")
    qemu_io(p("deep", "d00.qcow2"), "write -P 0xdd 0 4k")
    for k in range(1, 40):
        qemu_img("create", "-f", "qcow2", "-u", "-b", "d%02d.qcow2" % (k - 1), "-F", "qcow2",
                 p("deep", "d%02d.qcow2" % k), "1M")
    case("backing-deep-40", "deep/d39.qcow2", r"deep|chain|32", info="ok", map=R, check="ok",
         convert=R, info_chain=R)

    # A backing file that does not exist: qemu-img check fails because it
    # opens the chain; qcowboot check does not need it.
    qemu_img("create", "-f", "qcow2", "-u", "-b", "does-not-exist.qcow2", "-F", "qcow2",
             p("loop", "missing.qcow2"), "1M")
    case("backing-missing", "loop/missing.qcow2", r"does-not-exist", info="ok", map=R,
         check="ok", convert=R, info_chain=R)

    # --- encryption -----------------------------------------------------------------------------
    # qemu-img 7.2 still creates AES images. qemu-img info shows an
    # encrypted image's header without the key; qcowboot refuses every
    # command, info included, saying a passphrase is needed.
    sec = ["--object", "secret,id=sec0,data=hunter2"]
    qemu_img("create", *sec, "-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0",
             p("enc-luks.qcow2"), "1M")
    qemu_img("create", *sec, "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0",
             p("enc-aes.qcow2"), "1M")
    for e in ("luks", "aes"):
        case("encrypted-" + e, "enc-%s.qcow2" % e, r"encrypted: passphrase required",
             **ALL_REFUSE)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    try:
        make_bases()
        make_cases()
    except subprocess.CalledProcessError as e:
        sys.exit("make_bad_images: %s failed: %s" % (" ".join(e.cmd), e.stderr.decode(errors="replace")))
    with open(p("manifest.tsv"), "w") as f:
        for c in CASES:
            assert "\t" not in "".join(c) and "" not in c
            f.write("\t".join(c) + "\n")


if __name__ == "__main__":
    main()
