/* Reading refcounts: the refcount table and blocks, with entries of 1 to
 * 64 bits (refcount_order 0 to 6). */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"

int qcow2_load_reftable(qcow2 *q, qb_err *err)
{
    if (q->reftable)
        return QB_OK;
    uint64_t entries = ((uint64_t)q->h.refcount_table_clusters << q->h.cluster_bits) / 8;
    /* Size and placement were validated at open. */
    uint64_t *t = qb_malloc(&q->alloc, (size_t)entries * 8);
    if (!t)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the refcount table", q->filename);
    if (entries) {
        int r = qb_backend_read(q->file, q->h.refcount_table_offset, t, (size_t)entries * 8, err);
        if (r) {
            qb_free(&q->alloc, t);
            return qb_err_prefix(err, "%s: reading refcount table: ", q->filename);
        }
    }
    for (uint64_t i = 0; i < entries; i++)
        t[i] = qb_be64(&t[i]);
    q->reftable = t;
    q->reftable_entries = entries;
    if (!q->rb_cache.entries &&
        qcow2_cache_init(&q->rb_cache, &q->alloc, (size_t)q->cluster_size, 1u << 20))
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the refcount cache", q->filename);
    return QB_OK;
}

uint64_t qcow2_refcount_entry(const uint8_t *block, uint64_t index, unsigned order)
{
    switch (order) {
    case 6: return qb_be64(block + index * 8);
    case 5: return qb_be32(block + index * 4);
    case 4: return qb_be16(block + index * 2);
    case 3: return block[index];
    default: {
        unsigned bits = 1u << order;
        uint64_t bit = index * bits;
        return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    }
}

void qcow2_set_refcount_entry(uint8_t *block, uint64_t index, unsigned order, uint64_t v)
{
    switch (order) {
    case 6: qb_put_be64(block + index * 8, v); return;
    case 5: qb_put_be32(block + index * 4, (uint32_t)v); return;
    case 4: block[index * 2] = (uint8_t)(v >> 8); block[index * 2 + 1] = (uint8_t)v; return;
    case 3: block[index] = (uint8_t)v; return;
    default: {
        unsigned bits = 1u << order;
        uint64_t bit = index * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
        block[bit / 8] = (uint8_t)((block[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
        return;
    }
    }
}

int qcow2_get_refcount(qcow2 *q, uint64_t cluster, uint64_t *refcount, qb_err *err)
{
    int r = qcow2_load_reftable(q, err);
    if (r)
        return r;
    unsigned order = q->h.refcount_order;
    uint64_t per_block_bits = q->h.cluster_bits + 3 - order;
    uint64_t ti = cluster >> per_block_bits;
    *refcount = 0;
    if (ti >= q->reftable_entries)
        return QB_OK;
    uint64_t boff = q->reftable[ti] & QCOW2_REFT_OFFSET_MASK;
    if (!boff)
        return QB_OK;
    if (qcow2_offset_into_cluster(q, boff))
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: refcount table entry %llu: block offset %#llx is not cluster "
                          "aligned",
                          q->filename, (unsigned long long)ti, (unsigned long long)boff);
    if (boff > q->file_size || q->file_size - boff < q->cluster_size)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: refcount table entry %llu: block at %#llx lies past the end of "
                          "the file",
                          q->filename, (unsigned long long)ti, (unsigned long long)boff);
    const uint8_t *block;
    r = qcow2_cache_get(q, &q->rb_cache, boff, &block, err);
    if (r)
        return r;
    *refcount = qcow2_refcount_entry(block, cluster & ((1ull << per_block_bits) - 1), order);
    return QB_OK;
}

int qcow2_detect_metadata_prealloc(qcow2 *q)
{
    uint64_t allocated;
    qb_err err;
    if (!q->file->vt->allocated || q->file->vt->allocated(q->file, &allocated, &err))
        return -1;
    uint64_t real_clusters = allocated / q->cluster_size;
    uint64_t threshold = real_clusters * 10 / 9;
    if (threshold < real_clusters + 2)
        threshold = real_clusters + 2;
    uint64_t end = (q->file_size + q->cluster_size - 1) >> q->h.cluster_bits;
    uint64_t count = 0;
    for (uint64_t i = 0; i < end && count < threshold; i++) {
        uint64_t rc;
        if (qcow2_get_refcount(q, i, &rc, &err))
            return -1;
        count += rc != 0;
    }
    return count >= threshold;
}
