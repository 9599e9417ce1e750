/*
 * Creating a qcow2 image: the options checked as qemu-img checks them, the
 * clusters laid out in memory (qcow2_layout.c), then everything written in
 * one pass, the header last so that an interrupted creation leaves no
 * image that looks valid.
 *
 * The header is what qemu-img 7.2 writes: a v3 header is 112 bytes (the
 * compression type byte padded to 8), followed by the backing format
 * extension, the feature name table (v3 with clusters above 4 KiB only, as
 * the table does not fit beside a backing file name in small clusters),
 * the end marker, and the backing file name.
 */
#include <string.h>
#include "qb_create.h"
#include "qb_endian.h"
#include "qcow2.h"
#include "qcow2_layout.h"

#define V2_HEADER_BYTES 72
#define V3_HEADER_BYTES 112
#define FEATURE_ENTRY_BYTES 48
#define MAX_L1_ENTRIES (QCOW2_MAX_L1_BYTES / 8)
#define ZERO_CHUNK (1u << 20)

static const struct {
    uint8_t type, bit;
    const char *name;
} feature_names[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};
#define FEATURE_COUNT (sizeof(feature_names) / sizeof(feature_names[0]))

/* The options after defaults, and what follows from them. */
typedef struct create_params {
    const qb_create_opts *o;
    const char *filename;
    unsigned version;
    unsigned cluster_bits;
    unsigned refcount_order;
    uint64_t size;              /* rounded up to whole sectors */
    uint64_t l1_entries;
    unsigned l2_entry_bytes;
    bool feature_table;
} create_params;

static unsigned log2_exact(uint64_t v)
{
    unsigned n = 0;
    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

static size_t ext_bytes(size_t len)
{
    return 8 + ((len + 7) & ~(size_t)7);
}

/* Bytes of cluster 0 in use: header, extensions, end marker, backing name. */
static size_t header_bytes(const create_params *p)
{
    const qb_create_opts *o = p->o;
    size_t n = p->version >= 3 ? V3_HEADER_BYTES : V2_HEADER_BYTES;
    if (o->backing_format)
        n += ext_bytes(strlen(o->backing_format));
    if (p->feature_table)
        n += ext_bytes(FEATURE_COUNT * FEATURE_ENTRY_BYTES);
    return n + 8 + (o->backing_file ? strlen(o->backing_file) : 0);
}

static int check_options(const qb_create_opts *o, const char *fn, create_params *p,
                         qb_err *err)
{
    memset(p, 0, sizeof(*p));
    p->o = o;
    p->filename = fn;
    p->version = o->version ? o->version : 3;
    if (p->version != 2 && p->version != 3)
        return qb_err_set(err, QB_EINVAL, "%s: qcow2 version %u is not 2 or 3", fn, o->version);
    p->cluster_bits = o->cluster_bits ? o->cluster_bits : 16;
    if (p->cluster_bits < QCOW2_MIN_CLUSTER_BITS || p->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return qb_err_set(err, QB_EINVAL,
                          "%s: Cluster size must be a power of two between 512 and 2048k", fn);
    unsigned rbits = o->refcount_bits ? o->refcount_bits : 16;
    if (rbits > 64 || (rbits & (rbits - 1)))
        return qb_err_set(err, QB_EINVAL,
                          "%s: Refcount width must be a power of two and may not exceed 64 "
                          "bits", fn);
    p->refcount_order = log2_exact(rbits);
    if (p->version == 2) {
        const char *what = rbits != 16 ? "Different refcount widths than 16 bits"
                           : o->lazy_refcounts ? "Lazy refcounts"
                           : o->compression_type != QCOW2_COMPRESSION_ZLIB
                               ? "Non-zlib compression type"
                           : o->extended_l2 ? "Extended L2 entries" : NULL;
        if (what)
            return qb_err_set(err, QB_EINVAL,
                              "%s: %s require compatibility level 1.1 or above (use "
                              "compat=1.1)", fn, what);
    }
    if (o->compression_type != QCOW2_COMPRESSION_ZLIB &&
        o->compression_type != QCOW2_COMPRESSION_ZSTD)
        return qb_err_set(err, QB_EINVAL, "%s: unknown compression type %d", fn,
                          o->compression_type);
    if (o->extended_l2 && p->cluster_bits < 14)
        return qb_err_set(err, QB_EINVAL,
                          "%s: Extended L2 entries are only supported with cluster sizes of "
                          "at least 16384 bytes", fn);
    p->l2_entry_bytes = o->extended_l2 ? 16 : 8;
    if (o->backing_format && !o->backing_file)
        return qb_err_set(err, QB_EINVAL, "%s: a backing format needs a backing file", fn);
    if (o->backing_file) {
        size_t n = strlen(o->backing_file);
        if (!n || n > QCOW2_MAX_BACKING_NAME)
            return qb_err_set(err, QB_EINVAL,
                              "%s: the backing file name must have 1 to %u bytes", fn,
                              QCOW2_MAX_BACKING_NAME);
        if (o->backing_format && (!o->backing_format[0] || strlen(o->backing_format) > 63))
            return qb_err_set(err, QB_EINVAL, "%s: bad backing format name '%s'", fn,
                              o->backing_format);
        if (o->prealloc != QB_PREALLOC_OFF && !o->extended_l2)
            return qb_err_set(err, QB_EINVAL,
                              "%s: Backing file and preallocation can only be used at the "
                              "same time if extended_l2 is on", fn);
    }
    if (o->prealloc < QB_PREALLOC_OFF || o->prealloc > QB_PREALLOC_FULL)
        return qb_err_set(err, QB_EINVAL, "%s: unknown preallocation mode %d", fn,
                          (int)o->prealloc);
    if (o->size > (uint64_t)INT64_MAX - 511)
        return qb_err_set(err, QB_EINVAL, "%s: image size %llu is too large", fn,
                          (unsigned long long)o->size);
    p->size = (o->size + 511) & ~511ull;
    uint64_t l2_span_bits = 2 * p->cluster_bits - log2_exact(p->l2_entry_bytes);
    p->l1_entries = (p->size >> l2_span_bits) + ((p->size & ((1ull << l2_span_bits) - 1)) != 0);
    if (p->l1_entries > MAX_L1_ENTRIES)
        return qb_err_set(err, QB_EINVAL,
                          "%s: The image size is too large for file format 'qcow2' (try "
                          "using a larger cluster size)", fn);
    p->feature_table = p->version >= 3 && p->cluster_bits > 12;
    size_t need = header_bytes(p);
    if (need > (size_t)1 << p->cluster_bits)
        return qb_err_set(err, QB_EINVAL,
                          "%s: the backing file name (%zu bytes) does not fit in the "
                          "%zu-byte header cluster", fn, strlen(o->backing_file),
                          (size_t)1 << p->cluster_bits);
    return QB_OK;
}

static uint8_t *put_ext(uint8_t *p, uint32_t type, const void *data, size_t len)
{
    qb_put_be32(p, type);
    qb_put_be32(p + 4, (uint32_t)len);
    if (len)
        memcpy(p + 8, data, len);
    return p + ext_bytes(len);
}

/* Cluster 0: the header, its extensions and the backing file name. */
static int build_header(const create_params *p, const qcow2_layout *l, uint8_t *h,
                        qb_err *err)
{
    const qb_create_opts *o = p->o;
    size_t cs = (size_t)1 << p->cluster_bits;
    size_t hdr = p->version >= 3 ? V3_HEADER_BYTES : V2_HEADER_BYTES;
    size_t fmt_len = o->backing_format ? strlen(o->backing_format) : 0;
    size_t name_len = o->backing_file ? strlen(o->backing_file) : 0;
    if (header_bytes(p) > cs)       /* checked with the options already */
        return qb_err_set(err, QB_EINVAL, "%s: the header does not fit in cluster 0",
                          p->filename);
    memset(h, 0, cs);
    qb_put_be32(h + 0, QCOW2_MAGIC);
    qb_put_be32(h + 4, p->version);
    qb_put_be32(h + 20, p->cluster_bits);
    qb_put_be64(h + 24, p->size);
    qb_put_be32(h + 36, (uint32_t)l->l1_entries);
    qb_put_be64(h + 40, l->l1_offset);
    qb_put_be64(h + 48, l->rt_cluster << p->cluster_bits);
    qb_put_be32(h + 56, (uint32_t)((l->rt_entries * 8) >> p->cluster_bits));
    if (p->version >= 3) {
        uint64_t incompat = 0, compat = 0;
        if (o->compression_type != QCOW2_COMPRESSION_ZLIB)
            incompat |= QCOW2_INCOMPAT_COMPRESSION;
        if (o->extended_l2)
            incompat |= QCOW2_INCOMPAT_EXTL2;
        if (o->lazy_refcounts)
            compat |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        qb_put_be64(h + 72, incompat);
        qb_put_be64(h + 80, compat);
        qb_put_be32(h + 96, p->refcount_order);
        qb_put_be32(h + 100, V3_HEADER_BYTES);
        h[104] = (uint8_t)o->compression_type;
    }
    uint8_t *e = h + hdr;
    if (fmt_len)
        e = put_ext(e, QCOW2_EXT_BACKING_FMT, o->backing_format, fmt_len);
    if (p->feature_table) {
        uint8_t table[FEATURE_COUNT * FEATURE_ENTRY_BYTES];
        memset(table, 0, sizeof(table));
        for (size_t i = 0; i < FEATURE_COUNT; i++) {
            uint8_t *t = table + i * FEATURE_ENTRY_BYTES;
            t[0] = feature_names[i].type;
            t[1] = feature_names[i].bit;
            memcpy(t + 2, feature_names[i].name, strlen(feature_names[i].name));
        }
        e = put_ext(e, QCOW2_EXT_FEATURES, table, sizeof(table));
    }
    e = put_ext(e, QCOW2_EXT_END, NULL, 0);
    if (name_len) {
        qb_put_be64(h + 8, (uint64_t)(e - h));
        qb_put_be32(h + 16, (uint32_t)name_len);
        memcpy(e, o->backing_file, name_len);
    }
    return QB_OK;
}

static int write_at(const create_params *p, qb_backend *f, uint64_t off, const void *buf,
                    size_t len, const char *what, qb_err *err)
{
    int r = f->vt->write(f, off, buf, len, err);
    if (r)
        return qb_err_prefix(err, "%s: writing the %s at %llu: ", p->filename, what,
                             (unsigned long long)off);
    return QB_OK;
}

static int write_zeros(const create_params *p, qb_backend *f, uint64_t start, uint64_t end,
                       uint8_t *zeros, size_t zlen, qb_err *err)
{
    memset(zeros, 0, zlen);
    for (uint64_t off = start; off < end;) {
        size_t n = end - off < zlen ? (size_t)(end - off) : zlen;
        int r = write_at(p, f, off, zeros, n, "preallocated data", err);
        if (r)
            return r;
        off += n;
    }
    return QB_OK;
}

/* The data clusters that preallocation writes: the whole data area for
 * full and falloc (the backend cannot reserve space without writing it),
 * a partial last cluster for metadata. */
static int write_prealloc_data(const create_params *p, const qcow2_layout *l, qb_backend *f,
                               uint8_t *zeros, size_t zlen, qb_err *err)
{
    if (p->o->prealloc == QB_PREALLOC_FULL || p->o->prealloc == QB_PREALLOC_FALLOC)
        return write_zeros(p, f, l->data_start, l->data_end, zeros, zlen, err);
    if (l->tail_cluster != UINT64_MAX)
        return write_zeros(p, f, l->tail_cluster << p->cluster_bits,
                           (l->tail_cluster + 1) << p->cluster_bits, zeros, zlen, err);
    return QB_OK;
}

static int write_l2_tables(const create_params *p, const qcow2_layout *l, qb_backend *f,
                           uint8_t *buf, qb_err *err)
{
    size_t cs = (size_t)1 << p->cluster_bits;
    uint64_t per_table = cs / p->l2_entry_bytes;
    size_t run = 0;
    for (uint64_t i = 0; l->l2 && i < l->l1_entries; i++) {
        if (!l->l2[i])
            continue;
        memset(buf, 0, cs);
        uint64_t first = i * per_table, end = first + per_table;
        while (run < l->nruns && l->runs[run].guest + l->runs[run].count <= first)
            run++;
        for (size_t k = run; k < l->nruns && l->runs[k].guest < end; k++) {
            const qcow2_data_run *d = &l->runs[k];
            uint64_t g0 = d->guest > first ? d->guest : first;
            uint64_t g1 = d->guest + d->count < end ? d->guest + d->count : end;
            for (uint64_t g = g0; g < g1; g++) {
                uint64_t host = (d->host + (g - d->guest)) << p->cluster_bits;
                /* Preallocated clusters are plain data clusters; with
                 * extended L2 their subclusters stay unallocated (the
                 * bitmap is 0), as qemu-img leaves them. */
                qb_put_be64(buf + (g - first) * p->l2_entry_bytes, host | QCOW2_OFLAG_COPIED);
            }
        }
        int r = write_at(p, f, l->l2[i] << p->cluster_bits, buf, cs, "L2 table", err);
        if (r)
            return r;
    }
    return QB_OK;
}

/* A refcount table, in pieces of one cluster. */
static int write_reftable(const create_params *p, qb_backend *f, uint64_t cluster,
                          const uint64_t *table, uint64_t entries, uint8_t *buf, qb_err *err)
{
    size_t cs = (size_t)1 << p->cluster_bits;
    uint64_t per_cluster = cs / 8;
    for (uint64_t i = 0; i < entries; i += per_cluster) {
        for (uint64_t k = 0; k < per_cluster; k++)
            qb_put_be64(buf + k * 8, table[i + k] << p->cluster_bits);
        int r = write_at(p, f, (cluster << p->cluster_bits) + i * 8, buf, cs,
                         "refcount table", err);
        if (r)
            return r;
    }
    return QB_OK;
}

static void set_refcount_one(uint8_t *block, uint64_t index, unsigned order)
{
    if (order < 3) {
        uint64_t bit = index << order;
        block[bit / 8] |= (uint8_t)(1u << (bit % 8));
    } else {
        size_t bytes = (size_t)1 << (order - 3);
        block[(index + 1) * bytes - 1] = 1;       /* big endian 1 */
    }
}

static int write_refcounts(const create_params *p, const qcow2_layout *l, qb_backend *f,
                           uint8_t *buf, qb_err *err)
{
    size_t cs = (size_t)1 << p->cluster_bits;
    size_t x = 0;
    for (uint64_t t = 0; t < l->rt_entries; t++) {
        if (!l->reftable[t])
            continue;
        memset(buf, 0, cs);
        uint64_t first = t << l->rb_bits, end = (t + 1) << l->rb_bits;
        while (x < l->nused && l->used[x].end <= first)
            x++;
        for (size_t k = x; k < l->nused && l->used[k].start < end; k++) {
            uint64_t c0 = l->used[k].start > first ? l->used[k].start : first;
            uint64_t c1 = l->used[k].end < end ? l->used[k].end : end;
            for (uint64_t c = c0; c < c1; c++)
                set_refcount_one(buf, c - first, p->refcount_order);
        }
        int r = write_at(p, f, l->reftable[t] << p->cluster_bits, buf, cs, "refcount block",
                         err);
        if (r)
            return r;
    }
    return write_reftable(p, f, l->rt_cluster, l->reftable, l->rt_entries, buf, err);
}

static int write_l1(const create_params *p, const qcow2_layout *l, qb_backend *f,
                    uint8_t *buf, qb_err *err)
{
    size_t cs = (size_t)1 << p->cluster_bits;
    uint64_t per_cluster = cs / 8;
    for (uint64_t i = 0; i < l->l1_entries; i += per_cluster) {
        uint64_t n = l->l1_entries - i < per_cluster ? l->l1_entries - i : per_cluster;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t l2 = l->l2 ? l->l2[i + k] : 0;
            qb_put_be64(buf + k * 8, l2 ? (l2 << p->cluster_bits) | QCOW2_OFLAG_COPIED : 0);
        }
        int r = write_at(p, f, l->l1_offset + i * 8, buf, (size_t)n * 8, "L1 table", err);
        if (r)
            return r;
    }
    return QB_OK;
}

static int write_image(const create_params *p, const qcow2_layout *l, qb_backend *f,
                       const qb_alloc *a, qb_err *err)
{
    size_t cs = (size_t)1 << p->cluster_bits;
    size_t blen = cs > ZERO_CHUNK ? cs : ZERO_CHUNK;
    uint8_t *buf = qb_malloc(a, blen);
    if (!buf)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory to write the image", p->filename);
    int r = QB_OK;
    /* Replaced refcount tables first: whatever took their clusters since
     * is written over them. */
    for (size_t i = 0; i < l->nold && !r; i++)
        r = write_reftable(p, f, l->old[i].cluster, l->old[i].table, l->old[i].entries, buf,
                           err);
    if (!r)
        r = write_prealloc_data(p, l, f, buf, blen, err);
    if (!r)
        r = write_l2_tables(p, l, f, buf, err);
    if (!r)
        r = write_refcounts(p, l, f, buf, err);
    if (!r)
        r = write_l1(p, l, f, buf, err);
    if (!r)
        r = build_header(p, l, buf, err);
    if (!r)
        r = write_at(p, f, 0, buf, cs, "header", err);
    qb_free(a, buf);
    if (r)
        return r;
    /* The file ends where the furthest structure or preallocated cluster
     * does; metadata preallocation leaves the data as a hole. */
    if (f->vt->set_size) {
        r = f->vt->set_size(f, l->file_end, err);
    } else {
        uint64_t size;
        r = f->vt->get_size(f, &size, err);
        if (!r && size < l->file_end) {
            static const uint8_t zero = 0;
            r = f->vt->write(f, l->file_end - 1, &zero, 1, err);
        }
    }
    if (r)
        return qb_err_prefix(err, "%s: setting the file size to %llu: ", p->filename,
                             (unsigned long long)l->file_end);
    r = f->vt->flush(f, err);
    return r ? qb_err_prefix(err, "%s: flush: ", p->filename) : QB_OK;
}

int qb_qcow2_create_check(const qb_create_opts *o, const char *filename, qb_err *err)
{
    create_params p;
    return check_options(o, filename, &p, err);
}

int qb_qcow2_create(const qb_alloc *a, qb_backend *file, const char *filename,
                          const qb_create_opts *o, qb_err *err)
{
    create_params p;
    int r = check_options(o, filename, &p, err);
    if (r)
        return r;
    if (!file->vt->write)
        return qb_err_set(err, QB_EROFS, "%s: the file is not writable", filename);
    qcow2_layout l;
    r = qcow2_layout_init(&l, a, filename, p.cluster_bits, p.refcount_order, p.l2_entry_bytes,
                          err);
    if (!r)
        r = qcow2_layout_l1(&l, p.l1_entries, err);
    if (!r && o->prealloc != QB_PREALLOC_OFF)
        r = qcow2_layout_prealloc(&l, p.size, o->prealloc != QB_PREALLOC_METADATA, err);
    if (!r)
        r = write_image(&p, &l, file, a, err);
    qcow2_layout_free(&l);
    return r;
}
