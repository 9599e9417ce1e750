/*
 * Ordered write-back of metadata, the one place that decides what reaches
 * the file when. A crash between any two steps leaves an image whose only
 * flaw is leaked clusters:
 *
 *   1. refcount blocks (increases)          -- nothing points at them yet
 *   2. refcount table entries / relocation  -- after the blocks are durable
 *   3. flush: guest data, blocks and table durable
 *   4. L2 tables, flush, then L1 entries    -- only now do tables point at
 *      the new clusters
 *   5. flush, then the decreases queued by qcow2_free_later: the entries
 *      that dropped those references are durable, so the clusters may go
 *
 * Flushes are issued only where something was written since the last
 * one, so a stream of writes that allocates nothing costs no flush and one
 * that allocates costs a few per qcow2_flush_meta, not per cluster.
 */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"
#include "qb_fmt.h"

int qcow2_sync(qcow2 *q, qb_err *err)
{
    if (!q->need_sync)
        return QB_OK;
    int r = qb_backend_flush(q->file, err);
    if (r)
        return qcow2_write_failed(q, err, "flushing");
    q->need_sync = false;
    return QB_OK;
}

int qcow2_write_failed(qcow2 *q, qb_err *err, const char *fmt, ...)
{
    /* What the file holds is no longer what memory says: stop writing. */
    q->writable = false;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    qb_vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return qb_err_prefix(err, "%s: %s: ", q->filename, what);
}

int qcow2_pwrite(qcow2 *q, qb_backend *b, uint64_t off, const void *buf, size_t len,
                 qb_err *err)
{
    if (off + len > q->written_end)
        q->written_end = off + len;   /* also when it fails: it may be partly there */
    return qb_backend_write(b, off, buf, len, err);
}

static int write_meta(qcow2 *q, uint64_t off, const void *buf, size_t len, const char *what,
                      qb_err *err)
{
    int r = qcow2_pwrite(q, q->file, off, buf, len, err);
    if (r)
        return qcow2_write_failed(q, err, "writing %s at offset %#llx", what,
                                  (unsigned long long)off);
    q->need_sync = true;
    return QB_OK;
}

int qcow2_mark_corrupt(qcow2 *q, qb_err *err, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    qb_vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    bool was_writable = q->writable;
    q->writable = false;
    if (was_writable && q->h.version >= 3) {
        /* Best effort: the bit keeps others from writing more damage. */
        uint8_t b[8];
        q->h.incompatible |= QCOW2_INCOMPAT_CORRUPT;
        qb_put_be64(b, q->h.incompatible);
        qb_err ignored;
        if (qcow2_pwrite(q, q->file, 72, b, 8, &ignored) == 0)
            qb_backend_flush(q->file, &ignored);
    }
    if (q->warn.warn && was_writable)
        q->warn.warn(q->warn.ctx, "image marked corrupt; it is read-only from now on");
    return qb_err_set(err, QB_ECORRUPT, "%s: %s; the image is marked corrupt and read-only",
                      q->filename, why);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return blen && a < b + blen && b < a + alen;
}

/* Full scans of the L1 and refcount tables cost one pass per write; above
 * this many entries only the cached tables are checked. */
#define OVERLAP_FULL_SCAN_MAX 8192

int qcow2_check_overlap(qcow2 *q, uint64_t off, uint64_t len, int ignore, qb_err *err)
{
    uint64_t cs = q->cluster_size;
    const char *what = NULL;
    if (off < cs)
        what = "the header";
    else if (overlaps(off, len, q->l1_offset, (uint64_t)q->l1_size * 8))
        what = "the active L1 table";
    else if (overlaps(off, len, q->h.refcount_table_offset,
                      (uint64_t)q->h.refcount_table_clusters << q->h.cluster_bits))
        what = "the refcount table";
    else if (overlaps(off, len, q->h.snapshots_offset, q->snapshots_size))
        what = "the snapshot table";
    for (uint32_t i = 0; !what && i < q->nb_snapshots; i++)
        if (overlaps(off, len, q->snapshots[i].l1_offset, (uint64_t)q->snapshots[i].l1_size * 8))
            what = "an inactive L1 table";
    if (!what && ignore != QCOW2_OL_REFBLOCK) {
        uint64_t used = q->reftable_used < q->reftable_entries ? q->reftable_used
                                                                : q->reftable_entries;
        if (q->reftable && used <= OVERLAP_FULL_SCAN_MAX) {
            for (uint64_t i = 0; i < used && !what; i++)
                if (overlaps(off, len, q->reftable[i] & QCOW2_REFT_OFFSET_MASK, cs))
                    what = "a refcount block";
        } else if (q->rb_cache.entries) {
            for (size_t i = 0; i < q->rb_cache.count && !what; i++)
                if (q->rb_cache.entries[i].offset &&
                    overlaps(off, len, q->rb_cache.entries[i].offset, cs))
                    what = "a refcount block";
        }
    }
    if (!what && ignore != QCOW2_OL_L2) {
        if (q->l1_size <= OVERLAP_FULL_SCAN_MAX) {
            for (uint32_t i = 0; i < q->l1_size && !what; i++)
                if (overlaps(off, len, q->l1[i] & QCOW2_L1E_OFFSET_MASK, cs))
                    what = "an active L2 table";
        } else {
            for (size_t i = 0; i < q->l2_cache.count && !what; i++)
                if (q->l2_cache.entries[i].offset &&
                    overlaps(off, len, q->l2_cache.entries[i].offset, cs))
                    what = "an active L2 table";
        }
    }
    if (!what)
        return QB_OK;
    return qcow2_mark_corrupt(q, err,
                              "preventing a write of %llu bytes at offset %#llx: it overlaps %s",
                              (unsigned long long)len, (unsigned long long)off, what);
}

/* Entries of the in-memory refcount table in use (past it all are 0). */
static uint64_t reftable_used(const qcow2 *q)
{
    uint64_t n = q->reftable_entries;
    while (n && !q->reftable[n - 1])
        n--;
    return n;
}

static int write_table_be(qcow2 *q, uint64_t off, const uint64_t *t, uint64_t n,
                          const char *what, qb_err *err)
{
    /* Converted in pieces to bound the temporary buffer. */
    uint64_t be[512];
    while (n) {
        uint64_t k = n < 512 ? n : 512;
        for (uint64_t i = 0; i < k; i++)
            qb_put_be64(&be[i], t[i]);
        int r = write_meta(q, off, be, (size_t)k * 8, what, err);
        if (r)
            return r;
        off += k * 8;
        t += k;
        n -= k;
    }
    return QB_OK;
}

/* Moves the refcount table to new clusters big enough for every block,
 * switching the header to it in one write. */
static int relocate_reftable(qcow2 *q, qb_err *err)
{
    uint64_t cs = q->cluster_size;
    uint64_t newoff, nclusters;
    for (;;) {
        uint64_t used = reftable_used(q);
        nclusters = (used * 2 * 8 + cs - 1) / cs;   /* room to grow */
        if (nclusters * cs > QCOW2_MAX_REFTABLE_BYTES)
            nclusters = QCOW2_MAX_REFTABLE_BYTES / cs;
        if (used * 8 > nclusters * cs)
            return qb_err_set(err, QB_EFULL, "%s: the refcount table would exceed %u MiB",
                              q->filename, QCOW2_MAX_REFTABLE_BYTES >> 20);
        int r = qcow2_alloc_clusters(q, nclusters, &newoff, err);
        if (r)
            return r;
        if (reftable_used(q) * 8 <= nclusters * cs)
            break;
        /* Its own refcount blocks made it grow again: nothing points at the
         * clusters yet, so they can go back at once. */
        r = qcow2_update_refcount(q, newoff >> q->h.cluster_bits, nclusters, -1, err);
        if (r)
            return r;
    }
    bool wrote = false;
    int r = qcow2_cache_write_dirty(q, &q->rb_cache, &wrote, err);
    if (r)
        return r;
    r = qcow2_check_overlap(q, newoff, nclusters * cs, QCOW2_OL_NONE, err);
    if (r)
        return r;
    uint64_t entries = nclusters * cs / 8;
    r = qcow2_reftable_reach(q, entries - 1, err);
    if (r)
        return r;
    r = write_table_be(q, newoff, q->reftable, entries, "refcount table", err);
    if (r)
        return r;
    r = qcow2_sync(q, err);
    if (r)
        return r;
    uint8_t hdr[12];
    qb_put_be64(hdr, newoff);
    qb_put_be32(hdr + 8, (uint32_t)nclusters);
    r = write_meta(q, 48, hdr, sizeof(hdr), "header (refcount table)", err);
    if (r)
        return r;
    r = qcow2_sync(q, err);
    if (r)
        return r;
    uint64_t oldoff = q->h.refcount_table_offset;
    uint64_t oldlen = (uint64_t)q->h.refcount_table_clusters << q->h.cluster_bits;
    q->h.refcount_table_offset = newoff;
    q->h.refcount_table_clusters = (uint32_t)nclusters;
    q->reftable_capacity = entries;
    q->reftable_dirty = false;
    return qcow2_free_later(q, oldoff, oldlen, err);
}

static int write_reftable(qcow2 *q, qb_err *err)
{
    if (!q->reftable_dirty)
        return QB_OK;
    int r = qcow2_sync(q, err);   /* the blocks before the entries naming them */
    if (r)
        return r;
    if (reftable_used(q) > q->reftable_capacity)
        return relocate_reftable(q, err);
    uint64_t lo = q->rt_dirty_lo, hi = q->rt_dirty_hi;
    if (hi >= q->reftable_capacity)
        hi = q->reftable_capacity - 1;
    r = write_table_be(q, q->h.refcount_table_offset + lo * 8, q->reftable + lo, hi - lo + 1,
                       "refcount table", err);
    if (r)
        return r;
    q->reftable_dirty = false;
    return QB_OK;
}

static int write_l1(qcow2 *q, qb_err *err)
{
    if (!q->l1_dirty)
        return QB_OK;
    uint32_t lo = q->l1_dirty_lo, hi = q->l1_dirty_hi;
    int r = write_table_be(q, q->l1_offset + (uint64_t)lo * 8, q->l1 + lo, hi - lo + 1,
                           "L1 table", err);
    if (r)
        return r;
    q->l1_dirty = false;
    return QB_OK;
}

static int flush_steps(qcow2 *q, qb_err *err)
{
    bool wrote = false;
    int r = qcow2_cache_write_dirty(q, &q->rb_cache, &wrote, err);
    if (!r)
        r = write_reftable(q, err);
    if (r)
        return r;
    if (qcow2_cache_has_dirty(&q->l2_cache) || q->l1_dirty) {
        r = qcow2_sync(q, err);
        if (!r)
            r = qcow2_cache_write_dirty(q, &q->l2_cache, &wrote, err);
        if (!r && q->l1_dirty) {
            r = qcow2_sync(q, err);
            if (!r)
                r = write_l1(q, err);
        }
        if (r)
            return r;
    }
    r = qcow2_sync(q, err);
    if (r || !q->nb_frees)
        return r;
    r = qcow2_apply_frees(q, err);
    if (!r)
        r = qcow2_cache_write_dirty(q, &q->rb_cache, &wrote, err);
    if (!r)
        r = qcow2_sync(q, err);
    return r;
}

int qcow2_flush_meta(qcow2 *q, qb_err *err)
{
    if (q->in_flush || !q->write_ready)
        return QB_OK;
    if (!q->writable)
        return qb_err_set(err, QB_EROFS, "%s: image is read-only after an earlier error",
                          q->filename);
    q->in_flush = true;
    int r = flush_steps(q, err);
    q->in_flush = false;
    return r;
}

static int write_header_u64(qcow2 *q, uint64_t off, uint64_t v, const char *what, qb_err *err)
{
    uint8_t b[8];
    qb_put_be64(b, v);
    int r = write_meta(q, off, b, 8, what, err);
    return r ? r : qcow2_sync(q, err);
}

int qcow2_prepare_write(qcow2 *q, qb_err *err)
{
    if (q->write_ready)
        return QB_OK;
    if (!q->writable)
        return qb_err_set(err, QB_EROFS, "%s: image is open read-only", q->filename);
    if (q->data_file != q->file) {
        q->writable = false;
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: writing to images with an external data file is not supported",
                          q->filename);
    }
    int r = qcow2_load_reftable(q, err);
    if (r)
        return r;
    q->reftable_capacity = q->reftable_entries;
    q->reftable_used = reftable_used(q);
    q->free_hint = 0;
    q->alloc_end = q->file_size;
    q->written_end = q->file_size;
    q->write_ready = true;
    if (q->h.version >= 3 && q->h.autoclear) {
        /* Bits we do not know, and bitmaps we do not keep up to date, must
         * be declared stale before the first change. */
        q->h.autoclear = 0;
        r = write_header_u64(q, 88, 0, "header (autoclear_features)", err);
        if (r)
            return r;
    }
    if (q->h.incompatible & QCOW2_INCOMPAT_DIRTY) {
        if (q->warn.warn)
            q->warn.warn(q->warn.ctx, "image is dirty: rebuilding its refcounts before writing");
        r = qcow2_repair(q, QB_REPAIR_ALL, err);
        if (r)
            return r;
        q->h.incompatible &= ~QCOW2_INCOMPAT_DIRTY;
        r = write_header_u64(q, 72, q->h.incompatible, "header (incompatible_features)", err);
        if (r)
            return r;
    }
    return QB_OK;
}
