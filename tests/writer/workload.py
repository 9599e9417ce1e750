#!/usr/bin/env python3
"""Seeded random write workloads for tests/writer/interop.sh, and the model
that applies them to a raw reference file.

  workload.py gen --seed N --size BYTES --cluster BYTES [options] > OPS
      one qemu-io command a line (write -P, write -z, write -c, discard,
      flush, read -P); the same seed and options give the same list, which
      qemu-io and `qcowboot io` both run
  workload.py apply OPS RAW --cluster BYTES --discard zero|keep
      applies the modifying commands of OPS to the raw file RAW, as the
      virtual disk of a qcow2 image must change under them
  workload.py reach OPS --size BYTES --cluster BYTES [--xl2]
      prints how many modifying commands of OPS cross an L2 table
      boundary, and how many end at the disk's end

gen options:
  --ops N          number of commands (default 60)
  --xl2            the image has extended L2 entries (16-byte L2 entries, so
                   an L2 table spans half as much of the disk)
  --compress       some `write -c` of whole clusters, each into a cluster no
                   earlier command touched (compressed writes need an
                   unallocated cluster; only valid on a fresh image), all in
                   the first quarter of the list, before any other write or
                   discard: qemu 7.2 can place a compressed cluster in a
                   host cluster it has just reused after freeing compressed
                   data (refcount 2, "write failed"), so interleaving them
                   breaks the qemu-io side
  --compress-anywhere  as --compress, mixed with all other commands (for
                   runs checked against the model alone)
  --no-discard     no discard commands
  --no-zero        no `write -z` commands
  --bulk BYTES     also write this many bytes in 1 MiB writes (to grow the
                   refcount structures)
  --front BYTES    most commands fall into [0, front) (default 8 MiB); the
                   others land next to or across an L2 table boundary or the
                   disk's end
  --hot OFF        one more place for them (e.g. a backing file's end)

Discard in the model, as qemu 7.2 does it: only whole clusters inside the
range change (a cluster cut by the disk's end counts as whole when the range
reaches the end); they read as zeros (`--discard zero`: v3 images, or v2
without a backing file) or keep their data (`--discard keep`: v2 with a
backing file, where qemu refuses to discard because the backing file's
data would show through).
"""

import argparse
import math
import random
import sys


def overlaps(a_off, a_len, b_off, b_len):
    return a_off < b_off + b_len and b_off < a_off + a_len


def l2_span(cluster, xl2):
    """Bytes of the virtual disk one L2 table maps (entries are 16 bytes
    with extended L2, 8 without)."""
    return cluster * (cluster // (16 if xl2 else 8))


def modifying(path):
    """(offset, length) of the writes and discards of an OPS file."""
    for line in open(path):
        w = line.split()
        if w and w[0] in ("write", "discard"):
            yield int(w[-2]), int(w[-1])


class Generator:
    def __init__(self, a):
        self.rnd = random.Random(a.seed)
        self.size = a.size
        self.cs = a.cluster
        self.a = a
        self.ops = []
        # (offset, length) of every modifying command so far, and the
        # pattern-checked writes: (index in touched, pattern, offset, length).
        self.touched = []
        self.checkable = []
        span = l2_span(self.cs, a.xl2)
        # The first three and the last two L2 table boundaries, and the end.
        last = (self.size - 1) // span
        self.hot = sorted({k * span for k in (1, 2, 3, last - 1, last) if 0 < k <= last})
        self.hot += [h for h in a.hot if 0 < h < self.size]
        self.hot.append(self.size)
        self.front = min(self.size, a.front)

    def place(self):
        """An offset and a length inside the disk: whole clusters, whole
        sectors or any bytes; mostly in the front of the disk, else near an
        L2 table boundary or the disk's end, or across one (from before it
        to at least it: the disk's end is then reached exactly)."""
        r = self.rnd
        kind = r.randrange(10)
        if kind < 3:
            unit = self.cs
            ln = self.cs * r.randint(1, max(1, min(4, (1 << 20) // self.cs)))
        else:
            unit = 512 if kind < 7 else 1
            ln = int(math.exp(r.uniform(0, math.log(512 * 1024))))
            ln = max(unit, ln - ln % unit)
        where = r.randrange(10)
        if where < 6:
            off = r.randrange(self.front)
        elif where < 8:
            off = r.choice(self.hot) + r.randrange(-3 * self.cs - 4096, 3 * self.cs)
        else:
            off = r.choice(self.hot) - r.randrange(1, ln + 1)
        off = max(0, min(self.size - 1, off))
        off -= off % unit
        return off, max(1, min(ln, self.size - off))

    def emit(self, op, off=None, ln=None):
        self.ops.append(op)
        if off is not None:
            self.touched.append((off, ln))

    def write(self):
        off, ln = self.place()
        p = self.rnd.randint(1, 255)
        self.emit("write -P %d %d %d" % (p, off, ln), off, ln)
        self.checkable.append((len(self.touched) - 1, p, off, ln))

    def zero(self):
        off, ln = self.place()
        self.emit("write -z %d %d" % (off, ln), off, ln)
        self.checkable.append((len(self.touched) - 1, 0, off, ln))

    def discard(self):
        off, ln = self.place()
        self.emit("discard %d %d" % (off, ln), off, ln)

    def compressed(self):
        """A whole cluster (or the disk's last, partial one) no command has
        touched yet; nothing when ten tries find none."""
        ncl = (self.size + self.cs - 1) // self.cs
        for _ in range(10):
            if self.rnd.randrange(4) == 0:
                c = ncl - 1
            else:
                c = self.rnd.randrange(max(1, min(ncl, self.front // self.cs)))
            off = c * self.cs
            ln = min(self.cs, self.size - off)
            if any(overlaps(off, ln, o, l) for o, l in self.touched):
                continue
            p = self.rnd.randint(1, 255)
            self.emit("write -c -P %d %d %d" % (p, off, ln), off, ln)
            self.checkable.append((len(self.touched) - 1, p, off, ln))
            return

    def read_back(self):
        """Reads part of an earlier write that nothing changed since, and
        expects its pattern."""
        fresh = [(p, o, l) for i, p, o, l in self.checkable
                 if not any(overlaps(o, l, to, tl) for to, tl in self.touched[i + 1:])]
        if not fresh:
            return
        p, o, l = self.rnd.choice(fresh)
        a = o + self.rnd.randrange(l)
        b = a + 1 + self.rnd.randrange(o + l - a)
        self.emit("read -P %d %d %d" % (p, a, b - a))

    def run(self):
        a = self.a
        mix = [("write", 45), ("read", 15), ("flush", 4)]
        if not a.no_zero:
            mix.append(("zero", 16))
        if not a.no_discard:
            mix.append(("discard", 10))
        if a.compress_anywhere:
            mix.append(("compressed", 10))
        # --compress: the first quarter holds the compressed writes (and
        # reads and flushes), before anything else is written.
        first = [("compressed", 30), ("read", 15), ("flush", 4)] if a.compress else mix
        bulk_at = set()
        if a.bulk:
            n = (a.bulk + (1 << 20) - 1) >> 20
            bulk_at = set(self.rnd.sample(range(a.ops // 4, a.ops), min(n, a.ops - a.ops // 4)))
            bulk_off = self.rnd.randrange(0, max(1, self.size - (n << 20))) & ~511
        do = {"write": self.write, "read": self.read_back, "zero": self.zero,
              "discard": self.discard, "compressed": self.compressed,
              "flush": lambda: self.emit("flush")}
        for i in range(a.ops):
            if i in bulk_at:
                ln = min(1 << 20, self.size - bulk_off)
                p = self.rnd.randint(1, 255)
                self.emit("write -P %d %d %d" % (p, bulk_off, ln), bulk_off, ln)
                self.checkable.append((len(self.touched) - 1, p, bulk_off, ln))
                bulk_off = (bulk_off + ln) % (self.size - 512)
                continue
            kinds = first if i < a.ops // 4 else mix
            do[self.rnd.choices([k for k, _ in kinds], [w for _, w in kinds])[0]]()
        # End with a read of something still intact, when there is one.
        self.read_back()
        return self.ops


def gen(argv):
    ap = argparse.ArgumentParser(prog="workload.py gen")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--cluster", type=int, required=True)
    ap.add_argument("--ops", type=int, default=60)
    ap.add_argument("--xl2", action="store_true")
    ap.add_argument("--compress", action="store_true")
    ap.add_argument("--compress-anywhere", action="store_true")
    ap.add_argument("--no-discard", action="store_true")
    ap.add_argument("--no-zero", action="store_true")
    ap.add_argument("--bulk", type=int, default=0)
    ap.add_argument("--front", type=int, default=8 << 20)
    ap.add_argument("--hot", type=int, action="append", default=[])
    a = ap.parse_args(argv)
    for op in Generator(a).run():
        print(op)


def apply(argv):
    ap = argparse.ArgumentParser(prog="workload.py apply")
    ap.add_argument("ops")
    ap.add_argument("raw")
    ap.add_argument("--cluster", type=int, required=True)
    ap.add_argument("--discard", choices=["zero", "keep"], required=True)
    a = ap.parse_args(argv)
    cs = a.cluster
    with open(a.raw, "r+b") as f:
        f.seek(0, 2)
        size = f.tell()

        def fill(off, ln, byte):
            if off + ln > size:
                sys.exit("%s: %d+%d is past the disk's end %d" % (a.ops, off, ln, size))
            f.seek(off)
            chunk = bytes([byte]) * min(ln, 1 << 20)
            while ln:
                n = min(ln, len(chunk))
                f.write(chunk[:n])
                ln -= n

        for line in open(a.ops):
            w = line.split()
            if not w or w[0] in ("read", "flush"):
                continue
            off, ln = int(w[-2]), int(w[-1])
            if w[0] == "write":
                fill(off, ln, 0 if "-z" in w else int(w[w.index("-P") + 1]))
            elif w[0] == "discard":
                if a.discard == "keep":
                    continue
                c = (off + cs - 1) // cs * cs
                while c < off + ln:
                    end = min(c + cs, size)
                    if end <= off + ln:
                        fill(c, end - c, 0)
                    c += cs
            else:
                sys.exit("%s: unknown command %r" % (a.ops, line))


def reach(argv):
    ap = argparse.ArgumentParser(prog="workload.py reach")
    ap.add_argument("ops")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--cluster", type=int, required=True)
    ap.add_argument("--xl2", action="store_true")
    a = ap.parse_args(argv)
    span = l2_span(a.cluster, a.xl2)
    ops = list(modifying(a.ops))
    cross = sum(1 for off, ln in ops if off // span != (off + ln - 1) // span)
    end = sum(1 for off, ln in ops if off + ln == a.size)
    print(cross, end)


def main():
    cmds = {"gen": gen, "apply": apply, "reach": reach}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
