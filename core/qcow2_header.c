/*
 * Opening a qcow2 image: the header, its extensions, the backing file name,
 * the active L1 table. Every field is untrusted and checked before use;
 * errors name the field and its offset in the file.
 */
#include <string.h>
#include "qcow2.h"
#include "qb_endian.h"
#include "qb_fmt.h"

int qcow2_probe(const uint8_t *buf, size_t len)
{
    return len >= 8 && qb_be32(buf) == QCOW2_MAGIC;
}

static const char *const known_incompat[] = {
    "dirty bit", "corrupt bit", "external data file", "compression type", "extended L2 entries",
};

/* Names a feature bit: from the image's feature name table if it has one,
 * else from what we know, else "unknown incompatible feature bit N". */
const char *qcow2_feature_label(const qcow2 *q, unsigned type, unsigned bit, char *buf, size_t len)
{
    static const char *const kinds[] = { "incompatible", "compatible", "autoclear" };
    for (uint32_t i = 0; i < q->nb_features; i++) {
        if (q->features[i].type == type && q->features[i].bit == bit && q->features[i].name[0]) {
            qb_snprintf(buf, len, "%s (%s feature bit %u)", q->features[i].name,
                        kinds[type], bit);
            return buf;
        }
    }
    if (type == 0 && bit < sizeof(known_incompat) / sizeof(known_incompat[0]))
        qb_snprintf(buf, len, "%s", known_incompat[bit]);
    else
        qb_snprintf(buf, len, "unknown %s feature bit %u", type < 3 ? kinds[type] : "?", bit);
    return buf;
}

/* Checks a table described by the image: alignment, size limit, and that
 * it lies inside the file. */
int qcow2_validate_table(const qcow2 *q, uint64_t offset, uint64_t entries, uint64_t entry_len,
                         uint64_t max_bytes, const char *what, qb_err *err)
{
    if (entries > max_bytes / entry_len)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: %s too large (%llu entries, limit %llu bytes)", q->filename, what,
                          (unsigned long long)entries, (unsigned long long)max_bytes);
    uint64_t bytes = entries * entry_len;
    if (qcow2_offset_into_cluster(q, offset))
        return qb_err_set(err, QB_ECORRUPT, "%s: %s offset %#llx is not cluster aligned",
                          q->filename, what, (unsigned long long)offset);
    if (offset > UINT64_MAX - bytes || offset + bytes > q->file_size)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: %s at offset %#llx (%llu bytes) extends past the end of the file "
                          "(%llu bytes)",
                          q->filename, what, (unsigned long long)offset,
                          (unsigned long long)bytes, (unsigned long long)q->file_size);
    if (entries && offset == 0)
        return qb_err_set(err, QB_ECORRUPT, "%s: %s at offset 0 overlaps the header",
                          q->filename, what);
    return QB_OK;
}

int qcow2_read_l1(qcow2 *q, uint64_t offset, uint32_t entries, uint64_t **out, const char *what,
                  qb_err *err)
{
    int r = qcow2_validate_table(q, offset, entries, 8, QCOW2_MAX_L1_BYTES, what, err);
    if (r)
        return r;
    uint64_t *l1 = qb_malloc(&q->alloc, (size_t)entries * 8);
    if (!l1)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for %s (%u entries)", q->filename, what,
                          entries);
    if (entries) {
        r = qb_backend_read(q->file, offset, l1, (size_t)entries * 8, err);
        if (r) {
            qb_free(&q->alloc, l1);
            return qb_err_prefix(err, "%s: reading %s: ", q->filename, what);
        }
    }
    for (uint32_t i = 0; i < entries; i++)
        l1[i] = qb_be64(&l1[i]);
    *out = l1;
    return QB_OK;
}

static int parse_header(qcow2 *q, const uint8_t *b, qb_err *err)
{
    qcow2_header *h = &q->h;
    const char *f = q->filename;
    if (qb_be32(b) != QCOW2_MAGIC)
        return qb_err_set(err, QB_ECORRUPT, "%s: bad magic at offset 0 (not a qcow2 image)", f);
    h->version = qb_be32(b + 4);
    if (h->version != 2 && h->version != 3)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: header field version (offset 4) is %u; only 2 and 3 are supported",
                          f, h->version);
    h->backing_file_offset = qb_be64(b + 8);
    h->backing_file_size = qb_be32(b + 16);
    h->cluster_bits = qb_be32(b + 20);
    h->size = qb_be64(b + 24);
    h->crypt_method = qb_be32(b + 32);
    h->l1_size = qb_be32(b + 36);
    h->l1_table_offset = qb_be64(b + 40);
    h->refcount_table_offset = qb_be64(b + 48);
    h->refcount_table_clusters = qb_be32(b + 56);
    h->nb_snapshots = qb_be32(b + 60);
    h->snapshots_offset = qb_be64(b + 64);
    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = 72;
    } else {
        h->incompatible = qb_be64(b + 72);
        h->compatible = qb_be64(b + 80);
        h->autoclear = qb_be64(b + 88);
        h->refcount_order = qb_be32(b + 96);
        h->header_length = qb_be32(b + 100);
    }
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: header field cluster_bits (offset 20) is %u; must be 9 to 21 "
                          "(512 B to 2 MiB clusters)",
                          f, h->cluster_bits);
    q->cluster_size = 1ull << h->cluster_bits;
    if (h->version == 3) {
        if (h->header_length < 104)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: header field header_length (offset 100) is %u; version 3 "
                              "needs at least 104",
                              f, h->header_length);
        if (h->header_length % 8)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: header field header_length (offset 100) is %u; must be a "
                              "multiple of 8",
                              f, h->header_length);
        if (h->header_length > q->cluster_size)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: header field header_length (offset 100) is %u; larger than "
                              "the cluster (%llu bytes)",
                              f, h->header_length, (unsigned long long)q->cluster_size);
        if (h->header_length > 104)
            h->compression_type = b[104];
    }
    if (h->refcount_order > 6)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field refcount_order (offset 96) is %u; must be 0 to 6", f,
                          h->refcount_order);
    return QB_OK;
}

static int check_features(qcow2 *q, bool writable, bool have_passphrase, qb_err *err)
{
    qcow2_header *h = &q->h;
    uint64_t unknown = h->incompatible & ~QCOW2_INCOMPAT_KNOWN;
    if (unknown) {
        char names[QB_ERR_MSG_MAX / 2] = "";
        size_t n = 0;
        for (unsigned bit = 0; bit < 64; bit++) {
            if (!(unknown & (1ull << bit)))
                continue;
            char label[96];
            qcow2_feature_label(q, 0, bit, label, sizeof(label));
            size_t at = n < sizeof(names) ? n : sizeof(names);   /* past the end: count only */
            n += (size_t)qb_snprintf(names + at, sizeof(names) - at, "%s%s", n ? ", " : "", label);
        }
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: unsupported incompatible feature(s) in header field "
                          "incompatible_features (offset 72): %s",
                          q->filename, names);
    }
    if (h->crypt_method > 2)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: header field crypt_method (offset 32) is %u; unknown encryption "
                          "method",
                          q->filename, h->crypt_method);
    if (h->crypt_method && !have_passphrase)
        return qb_err_set(err, QB_ECRYPT, "%s: encrypted: passphrase required (%s encryption)",
                          q->filename, h->crypt_method == 1 ? "AES" : "LUKS");
    if (h->incompatible & QCOW2_INCOMPAT_CORRUPT) {
        if (writable)
            return qb_err_set(err, QB_EROFS,
                              "%s: image is marked corrupt (incompatible_features bit 1); it "
                              "cannot be opened for writing (run check -r all)",
                              q->filename);
        if (q->warn.warn)
            q->warn.warn(q->warn.ctx, "image is marked corrupt; opened read-only");
    }
    if ((h->incompatible & QCOW2_INCOMPAT_COMPRESSION) == 0 && h->compression_type != 0)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field compression_type (offset 104) is %u but the "
                          "compression type feature bit is clear",
                          q->filename, h->compression_type);
    if (h->incompatible & QCOW2_INCOMPAT_COMPRESSION) {
        if (h->header_length <= 104)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: compression type feature bit is set but the header has no "
                              "compression_type field (header_length %u)",
                              q->filename, h->header_length);
        if (h->compression_type == QCOW2_COMPRESSION_ZLIB)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: compression type feature bit is set but compression_type "
                              "(offset 104) is 0 (zlib)",
                              q->filename);
    }
    if (h->compression_type > QCOW2_COMPRESSION_ZSTD)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: header field compression_type (offset 104) is %u; unknown "
                          "compression method",
                          q->filename, h->compression_type);
    if ((h->incompatible & QCOW2_INCOMPAT_EXTL2) && h->cluster_bits < 14)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: extended L2 entries need clusters of at least 16 KiB "
                          "(cluster_bits is %u)",
                          q->filename, h->cluster_bits);
    return QB_OK;
}

static int read_string_ext(qcow2 *q, const uint8_t *data, uint32_t len, char *out, size_t cap,
                           const char *what, uint64_t at, qb_err *err)
{
    if (len >= cap)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: %s header extension at offset %#llx is too long (%u bytes)",
                          q->filename, what, (unsigned long long)at, len);
    memcpy(out, data, len);
    out[len] = '\0';
    if (strlen(out) != len)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: %s header extension at offset %#llx contains a NUL byte",
                          q->filename, what, (unsigned long long)at);
    return QB_OK;
}

/* Walks the header extensions between the header and ext_end (the backing
 * file name or the end of the first cluster). `b` holds the first cluster. */
static int parse_extensions(qcow2 *q, const uint8_t *b, uint64_t ext_end, qb_err *err)
{
    uint64_t off = q->h.header_length;
    bool seen_fmt = false, seen_feat = false, seen_bitmaps = false, seen_crypto = false,
         seen_data = false;
    while (off < ext_end) {
        if (ext_end - off < 8)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: header extension at offset %#llx overruns the header area "
                              "(ends at %#llx)",
                              q->filename, (unsigned long long)off, (unsigned long long)ext_end);
        uint32_t type = qb_be32(b + off);
        uint32_t len = qb_be32(b + off + 4);
        if (type == QCOW2_EXT_END)
            return QB_OK;
        if (len > ext_end - off - 8)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: header extension %#x at offset %#llx: length %u overruns the "
                              "header area (ends at %#llx)",
                              q->filename, type, (unsigned long long)off, len,
                              (unsigned long long)ext_end);
        const uint8_t *data = b + off + 8;
        bool *seen = NULL;
        int r = QB_OK;
        switch (type) {
        case QCOW2_EXT_BACKING_FMT:
            seen = &seen_fmt;
            r = read_string_ext(q, data, len, q->backing_format, sizeof(q->backing_format),
                                "backing format", off, err);
            q->has_backing_format = true;
            break;
        case QCOW2_EXT_FEATURES: {
            seen = &seen_feat;
            uint32_t n = len / 48;
            if (n > QCOW2_MAX_FEATURES)
                n = QCOW2_MAX_FEATURES;
            q->features = qb_zalloc(&q->alloc, (size_t)n * sizeof(*q->features));
            if (!q->features)
                return qb_err_set(err, QB_ENOMEM, "%s: no memory for the feature table",
                                  q->filename);
            for (uint32_t i = 0; i < n; i++) {
                q->features[i].type = data[i * 48];
                q->features[i].bit = data[i * 48 + 1];
                memcpy(q->features[i].name, data + i * 48 + 2, 46);
                q->features[i].name[46] = '\0';
            }
            q->nb_features = n;
            break;
        }
        case QCOW2_EXT_BITMAPS:
            seen = &seen_bitmaps;
            if (len < 24)
                return qb_err_set(err, QB_ECORRUPT,
                                  "%s: bitmaps header extension at offset %#llx is too short "
                                  "(%u bytes)",
                                  q->filename, (unsigned long long)off, len);
            q->has_bitmaps_ext = true;
            q->nb_bitmaps = qb_be32(data);
            q->bitmap_dir_size = qb_be64(data + 8);
            q->bitmap_dir_offset = qb_be64(data + 16);
            break;
        case QCOW2_EXT_CRYPTO:
            seen = &seen_crypto;
            if (len != 16)
                return qb_err_set(err, QB_ECORRUPT,
                                  "%s: encryption header extension at offset %#llx has length "
                                  "%u, expected 16",
                                  q->filename, (unsigned long long)off, len);
            q->has_crypto_ext = true;
            q->crypto_offset = qb_be64(data);
            q->crypto_length = qb_be64(data + 8);
            break;
        case QCOW2_EXT_DATA_FILE:
            seen = &seen_data;
            r = read_string_ext(q, data, len, q->data_file_name, sizeof(q->data_file_name),
                                "external data file name", off, err);
            q->has_data_file_name = true;
            break;
        default:
            break;  /* unknown extensions are skipped, as the spec allows */
        }
        if (r)
            return r;
        if (seen) {
            if (*seen)
                return qb_err_set(err, QB_ECORRUPT,
                                  "%s: header extension %#x appears twice (second at offset "
                                  "%#llx)",
                                  q->filename, type, (unsigned long long)off);
            *seen = true;
        }
        off += 8 + (((uint64_t)len + 7) & ~7ull);
    }
    return QB_OK;
}

static int read_backing_name(qcow2 *q, const uint8_t *b, qb_err *err)
{
    qcow2_header *h = &q->h;
    if (!h->backing_file_offset)
        return QB_OK;
    if (h->backing_file_size > QCOW2_MAX_BACKING_NAME)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field backing_file_size (offset 16) is %u; the limit is "
                          "1023",
                          q->filename, h->backing_file_size);
    if (h->backing_file_offset > q->cluster_size ||
        h->backing_file_size > q->cluster_size - h->backing_file_offset)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: backing file name at offset %#llx (%u bytes, header field "
                          "backing_file_offset) lies outside the first cluster",
                          q->filename, (unsigned long long)h->backing_file_offset,
                          h->backing_file_size);
    if (h->backing_file_offset < h->header_length)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field backing_file_offset (offset 8) is %#llx, inside the "
                          "header",
                          q->filename, (unsigned long long)h->backing_file_offset);
    if (h->backing_file_size == 0)
        return QB_OK;
    memcpy(q->backing_file, b + h->backing_file_offset, h->backing_file_size);
    q->backing_file[h->backing_file_size] = '\0';
    if (strlen(q->backing_file) != h->backing_file_size)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: backing file name at offset %#llx contains a NUL byte",
                          q->filename, (unsigned long long)h->backing_file_offset);
    return QB_OK;
}

/* Checks the fields that locate the tables, as far as they can be checked
 * without reading the tables. */
static int check_geometry(qcow2 *q, qb_err *err)
{
    qcow2_header *h = &q->h;
    q->l2_entry_size = (h->incompatible & QCOW2_INCOMPAT_EXTL2) ? 16 : 8;
    q->l2_bits = h->cluster_bits - (q->l2_entry_size == 16 ? 4 : 3);
    q->l2_entries = 1u << q->l2_bits;
    q->subcluster_bits = q->l2_entry_size == 16 ? h->cluster_bits - 5 : h->cluster_bits;
    q->csize_shift = 62 - (h->cluster_bits - 8);
    q->csize_mask = (1ull << (h->cluster_bits - 8)) - 1;
    q->coffset_mask = (1ull << q->csize_shift) - 1;

    /* The L1 table must cover the virtual size. */
    uint64_t bytes_per_l1 = q->cluster_size << q->l2_bits;
    if (h->size > (1ull << 62))
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field size (offset 24) is %llu; too large", q->filename,
                          (unsigned long long)h->size);
    uint64_t needed = (h->size + bytes_per_l1 - 1) / bytes_per_l1;
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field l1_size (offset 36) is %u; the L1 table would "
                          "exceed %u MiB",
                          q->filename, h->l1_size, QCOW2_MAX_L1_BYTES >> 20);
    if (h->l1_size < needed)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field l1_size (offset 36) is %u; the virtual size %llu "
                          "needs at least %llu entries",
                          q->filename, h->l1_size, (unsigned long long)h->size,
                          (unsigned long long)needed);
    int r = qcow2_validate_table(q, h->refcount_table_offset,
                                 (uint64_t)h->refcount_table_clusters << h->cluster_bits, 1,
                                 QCOW2_MAX_REFTABLE_BYTES, "refcount table", err);
    if (r)
        return r;
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: header field nb_snapshots (offset 60) is %u; the limit is %u",
                          q->filename, h->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
    if (h->nb_snapshots) {
        r = qcow2_validate_table(q, h->snapshots_offset, h->nb_snapshots, 40,
                                 40ull * QCOW2_MAX_SNAPSHOTS, "snapshot table", err);
        if (r)
            return r;
    }
    return QB_OK;
}

static int open_data_file(qcow2 *q, const qb_open_opts *opts, qb_err *err)
{
    qcow2_header *h = &q->h;
    if (!(h->incompatible & QCOW2_INCOMPAT_DATA_FILE)) {
        if (h->autoclear & QCOW2_AUTOCLEAR_DATA_RAW)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: data-file-raw (autoclear bit 1) is set without an external "
                              "data file",
                              q->filename);
        q->data_file = q->file;
        q->data_file_size = q->file_size;
        return QB_OK;
    }
    if (!q->has_data_file_name || !q->data_file_name[0])
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: the external data file bit is set but no data file name header "
                          "extension is present",
                          q->filename);
    if (h->nb_snapshots)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: images with an external data file cannot have snapshots",
                          q->filename);
    if (!opts->opener || !opts->opener->open)
        return qb_err_set(err, QB_EUNSUPP, "%s: cannot open external data file '%s' here",
                          q->filename, q->data_file_name);
    q->data_file_path = qb_malloc(&q->alloc, QB_PATH_MAX);
    if (!q->data_file_path)
        return qb_err_set(err, QB_ENOMEM, "no memory");
    q->data_file_path[0] = '\0';
    int r = opts->opener->open(opts->opener->ctx, q->filename, q->data_file_name, opts->writable,
                               &q->data_file, q->data_file_path, err);
    if (r)
        return qb_err_prefix(err, "%s: external data file: ", q->filename);
    r = qb_backend_size(q->data_file, &q->data_file_size, err);
    if (r)
        return qb_err_prefix(err, "%s: external data file: ", q->filename);
    return QB_OK;
}

int qcow2_open(qcow2 *q, const qb_open_opts *opts, qb_backend *file, const char *filename,
               qb_err *err)
{
    q->alloc = opts->alloc;
    q->warn = opts->warn;
    q->file = file;
    q->filename = filename;
    q->ubuf_host = UINT64_MAX;
    q->writable = opts->writable && !opts->snapshot;
    q->writethrough = opts->writethrough;
    int r = qb_backend_size(file, &q->file_size, err);
    if (r)
        return qb_err_prefix(err, "%s: ", filename);
    if (q->file_size < 72)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: file is %llu bytes, too short for a qcow2 header", filename,
                          (unsigned long long)q->file_size);

    /* The header, extensions and backing name all live in the first
     * cluster; read it whole (at most 2 MiB, after cluster_bits is checked). */
    uint8_t first[112];
    memset(first, 0, sizeof(first));
    r = qb_backend_read(file, 0, first, sizeof(first), err);
    if (r)
        return qb_err_prefix(err, "%s: reading header: ", filename);
    r = parse_header(q, first, err);
    if (r)
        return r;
    uint64_t head_len = q->cluster_size;
    uint8_t *head = qb_zalloc(&q->alloc, (size_t)head_len);
    if (!head)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the header cluster", filename);
    r = qb_backend_read(file, 0, head, (size_t)head_len, err);
    if (r) {
        qb_err_prefix(err, "%s: reading header: ", filename);
        goto out;
    }
    uint64_t ext_end = q->cluster_size;
    if (q->h.backing_file_offset && q->h.backing_file_offset < ext_end)
        ext_end = q->h.backing_file_offset;
    if (q->h.version == 3 && ext_end > q->h.header_length) {
        r = parse_extensions(q, head, ext_end, err);
        if (r)
            goto out;
    } else if (q->h.version == 2 && ext_end > 72) {
        r = parse_extensions(q, head, ext_end, err);
        if (r)
            goto out;
    }
    r = read_backing_name(q, head, err);
    if (r)
        goto out;
    q->has_backing = q->backing_file[0] != '\0';
    r = check_features(q, opts->writable, opts->passphrase != NULL, err);
    if (r)
        goto out;
    if (q->h.incompatible & QCOW2_INCOMPAT_DIRTY && q->warn.warn)
        q->warn.warn(q->warn.ctx, "image is dirty (not closed cleanly); refcounts may be stale");
    r = check_geometry(q, err);
    if (r)
        goto out;
    /* As QEMU: the disk is whole 512-byte sectors; a partial last sector
     * named by the header is not part of it. */
    q->size = q->h.size & ~511ull;
    q->l1_size = q->h.l1_size;
    q->l1_offset = q->h.l1_table_offset;
    r = qcow2_read_l1(q, q->l1_offset, q->l1_size, &q->l1, "L1 table (header field l1_table_offset)",
                      err);
    if (r)
        goto out;
    r = qcow2_read_snapshots(q, err);
    if (r)
        goto out;
    r = open_data_file(q, opts, err);
    if (r)
        goto out;
    if (q->h.crypt_method) {
        r = qcow2_crypto_open(q, opts, err);   /* last: the key derivation takes seconds */
        if (r)
            goto out;
    }
    size_t cache_bytes = opts->l2_cache_bytes ? opts->l2_cache_bytes : QB_DEFAULT_L2_CACHE;
    r = qcow2_cache_init(&q->l2_cache, &q->alloc, (size_t)q->cluster_size, cache_bytes);
    if (r) {
        qb_err_set(err, r, "%s: no memory for the L2 cache", filename);
        goto out;
    }
    r = qcow2_decomp_init(q, err);
    if (r)
        goto out;
    if (opts->snapshot) {
        const qcow2_snapshot *sn = qcow2_find_snapshot(q, opts->snapshot);
        if (!sn) {
            r = qb_err_set(err, QB_ENOENT, "%s: no snapshot with id or name '%s'", filename,
                           opts->snapshot);
            goto out;
        }
        r = qcow2_load_snapshot(q, sn, err);
        if (r)
            goto out;
    }
out:
    qb_free(&q->alloc, head);
    return r;
}

void qcow2_close(qcow2 *q)
{
    qcow2_crypto_close(q);
    qcow2_decomp_free(q);
    qcow2_comp_free(q);
    qb_free(&q->alloc, q->frees);
    q->frees = NULL;
    qcow2_cache_free(&q->l2_cache, &q->alloc);
    qcow2_cache_free(&q->rb_cache, &q->alloc);
    qb_free(&q->alloc, q->reftable);
    q->reftable = NULL;
    qcow2_free_snapshots(q);
    qb_free(&q->alloc, q->l1);
    qb_free(&q->alloc, q->features);
    if (q->data_file && q->data_file != q->file)
        q->data_file->vt->close(q->data_file);
    qb_free(&q->alloc, q->data_file_path);
    q->l1 = NULL;
    q->features = NULL;
}
