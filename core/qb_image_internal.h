/* The image object behind qb_image.h: one layer of a chain, qcow2 or raw. */
#ifndef QB_IMAGE_INTERNAL_H
#define QB_IMAGE_INTERNAL_H

#include "qb_image.h"
#include "qcow2.h"

struct qb_image {
    qb_alloc alloc;
    qb_warn warn;
    const qb_opener *opener;
    char *filename;             /* as named (path-combined for backing files) */
    char *resolved;             /* the opener's canonical path: loop detection */
    qb_backend *file;
    bool is_qcow2;
    qcow2 q;
    uint64_t size;              /* virtual size */
    uint64_t file_size;         /* bytes in the file (a raw layer's data ends there) */
    qb_image *backing;
    unsigned depth;             /* 0 for the top */
    int prealloc_state;         /* metadata preallocation: -1 unknown, 0 no, 1 yes */
    bool raw_writable;          /* a raw top layer opened for writing */
    bool raw_writethrough;      /* ... flushed after every write call */
};

/* Reads unallocated parts of a qcow2 layer: from the backing file, zeros
 * past its end or without one. ctx is the qb_image. */
int qb_image_fill_from_backing(void *ctx, uint64_t off, void *buf, size_t len, qb_err *err);

#endif
