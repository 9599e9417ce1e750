/*
 * Internal state of an open qcow2 image, shared by the qcow2_*.c files.
 * Split by concern as the format is: header and extensions, the L2 table
 * cache, cluster mapping, compressed clusters, snapshots, refcount check.
 */
#ifndef QB_QCOW2_H
#define QB_QCOW2_H

#include "qb_types.h"
#include "qb_backend.h"
#include "qb_image.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)        /* as QEMU: 32 MiB of L1 */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)   /* as QEMU: 8 MiB of refcount table */
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024
#define QCOW2_MAX_SNAPSHOT_TABLE (64u << 20)
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_FEATURES 192                /* 3 bitmaps of 64 bits */

/* incompatible_features */
#define QCOW2_INCOMPAT_DIRTY      (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT    (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE  (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2      (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN      0x1full
/* compatible_features */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
/* autoclear_features */
#define QCOW2_AUTOCLEAR_BITMAPS   (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW  (1ull << 1)

/* header extension types */
#define QCOW2_EXT_END          0x00000000u
#define QCOW2_EXT_BACKING_FMT  0xe2792acau
#define QCOW2_EXT_FEATURES     0x6803f857u
#define QCOW2_EXT_BITMAPS      0x23852875u
#define QCOW2_EXT_CRYPTO       0x0537be77u
#define QCOW2_EXT_DATA_FILE    0x44415441u

/* table entries */
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)
#define QCOW2_L1E_OFFSET_MASK  0x00fffffffffffe00ull
#define QCOW2_L2E_OFFSET_MASK  0x00fffffffffffe00ull
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_L1E_RESERVED     0x7f000000000001ffull
#define QCOW2_L2E_STD_RESERVED 0x3f000000000001feull
#define QCOW2_REFT_RESERVED    0x00000000000001ffull

#define QCOW2_COMPRESSED_WINDOW (256u << 10)   /* read-ahead for compressed data */

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Reads guest data of this layer only; unallocated parts are filled by
 * calling fill(ctx, guest offset, buf, len). */
typedef int (*qcow2_fill_fn)(void *ctx, uint64_t off, void *buf, size_t len, qb_err *err);

typedef struct qcow2_feature_name {
    uint8_t type;           /* 0 incompatible, 1 compatible, 2 autoclear */
    uint8_t bit;
    char name[47];          /* NUL-terminated copy */
} qcow2_feature_name;

typedef struct qcow2_snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id;
    char *name;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint64_t icount;        /* UINT64_MAX when absent */
    uint32_t extra_size;
} qcow2_snapshot;

typedef struct qcow2_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible;
    uint64_t compatible;
    uint64_t autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
} qcow2_header;

/* What one guest (sub)cluster maps to. */
typedef enum qcow2_kind {
    QCOW2_UNALLOCATED,      /* read from backing / zeros */
    QCOW2_UNALLOCATED_ALLOC,/* extended L2: host cluster allocated, subcluster not */
    QCOW2_ZERO_PLAIN,       /* zero flag, no host cluster */
    QCOW2_ZERO_ALLOC,       /* zero flag, host cluster preallocated */
    QCOW2_NORMAL,           /* data at host offset */
    QCOW2_COMPRESSED,       /* compressed cluster */
} qcow2_kind;

/* A run of guest bytes sharing one kind and, for NORMAL/ZERO_ALLOC and
 * UNALLOCATED_ALLOC, contiguous host offsets. */
typedef struct qcow2_run {
    qcow2_kind kind;
    uint64_t host;          /* host offset of the first byte (or compressed descriptor offset) */
    uint64_t length;        /* guest bytes */
    uint64_t csize;         /* compressed: bytes of compressed data from host */
} qcow2_run;

typedef struct qcow2_cache_entry {
    uint64_t offset;        /* host offset of the table; 0 = empty slot */
    uint64_t lru;           /* last use stamp */
    uint8_t *table;
    bool dirty;             /* changed in memory, not yet written */
    unsigned pins;          /* in use by a caller: not to be evicted */
} qcow2_cache_entry;

/* Fixed-size cache of metadata tables (L2 tables, refcount blocks), least
 * recently used out. */
typedef struct qcow2_cache {
    qcow2_cache_entry *entries;
    size_t count;
    size_t table_size;
    uint64_t clock;
    size_t last_hit;        /* index of the last hit: sequential access hits it again */
} qcow2_cache;

typedef struct qcow2_decomp qcow2_decomp;
typedef struct qcow2_crypto qcow2_crypto;
typedef struct qcow2_comp qcow2_comp;

typedef struct qcow2 {
    qb_alloc alloc;
    qb_warn warn;
    const char *filename;       /* owned by the image */
    qb_backend *file;
    qb_backend *data_file;      /* == file unless an external data file is used */
    char *data_file_path;       /* resolved path of the external data file */
    uint64_t file_size;
    uint64_t data_file_size;    /* == file_size without an external data file */

    qcow2_header h;
    uint64_t cluster_size;
    uint32_t l2_bits;           /* log2 of L2 entries per table */
    uint32_t l2_entries;
    uint32_t l2_entry_size;     /* 8, or 16 with extended L2 */
    uint32_t subcluster_bits;   /* log2 of the subcluster size */
    uint32_t csize_shift;       /* compressed descriptor layout */
    uint64_t csize_mask;
    uint64_t coffset_mask;

    char backing_file[QCOW2_MAX_BACKING_NAME + 1];
    char backing_format[64];
    bool has_backing_format;
    char data_file_name[QB_PATH_MAX];
    bool has_data_file_name;
    qcow2_feature_name *features;
    uint32_t nb_features;
    bool has_bitmaps_ext;
    uint32_t nb_bitmaps;
    uint64_t bitmap_dir_size;
    uint64_t bitmap_dir_offset;
    bool has_crypto_ext;
    uint64_t crypto_offset;
    uint64_t crypto_length;
    qcow2_crypto *crypto;       /* keys of an encrypted image (qcow2_encrypt.c) */

    uint64_t *l1;               /* active (or snapshot) L1, host order */
    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t size;              /* virtual size (the snapshot's when opened at one) */

    qcow2_snapshot *snapshots;
    uint32_t nb_snapshots;
    uint64_t snapshots_size;    /* bytes of the snapshot table */

    qcow2_cache l2_cache;
    qcow2_cache rb_cache;       /* refcount blocks, set up on first use */
    uint64_t *reftable;         /* refcount table, host order; loaded on first use */
    uint64_t reftable_entries;
    qcow2_decomp *decomp;
    qcow2_comp *comp;           /* compressor state, set up by the first compressed write */
    uint8_t *cbuf;              /* compressed input, read ahead in a window */
    size_t cbuf_size;
    uint64_t cwin_off;          /* file range held in cbuf */
    uint64_t cwin_len;
    uint64_t clast_end;         /* end of the last compressed cluster read */
    uint8_t *ubuf;              /* one decompressed cluster */
    uint64_t ubuf_host;         /* descriptor whose data ubuf holds; UINT64_MAX none */
    uint64_t ubuf_csize;

    /* Writing (qcow2_alloc.c, qcow2_flush.c, qcow2_write.c). */
    bool writable;              /* opened for writing and not fallen back */
    bool writethrough;          /* flush after every write call */
    bool has_backing;           /* unallocated clusters read from a backing file */
    bool write_ready;           /* first-write header updates done */
    bool in_flush;              /* inside qcow2_flush_meta */
    bool need_sync;             /* written since the last backend flush */
    bool l1_dirty;              /* q->l1[l1_dirty_lo..l1_dirty_hi] differ from the file */
    uint32_t l1_dirty_lo, l1_dirty_hi;
    uint64_t reftable_capacity; /* entries the on-disk refcount table holds */
    bool reftable_dirty;        /* q->reftable[rt_dirty_lo..rt_dirty_hi] differ */
    uint64_t rt_dirty_lo, rt_dirty_hi;
    uint64_t free_hint;         /* no free cluster below this index */
    uint64_t alloc_end;         /* end of the highest cluster allocated (bytes) */
    uint64_t free_byte_offset;  /* next byte for compressed data; 0 none */
    uint64_t reftable_used;     /* refcount table entries below this may be set */
    uint64_t written_end;       /* the file ends here at most: past it, zeros */
    struct qcow2_pending_free *frees;   /* decrements waiting for their L2 write */
    size_t nb_frees, frees_cap;
} qcow2;

/* A refcount decrease that must wait until the table entry that dropped
 * the reference is on disk. */
typedef struct qcow2_pending_free {
    uint64_t cluster;
    uint64_t count;          /* consecutive clusters */
} qcow2_pending_free;

/* Metadata kinds for the overlap check (which one a write may overlap). */
enum {
    QCOW2_OL_NONE = 0,
    QCOW2_OL_L2 = 1,
    QCOW2_OL_REFBLOCK = 2,
};

/* qcow2_header.c */
int qcow2_probe(const uint8_t *buf, size_t len);
int qcow2_open(qcow2 *q, const qb_open_opts *opts, qb_backend *file, const char *filename,
               qb_err *err);
void qcow2_close(qcow2 *q);
const char *qcow2_feature_label(const qcow2 *q, unsigned type, unsigned bit, char *buf, size_t len);
int qcow2_validate_table(const qcow2 *q, uint64_t offset, uint64_t entries, uint64_t entry_len,
                         uint64_t max_bytes, const char *what, qb_err *err);
int qcow2_read_l1(qcow2 *q, uint64_t offset, uint32_t entries, uint64_t **out, const char *what,
                  qb_err *err);

/* qcow2_snapshot.c */
int qcow2_read_snapshots(qcow2 *q, qb_err *err);
void qcow2_free_snapshots(qcow2 *q);
const qcow2_snapshot *qcow2_find_snapshot(const qcow2 *q, const char *id_or_name);
int qcow2_load_snapshot(qcow2 *q, const qcow2_snapshot *sn, qb_err *err);

/* qcow2_cache.c */
int qcow2_cache_init(qcow2_cache *c, const qb_alloc *a, size_t table_size, size_t total_bytes);
void qcow2_cache_free(qcow2_cache *c, const qb_alloc *a);
/* Returns the table at offset, reading it on a miss. */
int qcow2_cache_get(qcow2 *q, qcow2_cache *c, uint64_t offset, const uint8_t **table, qb_err *err);
/* The same, pinned until qcow2_cache_unpin, for changing it. */
int qcow2_cache_get_pinned(qcow2 *q, qcow2_cache *c, uint64_t offset, uint8_t **table,
                           qb_err *err);
/* A new zeroed table at offset (not read), dirty and pinned. */
int qcow2_cache_new_pinned(qcow2 *q, qcow2_cache *c, uint64_t offset, uint8_t **table,
                           qb_err *err);
void qcow2_cache_unpin(qcow2_cache *c, const uint8_t *table);
void qcow2_cache_mark_dirty(qcow2_cache *c, const uint8_t *table);
void qcow2_cache_drop(qcow2_cache *c, uint64_t offset);
void qcow2_cache_invalidate(qcow2_cache *c);
int qcow2_cache_write_entry(qcow2 *q, qcow2_cache *c, qcow2_cache_entry *e, qb_err *err);
int qcow2_cache_write_dirty(qcow2 *q, qcow2_cache *c, bool *wrote, qb_err *err);
bool qcow2_cache_has_dirty(const qcow2_cache *c);

/* qcow2_alloc.c: refcounts in memory and cluster allocation. */
/* Adds delta to the refcount of `count` clusters from `cluster`, whose
 * refcount blocks must exist (qcow2_alloc_clusters creates the blocks of
 * what it hands out); the change reaches the file at the next flush. */
int qcow2_update_refcount(qcow2 *q, uint64_t cluster, uint64_t count, int64_t delta,
                          qb_err *err);
/* Allocates n contiguous free clusters (refcount 0 -> 1). */
int qcow2_alloc_clusters(qcow2 *q, uint64_t n, uint64_t *offset, qb_err *err);
/* Allocates size bytes for compressed data, sharing clusters as QEMU does. */
int qcow2_alloc_bytes(qcow2 *q, uint64_t size, uint64_t *offset, qb_err *err);
/* Drops one reference to the clusters covering [offset, offset+len) once
 * the entry that referenced them is on disk (the flush applies it). */
int qcow2_free_later(qcow2 *q, uint64_t offset, uint64_t len, qb_err *err);
/* Frees what an L2 entry referenced (data cluster or compressed bytes). */
int qcow2_free_l2_entry_later(qcow2 *q, uint64_t entry, qb_err *err);
int qcow2_apply_frees(qcow2 *q, qb_err *err);
/* Grows the in-memory refcount table to hold index ti. */
int qcow2_reftable_reach(qcow2 *q, uint64_t ti, qb_err *err);
uint64_t qcow2_refcount_max(const qcow2 *q);

/* qcow2_flush.c: ordered write-back of metadata. */
int qcow2_flush_meta(qcow2 *q, qb_err *err);
/* Fails (and marks the image corrupt) when [off, off+len) overlaps
 * metadata other than the kind `ignore`. */
int qcow2_check_overlap(qcow2 *q, uint64_t off, uint64_t len, int ignore, qb_err *err);
int qcow2_write_failed(qcow2 *q, qb_err *err, const char *fmt, ...);
/* Every write of the engine to its file goes through here, so that what
 * lies past the end of everything written is known to read as zeros. */
int qcow2_pwrite(qcow2 *q, qb_backend *b, uint64_t off, const void *buf, size_t len,
                 qb_err *err);
int qcow2_mark_corrupt(qcow2 *q, qb_err *err, const char *fmt, ...);
/* Checks the image may be written and does the header updates due before
 * the first write (clearing unknown autoclear bits). */
int qcow2_prepare_write(qcow2 *q, qb_err *err);
int qcow2_sync(qcow2 *q, qb_err *err);

/* qcow2_write.c */
int qcow2_write(qcow2 *q, uint64_t off, const uint8_t *buf, size_t len, qcow2_fill_fn fill,
                void *fill_ctx, qb_err *err);
int qcow2_write_zeroes(qcow2 *q, uint64_t off, uint64_t len, bool has_backing,
                       qcow2_fill_fn fill, void *fill_ctx, qb_err *err);
int qcow2_discard(qcow2 *q, uint64_t off, uint64_t len, bool has_backing, qb_err *err);
/* Every cluster unallocated: the layer reads as its backing file. */
int qcow2_make_empty(qcow2 *q, qb_err *err);
int qcow2_write_compressed(qcow2 *q, uint64_t off, const uint8_t *buf, size_t len,
                           qcow2_fill_fn fill, void *fill_ctx, qb_err *err);

/* qcow2_generation.c: structural changes (snapshots, repair) made by
 * writing new tables beside the old ones and switching to them with one
 * header write. */
typedef struct qcow2_new_snapshot {
    const char *name;
    uint64_t date_sec;
    uint32_t date_nsec;
} qcow2_new_snapshot;
int qcow2_snapshot_create(qcow2 *q, const qcow2_new_snapshot *ns, qb_err *err);
int qcow2_snapshot_apply(qcow2 *q, const char *id_or_name, qb_err *err);
int qcow2_snapshot_delete(qcow2 *q, const char *id_or_name, qb_err *err);
int qcow2_repair(qcow2 *q, int mode, qb_err *err);

/* qcow2_map.c */
int qcow2_map(qcow2 *q, uint64_t off, uint64_t len, qcow2_run *run, qb_err *err);
int qcow2_classify_l2(const qcow2 *q, uint64_t entry, uint64_t bitmap, unsigned sc,
                      qcow2_kind *kind);

/* qcow2_refcount.c */
int qcow2_load_reftable(qcow2 *q, qb_err *err);
/* Entry `index` of a refcount block of 2^order-bit entries. */
uint64_t qcow2_refcount_entry(const uint8_t *block, uint64_t index, unsigned order);
void qcow2_set_refcount_entry(uint8_t *block, uint64_t index, unsigned order, uint64_t v);
/* The refcount of host cluster `cluster`; 0 where no refcount block exists. */
int qcow2_get_refcount(qcow2 *q, uint64_t cluster, uint64_t *refcount, qb_err *err);
/* QEMU's test for preallocation=metadata: far more clusters have a
 * refcount than the file really occupies. Returns 1, 0, or <0. */
int qcow2_detect_metadata_prealloc(qcow2 *q);

/* qcow2_check.c: the read-only consistency check, counting as qemu-img
 * check counts. Messages about each problem go to `msgs`. */
typedef struct qcow2_check_result {
    uint64_t corruptions;
    uint64_t leaks;
    uint64_t check_errors;
    uint64_t image_end_offset;
    uint64_t total_clusters;
    uint64_t allocated_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} qcow2_check_result;
struct qb_out;
int qcow2_check(qcow2 *q, qcow2_check_result *res, const struct qb_out *msgs,
                void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx,
                qb_err *err);

/* qcow2_compress.c */
int qcow2_decomp_init(qcow2 *q, qb_err *err);
void qcow2_decomp_free(qcow2 *q);
/* Decompresses the cluster described by run into dest (a whole cluster),
 * or, with dest NULL, into q->ubuf, which keeps the last cluster for
 * partial reads of the same cluster. */
int qcow2_read_compressed(qcow2 *q, const qcow2_run *run, uint8_t *dest, qb_err *err);

/* The codec libraries' memory hooks (qcow2_compress.c): opaque is the
 * image's qb_alloc. */
void *qcow2_zlib_alloc(void *opaque, unsigned items, unsigned size);
void *qcow2_codec_alloc(void *opaque, size_t size);
void qcow2_codec_free(void *opaque, void *ptr);

/* qcow2_deflate.c: compression for writing, in the form QEMU writes and
 * reads (zlib: raw deflate, 4 KiB window; zstd: one frame, no checksum).
 * Compresses src (len <= one cluster) into dst (cap bytes). Returns QB_OK
 * with *out_len set, 1 when the result would not fit in cap (the caller then
 * writes the cluster uncompressed), or a negative error. */
int qcow2_compress_cluster(qcow2 *q, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                           size_t *out_len, qb_err *err);
void qcow2_comp_free(qcow2 *q);

/* qcow2_encrypt.c: encrypted clusters. Data is read and written through
 * these when q->crypto is set; host and guest are the offsets of the same
 * byte (the IV comes from one or the other depending on the method). */
int qcow2_crypto_open(qcow2 *q, const qb_open_opts *opts, qb_err *err);
void qcow2_crypto_close(qcow2 *q);
int qcow2_crypto_read(qcow2 *q, uint64_t host, uint64_t guest, uint8_t *buf, size_t len,
                      qb_err *err);
int qcow2_crypto_write(qcow2 *q, uint64_t host, uint64_t guest, const uint8_t *buf, size_t len,
                       qb_err *err);

/* qcow2_read.c */
int qcow2_read(qcow2 *q, uint64_t off, uint8_t *buf, size_t len, qcow2_fill_fn fill,
               void *fill_ctx, qb_err *err);

static inline uint64_t qcow2_offset_into_cluster(const qcow2 *q, uint64_t off)
{
    return off & (q->cluster_size - 1);
}

#endif
