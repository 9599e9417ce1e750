/*
 * A small cache of metadata tables (one cluster each), least recently used
 * out. Sequential reads touch the same L2 table many times in a row, so the
 * last hit is tried first. The slots are few (8 MiB / cluster size at most,
 * and at least 2), so a linear scan beats a hash table here.
 */
#include <string.h>
#include "qcow2.h"

int qcow2_cache_init(qcow2_cache *c, const qb_alloc *a, size_t table_size, size_t total_bytes)
{
    size_t count = total_bytes / table_size;
    if (count < 2)
        count = 2;
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

int qcow2_cache_get(qcow2 *q, qcow2_cache *c, uint64_t offset, const uint8_t **table, qb_err *err)
{
    qcow2_cache_entry *e = &c->entries[c->last_hit];
    if (e->table && e->offset == offset) {
        e->lru = ++c->clock;
        *table = e->table;
        return QB_OK;
    }
    size_t victim = 0;
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < c->count; i++) {
        e = &c->entries[i];
        if (e->table && e->offset == offset) {
            e->lru = ++c->clock;
            c->last_hit = i;
            *table = e->table;
            return QB_OK;
        }
        uint64_t age = e->table ? e->lru : 0;
        if (age < oldest) {
            oldest = age;
            victim = i;
        }
    }
    e = &c->entries[victim];
    if (!e->table) {
        e->table = qb_malloc(&q->alloc, c->table_size);
        if (!e->table)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for a metadata table", q->filename);
    }
    e->offset = 0;   /* invalid until the read succeeds */
    int r = qb_backend_read(q->file, offset, e->table, c->table_size, err);
    if (r)
        return qb_err_prefix(err, "%s: reading table at offset %#llx: ", q->filename,
                             (unsigned long long)offset);
    e->offset = offset;
    e->lru = ++c->clock;
    c->last_hit = victim;
    *table = e->table;
    return QB_OK;
}
