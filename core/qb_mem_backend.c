/* A read-only backend over a caller-owned buffer (fuzzers, unit tests). */
#include <string.h>
#include "qb_backend.h"

static int mem_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    qb_mem_backend *m = (qb_mem_backend *)b;
    uint8_t *out = buf;
    size_t n = 0;
    if (off < m->size) {
        n = m->size - off < len ? (size_t)(m->size - off) : len;
        memcpy(out, m->data + off, n);
    }
    memset(out + n, 0, len - n);
    return QB_OK;
}

static int mem_flush(qb_backend *b, qb_err *err)
{
    return QB_OK;
}

static int mem_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    *size = ((qb_mem_backend *)b)->size;
    return QB_OK;
}

static void mem_close(qb_backend *b)
{
}

static const qb_backend_class mem_class = {
    .read = mem_read,
    .flush = mem_flush,
    .get_size = mem_size,
    .close = mem_close,
};

void qb_mem_backend_init(qb_mem_backend *m, const void *data, size_t size)
{
    m->base.vt = &mem_class;
    m->data = data;
    m->size = size;
}
