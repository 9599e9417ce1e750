/*
 * Basic types shared by every part of the engine: error codes, the error
 * record, and the caller-supplied allocator.
 *
 * The engine is freestanding: it includes nothing but the headers that
 * libc-mini provides, keeps no global state, and never allocates except
 * through the qb_alloc the caller hands in.
 */
#ifndef QB_TYPES_H
#define QB_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

/* Error codes: 0 is success, errors are negative so they can share a
 * return value with counts. */
enum {
    QB_OK = 0,
    QB_EIO = -1,        /* the backend failed */
    QB_ENOMEM = -2,     /* the allocator refused */
    QB_EINVAL = -3,     /* bad argument from the caller */
    QB_ECORRUPT = -4,   /* the image violates the format */
    QB_EUNSUPP = -5,    /* valid image using something we do not support */
    QB_ENOENT = -6,     /* file or snapshot not found */
    QB_ERANGE = -7,     /* request outside the virtual disk */
    QB_EROFS = -8,      /* write to a read-only image or backend */
    QB_ECRYPT = -9,     /* encrypted image, passphrase required */
    QB_ELOOP = -10,     /* backing chain loops or is too deep */
    QB_EFULL = -11,     /* out of space */
};

/* An error record filled by the function that failed: a code and a
 * message naming what was wrong (file, offset, field). Caller-owned. */
#define QB_ERR_MSG_MAX 512
typedef struct qb_err {
    int code;
    char msg[QB_ERR_MSG_MAX];
} qb_err;

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return qb_err_set(err, QB_ECORRUPT, "...", ...);`. */
int qb_err_set(qb_err *err, int code, const char *fmt, ...);
/* Prefixes the existing message with more context ("file: ..."). */
int qb_err_prefix(qb_err *err, const char *fmt, ...);
const char *qb_strerror(int code);

/* The allocator. alloc returns NULL on failure; memory need not be
 * zeroed. free(NULL) is allowed. */
typedef struct qb_alloc {
    void *ctx;
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *ptr);
} qb_alloc;

void *qb_malloc(const qb_alloc *a, size_t size);
void *qb_zalloc(const qb_alloc *a, size_t size);
void qb_free(const qb_alloc *a, void *ptr);

#endif
