/* Error records and the allocator helpers. */
#include <string.h>
#include "qb_types.h"
#include "qb_fmt.h"

int qb_err_set(qb_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        qb_vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

int qb_err_prefix(qb_err *err, const char *fmt, ...)
{
    if (!err)
        return QB_EINVAL;
    char prefix[QB_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = qb_vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(prefix)) {
        size_t old = strlen(err->msg);
        size_t room = sizeof(err->msg) - 1;
        size_t pn = (size_t)n;
        if (pn > room)
            pn = room;
        if (old > room - pn)
            old = room - pn;
        memmove(err->msg + pn, err->msg, old);
        memcpy(err->msg, prefix, pn);
        err->msg[pn + old] = '\0';
    }
    return err->code;
}

const char *qb_strerror(int code)
{
    switch (code) {
    case QB_OK: return "success";
    case QB_EIO: return "I/O error";
    case QB_ENOMEM: return "out of memory";
    case QB_EINVAL: return "invalid argument";
    case QB_ECORRUPT: return "image is corrupt";
    case QB_EUNSUPP: return "unsupported";
    case QB_ENOENT: return "not found";
    case QB_ERANGE: return "out of range";
    case QB_EROFS: return "read-only";
    case QB_ECRYPT: return "encrypted: passphrase required";
    case QB_ELOOP: return "backing chain loops or is too deep";
    case QB_EFULL: return "no space left";
    default: return "unknown error";
    }
}

void *qb_malloc(const qb_alloc *a, size_t size)
{
    return a->alloc(a->ctx, size ? size : 1);
}

void *qb_zalloc(const qb_alloc *a, size_t size)
{
    void *p = qb_malloc(a, size);
    if (p)
        memset(p, 0, size);
    return p;
}

void qb_free(const qb_alloc *a, void *ptr)
{
    if (ptr)
        a->free(a->ctx, ptr);
}
