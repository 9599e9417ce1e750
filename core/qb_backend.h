/*
 * The byte-addressed storage the engine runs over: a file on Linux, an
 * EFI_FILE_PROTOCOL file or a Block I/O device in firmware, or memory.
 *
 * A backend is a struct whose first member points at its class; front ends
 * embed it in their own struct and recover it with a cast. The engine does
 * all its I/O through these calls and nothing else.
 */
#ifndef QB_BACKEND_H
#define QB_BACKEND_H

#include "qb_types.h"

typedef struct qb_backend qb_backend;

typedef struct qb_backend_class {
    /* Reads len bytes at off. Bytes past the end of the backend read as
     * zero (as a file does in QEMU); errors only for real I/O failures.
     * Returns QB_OK or a negative code, with err filled. */
    int (*read)(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err);
    /* Writes len bytes at off, extending the backend if needed. NULL for
     * read-only backends. */
    int (*write)(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err);
    /* Makes every completed write durable. A storage interface without a
     * flush cannot be made crash-safe, so this is not optional for
     * writable backends. */
    int (*flush)(qb_backend *b, qb_err *err);
    /* Current size in bytes. */
    int (*get_size)(qb_backend *b, uint64_t *size, qb_err *err);
    /* Truncates or extends (extension reads as zeros). May be NULL. */
    int (*set_size)(qb_backend *b, uint64_t size, qb_err *err);
    /* Optional (may be NULL: everything is data). Tells whether off lies in
     * a hole (reads as zeros without storage) and how many bytes from off,
     * at most len, share that state. */
    int (*extent)(qb_backend *b, uint64_t off, uint64_t len, bool *hole,
                  uint64_t *n, qb_err *err);
    /* Optional (may be NULL): bytes of storage really allocated. */
    int (*allocated)(qb_backend *b, uint64_t *bytes, qb_err *err);
    /* Releases the backend and its memory. */
    void (*close)(qb_backend *b);
} qb_backend_class;

struct qb_backend {
    const qb_backend_class *vt;
};

static inline int qb_backend_read(qb_backend *b, uint64_t off, void *buf,
                                  size_t len, qb_err *err)
{
    return b->vt->read(b, off, buf, len, err);
}

static inline int qb_backend_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    return b->vt->get_size(b, size, err);
}

static inline int qb_backend_write(qb_backend *b, uint64_t off, const void *buf,
                                   size_t len, qb_err *err)
{
    if (!b->vt->write)
        return qb_err_set(err, QB_EROFS, "read-only file");
    return b->vt->write(b, off, buf, len, err);
}

static inline int qb_backend_flush(qb_backend *b, qb_err *err)
{
    return b->vt->flush ? b->vt->flush(b, err) : 0;
}

/*
 * How the engine finds files by name (backing files, external data files,
 * output files). Supplied by the front end, which knows its file systems.
 */
#define QB_PATH_MAX 1024
typedef struct qb_opener {
    void *ctx;
    /* Opens `name`. If `relative_to` is non-NULL and `name` is relative,
     * it is resolved against the directory part of `relative_to` (the
     * path of the image that names it). The resolved, canonical path is
     * written to `resolved` (QB_PATH_MAX bytes): two opens of the same
     * file give the same string, which is how loops are detected. */
    int (*open)(void *ctx, const char *relative_to, const char *name,
                bool writable, qb_backend **out, char *resolved, qb_err *err);
    /* Creates (or truncates) a file for writing. */
    int (*create)(void *ctx, const char *path, qb_backend **out, qb_err *err);
} qb_opener;

/* A backend over a caller-owned memory buffer (read-only), used by the
 * fuzzers and unit tests. `mem` must live as long as the backend. */
typedef struct qb_mem_backend {
    qb_backend base;
    const uint8_t *data;
    size_t size;
} qb_mem_backend;
void qb_mem_backend_init(qb_mem_backend *m, const void *data, size_t size);

#endif
