/*
 * Structural changes: internal snapshots (create, apply, delete) and the
 * rebuilding of refcounts (check -r, dirty images).
 *
 * These change refcounts and COPIED flags all over the image, and
 * `qemu-img check` calls any disagreement between a COPIED flag and its
 * refcount corruption, so no order of in-place updates is crash-safe.
 * Instead a new generation of metadata is written beside the old one,
 * into space past everything in use: the active L1 table, copies of the
 * L2 tables whose COPIED flags change, the snapshot table, and a complete
 * new refcount table with its blocks, counted from the tables themselves.
 * One write of the header (bytes 24..72, inside one sector) then switches
 * from the old generation to the new. A crash before it leaves the old
 * image untouched (the new tables are unreferenced space past its end);
 * after it, the old tables are free space of the new image.
 */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"

typedef struct gen {
    qcow2 *q;
    uint64_t old_end;       /* everything of the old generation lies below */
    uint64_t bump;          /* next free byte for new tables */
    uint32_t *rc;           /* computed refcount per cluster */
    uint64_t rc_len;
    uint8_t *table;         /* one cluster of scratch */
} gen;

typedef struct l1_ref {
    uint64_t offset;        /* on disk; 0 for the new active table */
    const uint64_t *entries;/* in memory (host order), or NULL: read from offset */
    uint32_t size;
} l1_ref;

static int count(gen *g, uint64_t off, uint64_t len, const char *what, qb_err *err)
{
    qcow2 *q = g->q;
    if (!len)
        return QB_OK;
    uint64_t end = off + len;
    if (end < off || end > g->bump)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: %s at offset %#llx lies past the end of the image's data",
                          q->filename, what, (unsigned long long)off);
    uint64_t first = off >> q->h.cluster_bits, last = (end - 1) >> q->h.cluster_bits;
    if (last >= g->rc_len) {
        uint64_t n = (g->bump >> q->h.cluster_bits) + 1;
        uint32_t *rc = qb_zalloc(&q->alloc, (size_t)n * 4);
        if (!rc)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for the refcount rebuild",
                              q->filename);
        if (g->rc_len)
            memcpy(rc, g->rc, (size_t)g->rc_len * 4);
        qb_free(&q->alloc, g->rc);
        g->rc = rc;
        g->rc_len = n;
    }
    for (uint64_t c = first; c <= last; c++) {
        if (g->rc[c] == UINT32_MAX)
            return qb_err_set(err, QB_EUNSUPP, "%s: refcount overflow", q->filename);
        g->rc[c]++;
    }
    return QB_OK;
}

static uint32_t rc_of(const gen *g, uint64_t off)
{
    uint64_t c = off >> g->q->h.cluster_bits;
    return c < g->rc_len ? g->rc[c] : 0;
}

static int read_table(gen *g, uint64_t off, uint8_t *buf, qb_err *err)
{
    qcow2 *q = g->q;
    if (qcow2_offset_into_cluster(q, off) || off + q->cluster_size > g->bump)
        return qb_err_set(err, QB_ECORRUPT, "%s: table offset %#llx is invalid", q->filename,
                          (unsigned long long)off);
    int r = qb_backend_read(q->file, off, buf, (size_t)q->cluster_size, err);
    return r ? qb_err_prefix(err, "%s: reading table at %#llx: ", q->filename,
                             (unsigned long long)off)
             : QB_OK;
}

/* Counts what one L2 table references. */
static int count_l2_entries(gen *g, const uint8_t *t, qb_err *err)
{
    qcow2 *q = g->q;
    for (uint32_t j = 0; j < q->l2_entries; j++) {
        uint64_t e = qb_be64(t + (size_t)j * q->l2_entry_size);
        int r = QB_OK;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            uint64_t coff = e & q->coffset_mask;
            uint64_t nsec = ((e >> q->csize_shift) & q->csize_mask) + 1;
            r = count(g, coff, nsec * 512 - (coff & 511), "compressed data", err);
        } else if (e & QCOW2_L2E_OFFSET_MASK) {
            uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
            if (qcow2_offset_into_cluster(q, host))
                return qb_err_set(err, QB_ECORRUPT,
                                  "%s: data cluster offset %#llx is not cluster aligned",
                                  q->filename, (unsigned long long)host);
            r = count(g, host, q->cluster_size, "data cluster", err);
        }
        if (r)
            return r;
    }
    return QB_OK;
}

static uint64_t l1_entry_at(const l1_ref *l1, const uint8_t *raw, uint32_t i)
{
    return l1->entries ? l1->entries[i] : qb_be64(raw + (size_t)i * 8);
}

/* Counts an L1 table's L2 tables and what they reference (and, with
 * count_self, the L1 table's own clusters). */
static int count_l1(gen *g, const l1_ref *l1, bool count_self, qb_err *err)
{
    qcow2 *q = g->q;
    uint8_t *raw = NULL;
    int r = QB_OK;
    if (!l1->entries && l1->size) {
        raw = qb_malloc(&q->alloc, (size_t)l1->size * 8);
        if (!raw)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for an L1 table", q->filename);
        r = qb_backend_read(q->file, l1->offset, raw, (size_t)l1->size * 8, err);
    }
    if (!r && count_self)
        r = count(g, l1->offset, (uint64_t)l1->size * 8, "L1 table", err);
    for (uint32_t i = 0; i < l1->size && !r; i++) {
        uint64_t off = l1_entry_at(l1, raw, i) & QCOW2_L1E_OFFSET_MASK;
        if (!off)
            continue;
        r = count(g, off, q->cluster_size, "L2 table", err);
        if (!r)
            r = read_table(g, off, g->table, err);
        if (!r)
            r = count_l2_entries(g, g->table, err);
    }
    qb_free(&q->alloc, raw);
    return r;
}

static void bump_alloc(gen *g, uint64_t bytes, uint64_t *off)
{
    uint64_t cs = g->q->cluster_size;
    *off = g->bump;
    g->bump += (bytes + cs - 1) & ~(cs - 1);
}

static int write_new(gen *g, uint64_t off, const void *buf, size_t len, const char *what,
                     qb_err *err)
{
    int r = qcow2_pwrite(g->q, g->q->file, off, buf, len, err);
    if (r)
        return qcow2_write_failed(g->q, err, "writing new %s at offset %#llx", what,
                                  (unsigned long long)off);
    g->q->need_sync = true;
    return QB_OK;
}

/* Gives every active L2 table COPIED flags that match the refcounts of
 * pass one, copying the tables that change (never edited in place). */
static int fix_copied_flags(gen *g, uint64_t *l1, uint32_t l1_size, qb_err *err)
{
    qcow2 *q = g->q;
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t off = l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!off)
            continue;
        int r = read_table(g, off, g->table, err);
        if (r)
            return r;
        bool changed = false;
        for (uint32_t j = 0; j < q->l2_entries; j++) {
            uint8_t *p = g->table + (size_t)j * q->l2_entry_size;
            uint64_t e = qb_be64(p), ne = e;
            if (e & QCOW2_OFLAG_COMPRESSED)
                ne = e & ~QCOW2_OFLAG_COPIED;
            else if (e & QCOW2_L2E_OFFSET_MASK)
                ne = rc_of(g, e & QCOW2_L2E_OFFSET_MASK) == 1 ? e | QCOW2_OFLAG_COPIED
                                                               : e & ~QCOW2_OFLAG_COPIED;
            if (ne != e) {
                qb_put_be64(p, ne);
                changed = true;
            }
        }
        if (!changed)
            continue;
        uint64_t noff;
        bump_alloc(g, q->cluster_size, &noff);
        r = write_new(g, noff, g->table, (size_t)q->cluster_size, "L2 table", err);
        if (r)
            return r;
        l1[i] = noff;
    }
    return QB_OK;
}

typedef struct gen_plan {
    uint64_t *l1;               /* new active L1 (host order), owned by the caller */
    uint32_t l1_size;
    uint64_t size;              /* virtual size */
    const qcow2_snapshot *snaps;/* snapshots of the new generation */
    uint32_t nb_snaps;
    uint64_t snap_table_offset; /* where their table is (already written) */
    uint64_t snap_table_size;
    bool leaks_only;            /* repair: lower refcounts only, keep flags */
} gen_plan;

/* Leaks-only repair keeps refcounts that are too low (as `qemu-img check
 * -r leaks` leaves corruptions alone): the old value where it is smaller. */
static int keep_low_refcounts(gen *g, qb_err *err)
{
    qcow2 *q = g->q;
    uint64_t end = g->old_end >> q->h.cluster_bits;
    for (uint64_t c = 0; c < end && c < g->rc_len; c++) {
        uint64_t old;
        int r = qcow2_get_refcount(q, c, &old, err);
        if (r)
            return r;
        if (old < g->rc[c])
            g->rc[c] = (uint32_t)old;
    }
    return QB_OK;
}

/* Counts the new generation, writes its L1 table and refcount structure
 * and switches the header to it. */
static int build_and_switch(gen *g, gen_plan *p, qb_err *err)
{
    qcow2 *q = g->q;
    uint64_t cs = q->cluster_size;
    /* Pass one: data and L2 refcounts, for the COPIED flags. */
    l1_ref active = { 0, p->l1, p->l1_size };
    int r = count_l1(g, &active, false, err);
    for (uint32_t i = 0; i < p->nb_snaps && !r; i++) {
        l1_ref s = { p->snaps[i].l1_offset, NULL, p->snaps[i].l1_size };
        r = count_l1(g, &s, false, err);
    }
    if (!r && !p->leaks_only)
        r = fix_copied_flags(g, p->l1, p->l1_size, err);
    if (r)
        return r;
    /* Pass two: everything, with the tables as they will be. */
    if (g->rc_len)
        memset(g->rc, 0, (size_t)g->rc_len * 4);
    uint64_t l1_off;
    bump_alloc(g, (uint64_t)p->l1_size * 8, &l1_off);
    active.offset = l1_off;
    r = count(g, 0, cs, "header", err);
    if (!r && q->h.crypt_method == 2 && q->has_crypto_ext)
        r = count(g, q->crypto_offset, q->crypto_length, "LUKS header", err);
    if (!r)
        r = count_l1(g, &active, true, err);
    for (uint32_t i = 0; i < p->nb_snaps && !r; i++) {
        l1_ref s = { p->snaps[i].l1_offset, NULL, p->snaps[i].l1_size };
        r = count_l1(g, &s, true, err);
    }
    if (!r && p->nb_snaps)
        r = count(g, p->snap_table_offset, p->snap_table_size, "snapshot table", err);
    if (r)
        return r;
    for (uint32_t i = 0; i < p->l1_size && !p->leaks_only; i++) {
        uint64_t off = p->l1[i] & QCOW2_L1E_OFFSET_MASK;
        p->l1[i] = off ? (rc_of(g, off) == 1 ? off | QCOW2_OFLAG_COPIED : off) : 0;
    }
    /* The refcount structure, sized so that it also counts itself. */
    uint64_t pbb = q->h.cluster_bits + 3 - q->h.refcount_order;
    uint64_t per_block = 1ull << pbb;
    uint64_t base = g->bump >> q->h.cluster_bits;
    uint64_t nt = 1, nb = 1;
    for (;;) {
        uint64_t total = base + nt + nb;
        uint64_t nb2 = (total + per_block - 1) / per_block;
        uint64_t nt2 = (nb2 * 8 + cs - 1) / cs;
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
        return qb_err_set(err, QB_EFULL, "%s: the refcount table would exceed %u MiB",
                          q->filename, QCOW2_MAX_REFTABLE_BYTES >> 20);
    uint64_t rt_off, rb_off;
    bump_alloc(g, nt * cs, &rt_off);
    bump_alloc(g, nb * cs, &rb_off);
    r = count(g, rt_off, nt * cs, "refcount table", err);
    if (!r)
        r = count(g, rb_off, nb * cs, "refcount blocks", err);
    if (r)
        return r;
    if (p->leaks_only) {
        r = keep_low_refcounts(g, err);
        if (r)
            return r;
    }
    uint64_t max = qcow2_refcount_max(q);
    for (uint64_t c = 0; c < g->rc_len; c++)
        if (g->rc[c] > max)
            return qb_err_set(err, QB_EUNSUPP,
                              "%s: cluster %#llx would need refcount %u, more than refcount_bits "
                              "%u allow",
                              q->filename, (unsigned long long)(c << q->h.cluster_bits),
                              g->rc[c], 1u << q->h.refcount_order);
    /* Write: L1, blocks, table; then the header. */
    uint64_t *newt = qb_zalloc(&q->alloc, (size_t)(nt * cs));
    if (!newt)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the refcount table", q->filename);
    uint8_t *l1be = qb_malloc(&q->alloc, (size_t)p->l1_size * 8 + 1);
    if (!l1be) {
        qb_free(&q->alloc, newt);
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the L1 table", q->filename);
    }
    for (uint32_t i = 0; i < p->l1_size; i++)
        qb_put_be64(l1be + (size_t)i * 8, p->l1[i]);
    r = p->l1_size ? write_new(g, l1_off, l1be, (size_t)p->l1_size * 8, "L1 table", err) : 0;
    qb_free(&q->alloc, l1be);
    for (uint64_t b = 0; b < nb && !r; b++) {
        memset(g->table, 0, (size_t)cs);
        for (uint64_t i = 0; i < per_block; i++) {
            uint64_t c = b * per_block + i;
            if (c < g->rc_len && g->rc[c])
                qcow2_set_refcount_entry(g->table, i, q->h.refcount_order, g->rc[c]);
        }
        newt[b] = rb_off + b * cs;
        r = write_new(g, rb_off + b * cs, g->table, (size_t)cs, "refcount block", err);
    }
    uint64_t entries = nt * cs / 8;
    if (!r) {
        uint8_t *be = qb_malloc(&q->alloc, (size_t)(nt * cs));
        if (!be) {
            r = qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
        } else {
            for (uint64_t i = 0; i < entries; i++)
                qb_put_be64(be + i * 8, newt[i]);
            r = write_new(g, rt_off, be, (size_t)(nt * cs), "refcount table", err);
            qb_free(&q->alloc, be);
        }
    }
    if (!r)
        r = qcow2_sync(q, err);
    if (!r) {
        uint8_t h[48];
        qb_put_be64(h, p->size);
        qb_put_be32(h + 8, q->h.crypt_method);
        qb_put_be32(h + 12, p->l1_size);
        qb_put_be64(h + 16, l1_off);
        qb_put_be64(h + 24, rt_off);
        qb_put_be32(h + 32, (uint32_t)nt);
        qb_put_be32(h + 36, p->nb_snaps);
        qb_put_be64(h + 40, p->nb_snaps ? p->snap_table_offset : 0);
        r = qcow2_pwrite(q, q->file, 24, h, sizeof(h), err);
        if (r)
            r = qcow2_write_failed(q, err, "switching the header to the new tables");
        else
            q->need_sync = true;
    }
    if (!r)
        r = qcow2_sync(q, err);
    if (r) {
        qb_free(&q->alloc, newt);
        return r;
    }
    /* The new generation is the image now: take it into memory. */
    q->h.size = p->size;
    q->size = p->size & ~511ull;
    q->h.l1_size = p->l1_size;
    q->h.l1_table_offset = l1_off;
    q->h.refcount_table_offset = rt_off;
    q->h.refcount_table_clusters = (uint32_t)nt;
    q->h.nb_snapshots = p->nb_snaps;
    q->h.snapshots_offset = p->nb_snaps ? p->snap_table_offset : 0;
    qb_free(&q->alloc, q->l1);
    q->l1 = p->l1;
    p->l1 = NULL;
    q->l1_size = q->h.l1_size;
    q->l1_offset = l1_off;
    qb_free(&q->alloc, q->reftable);
    q->reftable = newt;
    q->reftable_entries = entries;
    q->reftable_capacity = entries;
    q->reftable_used = nb;
    q->reftable_dirty = false;
    q->l1_dirty = false;
    q->nb_frees = 0;
    q->free_hint = 0;
    q->free_byte_offset = 0;
    q->alloc_end = g->bump;
    if (q->file_size < g->bump)
        q->file_size = g->bump;
    qcow2_cache_invalidate(&q->l2_cache);
    qcow2_cache_invalidate(&q->rb_cache);
    qcow2_free_snapshots(q);
    return qcow2_read_snapshots(q, err);
}

static int gen_begin(qcow2 *q, gen *g, qb_err *err)
{
    memset(g, 0, sizeof(*g));
    g->q = q;
    if (!q->writable)
        return qb_err_set(err, QB_EROFS, "%s: image is open read-only", q->filename);
    int r = qcow2_prepare_write(q, err);
    if (!r)
        r = qcow2_flush_meta(q, err);
    if (r)
        return r;
    uint64_t real;
    r = qb_backend_size(q->file, &real, err);
    if (r)
        return r;
    uint64_t end = real > q->alloc_end ? real : q->alloc_end;
    if (q->file_size > end)
        end = q->file_size;
    g->old_end = end;
    g->bump = (end + q->cluster_size - 1) & ~(q->cluster_size - 1);
    g->table = qb_malloc(&q->alloc, (size_t)q->cluster_size);
    if (!g->table)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    return QB_OK;
}

static void gen_end(gen *g, gen_plan *p)
{
    qb_free(&g->q->alloc, g->table);
    qb_free(&g->q->alloc, g->rc);
    if (p)
        qb_free(&g->q->alloc, p->l1);
}

static uint64_t *copy_l1(qcow2 *q, const uint64_t *src, uint32_t n)
{
    uint64_t *l1 = qb_malloc(&q->alloc, (size_t)n * 8 + 8);
    if (l1 && n)
        memcpy(l1, src, (size_t)n * 8);
    return l1;
}

/* The raw bytes of the current snapshot table (each entry's bytes as
 * stored, so extra data we do not interpret is kept). */
static int read_snapshot_table(qcow2 *q, uint8_t **tab, qb_err *err)
{
    *tab = NULL;
    if (!q->nb_snapshots)
        return QB_OK;
    *tab = qb_malloc(&q->alloc, (size_t)q->snapshots_size);
    if (!*tab)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the snapshot table", q->filename);
    int r = qb_backend_read(q->file, q->h.snapshots_offset, *tab, (size_t)q->snapshots_size, err);
    return r ? qb_err_prefix(err, "%s: reading snapshot table: ", q->filename) : QB_OK;
}

static uint64_t entry_len(const uint8_t *e)
{
    uint64_t len = 40 + (uint64_t)qb_be32(e + 36) + qb_be16(e + 12) + qb_be16(e + 14);
    return (len + 7) & ~7ull;
}

/* Writes a snapshot table made of the current one without entry `skip`
 * (UINT32_MAX: none) plus `extra` (NULL: none). */
static int write_snapshot_table(gen *g, uint32_t skip, const uint8_t *extra, uint64_t extra_len,
                                gen_plan *p, qb_err *err)
{
    qcow2 *q = g->q;
    uint8_t *old;
    int r = read_snapshot_table(q, &old, err);
    if (r)
        return r;
    uint64_t size = q->snapshots_size + extra_len;
    uint8_t *tab = qb_zalloc(&q->alloc, (size_t)size + 8);
    if (!tab) {
        qb_free(&q->alloc, old);
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the snapshot table", q->filename);
    }
    uint64_t in = 0, out = 0;
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        /* The table was checked at open, but the file may have changed
         * under it since (an image whose refcounts were wrong). */
        uint64_t len = q->snapshots_size - in >= 40 ? entry_len(old + in) : UINT64_MAX;
        if (len > q->snapshots_size - in) {
            qb_free(&q->alloc, old);
            qb_free(&q->alloc, tab);
            return qcow2_mark_corrupt(q, err, "snapshot table entry %u changed since the image "
                                              "was opened", i);
        }
        if (i != skip) {
            memcpy(tab + out, old + in, (size_t)len);
            out += len;
        }
        in += len;
    }
    if (extra) {
        memcpy(tab + out, extra, (size_t)extra_len);
        out += extra_len;
    }
    qb_free(&q->alloc, old);
    p->snap_table_size = out;
    if (out) {
        bump_alloc(g, out, &p->snap_table_offset);
        r = write_new(g, p->snap_table_offset, tab, (size_t)out, "snapshot table", err);
    } else {
        p->snap_table_offset = 0;
    }
    qb_free(&q->alloc, tab);
    return r;
}

/* Snapshot list of the new generation: the current one minus `skip`, plus
 * `add` (NULL: none). */
static qcow2_snapshot *snapshot_list(qcow2 *q, uint32_t skip, const qcow2_snapshot *add,
                                     uint32_t *n)
{
    qcow2_snapshot *s = qb_malloc(&q->alloc, ((size_t)q->nb_snapshots + 1) * sizeof(*s));
    if (!s)
        return NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        if (i != skip)
            s[k++] = q->snapshots[i];
    if (add)
        s[k++] = *add;
    *n = k;
    return s;
}

static int switch_with_snapshots(gen *g, gen_plan *p, uint32_t skip, const qcow2_snapshot *add,
                                 qb_err *err)
{
    qcow2 *q = g->q;
    qcow2_snapshot *list = snapshot_list(q, skip, add, &p->nb_snaps);
    if (!list)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    p->snaps = list;
    int r = build_and_switch(g, p, err);
    qb_free(&q->alloc, list);
    return r;
}

int qcow2_snapshot_create(qcow2 *q, const qcow2_new_snapshot *ns, qb_err *err)
{
    if (q->h.refcount_order == 0)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: snapshots need refcounts of more than 1 bit (refcount_bits=1)",
                          q->filename);
    size_t name_len = strlen(ns->name);
    if (!name_len || name_len > 65535)
        return qb_err_set(err, QB_EINVAL, "%s: snapshot name must be 1 to 65535 bytes",
                          q->filename);
    if (q->nb_snapshots >= QCOW2_MAX_SNAPSHOTS)
        return qb_err_set(err, QB_EFULL, "%s: too many snapshots", q->filename);
    /* The id: one more than the largest numeric id, as QEMU picks it. */
    uint64_t max_id = 0;
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        uint64_t v = 0;
        const char *s = q->snapshots[i].id;
        while (*s >= '0' && *s <= '9' && v < (1ull << 50))
            v = v * 10 + (uint64_t)(*s++ - '0');
        if (v > max_id)
            max_id = v;
    }
    char id[24];
    int idn = 0;
    {
        char rev[24];
        uint64_t v = max_id + 1;
        do {
            rev[idn++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        for (int i = 0; i < idn; i++)
            id[i] = rev[idn - 1 - i];
        id[idn] = '\0';
    }
    gen g;
    gen_plan p;
    memset(&p, 0, sizeof(p));
    int r = gen_begin(q, &g, err);
    if (r) {
        gen_end(&g, NULL);
        return r;
    }
    /* The current active L1 table, unchanged on disk, becomes the
     * snapshot's; the new active table is a copy of it. */
    uint64_t elen = (40 + 24 + (uint64_t)idn + name_len + 7) & ~7ull;
    uint8_t *e = qb_zalloc(&q->alloc, (size_t)elen);
    p.l1 = copy_l1(q, q->l1, q->l1_size);
    if (!e || !p.l1) {
        qb_free(&q->alloc, e);
        gen_end(&g, &p);
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    }
    p.l1_size = q->l1_size;
    p.size = q->h.size;
    qb_put_be64(e, q->l1_offset);
    qb_put_be32(e + 8, q->l1_size);
    e[12] = (uint8_t)(idn >> 8);
    e[13] = (uint8_t)idn;
    e[14] = (uint8_t)(name_len >> 8);
    e[15] = (uint8_t)name_len;
    qb_put_be32(e + 16, (uint32_t)ns->date_sec);
    qb_put_be32(e + 20, ns->date_nsec);
    qb_put_be32(e + 36, 24);                    /* extra data: three 64-bit fields */
    qb_put_be64(e + 48, q->h.size);             /* disk size */
    qb_put_be64(e + 56, UINT64_MAX);            /* icount: none */
    memcpy(e + 64, id, (size_t)idn);
    memcpy(e + 64 + idn, ns->name, name_len);
    qcow2_snapshot add;
    memset(&add, 0, sizeof(add));
    add.l1_offset = q->l1_offset;
    add.l1_size = q->l1_size;
    r = write_snapshot_table(&g, UINT32_MAX, e, elen, &p, err);
    qb_free(&q->alloc, e);
    if (!r)
        r = switch_with_snapshots(&g, &p, UINT32_MAX, &add, err);
    gen_end(&g, &p);
    return r;
}

static int find_index(qcow2 *q, const char *key, uint32_t *idx, qb_err *err)
{
    const qcow2_snapshot *sn = qcow2_find_snapshot(q, key);
    if (!sn)
        return qb_err_set(err, QB_ENOENT, "%s: no snapshot with id or name '%s'", q->filename,
                          key);
    *idx = (uint32_t)(sn - q->snapshots);
    return QB_OK;
}

int qcow2_snapshot_delete(qcow2 *q, const char *key, qb_err *err)
{
    uint32_t idx = 0;
    int r = find_index(q, key, &idx, err);
    if (r)
        return r;
    gen g;
    gen_plan p;
    memset(&p, 0, sizeof(p));
    r = gen_begin(q, &g, err);
    if (!r) {
        p.l1 = copy_l1(q, q->l1, q->l1_size);
        p.l1_size = q->l1_size;
        p.size = q->h.size;
        r = p.l1 ? write_snapshot_table(&g, idx, NULL, 0, &p, err)
                 : qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    }
    if (!r)
        r = switch_with_snapshots(&g, &p, idx, NULL, err);
    gen_end(&g, &p);
    return r;
}

int qcow2_snapshot_apply(qcow2 *q, const char *key, qb_err *err)
{
    uint32_t idx = 0;
    int r = find_index(q, key, &idx, err);
    if (r)
        return r;
    const qcow2_snapshot *sn = &q->snapshots[idx];
    uint64_t bytes_per_l1 = q->cluster_size << q->l2_bits;
    if (sn->disk_size > (1ull << 62) ||
        (sn->disk_size + bytes_per_l1 - 1) / bytes_per_l1 > sn->l1_size)
        return qb_err_set(err, QB_ECORRUPT, "%s: snapshot '%s': L1 table too small for its disk",
                          q->filename, sn->name);
    gen g;
    gen_plan p;
    memset(&p, 0, sizeof(p));
    r = gen_begin(q, &g, err);
    if (!r) {
        uint64_t *l1;
        char what[64] = "snapshot L1 table";
        r = qcow2_read_l1(q, sn->l1_offset, sn->l1_size, &l1, what, err);
        if (!r) {
            p.l1 = copy_l1(q, l1, sn->l1_size);
            qb_free(&q->alloc, l1);
            if (!p.l1)
                r = qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
        }
        p.l1_size = sn->l1_size;
        p.size = sn->disk_size;
        p.snap_table_offset = q->h.snapshots_offset;
        p.snap_table_size = q->snapshots_size;
    }
    if (!r) {
        /* The snapshot table is unchanged (kept in place). */
        r = switch_with_snapshots(&g, &p, UINT32_MAX, NULL, err);
    }
    gen_end(&g, &p);
    return r;
}

/* Whether some cluster of the image as it is has a refcount below its
 * references (what a leaks-only repair must leave alone). */
static int has_low_refcounts(qcow2 *q, uint64_t old_end, bool *low, qb_err *err)
{
    gen g;
    memset(&g, 0, sizeof(g));
    g.q = q;
    g.old_end = old_end;
    g.bump = (old_end + q->cluster_size - 1) & ~(q->cluster_size - 1);
    g.table = qb_malloc(&q->alloc, (size_t)q->cluster_size);
    if (!g.table)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    l1_ref active = { q->l1_offset, q->l1, q->l1_size };
    int r = count(&g, 0, q->cluster_size, "header", err);
    if (!r)
        r = count_l1(&g, &active, true, err);
    for (uint32_t i = 0; i < q->nb_snapshots && !r; i++) {
        l1_ref s = { q->snapshots[i].l1_offset, NULL, q->snapshots[i].l1_size };
        r = count_l1(&g, &s, true, err);
    }
    if (!r && q->nb_snapshots)
        r = count(&g, q->h.snapshots_offset, q->snapshots_size, "snapshot table", err);
    if (!r)
        r = count(&g, q->h.refcount_table_offset,
                  (uint64_t)q->h.refcount_table_clusters << q->h.cluster_bits, "refcount table",
                  err);
    for (uint64_t i = 0; i < q->reftable_entries && !r; i++)
        if (q->reftable[i] & QCOW2_REFT_OFFSET_MASK)
            r = count(&g, q->reftable[i] & QCOW2_REFT_OFFSET_MASK, q->cluster_size,
                      "refcount block", err);
    *low = false;
    for (uint64_t c = 0; c < g.rc_len && !r && !*low; c++) {
        uint64_t old;
        r = qcow2_get_refcount(q, c, &old, err);
        *low = !r && old < g.rc[c];
    }
    gen_end(&g, NULL);
    return r;
}

int qcow2_repair(qcow2 *q, int mode, qb_err *err)
{
    gen g;
    gen_plan p;
    memset(&p, 0, sizeof(p));
    if (mode == QB_REPAIR_LEAKS) {
        /* As qemu-img: with no refcount too low, lowering the others makes
         * them exact, and COPIED flags are then safe to repair too. */
        int r = qcow2_prepare_write(q, err);
        if (!r)
            r = qcow2_flush_meta(q, err);
        uint64_t real = 0;
        if (!r)
            r = qb_backend_size(q->file, &real, err);
        if (!r)
            r = has_low_refcounts(q, real > q->alloc_end ? real : q->alloc_end, &p.leaks_only,
                                  err);
        if (r)
            return r;
    }
    int r = gen_begin(q, &g, err);
    if (!r) {
        p.l1 = copy_l1(q, q->l1, q->l1_size);
        p.l1_size = q->l1_size;
        p.size = q->h.size;
        p.snap_table_offset = q->h.snapshots_offset;
        p.snap_table_size = q->snapshots_size;
        if (!p.l1)
            r = qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    }
    if (!r)
        r = switch_with_snapshots(&g, &p, UINT32_MAX, NULL, err);
    gen_end(&g, &p);
    return r;
}
