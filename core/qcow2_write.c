/*
 * The write path of one qcow2 layer: guest writes, zero writes, discards
 * and compressed clusters.
 *
 * A cluster is written in place only when this image alone owns it (the
 * COPIED flag). Anything else -- unallocated, a zero cluster, compressed,
 * shared with a snapshot, backed by the backing file -- gets a new cluster
 * holding the untouched part as it reads now plus the guest data, in one
 * write. With extended L2 entries only the touched subclusters are
 * written and marked; the others keep reading from where they did.
 *
 * Order within one cluster: allocate (refcount 1, in memory), write the
 * data, then change the L2 entry (in memory), then queue the old cluster's
 * decrease. qcow2_flush.c takes those changes to the file in the same
 * order, so no crash can leave an entry pointing at unwritten data or at a
 * cluster with refcount 0.
 */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"

#define PENDING_FREES_FLUSH 4096   /* queued decreases that trigger a flush */

typedef struct wctx {
    qcow2 *q;
    qcow2_fill_fn fill;
    void *fill_ctx;
    uint8_t *bounce;        /* one cluster */
} wctx;

static uint64_t l2_entry(const qcow2 *q, const uint8_t *t, uint64_t idx)
{
    return qb_be64(t + idx * q->l2_entry_size);
}

static uint64_t l2_bitmap(const qcow2 *q, const uint8_t *t, uint64_t idx)
{
    return q->l2_entry_size == 16 ? qb_be64(t + idx * 16 + 8) : 0;
}

static void l2_set(const qcow2 *q, uint8_t *t, uint64_t idx, uint64_t entry, uint64_t bitmap)
{
    qb_put_be64(t + idx * q->l2_entry_size, entry);
    if (q->l2_entry_size == 16)
        qb_put_be64(t + idx * 16 + 8, bitmap);
}

static void l1_mark(qcow2 *q, uint32_t i)
{
    if (!q->l1_dirty || i < q->l1_dirty_lo)
        q->l1_dirty_lo = i;
    if (!q->l1_dirty || i > q->l1_dirty_hi)
        q->l1_dirty_hi = i;
    q->l1_dirty = true;
}

/* Writes may change what the compressed read-ahead window and the last
 * decompressed cluster hold. */
static void forget_read_ahead(qcow2 *q)
{
    q->cwin_len = 0;
    q->ubuf_host = UINT64_MAX;
}

static int check_table_offset(qcow2 *q, uint64_t off, uint64_t l1i)
{
    if (qcow2_offset_into_cluster(q, off) || off > q->file_size ||
        q->file_size - off < q->cluster_size)
        return qcow2_mark_corrupt(q, NULL, "L1 entry %llu: L2 table offset %#llx is invalid",
                                  (unsigned long long)l1i, (unsigned long long)off);
    return QB_OK;
}

/* The L2 table of L1 entry l1i, ready to change: allocated when missing,
 * copied when shared. Pinned; the caller unpins. */
static int l2_for_write(qcow2 *q, uint64_t l1i, uint8_t **t, qb_err *err)
{
    if (l1i >= q->l1_size)
        return qb_err_set(err, QB_ERANGE, "%s: write beyond the L1 table (%u entries)",
                          q->filename, q->l1_size);
    uint64_t l1e = q->l1[l1i];
    uint64_t off = l1e & QCOW2_L1E_OFFSET_MASK;
    if (off && check_table_offset(q, off, l1i))
        return qcow2_mark_corrupt(q, err, "L1 entry %llu: L2 table offset %#llx is invalid",
                                  (unsigned long long)l1i, (unsigned long long)off);
    if (off && (l1e & QCOW2_OFLAG_COPIED))
        return qcow2_cache_get_pinned(q, &q->l2_cache, off, t, err);
    uint8_t *old = NULL;
    int r;
    if (off) {
        r = qcow2_cache_get_pinned(q, &q->l2_cache, off, &old, err);
        if (r)
            return r;
    }
    uint64_t newoff;
    r = qcow2_alloc_clusters(q, 1, &newoff, err);
    if (!r)
        r = qcow2_cache_new_pinned(q, &q->l2_cache, newoff, t, err);
    if (old) {
        if (!r)
            memcpy(*t, old, (size_t)q->cluster_size);
        qcow2_cache_unpin(&q->l2_cache, old);
        if (!r)
            r = qcow2_free_later(q, off, q->cluster_size, err);
    }
    if (r)
        return r;
    q->l1[l1i] = newoff | QCOW2_OFLAG_COPIED;
    l1_mark(q, (uint32_t)l1i);
    return QB_OK;
}

/* Fills bounce[from-cl, to-cl) with what the guest reads there now. */
static int read_current(wctx *w, uint64_t cl, uint64_t from, uint64_t to, qb_err *err)
{
    if (from >= to)
        return QB_OK;
    return qcow2_read(w->q, from, w->bounce + (from - cl), (size_t)(to - from), w->fill,
                      w->fill_ctx, err);
}

/* Guest data of [guest, guest+len) to host; encrypted images encrypt it
 * on the way (never in the caller's buffer). */
static int data_write(qcow2 *q, uint64_t host, uint64_t guest, const void *buf, uint64_t len,
                      qb_err *err)
{
    /* Also for clusters just allocated: their refcount was 0, but in an
     * image whose refcounts are wrong that proves nothing. */
    int r = qcow2_check_overlap(q, host, len, QCOW2_OL_NONE, err);
    if (r)
        return r;
    r = q->crypto ? qcow2_crypto_write(q, host, guest, buf, (size_t)len, err)
                      : qcow2_pwrite(q, q->data_file, host, buf, (size_t)len, err);
    if (r)
        return qcow2_write_failed(q, err, "writing data at host offset %#llx",
                                  (unsigned long long)host);
    q->need_sync = true;
    return QB_OK;
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
    /* Equal to itself shifted by one byte and starting with 0: all 0. */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, (size_t)n - 1) == 0);
}

/* Subcluster bits [s0, s1] of an extended L2 bitmap. */
static uint64_t sc_bits(unsigned s0, unsigned s1)
{
    return ((s1 == 31 ? 0xffffffffull : (1ull << (s1 + 1)) - 1)) & ~((1ull << s0) - 1);
}

/*
 * Writes [pos, pos+n) of the cluster at cl (entry idx of table t) into a
 * cluster: `reuse` (a zero cluster this image owns) or a new one. The rest
 * of the cluster is filled with what reads there now.
 */
static int cow_write(wctx *w, uint8_t *t, uint64_t idx, uint64_t cl, uint64_t pos, uint64_t n,
                     const uint8_t *buf, uint64_t reuse, qb_err *err)
{
    qcow2 *q = w->q;
    uint64_t cs = q->cluster_size;
    uint64_t old = l2_entry(q, t, idx);
    uint64_t bm = l2_bitmap(q, t, idx);
    bool ext = q->l2_entry_size == 16;
    bool old_has_host = (old & QCOW2_OFLAG_COMPRESSED) || (old & QCOW2_L2E_OFFSET_MASK);
    uint64_t start = cl, end = cl + cs;
    uint64_t new_bm = 0xffffffffull;    /* extended: every subcluster written */
    if (ext && !old_has_host) {
        /* Only the touched subclusters; the rest keep their state. */
        unsigned sb = q->subcluster_bits;
        unsigned s0 = (unsigned)((pos - cl) >> sb), s1 = (unsigned)((pos + n - 1 - cl) >> sb);
        start = cl + ((uint64_t)s0 << sb);
        end = cl + ((uint64_t)(s1 + 1) << sb);
        uint64_t span = sc_bits(s0, s1);
        new_bm = ((bm & 0xffffffffull) | span) | (((bm >> 32) & ~span) << 32);
    }
    /* What the untouched part reads now: zeros without looking, when
     * nothing is allocated here and nothing lies below. */
    bool known_zero = !old_has_host && (!q->has_backing || (!ext && (old & QCOW2_OFLAG_ZERO)));
    int r = QB_OK;
    if (!known_zero) {
        r = read_current(w, cl, start, pos, err);
        if (!r)
            r = read_current(w, cl, pos + n, end, err);
        if (r)
            return r;
    }
    uint64_t host = reuse;
    if (!host) {
        r = qcow2_alloc_clusters(q, 1, &host, err);
        if (r)
            return r;
    }
    uint64_t from = start, to = end;
    bool fresh = !reuse && host >= q->written_end && !q->crypto;
    if (fresh && (known_zero || (all_zero(w->bounce + (start - cl), pos - start) &&
                                 all_zero(w->bounce + (pos + n - cl), end - (pos + n))))) {
        /* A new cluster past everything ever written reads as zeros
         * already: only the sectors holding guest data need writing. */
        from = pos & ~511ull;
        to = (pos + n + 511) & ~511ull;
        if (from < start)
            from = start;
        if (to > end)
            to = end;
        if (known_zero) {
            memset(w->bounce + (from - cl), 0, (size_t)(pos - from));
            memset(w->bounce + (pos + n - cl), 0, (size_t)(to - (pos + n)));
        }
    } else if (known_zero) {
        memset(w->bounce + (start - cl), 0, (size_t)(pos - start));
        memset(w->bounce + (pos + n - cl), 0, (size_t)(end - (pos + n)));
    }
    memcpy(w->bounce + (pos - cl), buf, (size_t)n);
    r = data_write(q, host + (from - cl), from, w->bounce + (from - cl), to - from, err);
    if (r)
        return r;
    l2_set(q, t, idx, host | QCOW2_OFLAG_COPIED, ext ? new_bm : 0);
    qcow2_cache_mark_dirty(&q->l2_cache, t);
    if (!reuse && old_has_host)
        return qcow2_free_l2_entry_later(q, old, err);
    return QB_OK;
}

/* A write into subclusters of a cluster this image owns (extended L2). */
static int ext_in_place(wctx *w, uint8_t *t, uint64_t idx, uint64_t cl, uint64_t pos,
                        uint64_t n, const uint8_t *buf, uint64_t host, qb_err *err)
{
    qcow2 *q = w->q;
    unsigned sb = q->subcluster_bits;
    unsigned s0 = (unsigned)((pos - cl) >> sb), s1 = (unsigned)((pos + n - 1 - cl) >> sb);
    uint64_t start = cl + ((uint64_t)s0 << sb), end = cl + ((uint64_t)(s1 + 1) << sb);
    const uint8_t *src = buf;
    if (start != pos || end != pos + n) {
        int r = read_current(w, cl, start, pos, err);
        if (!r)
            r = read_current(w, cl, pos + n, end, err);
        if (r)
            return r;
        memcpy(w->bounce + (pos - cl), buf, (size_t)n);
        src = w->bounce + (start - cl);
    }
    int r = data_write(q, host + (start - cl), start, src, end - start, err);
    if (r)
        return r;
    uint64_t bm = l2_bitmap(q, t, idx);
    uint64_t span = sc_bits(s0, s1);
    uint64_t nbm = ((bm & 0xffffffffull) | span) | (((bm >> 32) & ~span) << 32);
    if (nbm != bm) {
        l2_set(q, t, idx, l2_entry(q, t, idx), nbm);
        qcow2_cache_mark_dirty(&q->l2_cache, t);
    }
    return QB_OK;
}

static bool owned_data(uint64_t e)
{
    return !(e & QCOW2_OFLAG_COMPRESSED) && (e & QCOW2_L2E_OFFSET_MASK) &&
           (e & QCOW2_OFLAG_COPIED);
}

static int check_host(qcow2 *q, uint64_t host, uint64_t l2off, uint64_t idx, qb_err *err)
{
    if (qcow2_offset_into_cluster(q, host) || host == 0)
        return qcow2_mark_corrupt(q, err,
                                  "L2 table at offset %#llx, entry %llu: data cluster offset "
                                  "%#llx is invalid",
                                  (unsigned long long)l2off, (unsigned long long)idx,
                                  (unsigned long long)host);
    return QB_OK;
}

/* [off, off+len) inside one L2 table's range. */
static int write_in_table(wctx *w, uint64_t off, const uint8_t *buf, uint64_t len, qb_err *err)
{
    qcow2 *q = w->q;
    uint32_t cbits = q->h.cluster_bits;
    uint64_t cs = q->cluster_size;
    bool ext = q->l2_entry_size == 16;
    uint64_t l1i = off >> (cbits + q->l2_bits);
    uint8_t *t;
    int r = l2_for_write(q, l1i, &t, err);
    if (r)
        return r;
    uint64_t l2off = q->l1[l1i] & QCOW2_L1E_OFFSET_MASK;
    uint64_t pos = off, end = off + len;
    while (pos < end && !r) {
        uint64_t idx = (pos >> cbits) & (q->l2_entries - 1);
        uint64_t cl = pos & ~(cs - 1);
        uint64_t n = end - pos < cs - (pos - cl) ? end - pos : cs - (pos - cl);
        uint64_t e = l2_entry(q, t, idx);
        uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
        if (owned_data(e)) {
            r = check_host(q, host, l2off, idx, err);
            if (r)
                break;
            if (ext) {
                r = ext_in_place(w, t, idx, cl, pos, n, buf, host, err);
            } else if (e & QCOW2_OFLAG_ZERO) {
                r = cow_write(w, t, idx, cl, pos, n, buf, host, err);
            } else {
                /* Overwrite in place, as far as the host clusters run on. */
                uint64_t k = n, next = host + cs;
                while (pos + k < end && ((pos + k) >> cbits & (q->l2_entries - 1)) != 0) {
                    uint64_t e2 = l2_entry(q, t, idx + (k + (pos - cl)) / cs);
                    if (!owned_data(e2) || (e2 & QCOW2_OFLAG_ZERO) ||
                        (e2 & QCOW2_L2E_OFFSET_MASK) != next)
                        break;
                    k += end - (pos + k) < cs ? end - (pos + k) : cs;
                    next += cs;
                }
                r = data_write(q, host + (pos - cl), pos, buf, k, err);
                n = k;
            }
        } else if (pos == cl && n == cs) {
            /* Whole clusters that need new space: one allocation, one write. */
            uint64_t k = 1;
            while (pos + (k + 1) * cs <= end && idx + k < q->l2_entries &&
                   !owned_data(l2_entry(q, t, idx + k)))
                k++;
            uint64_t nh;
            r = qcow2_alloc_clusters(q, k, &nh, err);
            if (!r)
                r = data_write(q, nh, pos, buf, k * cs, err);
            for (uint64_t i = 0; i < k && !r; i++) {
                uint64_t old = l2_entry(q, t, idx + i);
                l2_set(q, t, idx + i, (nh + i * cs) | QCOW2_OFLAG_COPIED,
                       ext ? 0xffffffffull : 0);
                r = qcow2_free_l2_entry_later(q, old, err);
            }
            qcow2_cache_mark_dirty(&q->l2_cache, t);
            n = k * cs;
        } else {
            r = cow_write(w, t, idx, cl, pos, n, buf, 0, err);
        }
        pos += n;
        buf += n;
    }
    qcow2_cache_unpin(&q->l2_cache, t);
    return r;
}

static int begin(qcow2 *q, wctx *w, qcow2_fill_fn fill, void *fill_ctx, qb_err *err)
{
    if (!q->writable)
        return qb_err_set(err, QB_EROFS, "%s: image is read-only", q->filename);
    int r = qcow2_prepare_write(q, err);
    if (r)
        return r;
    forget_read_ahead(q);
    w->q = q;
    w->fill = fill;
    w->fill_ctx = fill_ctx;
    w->bounce = qb_malloc(&q->alloc, (size_t)q->cluster_size);
    if (!w->bounce)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for a cluster buffer", q->filename);
    return QB_OK;
}

static int finish(wctx *w, int r, qb_err *err)
{
    qcow2 *q = w->q;
    qb_free(&q->alloc, w->bounce);
    if (!r && (q->writethrough || q->nb_frees >= PENDING_FREES_FLUSH)) {
        r = qcow2_flush_meta(q, err);
        if (!r && q->writethrough) {
            q->need_sync = true;
            r = qcow2_sync(q, err);
        }
    }
    return r;
}

int qcow2_write(qcow2 *q, uint64_t off, const uint8_t *buf, size_t len, qcow2_fill_fn fill,
                void *fill_ctx, qb_err *err)
{
    wctx w;
    int r = begin(q, &w, fill, fill_ctx, err);
    if (r)
        return r;
    uint64_t table_bytes = q->cluster_size << q->l2_bits;
    while (len && !r) {
        uint64_t n = table_bytes - (off & (table_bytes - 1));
        if (n > len)
            n = len;
        r = write_in_table(&w, off, buf, n, err);
        off += n;
        buf += n;
        len -= (size_t)n;
    }
    return finish(&w, r, err);
}

/* Whole-cluster zeroing and discarding change entries only. */
typedef enum {
    OP_ZERO,
    OP_DISCARD,         /* reads zeros (v3) or the backing file (v2) */
    OP_UNMAP,           /* unallocated: reads the backing file */
} entry_op;

static int change_entries(wctx *w, uint64_t off, uint64_t len, entry_op op, bool has_backing,
                          qb_err *err)
{
    qcow2 *q = w->q;
    uint32_t cbits = q->h.cluster_bits;
    uint64_t cs = q->cluster_size;
    bool ext = q->l2_entry_size == 16;
    uint64_t l1i = off >> (cbits + q->l2_bits);
    if (op != OP_ZERO && !(q->l1[l1i] & QCOW2_L1E_OFFSET_MASK) && (!has_backing || op == OP_UNMAP))
        return QB_OK;   /* nothing there to drop */
    uint8_t *t;
    int r = l2_for_write(q, l1i, &t, err);
    if (r)
        return r;
    for (uint64_t pos = off; pos < off + len && !r; pos += cs) {
        uint64_t idx = (pos >> cbits) & (q->l2_entries - 1);
        uint64_t e = l2_entry(q, t, idx), bm = l2_bitmap(q, t, idx);
        bool compressed = e & QCOW2_OFLAG_COMPRESSED;
        bool allocated = compressed || (e & QCOW2_L2E_OFFSET_MASK);
        uint64_t ne, nbm = 0;
        bool keep_host = false;
        if (op == OP_ZERO && !compressed && owned_data(e) && (ext || q->h.version >= 3)) {
            keep_host = true;   /* stays allocated, reads as zeros */
            ne = ext ? e : e | QCOW2_OFLAG_ZERO;
            nbm = ext ? 0xffffffffull << 32 : 0;
        } else if (op == OP_DISCARD && !has_backing && !allocated) {
            continue;           /* unallocated or zero, no backing: reads zeros */
        } else if (op == OP_UNMAP) {
            ne = 0;
            nbm = 0;
        } else if (ext) {
            ne = 0;
            nbm = 0xffffffffull << 32;
        } else {
            ne = q->h.version >= 3 ? QCOW2_OFLAG_ZERO : 0;
        }
        if (ne == e && nbm == bm)
            continue;
        l2_set(q, t, idx, ne, nbm);
        qcow2_cache_mark_dirty(&q->l2_cache, t);
        if (allocated && !keep_host)
            r = qcow2_free_l2_entry_later(q, e, err);
    }
    qcow2_cache_unpin(&q->l2_cache, t);
    return r;
}

static int for_each_table(wctx *w, uint64_t off, uint64_t len, entry_op op, bool has_backing,
                          qb_err *err)
{
    uint64_t table_bytes = w->q->cluster_size << w->q->l2_bits;
    int r = QB_OK;
    while (len && !r) {
        uint64_t n = table_bytes - (off & (table_bytes - 1));
        if (n > len)
            n = len;
        r = change_entries(w, off, n, op, has_backing, err);
        off += n;
        len -= n;
    }
    return r;
}

/* Extended L2: whole subclusters inside one cluster become zero. */
static int zero_subclusters(wctx *w, uint64_t off, uint64_t len, qb_err *err)
{
    qcow2 *q = w->q;
    uint64_t cl = off & ~(q->cluster_size - 1);
    uint64_t l1i = off >> (q->h.cluster_bits + q->l2_bits);
    uint8_t *t;
    int r = l2_for_write(q, l1i, &t, err);
    if (r)
        return r;
    uint64_t idx = (off >> q->h.cluster_bits) & (q->l2_entries - 1);
    uint64_t e = l2_entry(q, t, idx), bm = l2_bitmap(q, t, idx);
    unsigned sb = q->subcluster_bits;
    unsigned s0 = (unsigned)((off - cl) >> sb), s1 = (unsigned)((off + len - 1 - cl) >> sb);
    uint64_t span = sc_bits(s0, s1);
    if (e & QCOW2_OFLAG_COMPRESSED) {
        /* No subclusters in a compressed cluster: write the zeros. */
        qcow2_cache_unpin(&q->l2_cache, t);
        memset(w->bounce, 0, (size_t)len);
        return write_in_table(w, off, w->bounce, len, err);
    }
    if ((e & QCOW2_L2E_OFFSET_MASK) && !(e & QCOW2_OFLAG_COPIED)) {
        /* Shared: the other subclusters' data must move to a cluster of our
         * own first; writing zeros does exactly that. */
        qcow2_cache_unpin(&q->l2_cache, t);
        uint8_t *zeros = qb_zalloc(&q->alloc, (size_t)len);
        if (!zeros)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
        r = write_in_table(w, off, zeros, len, err);
        qb_free(&q->alloc, zeros);
        return r;
    }
    uint64_t nbm = (bm & 0xffffffffull & ~span) | (((bm >> 32) | span) << 32);
    if (nbm != bm) {
        l2_set(q, t, idx, e, nbm);
        qcow2_cache_mark_dirty(&q->l2_cache, t);
    }
    qcow2_cache_unpin(&q->l2_cache, t);
    return QB_OK;
}

static int write_zero_bytes(wctx *w, uint64_t off, uint64_t len, qb_err *err)
{
    uint64_t cs = w->q->cluster_size;
    uint64_t table_bytes = cs << w->q->l2_bits;
    uint8_t *zeros = qb_zalloc(&w->q->alloc, (size_t)cs);
    if (!zeros)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", w->q->filename);
    int r = QB_OK;
    while (len && !r) {
        uint64_t n = cs - (off & (cs - 1));
        uint64_t tn = table_bytes - (off & (table_bytes - 1));
        if (n > len)
            n = len;
        if (n > tn)
            n = tn;
        r = write_in_table(w, off, zeros, n, err);
        off += n;
        len -= n;
    }
    qb_free(&w->q->alloc, zeros);
    return r;
}

int qcow2_write_zeroes(qcow2 *q, uint64_t off, uint64_t len, bool has_backing,
                       qcow2_fill_fn fill, void *fill_ctx, qb_err *err)
{
    wctx w;
    int r = begin(q, &w, fill, fill_ctx, err);
    if (r)
        return r;
    uint64_t cs = q->cluster_size;
    bool can_mark = q->h.version >= 3 || !has_backing;
    uint64_t unit = q->l2_entry_size == 16 ? 1ull << q->subcluster_bits : cs;
    uint64_t a = (off + unit - 1) & ~(unit - 1);
    uint64_t b = (off + len) & ~(unit - 1);
    if (!can_mark || a >= b) {
        r = write_zero_bytes(&w, off, len, err);
        return finish(&w, r, err);
    }
    r = write_zero_bytes(&w, off, a - off, err);
    while (!r && a < b) {
        uint64_t whole_end = b & ~(cs - 1);
        if ((a & (cs - 1)) == 0 && whole_end > a) {
            r = for_each_table(&w, a, whole_end - a, OP_ZERO, has_backing, err);
            a = whole_end;
            continue;
        }
        /* Extended L2 only: whole subclusters inside one cluster. */
        uint64_t ce = (a & ~(cs - 1)) + cs;
        if (ce > b)
            ce = b;
        r = zero_subclusters(&w, a, ce - a, err);
        a = ce;
    }
    if (!r)
        r = write_zero_bytes(&w, b, off + len - b, err);
    return finish(&w, r, err);
}

int qcow2_discard(qcow2 *q, uint64_t off, uint64_t len, bool has_backing, qb_err *err)
{
    wctx w;
    int r = begin(q, &w, NULL, NULL, err);
    if (r)
        return r;
    uint64_t cs = q->cluster_size;
    uint64_t a = (off + cs - 1) & ~(cs - 1);
    uint64_t b = off + len >= q->size ? off + len : (off + len) & ~(cs - 1);
    /* Without zero flags, dropping a cluster would expose the backing
     * file's older data: QEMU ignores such discards, and so do we. */
    bool exposes_backing = q->h.version < 3 && has_backing;
    if (b > a && !exposes_backing)
        r = for_each_table(&w, a, b - a, OP_DISCARD, has_backing, err);
    return finish(&w, r, err);
}

int qcow2_make_empty(qcow2 *q, qb_err *err)
{
    wctx w;
    int r = begin(q, &w, NULL, NULL, err);
    if (!r)
        r = for_each_table(&w, 0, q->size, OP_UNMAP, true, err);
    return finish(&w, r, err);
}

int qcow2_write_compressed(qcow2 *q, uint64_t off, const uint8_t *buf, size_t len,
                           qcow2_fill_fn fill, void *fill_ctx, qb_err *err)
{
    uint64_t cs = q->cluster_size;
    if (qcow2_offset_into_cluster(q, off) || len > cs || (len < cs && off + len != q->size))
        return qb_err_set(err, QB_EINVAL,
                          "%s: a compressed write must cover one whole cluster (offset %llu, "
                          "%zu bytes)",
                          q->filename, (unsigned long long)off, len);
    if (q->h.crypt_method)
        /* QEMU would store the cluster in clear; qemu-img convert refuses. */
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: compressed clusters cannot be written into an encrypted image",
                          q->filename);
    wctx w;
    int r = begin(q, &w, fill, fill_ctx, err);
    if (r)
        return r;
    uint8_t *out = qb_malloc(&q->alloc, (size_t)cs);
    if (!out) {
        r = qb_err_set(err, QB_ENOMEM, "%s: no memory for compression", q->filename);
        return finish(&w, r, err);
    }
    memcpy(w.bounce, buf, len);
    memset(w.bounce + len, 0, (size_t)(cs - len));
    size_t clen = 0;
    r = qcow2_compress_cluster(q, w.bounce, (size_t)cs, out, (size_t)cs - 1, &clen, err);
    if (r == 1) {
        /* Incompressible: stored as a normal cluster, as QEMU does. */
        r = write_in_table(&w, off, buf, len, err);
    } else if (r == QB_OK) {
        uint64_t l1i = off >> (q->h.cluster_bits + q->l2_bits);
        uint8_t *t;
        r = l2_for_write(q, l1i, &t, err);
        if (!r) {
            uint64_t idx = (off >> q->h.cluster_bits) & (q->l2_entries - 1);
            uint64_t old = l2_entry(q, t, idx);
            uint64_t coff;
            r = qcow2_alloc_bytes(q, clen, &coff, err);
            if (!r)
                r = data_write(q, coff, off, out, clen, err);
            if (!r) {
                uint64_t nsec = ((coff + clen - 1) >> 9) - (coff >> 9);
                l2_set(q, t, idx, QCOW2_OFLAG_COMPRESSED | (nsec << q->csize_shift) | coff, 0);
                qcow2_cache_mark_dirty(&q->l2_cache, t);
                if ((old & QCOW2_OFLAG_COMPRESSED) || (old & QCOW2_L2E_OFFSET_MASK))
                    r = qcow2_free_l2_entry_later(q, old, err);
            }
            qcow2_cache_unpin(&q->l2_cache, t);
        }
    }
    qb_free(&q->alloc, out);
    return finish(&w, r, err);
}
