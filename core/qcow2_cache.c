/*
 * A small cache of metadata tables (one cluster each: L2 tables, refcount
 * blocks), least recently used out. Sequential access touches the same
 * table many times in a row, so the last hit is tried first. The slots are
 * few (8 MiB / cluster size at most, and at least 2), so a linear scan
 * beats a hash table here.
 *
 * Writing makes entries dirty. A dirty entry may only reach the file in
 * the order qcow2_flush.c keeps (refcounts before the L2 entries that need
 * them), so evicting one runs the whole ordered flush first; inside that
 * flush (q->in_flush) victims are written back directly. Entries in use
 * across calls that may load other tables are pinned.
 */
#include <string.h>
#include "qcow2.h"

int qcow2_cache_init(qcow2_cache *c, const qb_alloc *a, size_t table_size, size_t total_bytes)
{
    size_t count = total_bytes / table_size;
    if (count < 4)
        count = 4;
    if (count > 4096)
        count = 4096;
    c->entries = qb_zalloc(a, count * sizeof(*c->entries));
    if (!c->entries)
        return QB_ENOMEM;
    c->count = count;
    c->table_size = table_size;
    c->clock = 0;
    c->last_hit = 0;
    return QB_OK;
}

void qcow2_cache_free(qcow2_cache *c, const qb_alloc *a)
{
    if (!c->entries)
        return;
    for (size_t i = 0; i < c->count; i++)
        qb_free(a, c->entries[i].table);
    qb_free(a, c->entries);
    c->entries = NULL;
}

void qcow2_cache_invalidate(qcow2_cache *c)
{
    if (!c->entries)
        return;
    for (size_t i = 0; i < c->count; i++) {
        c->entries[i].offset = 0;
        c->entries[i].dirty = false;
        c->entries[i].pins = 0;
    }
}

static qcow2_cache_entry *find(qcow2_cache *c, uint64_t offset)
{
    qcow2_cache_entry *e = &c->entries[c->last_hit];
    if (e->table && e->offset == offset)
        return e;
    for (size_t i = 0; i < c->count; i++) {
        e = &c->entries[i];
        if (e->table && e->offset == offset) {
            c->last_hit = i;
            return e;
        }
    }
    return NULL;
}

/* Picks a slot for a new table: the oldest unpinned one, written back
 * first if dirty. */
static int victim(qcow2 *q, qcow2_cache *c, qcow2_cache_entry **out, qb_err *err)
{
    size_t best = c->count;
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < c->count; i++) {
        qcow2_cache_entry *e = &c->entries[i];
        if (e->pins)
            continue;
        uint64_t age = (e->table && e->offset) ? e->lru : 0;
        if (age < oldest) {
            oldest = age;
            best = i;
        }
    }
    if (best == c->count)
        return qb_err_set(err, QB_ENOMEM, "%s: metadata cache too small (every table in use)",
                          q->filename);
    qcow2_cache_entry *e = &c->entries[best];
    if (e->offset && e->dirty) {
        int r = q->in_flush ? qcow2_cache_write_entry(q, c, e, err) : qcow2_flush_meta(q, err);
        if (r)
            return r;
        /* The flush may have reused this slot's neighbours but never pins
         * or dirties it again; it is clean now. */
    }
    if (!e->table) {
        e->table = qb_malloc(&q->alloc, c->table_size);
        if (!e->table)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for a metadata table", q->filename);
    }
    e->offset = 0;
    e->dirty = false;
    c->last_hit = best;
    *out = e;
    return QB_OK;
}

int qcow2_cache_get(qcow2 *q, qcow2_cache *c, uint64_t offset, const uint8_t **table, qb_err *err)
{
    qcow2_cache_entry *e = find(c, offset);
    if (!e) {
        int r = victim(q, c, &e, err);
        if (r)
            return r;
        r = qb_backend_read(q->file, offset, e->table, c->table_size, err);
        if (r)
            return qb_err_prefix(err, "%s: reading table at offset %#llx: ", q->filename,
                                 (unsigned long long)offset);
        e->offset = offset;
    }
    e->lru = ++c->clock;
    *table = e->table;
    return QB_OK;
}

int qcow2_cache_get_pinned(qcow2 *q, qcow2_cache *c, uint64_t offset, uint8_t **table,
                           qb_err *err)
{
    const uint8_t *t;
    int r = qcow2_cache_get(q, c, offset, &t, err);
    if (r)
        return r;
    c->entries[c->last_hit].pins++;
    *table = (uint8_t *)t;
    return QB_OK;
}

int qcow2_cache_new_pinned(qcow2 *q, qcow2_cache *c, uint64_t offset, uint8_t **table,
                           qb_err *err)
{
    qcow2_cache_entry *e = find(c, offset);
    if (!e) {
        int r = victim(q, c, &e, err);
        if (r)
            return r;
    }
    memset(e->table, 0, c->table_size);
    e->offset = offset;
    e->dirty = true;
    e->lru = ++c->clock;
    e->pins++;
    *table = e->table;
    return QB_OK;
}

static qcow2_cache_entry *entry_of(qcow2_cache *c, const uint8_t *table)
{
    qcow2_cache_entry *e = &c->entries[c->last_hit];
    if (e->table == table)
        return e;
    for (size_t i = 0; i < c->count; i++)
        if (c->entries[i].table == table)
            return &c->entries[i];
    return NULL;
}

void qcow2_cache_unpin(qcow2_cache *c, const uint8_t *table)
{
    qcow2_cache_entry *e = entry_of(c, table);
    if (e && e->pins)
        e->pins--;
}

void qcow2_cache_mark_dirty(qcow2_cache *c, const uint8_t *table)
{
    qcow2_cache_entry *e = entry_of(c, table);
    if (e)
        e->dirty = true;
}

void qcow2_cache_drop(qcow2_cache *c, uint64_t offset)
{
    if (!c->entries)
        return;
    qcow2_cache_entry *e = find(c, offset);
    if (e && !e->pins) {
        e->offset = 0;
        e->dirty = false;
    }
}

int qcow2_cache_write_entry(qcow2 *q, qcow2_cache *c, qcow2_cache_entry *e, qb_err *err)
{
    int r = qcow2_check_overlap(q, e->offset, c->table_size,
                                c == &q->rb_cache ? QCOW2_OL_REFBLOCK : QCOW2_OL_L2, err);
    if (r)
        return r;
    r = qcow2_pwrite(q, q->file, e->offset, e->table, c->table_size, err);
    if (r)
        return qcow2_write_failed(q, err, "writing table at offset %#llx",
                                  (unsigned long long)e->offset);
    e->dirty = false;
    q->need_sync = true;
    return QB_OK;
}

int qcow2_cache_write_dirty(qcow2 *q, qcow2_cache *c, bool *wrote, qb_err *err)
{
    if (!c->entries)
        return QB_OK;
    for (size_t i = 0; i < c->count; i++) {
        qcow2_cache_entry *e = &c->entries[i];
        if (!e->offset || !e->dirty)
            continue;
        int r = qcow2_cache_write_entry(q, c, e, err);
        if (r)
            return r;
        *wrote = true;
    }
    return QB_OK;
}

bool qcow2_cache_has_dirty(const qcow2_cache *c)
{
    if (!c->entries)
        return false;
    for (size_t i = 0; i < c->count; i++)
        if (c->entries[i].offset && c->entries[i].dirty)
            return true;
    return false;
}
