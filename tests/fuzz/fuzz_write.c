/*
 * libFuzzer target for the write engine: a fuzzed image, then a fuzzed
 * sequence of writes, zeroes, discards, flushes and snapshot creations and
 * deletions applied to it in memory, every result read back against a flat
 * model of the virtual disk.
 *
 * Input layout:
 *   4-byte little-endian length S, S bytes of the image,
 *   4-byte little-endian length B, B bytes of the second file (the backing
 *   file or external data file: every name but "image" opens it),
 *   then the operations: one byte whose bit 0 chooses the window (below)
 *   and whose bits 1-7, F, make the image's file fail from its 3*F-th
 *   write, flush or resize on (F = 0: never), then 8 bytes per operation
 *   (at most FUZZ_MAX_OPS):
 *     byte 0   bits 0-2: 0-2 write, 3 write_zeroes, 4 discard, 5 flush,
 *                        6 snapshot create, 7 snapshot delete
 *              bits 3-4: alignment of offset and length: none, 512 bytes,
 *                        4 KiB, the image's cluster size
 *     bytes 1-4 offset within the window (modulo its size), little-endian;
 *               for snapshots byte 1 picks the name (s0..s3)
 *     bytes 5-7 length (modulo FUZZ_MAX_LEN, at least 1), clipped to the
 *               window
 * A shorter input leaves the missing parts empty.
 *
 * The model covers a window of at most FUZZ_WINDOW bytes of the virtual
 * disk, at its start or (odd window byte) its end, read through the engine
 * once the image is open writable; the operations stay inside it. The
 * model is only held against the engine when the engine's own `check`
 * finds the image consistent (leaks allowed): on an image whose refcounts
 * already lie, a new cluster can land on one in use, for the engine as for
 * QEMU. Other images get the same operations, for the sanitizers. After
 * each successful write or write_zeroes the range must read back as
 * written; after a discard the whole clusters inside it must read as they
 * were, as zeros or as the backing file (v3 and v2 images differ), and the
 * rest as they were. The first engine error stops the operations (the
 * image may now be marked corrupt); errors are fine, wrong data is not.
 * At the end the image is closed with a flush and, if that succeeded,
 * opened again read-only: it must open and read as the model says.
 *
 * When the file failed (a crash: nothing after it reaches the file), the
 * image is closed without a flush and must still open read-only, pass the
 * engine's check (leaks allowed), and read as the model says wherever
 * nothing was written since the last flush that succeeded.
 *
 * Aborts (findings) beyond the sanitizers': data that disagrees with the
 * model, memory still allocated after the run (bounded, counting allocator
 * as in fuzz_image.c), an image that was written and flushed without error
 * (or cut off by a failing file) but no longer opens or checks clean.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_backend.h"
#include "qb_cmd.h"
#include "qb_image.h"
#include "qb_path.h"
#include "fuzz_heap.h"

#define FUZZ_FILE_LIMIT (128ull << 20)    /* bytes a written file may grow to */
#define FUZZ_WINDOW (4ull << 20)          /* bytes of virtual disk modelled */
#define FUZZ_MAX_OPS 64
#define FUZZ_MAX_LEN (256u << 10)         /* bytes per operation */
#define FUZZ_MAX_OPENS 128

#define NO_COVERAGE __attribute__((no_sanitize("coverage")))

__attribute__((format(printf, 1, 2), noreturn))
static void finding(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_write: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    __builtin_trap();
}

/* ---- a writable in-memory file ---- */

typedef struct mem_file {
    qb_backend base;
    uint8_t *data;
    uint64_t size, cap;
    bool writable;
    bool open;
    uint64_t calls;      /* writes, flushes and resizes so far */
    uint64_t fail_at;    /* the call that fails, and all after it; 0: none */
    bool failed;
} mem_file;

/* Counts a call that changes the file; false once the file has failed. */
static bool mf_call(mem_file *f, qb_err *err)
{
    f->calls++;
    if (f->failed || (f->fail_at && f->calls >= f->fail_at)) {
        f->failed = true;
        qb_err_set(err, QB_EIO, "fuzz file: injected failure at call %llu",
                   (unsigned long long)f->fail_at);
        return false;
    }
    return true;
}

static int mf_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    mem_file *f = (mem_file *)b;
    size_t n = 0;
    if (off < f->size)
        n = f->size - off < len ? (size_t)(f->size - off) : len;
    if (n)
        memcpy(buf, f->data + off, n);
    memset((uint8_t *)buf + n, 0, len - n);
    return QB_OK;
}

static int mf_resize(mem_file *f, uint64_t size, qb_err *err)
{
    if (size > FUZZ_FILE_LIMIT)
        return qb_err_set(err, QB_EFULL, "fuzz file full (%llu bytes)",
                          (unsigned long long)size);
    if (size > f->cap) {
        uint64_t cap = f->cap ? f->cap : 65536;
        while (cap < size)
            cap *= 2;
        uint8_t *p = realloc(f->data, cap);
        if (!p)
            return qb_err_set(err, QB_ENOMEM, "fuzz file: out of memory");
        f->data = p;
        f->cap = cap;
    }
    if (size > f->size)
        memset(f->data + f->size, 0, size - f->size);
    f->size = size;
    return QB_OK;
}

static int mf_write(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    mem_file *f = (mem_file *)b;
    if (!f->writable)
        return qb_err_set(err, QB_EROFS, "fuzz file is read-only");
    if (!mf_call(f, err))
        return QB_EIO;
    if (off > FUZZ_FILE_LIMIT || len > FUZZ_FILE_LIMIT - off)
        return qb_err_set(err, QB_EFULL, "fuzz file full");
    if (off + len > f->size) {
        int r = mf_resize(f, off + len, err);
        if (r)
            return r;
    }
    memcpy(f->data + off, buf, len);
    return QB_OK;
}

static int mf_flush(qb_backend *b, qb_err *err)
{
    mem_file *f = (mem_file *)b;
    if (f->writable && !mf_call(f, err))
        return QB_EIO;
    return QB_OK;
}

static int mf_get_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    *size = ((mem_file *)b)->size;
    return QB_OK;
}

static int mf_set_size(qb_backend *b, uint64_t size, qb_err *err)
{
    mem_file *f = (mem_file *)b;
    if (!f->writable)
        return qb_err_set(err, QB_EROFS, "fuzz file is read-only");
    if (!mf_call(f, err))
        return QB_EIO;
    return mf_resize(f, size, err);
}

static void mf_close(qb_backend *b)
{
    ((mem_file *)b)->open = false;
}

static const qb_backend_class mem_file_class = {
    .read = mf_read,
    .write = mf_write,
    .flush = mf_flush,
    .get_size = mf_get_size,
    .set_size = mf_set_size,
    .close = mf_close,
};

static void mem_file_init(mem_file *f, const uint8_t *data, size_t size, bool writable)
{
    memset(f, 0, sizeof(*f));
    f->base.vt = &mem_file_class;
    f->writable = writable;
    f->open = true;
    qb_err err;
    if (mf_resize(f, size, &err))
        abort();
    if (size)
        memcpy(f->data, data, size);
}

static void mem_file_free(mem_file *f)
{
    free(f->data);
    f->data = NULL;
}

/* ---- the files by name ---- */

typedef struct fuzz_files {
    mem_file image;               /* the image being written */
    const uint8_t *second;        /* backing or data file input */
    size_t second_len;
    mem_file pool[FUZZ_MAX_OPENS];
    unsigned used;
} fuzz_files;

static int fuzz_open(void *ctx, const char *relative_to, const char *name, bool writable,
                     qb_backend **out, char *resolved, qb_err *err)
{
    fuzz_files *f = ctx;
    if (f->used >= FUZZ_MAX_OPENS)
        return qb_err_set(err, QB_EIO, "%s: too many opens", name);
    char path[QB_PATH_MAX];
    if (!qb_path_combine(path, sizeof(path), relative_to, name))
        return qb_err_set(err, QB_EINVAL, "file name too long: %s", name);
    mem_file *m = &f->pool[f->used++];
    /* "image" names the image itself (a loop the engine must see); any other
     * name opens a fresh copy of the second file, writable if asked (an
     * external data file of an image opened for writing). */
    if (strcmp(path, "image") == 0)
        mem_file_init(m, f->image.data, (size_t)f->image.size, false);
    else
        mem_file_init(m, f->second, f->second_len, writable);
    memcpy(resolved, path, strlen(path) + 1);
    *out = &m->base;
    return QB_OK;
}

static void files_release(fuzz_files *f)
{
    for (unsigned i = 0; i < f->used; i++)
        mem_file_free(&f->pool[i]);
    f->used = 0;
}

/* ---- the model ---- */

typedef struct range {
    uint64_t off, len;
} range;

typedef struct window {
    uint64_t base, size;          /* the modelled part of the virtual disk */
    uint8_t *model;
    uint8_t *durable;             /* the model at the last successful flush */
    range touched[FUZZ_MAX_OPS];  /* written (or tried) since then */
    unsigned ntouched;
    uint8_t *buf;                 /* FUZZ_MAX_LEN bytes */
    uint8_t *backing;             /* FUZZ_MAX_LEN bytes: the backing file's */
    bool compare;                 /* hold the engine to the model */
} window;

NO_COVERAGE static void fill(uint8_t *p, uint64_t off, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ seed;
        p[i] = (uint8_t)(x >> 56 ^ x >> 17);
    }
}

/* First byte where the engine's view (got) differs from want, or len. */
NO_COVERAGE static size_t diff_at(const uint8_t *got, const uint8_t *want, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (got[i] != want[i])
            return i;
    return len;
}

/* Reads [off, off+len) (inside the window) and compares it with the model. */
static void expect_model(qb_image *img, const window *w, uint64_t off, size_t len,
                         const char *after)
{
    qb_err err;
    if (!w->compare)
        return;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < FUZZ_MAX_LEN ? len - done : FUZZ_MAX_LEN;
        if (qb_image_read(img, off + done, w->buf, n, &err) != QB_OK)
            return;   /* a read error is an error, not wrong data */
        size_t i = diff_at(w->buf, w->model + (off + done - w->base), n);
        if (i < n) {
            fprintf(stderr, "after %s: ", after);
            finding("byte %llu reads 0x%02x, the model says 0x%02x",
                    (unsigned long long)(off + done + i), w->buf[i],
                    w->model[off + done + i - w->base]);
        }
        done += n;
    }
}

/* After a discard: the whole clusters inside [off, off+len) read as they
 * were, as zeros, or as the backing file; the model takes what they read. */
NO_COVERAGE static void learn_discarded(qb_image *img, window *w, uint64_t off, uint64_t len)
{
    uint64_t cs = qb_image_cluster_size(img);
    if (!cs)
        return;
    uint64_t start = (off + cs - 1) / cs * cs, end = (off + len) / cs * cs;
    if (off + len == qb_image_size(img))
        end = off + len;   /* a partial last cluster of the disk may go too */
    qb_image *back = qb_image_backing(img);
    qb_err err;
    for (uint64_t pos = start; pos < end;) {
        size_t n = end - pos < FUZZ_MAX_LEN ? (size_t)(end - pos) : FUZZ_MAX_LEN;
        if (qb_image_read(img, pos, w->buf, n, &err) != QB_OK)
            return;
        memset(w->backing, 0, n);
        if (back) {
            uint64_t bsize = qb_image_size(back);
            size_t bn = pos >= bsize ? 0 : bsize - pos < n ? (size_t)(bsize - pos) : n;
            if (bn && qb_image_read(back, pos, w->backing, bn, &err) != QB_OK)
                return;
        }
        uint8_t *m = w->model + (pos - w->base);
        for (size_t i = 0; i < n; i++) {
            uint8_t b = w->buf[i];
            if (w->compare && b != m[i] && b != 0 && b != w->backing[i])
                finding("after discard: byte %llu reads 0x%02x: neither 0x%02x (before), "
                        "zero nor the backing file",
                        (unsigned long long)(pos + i), b, m[i]);
            m[i] = b;
        }
        pos += n;
    }
}

/* ---- the operations ---- */

typedef struct op {
    unsigned kind, align;
    uint64_t off, len;
    char name[4];
} op;

static uint32_t le(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static op decode(const uint8_t *p, const window *w, uint64_t cluster)
{
    op o;
    o.kind = p[0] & 7;
    static const uint64_t aligns[4] = { 1, 512, 4096, 0 };
    uint64_t a = aligns[(p[0] >> 3) & 3];
    if (!a)
        a = cluster ? cluster : 512;
    o.align = (unsigned)a;
    uint64_t off = w->base + le(p + 1, 4) % w->size;
    uint64_t len = 1 + le(p + 5, 3) % FUZZ_MAX_LEN;
    off = off / a * a;
    if (off < w->base)
        off = w->base;
    len = (len + a - 1) / a * a;
    if (len > w->base + w->size - off)
        len = w->base + w->size - off;
    o.off = off;
    o.len = len;
    snprintf(o.name, sizeof(o.name), "s%u", p[1] & 3);
    return o;
}

/* Applies one operation; false when the engine refused it (stop there). */
/* Everything the model says now is durable. */
static void flushed(window *w)
{
    for (unsigned i = 0; i < w->ntouched; i++) {
        const range *r = &w->touched[i];
        memcpy(w->durable + (r->off - w->base), w->model + (r->off - w->base), (size_t)r->len);
    }
    w->ntouched = 0;
}

static bool apply(qb_image *img, window *w, const op *o, unsigned index)
{
    qb_err err;
    uint8_t *m = w->model + (o->off - w->base);
    if (o->kind <= 4 && w->ntouched < FUZZ_MAX_OPS)
        w->touched[w->ntouched++] = (range){ o->off, o->len };   /* even if it fails */
    switch (o->kind) {
    case 0: case 1: case 2:
        fill(w->buf, o->off, (size_t)o->len, index * 131 + o->kind);
        if (qb_image_write(img, o->off, w->buf, (size_t)o->len, &err) != QB_OK)
            return false;
        memcpy(m, w->buf, (size_t)o->len);
        expect_model(img, w, o->off, (size_t)o->len, "write");
        return true;
    case 3:
        if (qb_image_write_zeroes(img, o->off, o->len, &err) != QB_OK)
            return false;
        memset(m, 0, (size_t)o->len);
        expect_model(img, w, o->off, (size_t)o->len, "write_zeroes");
        return true;
    case 4:
        if (qb_image_discard(img, o->off, o->len, &err) != QB_OK)
            return false;
        learn_discarded(img, w, o->off, o->len);
        expect_model(img, w, o->off, (size_t)o->len, "discard");
        return true;
    case 5:
        if (qb_image_flush(img, &err) != QB_OK)
            return false;
        flushed(w);
        return true;
    case 6:
        return qb_image_snapshot_create(img, o->name, index, 0, &err) == QB_OK;
    default:
        return qb_image_snapshot_delete(img, o->name, &err) == QB_OK;
    }
}

static void sink_warn(void *ctx, const char *msg)
{
}

static void base_opts(qb_open_opts *o, qb_alloc alloc, const qb_opener *opener)
{
    memset(o, 0, sizeof(*o));
    o->alloc = alloc;
    o->opener = opener;
    o->warn = (qb_warn){ NULL, sink_warn };
    o->filename = "image";
}

static bool image_consistent(fuzz_files *files, qb_alloc alloc);

/* Where two buffers differ outside the touched ranges (w->base based), or n. */
NO_COVERAGE static size_t diff_untouched(const window *w, const uint8_t *got,
                                         const uint8_t *want, uint64_t pos, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t at = pos + i;
        bool touched = false;
        for (unsigned t = 0; t < w->ntouched && !touched; t++)
            touched = at >= w->touched[t].off && at - w->touched[t].off < w->touched[t].len;
        if (!touched && got[i] != want[i])
            return i;
    }
    return n;
}

/* After the file failed: what was durable reads back. */
static void expect_durable(qb_image *img, const window *w)
{
    qb_err err;
    for (uint64_t done = 0; done < w->size;) {
        size_t n = w->size - done < FUZZ_MAX_LEN ? (size_t)(w->size - done) : FUZZ_MAX_LEN;
        if (qb_image_read(img, w->base + done, w->buf, n, &err) != QB_OK)
            finding("read after the file failed: %s", err.msg);
        size_t i = diff_untouched(w, w->buf, w->durable + done, w->base + done, n);
        if (i < n)
            finding("after the file failed: byte %llu reads 0x%02x, it was 0x%02x at the "
                    "last flush that succeeded and not written since",
                    (unsigned long long)(w->base + done + i), w->buf[i], w->durable[done + i]);
        done += n;
    }
}

/* The image written and closed with a successful flush must open again
 * and read as the model says; one whose file failed must open again, pass
 * the engine's check and read as the model did at the last successful
 * flush, except where written since. */
static void reopen_and_compare(fuzz_files *files, qb_alloc alloc, window *w, uint64_t size,
                               bool file_failed)
{
    qb_opener opener = { files, fuzz_open, NULL };
    qb_open_opts o;
    base_opts(&o, alloc, &opener);
    mem_file ro;
    mem_file_init(&ro, files->image.data, (size_t)files->image.size, false);
    o.file = &ro.base;
    qb_image *img;
    qb_err err;
    if (qb_image_open(&img, &o, &err) != QB_OK) {
        fprintf(stderr, "fuzz_write: reopen: %s\n", err.msg);
        finding("the image no longer opens after %s (%llu bytes of file)",
                file_failed ? "its file failed" : "writes and a flush that succeeded",
                (unsigned long long)files->image.size);
    }
    if (qb_image_size(img) != size)
        finding("virtual size %llu after reopening, was %llu",
                (unsigned long long)qb_image_size(img), (unsigned long long)size);
    if (file_failed)
        expect_durable(img, w);
    else
        expect_model(img, w, w->base, (size_t)w->size, "reopen");
    qb_image_close(img);
    mem_file_free(&ro);
    if (file_failed && !image_consistent(files, alloc))
        finding("the engine's check finds corruption after the file failed");
}

static void sink_out(void *ctx, const char *s, size_t n)
{
}

/* The engine's check of the image as it came: clean or leaks only. */
static bool image_consistent(fuzz_files *files, qb_alloc alloc)
{
    qb_env env;
    memset(&env, 0, sizeof(env));
    env.alloc = alloc;
    env.opener = (qb_opener){ files, fuzz_open, NULL };
    env.out = (qb_out){ NULL, sink_out };
    env.err = (qb_out){ NULL, sink_out };
    env.program = "qcowboot";
    char check[] = "check", image[] = "image";
    char *argv[] = { check, image, NULL };
    int rc = qb_cmd_main(&env, 2, argv);
    return rc == 0 || rc == 3;
}

/* An image whose file failed while it was being opened must still open
 * and check clean. */
static void reopen_after_failed_open(fuzz_files *files, qb_alloc alloc)
{
    qb_opener opener = { files, fuzz_open, NULL };
    qb_open_opts o;
    base_opts(&o, alloc, &opener);
    mem_file ro;
    mem_file_init(&ro, files->image.data, (size_t)files->image.size, false);
    o.file = &ro.base;
    qb_image *img;
    qb_err err;
    if (qb_image_open(&img, &o, &err) != QB_OK) {
        fprintf(stderr, "fuzz_write: reopen: %s\n", err.msg);
        finding("the image no longer opens after its file failed during a writable open");
    }
    qb_image_close(img);
    mem_file_free(&ro);
    if (!image_consistent(files, alloc))
        finding("the engine's check finds corruption after the file failed during an open");
}

static void run_ops(fuzz_files *files, qb_alloc alloc, const uint8_t *ops, size_t nops_bytes)
{
    bool compare = image_consistent(files, alloc);
    qb_opener opener = { files, fuzz_open, NULL };
    qb_open_opts o;
    base_opts(&o, alloc, &opener);
    o.file = &files->image.base;
    o.writable = true;
    if (nops_bytes)
        files->image.fail_at = (uint64_t)(ops[0] >> 1) * 3;
    qb_image *img;
    qb_err err;
    if (qb_image_open(&img, &o, &err) != QB_OK) {
        if (compare && files->image.failed)
            reopen_after_failed_open(files, alloc);
        return;
    }
    uint64_t size = qb_image_size(img);
    window w;
    memset(&w, 0, sizeof(w));
    w.compare = compare;
    bool model_ok = false;
    if (size && nops_bytes) {
        w.size = size < FUZZ_WINDOW ? size : FUZZ_WINDOW;
        w.base = 0;
        if (ops[0] & 1)
            w.base = (size - w.size) / 65536 * 65536;
        w.size = size - w.base < FUZZ_WINDOW ? size - w.base : FUZZ_WINDOW;
        w.model = malloc((size_t)w.size);
        w.durable = malloc((size_t)w.size);
        w.buf = malloc(FUZZ_MAX_LEN);
        w.backing = malloc(FUZZ_MAX_LEN);
        if (!w.model || !w.durable || !w.buf || !w.backing)
            abort();
        model_ok = true;
        for (uint64_t done = 0; model_ok && done < w.size; done += FUZZ_MAX_LEN) {
            size_t n = w.size - done < FUZZ_MAX_LEN ? (size_t)(w.size - done) : FUZZ_MAX_LEN;
            model_ok = qb_image_read(img, w.base + done, w.model + done, n, &err) == QB_OK;
        }
        if (model_ok)
            memcpy(w.durable, w.model, (size_t)w.size);
    }
    bool all_ok = true;
    if (model_ok) {
        uint64_t cluster = qb_image_cluster_size(img);
        const uint8_t *p = ops + 1;
        size_t left = nops_bytes - 1;
        for (unsigned i = 0; i < FUZZ_MAX_OPS && left >= 8; i++, p += 8, left -= 8) {
            op one = decode(p, &w, cluster);
            if (!apply(img, &w, &one, i)) {
                all_ok = false;
                break;
            }
        }
        if (all_ok)
            expect_model(img, &w, w.base, (size_t)w.size, "all operations");
    }
    bool closed_ok = false;
    if (files->image.failed) {
        qb_image_close(img);   /* the crash: nothing more reaches the file */
    } else {
        closed_ok = qb_image_close_flush(img, &err) == QB_OK;
        if (closed_ok && model_ok)
            flushed(&w);
    }
    if (compare && model_ok && files->image.failed)
        reopen_and_compare(files, alloc, &w, size, true);
    else if (compare && files->image.failed)
        reopen_after_failed_open(files, alloc);
    else if (compare && model_ok && all_ok && closed_ok)
        reopen_and_compare(files, alloc, &w, size, false);
    free(w.model);
    free(w.durable);
    free(w.buf);
    free(w.backing);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_files *files = calloc(1, sizeof(*files));
    if (!files)
        abort();
    /* image, second file, operations */
    size_t pos = 0, ilen = 0, slen = 0;
    if (size >= 4) {
        ilen = le(data, 4);
        pos = 4;
        if (ilen > size - pos)
            ilen = size - pos;
    }
    const uint8_t *image = data + pos;
    pos += ilen;
    if (size - pos >= 4) {
        slen = le(data + pos, 4);
        pos += 4;
        if (slen > size - pos)
            slen = size - pos;
    }
    files->second = data + pos;
    files->second_len = slen;
    pos += slen;

    fuzz_heap heap = { 0, 0 };
    qb_alloc alloc = { &heap, heap_alloc, heap_free };
    mem_file_init(&files->image, image, ilen, true);
    run_ops(files, alloc, data + pos, size - pos);

    if (files->image.open)
        finding("the engine did not close the image's file");
    if (heap.live || heap.blocks)
        finding("leak: %zu bytes in %zu blocks still allocated after the run", heap.live,
                heap.blocks);
    files_release(files);
    mem_file_free(&files->image);
    free(files);
    return 0;
}
