/* The internal snapshot table: parsing it, finding a snapshot, and switching
 * a read-only image to a snapshot's L1 table. */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"
#include "qb_fmt.h"

static char *dup_bytes(qcow2 *q, const uint8_t *p, size_t n)
{
    char *s = qb_malloc(&q->alloc, n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

void qcow2_free_snapshots(qcow2 *q)
{
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        qb_free(&q->alloc, q->snapshots[i].id);
        qb_free(&q->alloc, q->snapshots[i].name);
    }
    qb_free(&q->alloc, q->snapshots);
    q->snapshots = NULL;
    q->nb_snapshots = 0;
}

/* The table is read in one piece: its size is bounded by the entry count
 * (checked at open) and QCOW2_MAX_SNAPSHOT_TABLE. Entries have variable
 * length, so the bytes actually needed are found while walking. */
int qcow2_read_snapshots(qcow2 *q, qb_err *err)
{
    uint32_t n = q->h.nb_snapshots;
    if (!n)
        return QB_OK;
    uint64_t start = q->h.snapshots_offset;
    uint64_t avail = q->file_size - start;
    if (avail > QCOW2_MAX_SNAPSHOT_TABLE)
        avail = QCOW2_MAX_SNAPSHOT_TABLE;
    /* Each entry is at least 40 bytes; never read more than the worst
     * case of n entries with maximal extra data and names. */
    uint64_t worst = (uint64_t)n * (40 + QCOW2_MAX_SNAPSHOT_EXTRA + 2 * 65535 + 8);
    if (avail > worst)
        avail = worst;
    uint8_t *tab = qb_malloc(&q->alloc, (size_t)avail);
    if (!tab)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the snapshot table", q->filename);
    int r = qb_backend_read(q->file, start, tab, (size_t)avail, err);
    if (r) {
        qb_free(&q->alloc, tab);
        return qb_err_prefix(err, "%s: reading snapshot table: ", q->filename);
    }
    q->snapshots = qb_zalloc(&q->alloc, (size_t)n * sizeof(*q->snapshots));
    if (!q->snapshots) {
        qb_free(&q->alloc, tab);
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for %u snapshots", q->filename, n);
    }
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        qcow2_snapshot *sn = &q->snapshots[i];
        uint64_t at = start + off;
        if (avail - off < 40) {
            r = qb_err_set(err, QB_ECORRUPT,
                           "%s: snapshot table entry %u at offset %#llx extends past the end of "
                           "the table (header fields nb_snapshots/snapshots_offset)",
                           q->filename, i, (unsigned long long)at);
            goto fail;
        }
        const uint8_t *e = tab + off;
        sn->l1_offset = qb_be64(e);
        sn->l1_size = qb_be32(e + 8);
        uint16_t id_len = qb_be16(e + 12);
        uint16_t name_len = qb_be16(e + 14);
        sn->date_sec = qb_be32(e + 16);
        sn->date_nsec = qb_be32(e + 20);
        sn->vm_clock_nsec = qb_be64(e + 24);
        sn->vm_state_size = qb_be32(e + 32);
        sn->extra_size = qb_be32(e + 36);
        sn->disk_size = q->h.size;
        sn->icount = UINT64_MAX;
        if (sn->extra_size > QCOW2_MAX_SNAPSHOT_EXTRA) {
            r = qb_err_set(err, QB_ECORRUPT,
                           "%s: snapshot table entry %u at offset %#llx: extra data size %u "
                           "exceeds the limit of %u",
                           q->filename, i, (unsigned long long)at, sn->extra_size,
                           QCOW2_MAX_SNAPSHOT_EXTRA);
            goto fail;
        }
        uint64_t len = 40 + (uint64_t)sn->extra_size + id_len + name_len;
        if (avail - off < len) {
            r = qb_err_set(err, QB_ECORRUPT,
                           "%s: snapshot table entry %u at offset %#llx (%llu bytes) extends "
                           "past the end of the file",
                           q->filename, i, (unsigned long long)at, (unsigned long long)len);
            goto fail;
        }
        const uint8_t *x = e + 40;
        if (sn->extra_size >= 8)
            sn->vm_state_size = qb_be64(x);
        if (sn->extra_size >= 16)
            sn->disk_size = qb_be64(x + 8);
        if (sn->extra_size >= 24)
            sn->icount = qb_be64(x + 16);
        sn->id = dup_bytes(q, x + sn->extra_size, id_len);
        sn->name = dup_bytes(q, x + sn->extra_size + id_len, name_len);
        if (!sn->id || !sn->name) {
            q->nb_snapshots = i + 1;
            r = qb_err_set(err, QB_ENOMEM, "%s: no memory for snapshot names", q->filename);
            goto fail;
        }
        q->nb_snapshots = i + 1;
        off += (len + 7) & ~7ull;
        if (off > avail && i + 1 < n) {
            r = qb_err_set(err, QB_ECORRUPT, "%s: snapshot table extends past the end of the file",
                           q->filename);
            goto fail;
        }
    }
    q->snapshots_size = off;
    qb_free(&q->alloc, tab);
    return QB_OK;
fail:
    qb_free(&q->alloc, tab);
    qcow2_free_snapshots(q);
    return r;
}

const qcow2_snapshot *qcow2_find_snapshot(const qcow2 *q, const char *key)
{
    /* As QEMU: an id match wins over a name match. */
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        if (strcmp(q->snapshots[i].id, key) == 0)
            return &q->snapshots[i];
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        if (strcmp(q->snapshots[i].name, key) == 0)
            return &q->snapshots[i];
    return NULL;
}

int qcow2_load_snapshot(qcow2 *q, const qcow2_snapshot *sn, qb_err *err)
{
    char what[96];
    qb_snprintf(what, sizeof(what), "L1 table of snapshot '%s'", sn->name);
    uint64_t bytes_per_l1 = q->cluster_size << q->l2_bits;
    if (sn->disk_size > (1ull << 62) ||
        (sn->disk_size + bytes_per_l1 - 1) / bytes_per_l1 > sn->l1_size)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: snapshot '%s': L1 table (%u entries) too small for its disk size "
                          "%llu",
                          q->filename, sn->name, sn->l1_size, (unsigned long long)sn->disk_size);
    uint64_t *l1;
    int r = qcow2_read_l1(q, sn->l1_offset, sn->l1_size, &l1, what, err);
    if (r)
        return r;
    qb_free(&q->alloc, q->l1);
    q->l1 = l1;
    q->l1_size = sn->l1_size;
    q->l1_offset = sn->l1_offset;
    q->size = sn->disk_size & ~511ull;
    return QB_OK;
}
