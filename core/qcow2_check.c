/*
 * The consistency check: count every reference to every host cluster (the
 * header, L1 and L2 tables of the image and its snapshots, data clusters,
 * the refcount structures, the snapshot table, bitmaps), compare with the
 * stored refcounts, and verify the COPIED flags. The counting and the
 * messages follow qemu-img check so results can be compared.
 */
#include <string.h>
#include "qcow2.h"
#include "qb_cmd.h"
#include "qb_endian.h"

typedef struct check_ctx {
    qcow2 *q;
    qcow2_check_result *res;
    const qb_out *msgs;
    uint32_t *refs;         /* computed references per host cluster */
    uint64_t nb_clusters;   /* clusters in the file */
    uint64_t max_refcount;
    uint8_t *l2;            /* one L2 table */
    uint64_t next_contiguous;
} check_ctx;

/* Counts one reference to every cluster of [offset, offset+size). */
static void inc_refs(check_ctx *c, uint64_t offset, uint64_t size)
{
    if (size == 0)
        return;
    uint32_t bits = c->q->h.cluster_bits;
    uint64_t first = offset >> bits;
    uint64_t last = offset + size - 1 < offset ? UINT64_MAX >> bits : (offset + size - 1) >> bits;
    for (uint64_t k = first; k <= last; k++) {
        if (k >= c->nb_clusters) {
            qb_printf(c->msgs,
                      "ERROR cluster %llu refcount=0 reference=1 (beyond the end of the file)\n",
                      (unsigned long long)k);
            c->res->corruptions++;
            if (last - k > 1024)   /* one absurd range must not take forever */
                break;
            continue;
        }
        uint64_t cap = c->max_refcount < UINT32_MAX ? c->max_refcount : UINT32_MAX;
        if (c->refs[k] >= cap) {
            qb_printf(c->msgs, "ERROR: overflow cluster offset=0x%llx\n",
                      (unsigned long long)(k << bits));
            c->res->corruptions++;
            continue;
        }
        c->refs[k]++;
    }
}

static int read_table(check_ctx *c, uint64_t offset, void *buf, size_t len, const char *what)
{
    qb_err err;
    if (qb_backend_read(c->q->file, offset, buf, len, &err)) {
        qb_printf(c->msgs, "ERROR: I/O error in %s: %s\n", what, err.msg);
        c->res->check_errors++;
        return QB_EIO;
    }
    return QB_OK;
}

static void check_l2(check_ctx *c, uint64_t l2_offset, bool stats)
{
    qcow2 *q = c->q;
    if (read_table(c, l2_offset, c->l2, (size_t)q->cluster_size, "check_refcounts_l2"))
        return;
    c->next_contiguous = 0;   /* as qemu-img: fragmentation is counted within one L2 table */
    for (uint32_t i = 0; i < q->l2_entries; i++) {
        const uint8_t *e = c->l2 + (size_t)i * q->l2_entry_size;
        uint64_t entry = qb_be64(e);
        uint64_t bitmap = q->l2_entry_size == 16 ? qb_be64(e + 8) : 0;
        if (!(entry & QCOW2_OFLAG_COMPRESSED) && (entry & QCOW2_L2E_STD_RESERVED)) {
            qb_printf(c->msgs, "ERROR found l2 entry with reserved bits set: %llx\n",
                      (unsigned long long)entry);
            c->res->corruptions++;
        }
        if (entry & QCOW2_OFLAG_COMPRESSED) {
            if (entry & QCOW2_OFLAG_COPIED) {
                qb_printf(c->msgs,
                          "ERROR: coffset=0x%llx: copied flag must never be set for compressed "
                          "clusters\n",
                          (unsigned long long)(entry & q->coffset_mask));
                c->res->corruptions++;
            }
            if (q->data_file != q->file) {
                qb_printf(c->msgs, "ERROR compressed cluster %u with data file, entry=0x%llx\n",
                          i, (unsigned long long)entry);
                c->res->corruptions++;
                continue;
            }
            uint64_t coff = entry & q->coffset_mask;
            uint64_t nsec = ((entry >> q->csize_shift) & q->csize_mask) + 1;
            inc_refs(c, coff, nsec * 512 - (coff & 511));
            if (stats) {
                c->res->allocated_clusters++;
                c->res->compressed_clusters++;
                c->res->fragmented_clusters++;
            }
            continue;
        }
        uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
        bool has_host = host != 0 || ((entry & QCOW2_OFLAG_COPIED) && q->data_file != q->file);
        if (!has_host) {
            if (q->l2_entry_size == 16 && (uint32_t)bitmap) {
                qb_printf(c->msgs,
                          "ERROR: Unallocated cluster has non-zero subcluster allocation map\n");
                c->res->corruptions++;
            }
            continue;
        }
        /* Normal or preallocated zero cluster. */
        if (q->l2_entry_size == 16 && ((bitmap >> 32) & bitmap & 0xffffffffull)) {
            qb_printf(c->msgs,
                      "ERROR offset=%llx: Allocated cluster has corrupted subcluster allocation "
                      "bitmap\n",
                      (unsigned long long)host);
            c->res->corruptions++;
        }
        if (qcow2_offset_into_cluster(q, host)) {
            bool has_data = q->l2_entry_size == 16 ? (uint32_t)bitmap != 0
                                                   : !(entry & QCOW2_OFLAG_ZERO);
            qb_printf(c->msgs, has_data
                      ? "ERROR offset=%llx: Data cluster is not properly aligned; L2 entry "
                        "corrupted.\n"
                      : "ERROR offset=%llx: Preallocated cluster is not properly aligned; L2 "
                        "entry corrupted.\n",
                      (unsigned long long)host);
            c->res->corruptions++;
        }
        if (stats) {
            c->res->allocated_clusters++;
            if (c->next_contiguous && host != c->next_contiguous)
                c->res->fragmented_clusters++;
            c->next_contiguous = host + q->cluster_size;
        }
        if (q->data_file == q->file)
            inc_refs(c, host, q->cluster_size);
    }
}

static int check_l1(check_ctx *c, uint64_t l1_offset, uint32_t l1_size, bool stats)
{
    qcow2 *q = c->q;
    uint64_t bytes = (uint64_t)l1_size * 8;
    inc_refs(c, l1_offset, bytes);
    if (!bytes)
        return QB_OK;
    uint64_t *l1 = qb_malloc(&q->alloc, (size_t)bytes);
    if (!l1) {
        c->res->check_errors++;
        return QB_ENOMEM;
    }
    if (read_table(c, l1_offset, l1, (size_t)bytes, "check_refcounts_l1")) {
        qb_free(&q->alloc, l1);
        return QB_OK;
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l1e = qb_be64(&l1[i]);
        if (l1e & QCOW2_L1E_RESERVED) {
            qb_printf(c->msgs, "ERROR found L1 entry with reserved bits set: %llx\n",
                      (unsigned long long)l1e);
            c->res->corruptions++;
        }
        uint64_t l2_offset = l1e & QCOW2_L1E_OFFSET_MASK;
        if (!l2_offset)
            continue;
        inc_refs(c, l2_offset, q->cluster_size);
        if (qcow2_offset_into_cluster(q, l2_offset)) {
            qb_printf(c->msgs,
                      "ERROR l2_offset=%llx: Table is not cluster aligned; L1 entry corrupted\n",
                      (unsigned long long)l2_offset);
            c->res->corruptions++;
        }
        check_l2(c, l2_offset, stats);
    }
    qb_free(&q->alloc, l1);
    return QB_OK;
}

static void check_bitmaps(check_ctx *c)
{
    qcow2 *q = c->q;
    if (!q->has_bitmaps_ext || !(q->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS) || !q->nb_bitmaps)
        return;
    inc_refs(c, q->bitmap_dir_offset, q->bitmap_dir_size);
    if (q->bitmap_dir_size > (64u << 20) || q->bitmap_dir_offset > q->file_size ||
        q->file_size - q->bitmap_dir_offset < q->bitmap_dir_size) {
        qb_printf(c->msgs, "ERROR bitmap directory at 0x%llx (%llu bytes) is invalid\n",
                  (unsigned long long)q->bitmap_dir_offset,
                  (unsigned long long)q->bitmap_dir_size);
        c->res->corruptions++;
        return;
    }
    uint8_t *dir = qb_malloc(&q->alloc, (size_t)q->bitmap_dir_size);
    if (!dir) {
        c->res->check_errors++;
        return;
    }
    if (read_table(c, q->bitmap_dir_offset, dir, (size_t)q->bitmap_dir_size, "bitmap directory"))
        goto out;
    uint64_t off = 0;
    for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
        if (q->bitmap_dir_size - off < 24) {
            c->res->corruptions++;
            break;
        }
        const uint8_t *e = dir + off;
        uint64_t table_off = qb_be64(e);
        uint32_t table_size = qb_be32(e + 8);
        uint16_t name_size = qb_be16(e + 18);
        uint32_t extra = qb_be32(e + 20);
        uint64_t len = (24ull + extra + name_size + 7) & ~7ull;
        if (len > q->bitmap_dir_size - off) {
            c->res->corruptions++;
            break;
        }
        off += len;
        uint64_t bytes = (uint64_t)table_size * 8;
        inc_refs(c, table_off, bytes);
        if (qcow2_offset_into_cluster(q, table_off) || bytes > (64u << 20) ||
            table_off > q->file_size || q->file_size - table_off < bytes) {
            c->res->corruptions++;
            break;
        }
        uint64_t *tab = qb_malloc(&q->alloc, (size_t)bytes);
        if (!tab) {
            c->res->check_errors++;
            break;
        }
        if (read_table(c, table_off, tab, (size_t)bytes, "bitmap table") == QB_OK) {
            for (uint32_t j = 0; j < table_size; j++) {
                uint64_t ent = qb_be64(&tab[j]);
                uint64_t o = ent & QCOW2_L2E_OFFSET_MASK;
                if ((ent & ~QCOW2_L2E_OFFSET_MASK & ~1ull) || (o && (ent & 1)) ||
                    qcow2_offset_into_cluster(q, o)) {
                    c->res->corruptions++;
                    continue;
                }
                if (o)
                    inc_refs(c, o, q->cluster_size);
            }
        }
        qb_free(&q->alloc, tab);
    }
out:
    qb_free(&q->alloc, dir);
}

/* The refcount blocks themselves: each must be referenced exactly once. */
static void check_refblocks(check_ctx *c)
{
    qcow2 *q = c->q;
    for (uint64_t i = 0; i < q->reftable_entries; i++) {
        if (q->reftable[i] & QCOW2_REFT_RESERVED) {
            qb_printf(c->msgs, "ERROR refcount table entry %llu has reserved bits set\n",
                      (unsigned long long)i);
            c->res->corruptions++;
            continue;
        }
        uint64_t off = q->reftable[i] & QCOW2_REFT_OFFSET_MASK;
        uint64_t cluster = off >> q->h.cluster_bits;
        if (qcow2_offset_into_cluster(q, off)) {
            qb_printf(c->msgs,
                      "ERROR refcount block %llu is not cluster aligned; refcount table entry "
                      "corrupted\n",
                      (unsigned long long)i);
            c->res->corruptions++;
            continue;
        }
        if (cluster >= c->nb_clusters) {
            qb_printf(c->msgs, "ERROR refcount block %llu is outside image\n",
                      (unsigned long long)i);
            c->res->corruptions++;
            continue;
        }
        if (off) {
            inc_refs(c, off, q->cluster_size);
            if (c->refs[cluster] != 1) {
                qb_printf(c->msgs, "ERROR refcount block %llu refcount=%u\n",
                          (unsigned long long)i, c->refs[cluster]);
                c->res->corruptions++;
            }
        }
    }
}

static void compare_refcounts(check_ctx *c, uint64_t *highest)
{
    qcow2 *q = c->q;
    for (uint64_t i = 0; i < c->nb_clusters; i++) {
        uint64_t stored;
        qb_err err;
        if (qcow2_get_refcount(q, i, &stored, &err)) {
            qb_printf(c->msgs, "Can't get refcount for cluster %llu: %s\n",
                      (unsigned long long)i, err.msg);
            c->res->check_errors++;
            continue;
        }
        uint64_t computed = c->refs[i];
        if (stored || computed)
            *highest = i;
        if (stored != computed) {
            qb_printf(c->msgs, "%s cluster %llu refcount=%llu reference=%llu\n",
                      stored < computed ? "ERROR" : "Leaked", (unsigned long long)i,
                      (unsigned long long)stored, (unsigned long long)computed);
            if (stored < computed)
                c->res->corruptions++;
            else
                c->res->leaks++;
        }
    }
}

static void check_copied(check_ctx *c)
{
    qcow2 *q = c->q;
    for (uint32_t i = 0; i < q->l1_size; i++) {
        uint64_t l1e = q->l1[i];
        uint64_t l2_offset = l1e & QCOW2_L1E_OFFSET_MASK;
        if (!l2_offset)
            continue;
        uint64_t rc;
        qb_err err;
        if (qcow2_get_refcount(q, l2_offset >> q->h.cluster_bits, &rc, &err))
            continue;
        if ((rc == 1) != ((l1e & QCOW2_OFLAG_COPIED) != 0)) {
            qb_printf(c->msgs,
                      "ERROR OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx refcount=%llu\n",
                      i, (unsigned long long)l1e, (unsigned long long)rc);
            c->res->corruptions++;
        }
        if (read_table(c, l2_offset, c->l2, (size_t)q->cluster_size, "check_oflag_copied"))
            return;
        for (uint32_t j = 0; j < q->l2_entries; j++) {
            uint64_t entry = qb_be64(c->l2 + (size_t)j * q->l2_entry_size);
            if (entry & QCOW2_OFLAG_COMPRESSED)
                continue;
            uint64_t host = entry & QCOW2_L2E_OFFSET_MASK;
            bool has_host = host != 0 || ((entry & QCOW2_OFLAG_COPIED) && q->data_file != q->file);
            if (!has_host)
                continue;
            if (q->data_file != q->file)
                rc = 1;
            else if (qcow2_get_refcount(q, host >> q->h.cluster_bits, &rc, &err))
                continue;
            if ((rc == 1) != ((entry & QCOW2_OFLAG_COPIED) != 0)) {
                qb_printf(c->msgs,
                          "ERROR OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu\n",
                          (unsigned long long)entry, (unsigned long long)rc);
                c->res->corruptions++;
            }
        }
    }
}

int qcow2_check(qcow2 *q, qcow2_check_result *res, const qb_out *msgs,
                void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx,
                qb_err *err)
{
    memset(res, 0, sizeof(*res));
    check_ctx c;
    memset(&c, 0, sizeof(c));
    c.q = q;
    c.res = res;
    c.msgs = msgs;
    c.nb_clusters = (q->file_size + q->cluster_size - 1) >> q->h.cluster_bits;
    c.max_refcount = q->h.refcount_order == 6 ? UINT64_MAX
                                               : (1ull << (1u << q->h.refcount_order)) - 1;
    res->total_clusters = (q->size + q->cluster_size - 1) >> q->h.cluster_bits;
    int r = qcow2_load_reftable(q, err);
    if (r) {
        res->check_errors++;
        return r;
    }
    /* One counter per cluster of the file: bounded by the file size. */
    if (c.nb_clusters > (SIZE_MAX / sizeof(uint32_t)) || c.nb_clusters > (1ull << 31)) {
        res->check_errors++;
        return qb_err_set(err, QB_EUNSUPP, "%s: file too large to check (%llu clusters)",
                          q->filename, (unsigned long long)c.nb_clusters);
    }
    c.refs = qb_zalloc(&q->alloc, (size_t)c.nb_clusters * sizeof(uint32_t));
    c.l2 = qb_malloc(&q->alloc, (size_t)q->cluster_size);
    if (!c.refs || !c.l2) {
        qb_free(&q->alloc, c.refs);
        qb_free(&q->alloc, c.l2);
        res->check_errors++;
        return qb_err_set(err, QB_ENOMEM, "%s: no memory to check %llu clusters", q->filename,
                          (unsigned long long)c.nb_clusters);
    }
    inc_refs(&c, 0, q->cluster_size);                           /* header */
    check_l1(&c, q->h.l1_table_offset, q->h.l1_size, true);     /* active L1 */
    if (progress)
        progress(progress_ctx, 1, 3);
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        const qcow2_snapshot *sn = &q->snapshots[i];
        if (qcow2_offset_into_cluster(q, sn->l1_offset)) {
            qb_printf(msgs,
                      "ERROR snapshot %s (%s) l1_offset=%#llx: L1 table is not cluster "
                      "aligned; snapshot table entry corrupted\n",
                      sn->id, sn->name, (unsigned long long)sn->l1_offset);
            res->corruptions++;
            continue;
        }
        if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
            qb_printf(msgs,
                      "ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; snapshot "
                      "table entry corrupted\n",
                      sn->id, sn->name, sn->l1_size);
            res->corruptions++;
            continue;
        }
        check_l1(&c, sn->l1_offset, sn->l1_size, false);
    }
    inc_refs(&c, q->h.snapshots_offset, q->snapshots_size);
    inc_refs(&c, q->h.refcount_table_offset,
             (uint64_t)q->h.refcount_table_clusters << q->h.cluster_bits);
    if (q->h.crypt_method == 2 && q->has_crypto_ext)
        inc_refs(&c, q->crypto_offset, q->crypto_length);     /* LUKS header */
    check_bitmaps(&c);
    check_refblocks(&c);
    if (progress)
        progress(progress_ctx, 2, 3);
    uint64_t highest = 0;
    compare_refcounts(&c, &highest);
    check_copied(&c);
    res->image_end_offset = (highest + 1) << q->h.cluster_bits;
    if (progress)
        progress(progress_ctx, 3, 3);
    qb_free(&q->alloc, c.refs);
    qb_free(&q->alloc, c.l2);
    return QB_OK;
}
