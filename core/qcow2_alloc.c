/*
 * Refcounts in memory and cluster allocation for the write path.
 *
 * Changes are made to cached refcount blocks and the in-memory refcount
 * table; qcow2_flush.c writes them before anything that depends on them.
 * Decreases wait in a list until the L1/L2 entry that dropped the
 * reference is on disk, so a crash can leak a cluster but never leave one
 * referenced with a refcount of 0 (or reused while still referenced).
 *
 * A range of clusters with no refcount block has refcount 0 throughout.
 * The allocator places the blocks such ranges need right after the
 * clusters it hands out, inside the same free run, so a block never needs
 * another allocation to be counted.
 */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"

uint64_t qcow2_refcount_max(const qcow2 *q)
{
    unsigned bits = 1u << q->h.refcount_order;
    return bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
}

static uint64_t per_block_bits(const qcow2 *q)
{
    return q->h.cluster_bits + 3 - q->h.refcount_order;
}

static void note_end(qcow2 *q, uint64_t end)
{
    if (end > q->alloc_end)
        q->alloc_end = end;
    if (end > q->file_size)
        q->file_size = end;   /* reads past the real end give zeros */
}

/* Makes the in-memory refcount table hold index ti. */
int qcow2_reftable_reach(qcow2 *q, uint64_t ti, qb_err *err)
{
    if (ti < q->reftable_entries)
        return QB_OK;
    uint64_t want = q->reftable_entries ? q->reftable_entries : 1;
    while (want <= ti)
        want *= 2;
    if (want * 8 > QCOW2_MAX_REFTABLE_BYTES) {
        want = QCOW2_MAX_REFTABLE_BYTES / 8;
        if (ti >= want)
            return qb_err_set(err, QB_EFULL,
                              "%s: image too large: the refcount table would exceed %u MiB",
                              q->filename, QCOW2_MAX_REFTABLE_BYTES >> 20);
    }
    uint64_t *t = qb_zalloc(&q->alloc, (size_t)want * 8);
    if (!t)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory to grow the refcount table",
                          q->filename);
    if (q->reftable_entries)
        memcpy(t, q->reftable, (size_t)q->reftable_entries * 8);
    qb_free(&q->alloc, q->reftable);
    q->reftable = t;
    q->reftable_entries = want;
    return QB_OK;
}

static void reftable_mark(qcow2 *q, uint64_t ti)
{
    if (!q->reftable_dirty || ti < q->rt_dirty_lo)
        q->rt_dirty_lo = ti;
    if (!q->reftable_dirty || ti > q->rt_dirty_hi)
        q->rt_dirty_hi = ti;
    q->reftable_dirty = true;
}

/* The refcount block for table index ti, pinned; *block = NULL when the
 * range has none. */
static int refblock(qcow2 *q, uint64_t ti, uint8_t **block, qb_err *err)
{
    *block = NULL;
    int r = qcow2_load_reftable(q, err);
    if (r)
        return r;
    uint64_t boff = ti < q->reftable_entries ? q->reftable[ti] & QCOW2_REFT_OFFSET_MASK : 0;
    if (boff) {
        if (qcow2_offset_into_cluster(q, boff) || boff > q->file_size ||
            q->file_size - boff < q->cluster_size)
            return qcow2_mark_corrupt(q, err,
                                      "refcount table entry %llu: block offset %#llx is invalid",
                                      (unsigned long long)ti, (unsigned long long)boff);
        return qcow2_cache_get_pinned(q, &q->rb_cache, boff, block, err);
    }
    return QB_OK;
}

int qcow2_update_refcount(qcow2 *q, uint64_t cluster, uint64_t count, int64_t delta,
                          qb_err *err)
{
    uint64_t pbb = per_block_bits(q);
    uint64_t max = qcow2_refcount_max(q);
    unsigned order = q->h.refcount_order;
    while (count) {
        uint64_t ti = cluster >> pbb;
        uint8_t *block;
        int r = refblock(q, ti, &block, err);
        if (r)
            return r;
        if (!block)
            return qcow2_mark_corrupt(q, err,
                                      "refcount of cluster %#llx would drop below 0 (no "
                                      "refcount block)",
                                      (unsigned long long)(cluster << q->h.cluster_bits));
        uint64_t idx = cluster & ((1ull << pbb) - 1);
        uint64_t n = (1ull << pbb) - idx;
        if (n > count)
            n = count;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = qcow2_refcount_entry(block, idx + i, order);
            uint64_t nv;
            if (delta > 0 ? v > max - (uint64_t)delta : v < (uint64_t)(-delta)) {
                qcow2_cache_unpin(&q->rb_cache, block);
                if (delta > 0)
                    return qb_err_set(err, QB_EUNSUPP,
                                      "%s: refcount of cluster %#llx would exceed %llu (the "
                                      "image's refcount_bits is %u)",
                                      q->filename,
                                      (unsigned long long)((cluster + i) << q->h.cluster_bits),
                                      (unsigned long long)max, 1u << order);
                return qcow2_mark_corrupt(q, err, "refcount of cluster %#llx would drop below 0",
                                          (unsigned long long)((cluster + i)
                                                               << q->h.cluster_bits));
            }
            nv = delta > 0 ? v + (uint64_t)delta : v - (uint64_t)(-delta);
            qcow2_set_refcount_entry(block, idx + i, order, nv);
            if (nv == 0) {
                uint64_t c = cluster + i;
                if (c < q->free_hint)
                    q->free_hint = c;
                if (q->free_byte_offset && (q->free_byte_offset >> q->h.cluster_bits) == c)
                    q->free_byte_offset = 0;
                qcow2_cache_drop(&q->l2_cache, c << q->h.cluster_bits);
            }
        }
        qcow2_cache_mark_dirty(&q->rb_cache, block);
        qcow2_cache_unpin(&q->rb_cache, block);
        cluster += n;
        count -= n;
    }
    return QB_OK;
}

/* Refcount of one cluster for the allocator; *has_block false when its
 * range has no refcount block (then the whole range is free). */
static int peek_refcount(qcow2 *q, uint64_t cluster, uint64_t *rc, bool *has_block, qb_err *err)
{
    uint64_t pbb = per_block_bits(q);
    uint8_t *block;
    int r = refblock(q, cluster >> pbb, &block, err);
    if (r)
        return r;
    *has_block = block != NULL;
    *rc = block ? qcow2_refcount_entry(block, cluster & ((1ull << pbb) - 1), q->h.refcount_order) : 0;
    if (block)
        qcow2_cache_unpin(&q->rb_cache, block);
    return QB_OK;
}

/*
 * Finds n contiguous free clusters plus room right after them for the new
 * refcount blocks their ranges need (k of them), so that a run may cover
 * whole ranges: the blocks of block-less ranges touched by the n+k
 * clusters are placed in the k clusters, and everything is counted.
 */
int qcow2_alloc_clusters(qcow2 *q, uint64_t n, uint64_t *offset, qb_err *err)
{
    uint64_t limit = (QCOW2_L2E_OFFSET_MASK + 1) >> q->h.cluster_bits;
    uint64_t pbb = per_block_bits(q);
    uint64_t per_block = 1ull << pbb;
    uint64_t start = q->free_hint, len = 0, k = 0;
    while (len < n + k) {
        uint64_t x = start + len;
        if (x >= limit)
            return qb_err_set(err, QB_EFULL, "%s: no room for %llu more clusters", q->filename,
                              (unsigned long long)n);
        uint64_t rc;
        bool has_block;
        int r = peek_refcount(q, x, &rc, &has_block, err);
        if (r)
            return r;
        if (!has_block) {
            /* The rest of this range is free; it needs one new block. */
            if (len == 0 || (x & (per_block - 1)) == 0)
                k++;
            len += per_block - (x & (per_block - 1));
            continue;
        }
        if (rc) {
            if (x == q->free_hint)
                q->free_hint = x + 1;   /* everything below the hint is in use */
            start = x + 1;
            len = k = 0;
            continue;
        }
        len++;
    }
    uint64_t block_at = start + n;
    note_end(q, (start + n + k) << q->h.cluster_bits);
    for (uint64_t ti = start >> pbb; ti <= (start + n + k - 1) >> pbb; ti++) {
        uint8_t *block;
        int r = refblock(q, ti, &block, err);
        if (r)
            return r;
        if (block) {
            qcow2_cache_unpin(&q->rb_cache, block);
            continue;
        }
        r = qcow2_reftable_reach(q, ti, err);
        if (r)
            return r;
        uint64_t boff = block_at++ << q->h.cluster_bits;
        r = qcow2_cache_new_pinned(q, &q->rb_cache, boff, &block, err);
        if (r)
            return r;
        q->reftable[ti] = boff;
        reftable_mark(q, ti);
        if (ti + 1 > q->reftable_used)
            q->reftable_used = ti + 1;
        qcow2_cache_unpin(&q->rb_cache, block);
    }
    uint64_t used = block_at - start;   /* n clusters and the blocks placed */
    int r = qcow2_update_refcount(q, start, used, 1, err);
    if (r)
        return r;
    if (start == q->free_hint)
        q->free_hint = start + used;
    *offset = start << q->h.cluster_bits;
    note_end(q, (start + used) << q->h.cluster_bits);
    return QB_OK;
}

int qcow2_alloc_bytes(qcow2 *q, uint64_t size, uint64_t *offset, qb_err *err)
{
    uint64_t fbo = q->free_byte_offset;
    uint64_t in = fbo & (q->cluster_size - 1);
    uint64_t rc = 0;
    if (fbo && in && size <= q->cluster_size - in) {
        int r = qcow2_get_refcount(q, fbo >> q->h.cluster_bits, &rc, err);
        if (r)
            return r;
    }
    /* Sharing needs one more reference than the refcount width may allow
     * (refcount_bits=1): then the data starts a cluster of its own. */
    if (fbo && in && size <= q->cluster_size - in && rc < qcow2_refcount_max(q)) {
        /* One more compressed cluster sharing this host cluster. */
        int r = qcow2_update_refcount(q, fbo >> q->h.cluster_bits, 1, 1, err);
        if (r)
            return r;
        *offset = fbo;
    } else {
        uint64_t n = (size + q->cluster_size - 1) >> q->h.cluster_bits;
        int r = qcow2_alloc_clusters(q, n, offset, err);
        if (r)
            return r;
    }
    uint64_t end = *offset + size;
    q->free_byte_offset = (end & (q->cluster_size - 1)) ? end : 0;
    return QB_OK;
}

int qcow2_free_later(qcow2 *q, uint64_t offset, uint64_t len, qb_err *err)
{
    if (!len)
        return QB_OK;
    uint64_t first = offset >> q->h.cluster_bits;
    uint64_t last = (offset + len - 1) >> q->h.cluster_bits;
    if (q->nb_frees) {
        qcow2_pending_free *p = &q->frees[q->nb_frees - 1];
        if (p->cluster + p->count == first) {
            p->count += last - first + 1;
            return QB_OK;
        }
    }
    if (q->nb_frees == q->frees_cap) {
        size_t cap = q->frees_cap ? q->frees_cap * 2 : 64;
        qcow2_pending_free *f = qb_malloc(&q->alloc, cap * sizeof(*f));
        if (!f)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory to record freed clusters",
                              q->filename);
        if (q->nb_frees)
            memcpy(f, q->frees, q->nb_frees * sizeof(*f));
        qb_free(&q->alloc, q->frees);
        q->frees = f;
        q->frees_cap = cap;
    }
    q->frees[q->nb_frees].cluster = first;
    q->frees[q->nb_frees].count = last - first + 1;
    q->nb_frees++;
    return QB_OK;
}

int qcow2_free_l2_entry_later(qcow2 *q, uint64_t entry, qb_err *err)
{
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        uint64_t coff = entry & q->coffset_mask;
        uint64_t nsec = ((entry >> q->csize_shift) & q->csize_mask) + 1;
        return qcow2_free_later(q, coff, nsec * 512 - (coff & 511), err);
    }
    uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
    if (!host)
        return QB_OK;
    return qcow2_free_later(q, host, q->cluster_size, err);
}

int qcow2_apply_frees(qcow2 *q, qb_err *err)
{
    for (size_t i = 0; i < q->nb_frees; i++) {
        int r = qcow2_update_refcount(q, q->frees[i].cluster, q->frees[i].count, -1, err);
        if (r)
            return r;
    }
    q->nb_frees = 0;
    return QB_OK;
}
