/* The fault-injecting backend (see fault_backend.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fault_backend.h"

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "crash_test: out of memory\n");
        abort();
    }
    return p;
}

static void reserve(byte_buf *b, uint64_t size)
{
    if (size <= b->cap)
        return;
    uint64_t cap = b->cap ? b->cap : 1 << 20;
    while (cap < size)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void byte_buf_resize(byte_buf *b, uint64_t size)
{
    reserve(b, size);
    if (size > b->size)
        memset(b->p + b->size, 0, size - b->size);
    b->size = size;
}

void byte_buf_set(byte_buf *b, const void *data, uint64_t size)
{
    reserve(b, size);
    if (size)
        memcpy(b->p, data, size);
    b->size = size;
}

void byte_buf_write(byte_buf *b, uint64_t off, const void *data, uint64_t len)
{
    if (off > b->size)
        byte_buf_resize(b, off);
    if (off + len > b->size) {
        reserve(b, off + len);
        b->size = off + len;
    }
    memcpy(b->p + off, data, len);
}

void byte_buf_free(byte_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->size = b->cap = 0;
}

static void apply_change(byte_buf *b, const fault_disk *d, const pending_change *c)
{
    if (c->resize)
        byte_buf_resize(b, c->off);
    else
        byte_buf_write(b, c->off, d->log.p + c->data, c->len);
}

static void drop_pending(fault_disk *d)
{
    d->npend = 0;
    d->log.size = 0;
}

static void add_pending(fault_disk *d, uint64_t off, const void *data, uint64_t len)
{
    if (d->npend == d->cappend) {
        d->cappend = d->cappend ? d->cappend * 2 : 64;
        d->pend = xrealloc(d->pend, d->cappend * sizeof(*d->pend));
    }
    pending_change *c = &d->pend[d->npend++];
    c->off = off;
    c->len = len;
    c->resize = !data;
    c->call = d->calls;
    c->data = d->log.size;
    if (data)
        byte_buf_write(&d->log, d->log.size, data, len);
}

/* Counts a call that changes the disk; false when it must fail (the crash
 * point, or any call after it). */
static bool count_call(fault_disk *d, char kind, qb_err *err)
{
    if (d->crashed) {
        qb_err_set(err, QB_EIO, "fault backend: stopped at call %llu",
                   (unsigned long long)d->crash_at);
        return false;
    }
    d->calls++;
    if (d->trace) {
        if (d->calls > d->kinds_cap) {
            d->kinds_cap = d->kinds_cap ? d->kinds_cap * 2 : 4096;
            d->kinds = xrealloc(d->kinds, d->kinds_cap);
        }
        d->kinds[d->calls - 1] = kind;
    }
    if (d->crash_at && d->calls >= d->crash_at) {
        d->crashed = true;
        qb_err_set(err, QB_EIO, "fault backend: crash at call %llu (%c)",
                   (unsigned long long)d->calls, kind);
        return false;
    }
    return true;
}

static int fd_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    fault_disk *d = (fault_disk *)b;
    if (d->crashed)
        return qb_err_set(err, QB_EIO, "fault backend: read after the crash");
    uint8_t *out = buf;
    size_t n = 0;
    if (off < d->cur.size)
        n = d->cur.size - off < len ? (size_t)(d->cur.size - off) : len;
    if (n)
        memcpy(out, d->cur.p + off, n);
    memset(out + n, 0, len - n);
    return QB_OK;
}

static int fd_write(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    fault_disk *d = (fault_disk *)b;
    if (off > FAULT_DISK_MAX || len > FAULT_DISK_MAX - off)
        return qb_err_set(err, QB_EFULL, "fault backend: write of %zu bytes at %llu: the test's "
                          "disk holds %llu bytes at most", len, (unsigned long long)off,
                          FAULT_DISK_MAX);
    if (!count_call(d, CALL_WRITE, err))
        return QB_EIO;
    byte_buf_write(&d->cur, off, buf, len);
    add_pending(d, off, buf, len);
    return QB_OK;
}

static int fd_flush(qb_backend *b, qb_err *err)
{
    fault_disk *d = (fault_disk *)b;
    if (!count_call(d, CALL_FLUSH, err))
        return QB_EIO;
    for (size_t i = 0; i < d->npend; i++)
        apply_change(&d->dur, d, &d->pend[i]);
    drop_pending(d);
    d->flushes++;
    return QB_OK;
}

static int fd_get_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    fault_disk *d = (fault_disk *)b;
    if (d->crashed)
        return qb_err_set(err, QB_EIO, "fault backend: size after the crash");
    *size = d->cur.size;
    return QB_OK;
}

static int fd_set_size(qb_backend *b, uint64_t size, qb_err *err)
{
    fault_disk *d = (fault_disk *)b;
    if (size > FAULT_DISK_MAX)
        return qb_err_set(err, QB_EFULL, "fault backend: size %llu: the test's disk holds "
                          "%llu bytes at most", (unsigned long long)size, FAULT_DISK_MAX);
    if (!count_call(d, CALL_RESIZE, err))
        return QB_EIO;
    byte_buf_resize(&d->cur, size);
    add_pending(d, size, NULL, 0);
    return QB_OK;
}

static void fd_close(qb_backend *b)
{
    ((fault_disk *)b)->closed = true;
}

static const qb_backend_class fault_class = {
    .read = fd_read,
    .write = fd_write,
    .flush = fd_flush,
    .get_size = fd_get_size,
    .set_size = fd_set_size,
    .close = fd_close,
};

void fault_disk_reset(fault_disk *d, const uint8_t *image, uint64_t size, uint64_t crash_at)
{
    d->base.vt = &fault_class;
    byte_buf_set(&d->cur, image, size);
    byte_buf_set(&d->dur, image, size);
    drop_pending(d);
    d->calls = 0;
    d->flushes = 0;
    d->crash_at = crash_at;
    d->crashed = false;
    d->closed = false;
}

void fault_disk_free(fault_disk *d)
{
    free(d->pend);
    free(d->kinds);
    byte_buf_free(&d->log);
    byte_buf_free(&d->cur);
    byte_buf_free(&d->dur);
    memset(d, 0, sizeof(*d));
}

qb_backend *fault_disk_backend(fault_disk *d)
{
    return &d->base;
}

/* splitmix64: small, seedable, good enough to pick subsets. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xBF58476D1CE4E5B9ull;
}

const byte_buf *fault_disk_crash_image(const fault_disk *d, uint64_t seed, byte_buf *scratch,
                                       uint64_t *key)
{
    uint64_t h = mix(0, d->flushes);
    if (seed == 0 || d->npend == 0) {
        *key = h;
        return &d->dur;
    }
    if (seed == 1) {
        for (size_t i = 0; i < d->npend; i++)
            h = mix(h, d->pend[i].call);
        *key = h;
        return &d->cur;
    }
    byte_buf_set(scratch, d->dur.p, d->dur.size);
    uint64_t s = seed * 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < d->npend; i++) {
        const pending_change *c = &d->pend[i];
        if (seed == 2 || c->resize) {
            if (next_random(&s) & 1) {
                apply_change(scratch, d, c);
                h = mix(h, c->call);
            }
            continue;
        }
        /* Torn: the write's sectors one by one. */
        for (uint64_t pos = c->off; pos < c->off + c->len;) {
            uint64_t end = (pos / FAULT_SECTOR + 1) * FAULT_SECTOR;
            if (end > c->off + c->len)
                end = c->off + c->len;
            if (next_random(&s) & 1) {
                byte_buf_write(scratch, pos, d->log.p + c->data + (pos - c->off), end - pos);
                h = mix(mix(h, c->call), pos);
            }
            pos = end;
        }
    }
    *key = h;
    return scratch;
}
