/*
 * The workloads. Each builder emits a fixed list of steps (a seeded PRNG
 * makes the "random" ones reproducible); flushes are interleaved so that
 * "acknowledged before the last completed flush" means something at every
 * crash point. The runner closes every workload with qb_image_close_flush.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pattern.h"
#include "workloads.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

static step *add(step_list *l, int kind, uint64_t off, uint64_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->s = realloc(l->s, l->cap * sizeof(*l->s));
        if (!l->s)
            abort();
    }
    step *s = &l->s[l->n++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->off = off;
    s->len = len;
    s->seed = (uint32_t)l->n * 7919u;   /* each write's data differs */
    return s;
}

static void write_(step_list *l, uint64_t off, uint64_t len) { add(l, STEP_WRITE, off, len); }
static void zero_(step_list *l, uint64_t off, uint64_t len) { add(l, STEP_ZERO, off, len); }
static void discard_(step_list *l, uint64_t off, uint64_t len) { add(l, STEP_DISCARD, off, len); }
static void flush_(step_list *l) { add(l, STEP_FLUSH, 0, 0); }

static void snap_(step_list *l, int kind, const char *name)
{
    step *s = add(l, kind, 0, 0);
    snprintf(s->name, sizeof(s->name), "%s", name);
}

void step_data(const step *s, uint8_t *out)
{
    if (s->kind != STEP_WRITE_COMPRESSED) {
        pattern_fill(out, s->off, (size_t)s->len, s->seed);
        return;
    }
    /* Runs of 64 equal bytes: compresses well, still says where it belongs. */
    for (uint64_t i = 0; i < s->len; i++)
        out[i] = pattern_byte((s->off + i) >> 6, s->seed);
}

void step_list_free(step_list *l)
{
    free(l->s);
    memset(l, 0, sizeof(*l));
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) % n;
}

/* A range of up to max_len bytes (at least 1) at a multiple of `align`
 * inside the disk. */
static void pick(const workload *w, uint64_t *s, uint64_t align, uint64_t max_len,
                 uint64_t *off, uint64_t *len)
{
    *len = 1 + rnd(s, max_len);
    *off = rnd(s, (w->size - *len) / align + 1) * align;
}

/* Random writes, zeroes and discards, a flush every flush_every steps.
 * Discards and half the zeroes are cluster aligned (so whole clusters are
 * dropped or marked zero); the rest are arbitrary ranges. */
static void mixed(const workload *w, step_list *l, uint64_t seed, unsigned steps,
                  unsigned flush_every, uint64_t write_align, uint64_t max_len)
{
    uint64_t s = seed, off, len;
    uint64_t cs = w->cluster_size;
    for (unsigned i = 1; i <= steps; i++) {
        unsigned k = (unsigned)rnd(&s, 10);
        if (k < 6) {
            pick(w, &s, write_align, max_len, &off, &len);
            write_(l, off, len);
        } else if (k < 8) {
            if (k == 6) {
                pick(w, &s, cs, 4 * cs, &off, &len);
                len = (len + cs - 1) / cs * cs;
                if (off + len > w->size)
                    len = w->size - off;
            } else {
                pick(w, &s, 1, max_len, &off, &len);
            }
            zero_(l, off, len);
        } else {
            /* Whole clusters, clear of the last cluster of the disk. */
            uint64_t clusters = w->size / cs;
            uint64_t first = rnd(&s, clusters - 1);
            uint64_t n = 1 + rnd(&s, 4);
            if (first + n > clusters - 1)
                n = clusters - 1 - first;
            if (n)
                discard_(l, first * cs, n * cs);
        }
        if (i % flush_every == 0)
            flush_(l);
    }
}

/* Several MiB in 64K..1M pieces, some of odd lengths so that the next
 * piece starts inside a cluster that is already allocated. */
static void build_sequential(const workload *w, step_list *l)
{
    static const uint64_t pieces[] = { 64 * KiB, 192 * KiB, 1 * MiB, 320 * KiB, 512 * KiB,
                                       64 * KiB + 4096, 700000, 128 * KiB, 1 * MiB - 512 };
    uint64_t off = 0, next_flush = 2 * MiB;
    for (unsigned i = 0; off < 8 * MiB; i++) {
        uint64_t len = pieces[i % (sizeof(pieces) / sizeof(pieces[0]))];
        write_(l, off, len);
        off += len;
        if (off >= next_flush) {
            flush_(l);
            next_flush += 2 * MiB;
        }
    }
}

/* 4K writes at random 4K-aligned places: each new one allocates a cluster
 * and fills the rest of it with zeros; some land in clusters written
 * before. */
static void build_random_4k(const workload *w, step_list *l)
{
    uint64_t s = 4;
    for (unsigned i = 1; i <= 240; i++) {
        write_(l, rnd(&s, w->size / (4 * KiB)) * 4 * KiB, 4 * KiB);
        if (i % 30 == 0)
            flush_(l);
    }
}

/* Writes of every size at unaligned places over a backing file: each new
 * cluster is copied from the backing file around the written part, also
 * past the backing file's end (reads as zeros). */
static void build_backing_cow(const workload *w, step_list *l)
{
    uint64_t s = 3, off, len;
    for (unsigned i = 1; i <= 64; i++) {
        if (i % 9 == 0) {
            pick(w, &s, w->cluster_size, 3 * w->cluster_size, &off, &len);
            len = w->cluster_size * (1 + len / w->cluster_size);
            if (off + len > w->size)
                len = w->size - off;
        } else {
            pick(w, &s, 1, 150000, &off, &len);
        }
        write_(l, off, len);
        if (i % 8 == 0)
            flush_(l);
    }
}

static void build_zero_discard(const workload *w, step_list *l)
{
    for (uint64_t off = 0; off < 2 * MiB; off += 256 * KiB)
        write_(l, off, 256 * KiB);
    flush_(l);
    zero_(l, 512 * KiB, 256 * KiB);                /* whole clusters: zero flag */
    zero_(l, 1 * MiB + 1000, 70000);               /* partial clusters */
    discard_(l, 1536 * KiB, 192 * KiB);            /* own clusters */
    discard_(l, 3 * MiB, 128 * KiB);               /* clusters only in the backing file */
    write_(l, 600 * KiB, 10000);                   /* over a zero cluster */
    zero_(l, 2560 * KiB + 512, 100000);            /* over the backing file */
    flush_(l);
    mixed(w, l, 5, 80, 10, 1, 200000);
}

static void build_snapshots(const workload *w, step_list *l)
{
    for (uint64_t off = 0; off < 2 * MiB; off += 512 * KiB)
        write_(l, off, 512 * KiB);
    flush_(l);
    snap_(l, STEP_SNAP_CREATE, "s1");
    mixed(w, l, 6, 10, 5, 1, 100000);    /* copies clusters shared with s1 */
    snap_(l, STEP_SNAP_CREATE, "s2");
    mixed(w, l, 7, 10, 10, 1, 100000);
    snap_(l, STEP_SNAP_DELETE, "s1");
    mixed(w, l, 8, 10, 5, 1, 100000);
    snap_(l, STEP_SNAP_CREATE, "s3");
    flush_(l);
    snap_(l, STEP_SNAP_DELETE, "s2");
    mixed(w, l, 9, 10, 5, 1, 100000);
    snap_(l, STEP_SNAP_CREATE, "s4");
    write_(l, 0, 300 * KiB);
    snap_(l, STEP_SNAP_DELETE, "s3");
    flush_(l);
    snap_(l, STEP_SNAP_APPLY, "s4");     /* back to s4: the disk changes as a whole */
    mixed(w, l, 10, 6, 3, 1, 100000);
    snap_(l, STEP_SNAP_APPLY, "s4");
    flush_(l);
}

/* Compressed clusters: written into unallocated clusters, then partly
 * overwritten (copied out of the compressed cluster), zeroed, discarded. */
static void build_compressed(const workload *w, step_list *l)
{
    uint64_t cs = w->cluster_size;
    for (uint64_t c = 0; c < 16; c++) {
        add(l, STEP_WRITE_COMPRESSED, c * cs, cs);
        if (c % 4 == 3)
            flush_(l);
    }
    write_(l, 3 * cs + 1000, 5000);                /* inside a compressed cluster */
    write_(l, 5 * cs - 300, cs + 600);             /* across two of them */
    zero_(l, 8 * cs, cs);
    zero_(l, 9 * cs + 512, 4096);
    discard_(l, 12 * cs, 2 * cs);
    flush_(l);
    mixed(w, l, 15, 24, 6, 1, 100000);
}

/* 512-byte clusters with 64-bit refcounts: a refcount block covers 32 KiB
 * and the first refcount table 2 MiB of file, so 3 MiB of data must move
 * the refcount table. */
static void build_refcount_growth(const workload *w, step_list *l)
{
    for (uint64_t off = 0; off < 3 * MiB; off += 32 * KiB) {
        write_(l, off, 32 * KiB);
        if ((off + 32 * KiB) % (512 * KiB) == 0)
            flush_(l);
    }
    write_(l, 3 * MiB + 100, 5000);
}

/* Subclusters (2 KiB of 64 KiB clusters) over a backing file: aligned
 * subcluster writes, partial ones (copied from the backing file per
 * subcluster), zeroed subclusters. */
static void build_extended_l2(const workload *w, step_list *l)
{
    uint64_t s = 11, off, len;
    for (unsigned i = 1; i <= 72; i++) {
        unsigned k = (unsigned)rnd(&s, 4);
        if (k == 0) {
            pick(w, &s, 2048, 16 * KiB, &off, &len);
            len = (len + 2047) / 2048 * 2048;
            if (off + len > w->size)
                len = w->size - off;
            write_(l, off, len);
        } else if (k == 1) {
            pick(w, &s, 1, 5000, &off, &len);
            write_(l, off, len);
        } else if (k == 2) {
            pick(w, &s, 2048, 12 * KiB, &off, &len);
            len = (len + 2047) / 2048 * 2048;
            if (off + len > w->size)
                len = w->size - off;
            zero_(l, off, len);
        } else {
            pick(w, &s, 1, 140000, &off, &len);   /* across clusters */
            write_(l, off, len);
        }
        if (i % 8 == 0)
            flush_(l);
    }
}

static void build_v2(const workload *w, step_list *l)
{
    mixed(w, l, 12, 30, 8, 1, 150000);
    snap_(l, STEP_SNAP_CREATE, "v2a");
    mixed(w, l, 13, 20, 7, 512, 150000);
    flush_(l);
    snap_(l, STEP_SNAP_DELETE, "v2a");
    mixed(w, l, 14, 20, 6, 1, 150000);
}

/* No flush steps: in writethrough mode each call is durable when it returns. */
static void build_writethrough(const workload *w, step_list *l)
{
    mixed(w, l, 21, 36, 1000, 1, 100000);
}

const workload workloads[] = {
    { .name = "sequential", .size = 12 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .build = build_sequential },
    { .name = "random-4k", .size = 8 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .build = build_random_4k },
    { .name = "backing-cow", .size = 6 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .base_size = 4 * MiB, .base_opts = "cluster_size=65536",
      .build = build_backing_cow },
    { .name = "zero-discard", .size = 4 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .base_size = 4 * MiB, .base_opts = "cluster_size=65536",
      .build = build_zero_discard },
    { .name = "snapshots", .size = 4 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .build = build_snapshots },
    { .name = "refcount-growth", .size = 4 * MiB, .cluster_size = 512,
      .opts = "cluster_size=512,refcount_bits=64", .grows_refcount_table = true,
      .l2_cache = 8192,

      .build = build_refcount_growth },
    { .name = "extended-l2", .size = 4 * MiB, .cluster_size = 64 * KiB,
      .opts = "extended_l2=on,cluster_size=65536", .base_size = 3 * MiB,
      .base_opts = "cluster_size=4096", .build = build_extended_l2 },
    { .name = "compressed", .size = 4 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .leaves_compressed = true, .build = build_compressed },
    { .name = "writethrough", .size = 4 * MiB, .cluster_size = 64 * KiB,
      .opts = "cluster_size=65536", .base_size = 2 * MiB, .base_opts = "cluster_size=65536",
      .writethrough = true, .build = build_writethrough },
    { .name = "v2", .size = 4 * MiB, .cluster_size = 64 * KiB, .v2 = true,
      .opts = "compat=0.10,cluster_size=65536", .base_size = 3 * MiB,
      .base_opts = "compat=0.10,cluster_size=65536", .build = build_v2 },
};
const size_t workload_count = sizeof(workloads) / sizeof(workloads[0]);

/* Pattern data with every fifth 64 KiB chunk left zero (a hole in the
 * backing file once qemu-img converts it). */
void workload_base_content(const workload *w, uint8_t *out)
{
    for (uint64_t off = 0; off < w->base_size; off += 64 * KiB) {
        uint64_t n = w->base_size - off < 64 * KiB ? w->base_size - off : 64 * KiB;
        if ((off / (64 * KiB)) % 5 == 4)
            memset(out + off, 0, n);
        else
            pattern_fill(out + off, off, n, 0xBA5Eu);
    }
}
