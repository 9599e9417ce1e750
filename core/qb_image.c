/*
 * Images and their backing chains: opening (format probing, backing files
 * resolved through the front end's opener, loops and depth bounded),
 * reading through the chain, and closing.
 */
#include <string.h>
#include "qb_image_internal.h"
#include "qb_path.h"
#include "qb_fmt.h"

void qb_image_close(qb_image *img)
{
    while (img) {
        qb_image *next = img->backing;
        qb_alloc a = img->alloc;
        if (img->is_qcow2) {
            /* Callers that need to know whether it worked use
             * qb_image_close_flush; here the best is tried. */
            qb_err ignored;
            if (img->q.writable && qcow2_flush_meta(&img->q, &ignored) == 0)
                qcow2_sync(&img->q, &ignored);
            qcow2_close(&img->q);
        }
        if (img->file)
            img->file->vt->close(img->file);
        qb_free(&a, img->filename);
        qb_free(&a, img->resolved);
        qb_free(&a, img);
        img = next;
    }
}

static int probe_format(qb_image *img, const char *want, qb_err *err)
{
    uint8_t magic[8] = { 0 };
    int r = qb_backend_read(img->file, 0, magic, sizeof(magic), err);
    if (r)
        return qb_err_prefix(err, "%s: ", img->filename);
    bool is_qcow2 = qcow2_probe(magic, sizeof(magic));
    if (!want) {
        img->is_qcow2 = is_qcow2;
        return QB_OK;
    }
    if (strcmp(want, "qcow2") == 0) {
        if (!is_qcow2)
            return qb_err_set(err, QB_ECORRUPT, "%s: bad magic at offset 0 (not a qcow2 image)",
                              img->filename);
        img->is_qcow2 = true;
        return QB_OK;
    }
    if (strcmp(want, "raw") == 0) {
        img->is_qcow2 = false;
        return QB_OK;
    }
    return qb_err_set(err, QB_EUNSUPP, "%s: image format '%s' is not supported (qcow2, raw)",
                      img->filename, want);
}

typedef struct chain_ctx {
    const qb_open_opts *opts;
    unsigned max;
} chain_ctx;

static int open_layer(qb_image **out, const chain_ctx *cc, const qb_image *parent,
                      const char *name, const char *format, qb_err *err);

static int open_backing(qb_image *img, const chain_ctx *cc, qb_err *err)
{
    const qcow2 *q = &img->q;
    if (!q->backing_file[0] || cc->opts->no_backing)
        return QB_OK;
    if (img->depth + 1 >= cc->max)
        return qb_err_set(err, QB_ELOOP, "%s: backing chain is deeper than %u images",
                          img->filename, cc->max);
    const char *fmt = q->has_backing_format ? q->backing_format : NULL;
    return open_layer(&img->backing, cc, img, q->backing_file, fmt, err);
}

static int open_layer(qb_image **out, const chain_ctx *cc, const qb_image *parent,
                      const char *name, const char *format, qb_err *err)
{
    const qb_open_opts *o = cc->opts;
    qb_image *img = qb_zalloc(&o->alloc, sizeof(*img));
    if (!img)
        return qb_err_set(err, QB_ENOMEM, "no memory to open %s", name);
    img->alloc = o->alloc;
    img->warn = o->warn;
    img->opener = o->opener;
    img->prealloc_state = -1;
    img->depth = parent ? parent->depth + 1 : 0;
    img->filename = qb_malloc(&o->alloc, QB_PATH_MAX);
    img->resolved = qb_zalloc(&o->alloc, QB_PATH_MAX);
    int r;
    if (!img->filename || !img->resolved) {
        r = qb_err_set(err, QB_ENOMEM, "no memory to open %s", name);
        goto fail;
    }
    if (!qb_path_combine(img->filename, QB_PATH_MAX, parent ? parent->filename : NULL, name)) {
        r = qb_err_set(err, QB_EINVAL, "%s: file name too long", name);
        goto fail;
    }
    if (!parent && o->file) {
        img->file = o->file;
        memcpy(img->resolved, img->filename, strlen(img->filename) + 1);
    } else {
        if (!o->opener || !o->opener->open) {
            r = qb_err_set(err, QB_EUNSUPP, "%s: cannot open files here", img->filename);
            goto fail;
        }
        r = o->opener->open(o->opener->ctx, parent ? parent->filename : NULL, name,
                            o->writable && !parent, &img->file, img->resolved, err);
        if (r) {
            if (parent)
                qb_err_prefix(err, "%s: backing file: ", parent->filename);
            goto fail;
        }
    }
    r = probe_format(img, format, err);
    if (r)
        goto fail;
    if (img->is_qcow2) {
        qb_open_opts lo = *o;
        if (parent) {
            lo.writable = false;
            lo.snapshot = NULL;
        }
        r = qcow2_open(&img->q, &lo, img->file, img->filename, err);
        if (r)
            goto fail;
        img->size = img->q.size;
        if (img->q.writable) {
            /* Header updates due before any write, and the repair of a
             * dirty image, happen at open so errors show up here. */
            r = qcow2_prepare_write(&img->q, err);
            if (r)
                goto fail;
        }
    } else {
        if (o->snapshot && !parent) {
            r = qb_err_set(err, QB_EUNSUPP, "%s: raw images have no snapshots", img->filename);
            goto fail;
        }
        r = qb_backend_size(img->file, &img->file_size, err);
        if (r)
            goto fail;
        img->size = img->file_size;
        /* As QEMU, a raw disk is whole sectors: a partial last sector
         * reads as zeros to its end. */
        if (img->size > UINT64_MAX - 511) {
            r = qb_err_set(err, QB_ECORRUPT, "%s: file too large", img->filename);
            goto fail;
        }
        img->size = (img->size + 511) & ~511ull;
        img->raw_writable = o->writable && !parent;
        img->raw_writethrough = o->writethrough;
    }
    *out = img;
    return QB_OK;
fail:
    qb_image_close(img);
    return r;
}

/* Opens the chain below img one layer at a time, checking each new layer
 * against every layer above it (by the opener's canonical path). */
static int open_chain(qb_image *top, const chain_ctx *cc, qb_err *err)
{
    for (qb_image *img = top; img; img = img->backing) {
        if (!img->is_qcow2)
            break;
        int r = open_backing(img, cc, err);
        if (r)
            return r;
        if (!img->backing)
            break;
        for (const qb_image *up = top; up != img->backing; up = up->backing)
            if (strcmp(up->resolved, img->backing->resolved) == 0)
                return qb_err_set(err, QB_ELOOP,
                                  "%s: backing file '%s' loops back to '%s'", img->filename,
                                  img->q.backing_file, up->filename);
    }
    return QB_OK;
}

int qb_image_open(qb_image **out, const qb_open_opts *opts, qb_err *err)
{
    *out = NULL;
    if (!opts->filename)
        return qb_err_set(err, QB_EINVAL, "no image file name given");
    chain_ctx cc = { opts, opts->max_chain ? opts->max_chain : QB_DEFAULT_MAX_CHAIN };
    qb_image *top;
    int r = open_layer(&top, &cc, NULL, opts->filename, opts->format, err);
    if (r)
        return r;
    r = open_chain(top, &cc, err);
    if (r) {
        qb_image_close(top);
        return r;
    }
    *out = top;
    return QB_OK;
}

uint64_t qb_image_size(const qb_image *img)
{
    return img->size;
}

const char *qb_image_filename(const qb_image *img)
{
    return img->filename;
}

const char *qb_image_format(const qb_image *img)
{
    return img->is_qcow2 ? "qcow2" : "raw";
}

qb_image *qb_image_backing(const qb_image *img)
{
    return img->backing;
}

uint64_t qb_image_cluster_size(const qb_image *img)
{
    return img->is_qcow2 ? img->q.cluster_size : 0;
}

/* Unallocated parts of a qcow2 layer read from its backing file, and as
 * zeros past the backing file's end or without one. */
int qb_image_fill_from_backing(void *ctx, uint64_t off, void *buf, size_t len, qb_err *err)
{
    qb_image *img = ctx;
    qb_image *b = img->backing;
    size_t n = 0;
    if (b && off < b->size) {
        n = b->size - off < len ? (size_t)(b->size - off) : len;
        int r = qb_image_read(b, off, buf, n, err);
        if (r)
            return r;
    }
    memset((uint8_t *)buf + n, 0, len - n);
    return QB_OK;
}

int qb_image_read(qb_image *img, uint64_t off, void *buf, size_t len, qb_err *err)
{
    if (off > img->size || len > img->size - off)
        return qb_err_set(err, QB_ERANGE,
                          "%s: read of %zu bytes at %llu is outside the virtual disk (%llu "
                          "bytes)",
                          img->filename, len, (unsigned long long)off,
                          (unsigned long long)img->size);
    if (!img->is_qcow2) {
        int r = qb_backend_read(img->file, off, buf, len, err);
        return r ? qb_err_prefix(err, "%s: ", img->filename) : QB_OK;
    }
    return qcow2_read(&img->q, off, buf, len, qb_image_fill_from_backing, img, err);
}
