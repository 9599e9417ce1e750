/*
 * Guest offset to host offset: the L1/L2 walk. qcow2_map answers for the
 * longest run starting at a guest offset that shares one kind and, for
 * allocated data, contiguous host offsets, without leaving the L2 table.
 * Every entry read from the image is checked before it is used.
 */
#include "qcow2.h"
#include "qb_endian.h"

int qcow2_classify_l2(const qcow2 *q, uint64_t entry, uint64_t bitmap, unsigned sc,
                      qcow2_kind *kind)
{
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        *kind = QCOW2_COMPRESSED;
        return QB_OK;
    }
    uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
    bool has_host = host != 0 || ((entry & QCOW2_OFLAG_COPIED) && q->data_file != q->file);
    if (q->l2_entry_size == 16) {
        uint32_t alloc = (uint32_t)bitmap, zero = (uint32_t)(bitmap >> 32);
        if (alloc & zero)
            return QB_ECORRUPT;
        if (!has_host) {
            if (alloc)
                return QB_ECORRUPT;
            *kind = (zero >> sc) & 1 ? QCOW2_ZERO_PLAIN : QCOW2_UNALLOCATED;
        } else if ((zero >> sc) & 1) {
            *kind = QCOW2_ZERO_ALLOC;
        } else {
            *kind = (alloc >> sc) & 1 ? QCOW2_NORMAL : QCOW2_UNALLOCATED_ALLOC;
        }
        return QB_OK;
    }
    if (entry & QCOW2_OFLAG_ZERO)
        *kind = has_host ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
    else
        *kind = has_host ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
    return QB_OK;
}

static int load_l2(qcow2 *q, uint64_t l1_index, const uint8_t **l2, uint64_t *l2_offset,
                   qb_err *err)
{
    *l2 = NULL;
    if (l1_index >= q->l1_size)
        return QB_OK;
    uint64_t off = q->l1[l1_index] & QCOW2_L1E_OFFSET_MASK;
    *l2_offset = off;
    if (!off)
        return QB_OK;
    if (qcow2_offset_into_cluster(q, off))
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: L1 entry %llu: L2 table offset %#llx is not cluster aligned",
                          q->filename, (unsigned long long)l1_index, (unsigned long long)off);
    if (off > q->file_size || q->file_size - off < q->cluster_size)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: L1 entry %llu: L2 table at offset %#llx lies past the end of the "
                          "file (%llu bytes)",
                          q->filename, (unsigned long long)l1_index, (unsigned long long)off,
                          (unsigned long long)q->file_size);
    return qcow2_cache_get(q, &q->l2_cache, off, l2, err);
}

static int bad_entry(qcow2 *q, uint64_t l2_offset, uint64_t idx, const char *why, qb_err *err)
{
    return qb_err_set(err, QB_ECORRUPT, "%s: L2 table at offset %#llx, entry %llu: %s",
                      q->filename, (unsigned long long)l2_offset, (unsigned long long)idx, why);
}

int qcow2_map(qcow2 *q, uint64_t off, uint64_t len, qcow2_run *run, qb_err *err)
{
    uint32_t cbits = q->h.cluster_bits;
    uint64_t cluster = off >> cbits;
    uint64_t l1_index = cluster >> q->l2_bits;
    const uint8_t *l2;
    uint64_t l2_offset = 0;
    int r = load_l2(q, l1_index, &l2, &l2_offset, err);
    if (r)
        return r;

    /* Bytes to the end of this L2 table, capped by the request. */
    uint64_t table_end = ((l1_index + 1) << q->l2_bits) << cbits;
    uint64_t max = table_end - off;
    if (max > len)
        max = len;

    if (!l2) {
        run->kind = QCOW2_UNALLOCATED;
        run->host = 0;
        run->length = max;
        return QB_OK;
    }

    uint32_t sbits = q->subcluster_bits;
    uint64_t sc_mask = (1ull << (cbits - sbits)) - 1;  /* 31 with extended L2, else 0 */
    uint64_t pos = off;
    uint64_t end = off + max;
    bool first = true;
    uint64_t expect_host = 0;
    while (pos < end) {
        uint64_t idx = (pos >> cbits) & (q->l2_entries - 1);
        const uint8_t *e = l2 + idx * q->l2_entry_size;
        uint64_t entry = qb_be64(e);
        uint64_t bitmap = q->l2_entry_size == 16 ? qb_be64(e + 8) : 0;
        unsigned sc = (unsigned)((pos >> sbits) & sc_mask);
        qcow2_kind kind;
        if (qcow2_classify_l2(q, entry, bitmap, sc, &kind))
            return bad_entry(q, l2_offset, idx,
                             "invalid subcluster allocation bitmap", err);
        uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
        uint64_t step_end = ((pos >> sbits) + 1) << sbits;  /* end of this (sub)cluster */
        if (step_end > end)
            step_end = end;
        if (kind == QCOW2_COMPRESSED) {
            if (!first)
                break;
            if (q->data_file != q->file)
                return bad_entry(q, l2_offset, idx,
                                 "compressed cluster in an image with an external data file",
                                 err);
            uint64_t coff = entry & q->coffset_mask;
            uint64_t nsec = ((entry >> q->csize_shift) & q->csize_mask) + 1;
            run->kind = kind;
            run->host = coff;
            run->csize = nsec * 512 - (coff & 511);
            uint64_t cl_end = ((pos >> cbits) + 1) << cbits;
            run->length = (cl_end < end ? cl_end : end) - off;
            return QB_OK;
        }
        if (kind == QCOW2_NORMAL || kind == QCOW2_ZERO_ALLOC || kind == QCOW2_UNALLOCATED_ALLOC) {
            if (qcow2_offset_into_cluster(q, host))
                return bad_entry(q, l2_offset, idx, "data cluster offset is not cluster aligned",
                                 err);
            if (q->data_file == q->file && host == 0)
                return bad_entry(q, l2_offset, idx, "data cluster at offset 0 (the header)", err);
            host += pos & (q->cluster_size - 1);
        }
        if (first) {
            run->kind = kind;
            run->host = host;
            expect_host = host;
            first = false;
        } else if (kind != run->kind) {
            break;
        } else if ((kind == QCOW2_NORMAL || kind == QCOW2_ZERO_ALLOC ||
                    kind == QCOW2_UNALLOCATED_ALLOC) && host != expect_host) {
            break;
        }
        expect_host += step_end - pos;
        pos = step_end;
    }
    run->length = pos - off;
    return QB_OK;
}
