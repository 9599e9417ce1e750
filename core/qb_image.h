/*
 * The image API: open an image (qcow2 or raw) with its backing chain, read
 * its virtual disk, ask what backs each range, close it.
 */
#ifndef QB_IMAGE_H
#define QB_IMAGE_H

#include "qb_types.h"
#include "qb_backend.h"

typedef struct qb_image qb_image;

/* Receives warnings (dirty image, corrupt bit on a read-only open, ...). */
typedef struct qb_warn {
    void *ctx;
    void (*warn)(void *ctx, const char *msg);
} qb_warn;

#define QB_DEFAULT_L2_CACHE (8u << 20)   /* bytes of L2 tables kept per image */
#define QB_DEFAULT_MAX_CHAIN 32          /* backing files followed at most */

typedef struct qb_open_opts {
    qb_alloc alloc;
    const qb_opener *opener;   /* for backing and data files; may be NULL */
    qb_warn warn;              /* may be zeroed */
    const char *filename;      /* path of the image (for errors and relative names) */
    qb_backend *file;          /* already opened; ownership passes to the image.
                                  NULL: opened through opener by filename */
    const char *format;        /* "qcow2", "raw" or NULL to probe */
    bool writable;
    bool no_backing;           /* do not open the backing chain */
    const char *snapshot;      /* open this internal snapshot (id or name), read-only */
    size_t l2_cache_bytes;     /* 0: QB_DEFAULT_L2_CACHE */
    bool writethrough;         /* flush after every write call (firmware: nothing
                                  may be left pending at ExitBootServices) */
    unsigned max_chain;        /* 0: QB_DEFAULT_MAX_CHAIN */
    /* Encrypted images: the passphrase (its bytes up to the first NUL, as
     * QEMU takes a secret), used for every encrypted layer of the chain;
     * NULL: encrypted images are refused with QB_ECRYPT. The caller wipes
     * it once the open returns. */
    const uint8_t *passphrase;
    size_t passphrase_len;
    /* Optional: progress of the key derivation (PBKDF2 iterations done out
     * of total), which takes seconds. */
    void (*kdf_progress)(void *ctx, uint64_t done, uint64_t total);
    void *kdf_progress_ctx;
} qb_open_opts;

int qb_image_open(qb_image **out, const qb_open_opts *opts, qb_err *err);
void qb_image_close(qb_image *img);

uint64_t qb_image_size(const qb_image *img);
const char *qb_image_filename(const qb_image *img);
const char *qb_image_format(const qb_image *img);   /* "qcow2" or "raw" */
qb_image *qb_image_backing(const qb_image *img);    /* NULL at the bottom */
/* Bytes per cluster of this layer: 0 for raw. */
uint64_t qb_image_cluster_size(const qb_image *img);

/* Reads the virtual disk. off+len must lie within the virtual size. */
int qb_image_read(qb_image *img, uint64_t off, void *buf, size_t len, qb_err *err);

/*
 * What backs the range starting at off, with the meaning `qemu-img map`
 * gives its fields. Fills st for the longest prefix of [off, off+len) that
 * shares one state (st->length > 0 on success).
 */
typedef struct qb_status {
    uint64_t length;
    unsigned depth;        /* layer of the chain that answered (0 = top) */
    bool present;          /* allocated in some layer */
    bool zero;             /* reads as zeros */
    bool data;             /* has data (not a hole / zero flag) */
    bool has_offset;       /* offset is valid */
    bool compressed;
    uint64_t offset;       /* host offset in the file of that layer */
    const char *filename;  /* the file holding offset */
} qb_status;
int qb_image_status(qb_image *img, uint64_t off, uint64_t len, qb_status *st, qb_err *err);

/*
 * Writing (qcow2 and raw top layers; backing files are never written).
 * Requires opts.writable. Writes reach the file in an order that leaves a
 * consistent image (leaks at worst) wherever a crash cuts them off; what
 * was written before the last successful qb_image_flush survives.
 */
bool qb_image_is_writable(const qb_image *img);
int qb_image_write(qb_image *img, uint64_t off, const void *buf, size_t len, qb_err *err);
/* [off, off+len) reads as zeros afterwards; whole (sub)clusters are marked
 * zero instead of written where the format can say so. */
int qb_image_write_zeroes(qb_image *img, uint64_t off, uint64_t len, qb_err *err);
/* Drops the whole clusters inside [off, off+len) as QEMU's discard does:
 * they read as zeros on v3 images, and on v2 images without a backing file
 * (v2 images with one keep them: without zero flags the backing file's
 * older data would show). Parts of clusters are left alone. */
int qb_image_discard(qb_image *img, uint64_t off, uint64_t len, qb_err *err);
/* Drops everything this (top) layer holds, so that it reads as its backing
 * file again (after a commit). */
int qb_image_make_empty(qb_image *img, qb_err *err);
/* Makes every completed write durable and the metadata on disk consistent. */
int qb_image_flush(qb_image *img, qb_err *err);
/* Flushes and closes the chain; returns the flush's result (the chain is
 * closed either way). */
int qb_image_close_flush(qb_image *img, qb_err *err);
/* Writes one cluster compressed (qcow2 only): off cluster aligned, len the
 * cluster size or what is left of the disk. Written uncompressed when
 * compression saves nothing. The target cluster must be unallocated. */
int qb_image_write_compressed(qb_image *img, uint64_t off, const void *buf, size_t len,
                              qb_err *err);

/* Internal snapshots of a qcow2 top layer opened writable. The date is the
 * caller's (the engine has no clock). */
int qb_image_snapshot_create(qb_image *img, const char *name, uint64_t date_sec,
                             uint32_t date_nsec, qb_err *err);
int qb_image_snapshot_apply(qb_image *img, const char *id_or_name, qb_err *err);
int qb_image_snapshot_delete(qb_image *img, const char *id_or_name, qb_err *err);

/* Rebuilds the refcounts of a qcow2 top layer from its L1/L2 tables and
 * snapshots, and fixes COPIED flags. QB_REPAIR_LEAKS only lowers refcounts
 * that are too high (leaks); QB_REPAIR_ALL also raises those too low. */
enum { QB_REPAIR_LEAKS = 1, QB_REPAIR_ALL = 2 };
int qb_image_repair(qb_image *img, int mode, qb_err *err);

#endif
