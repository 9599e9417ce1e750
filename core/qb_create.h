/*
 * Creating images: a new qcow2 file (v2 or v3) laid out as the options say,
 * or a raw file of the given size.
 */
#ifndef QB_CREATE_H
#define QB_CREATE_H

#include "qb_types.h"
#include "qb_backend.h"

typedef enum qb_prealloc {
    QB_PREALLOC_OFF,
    QB_PREALLOC_METADATA,     /* L2 tables and data clusters allocated, data sparse */
    QB_PREALLOC_FALLOC,       /* as metadata, file space reserved */
    QB_PREALLOC_FULL,         /* as metadata, zeros written */
} qb_prealloc;

typedef struct qb_create_opts {
    uint64_t size;                /* virtual size in bytes */
    unsigned version;             /* 2 or 3; 0 means 3 */
    unsigned cluster_bits;        /* 9..21; 0 means 16 */
    unsigned refcount_bits;       /* 1,2,4,...,64; 0 means 16 */
    bool extended_l2;
    bool lazy_refcounts;
    int compression_type;         /* QCOW2_COMPRESSION_ZLIB or _ZSTD */
    const char *backing_file;     /* NULL: none */
    const char *backing_format;   /* NULL: not recorded */
    qb_prealloc prealloc;
} qb_create_opts;

/* Checks the options alone (before a file is created for them). */
int qb_qcow2_create_check(const qb_create_opts *o, const char *filename, qb_err *err);
/* Writes a new qcow2 image into `file` (empty or truncated by the caller),
 * laid out as qemu-img lays it out; memory through `a`. `filename` is for
 * messages. */
int qb_qcow2_create(const qb_alloc *a, qb_backend *file, const char *filename,
                    const qb_create_opts *o, qb_err *err);

#endif
