/*
 * Writing through the image API: range checks, raw layers, and the qcow2
 * layer's write path with its backing file as the source of copy-on-write
 * data. Only the top layer is ever written.
 */
#include <string.h>
#include "qb_image_internal.h"

bool qb_image_is_writable(const qb_image *img)
{
    return img->is_qcow2 ? img->q.writable : img->raw_writable;
}

static int check_write(qb_image *img, uint64_t off, uint64_t len, const char *what, qb_err *err)
{
    if (!qb_image_is_writable(img))
        return qb_err_set(err, QB_EROFS, "%s: image is open read-only", img->filename);
    if (off > img->size || len > img->size - off)
        return qb_err_set(err, QB_ERANGE,
                          "%s: %s of %llu bytes at %llu is outside the virtual disk (%llu bytes)",
                          img->filename, what, (unsigned long long)len, (unsigned long long)off,
                          (unsigned long long)img->size);
    return QB_OK;
}

static int raw_write(qb_image *img, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    int r = qb_backend_write(img->file, off, buf, len, err);
    if (!r && img->raw_writethrough)
        r = qb_backend_flush(img->file, err);
    return r ? qb_err_prefix(err, "%s: ", img->filename) : QB_OK;
}

int qb_image_write(qb_image *img, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    int r = check_write(img, off, len, "write", err);
    if (r || !len)
        return r;
    if (!img->is_qcow2)
        return raw_write(img, off, buf, len, err);
    return qcow2_write(&img->q, off, buf, len, qb_image_fill_from_backing, img, err);
}

static int raw_zeroes(qb_image *img, uint64_t off, uint64_t len, qb_err *err)
{
    size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
    uint8_t *z = qb_zalloc(&img->alloc, chunk);
    if (!z)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", img->filename);
    int r = QB_OK;
    while (len && !r) {
        size_t n = len < chunk ? (size_t)len : chunk;
        r = raw_write(img, off, z, n, err);
        off += n;
        len -= n;
    }
    qb_free(&img->alloc, z);
    return r;
}

int qb_image_write_zeroes(qb_image *img, uint64_t off, uint64_t len, qb_err *err)
{
    int r = check_write(img, off, len, "zero write", err);
    if (r || !len)
        return r;
    if (!img->is_qcow2)
        return raw_zeroes(img, off, len, err);
    return qcow2_write_zeroes(&img->q, off, len, img->backing != NULL,
                              qb_image_fill_from_backing, img, err);
}

int qb_image_discard(qb_image *img, uint64_t off, uint64_t len, qb_err *err)
{
    int r = check_write(img, off, len, "discard", err);
    if (r || !len || !img->is_qcow2)
        return r;   /* raw files: discarding is only a hint; nothing to do */
    return qcow2_discard(&img->q, off, len, img->backing != NULL, err);
}

int qb_image_make_empty(qb_image *img, qb_err *err)
{
    int r = check_write(img, 0, 0, "emptying", err);
    if (r)
        return r;
    if (!img->is_qcow2)
        return qb_err_set(err, QB_EUNSUPP, "%s: a raw image cannot be emptied", img->filename);
    return qcow2_make_empty(&img->q, err);
}

int qb_image_write_compressed(qb_image *img, uint64_t off, const void *buf, size_t len,
                              qb_err *err)
{
    int r = check_write(img, off, len, "compressed write", err);
    if (r)
        return r;
    if (!img->is_qcow2)
        return qb_err_set(err, QB_EUNSUPP, "%s: raw images cannot hold compressed data",
                          img->filename);
    return qcow2_write_compressed(&img->q, off, buf, len, qb_image_fill_from_backing, img, err);
}

int qb_image_flush(qb_image *img, qb_err *err)
{
    if (!qb_image_is_writable(img))
        return img->is_qcow2 && img->q.write_ready
                   ? qb_err_set(err, QB_EROFS, "%s: image is read-only after an earlier error",
                                img->filename)
                   : QB_OK;
    if (!img->is_qcow2) {
        int r = qb_backend_flush(img->file, err);
        return r ? qb_err_prefix(err, "%s: flush: ", img->filename) : QB_OK;
    }
    int r = qcow2_flush_meta(&img->q, err);
    if (!r) {
        img->q.need_sync = true;   /* data written in place needs the barrier too */
        r = qcow2_sync(&img->q, err);
    }
    return r;
}

int qb_image_close_flush(qb_image *img, qb_err *err)
{
    int r = QB_OK;
    if (img && qb_image_is_writable(img))
        r = qb_image_flush(img, err);
    qb_image_close(img);
    return r;
}

static int snapshot_target(qb_image *img, qb_err *err)
{
    if (!img->is_qcow2)
        return qb_err_set(err, QB_EUNSUPP, "%s: raw images have no snapshots", img->filename);
    if (!img->q.writable)
        return qb_err_set(err, QB_EROFS, "%s: image is open read-only", img->filename);
    return QB_OK;
}

int qb_image_snapshot_create(qb_image *img, const char *name, uint64_t date_sec,
                             uint32_t date_nsec, qb_err *err)
{
    int r = snapshot_target(img, err);
    if (r)
        return r;
    qcow2_new_snapshot ns = { name, date_sec, date_nsec };
    return qcow2_snapshot_create(&img->q, &ns, err);
}

int qb_image_snapshot_apply(qb_image *img, const char *id_or_name, qb_err *err)
{
    int r = snapshot_target(img, err);
    if (!r)
        r = qcow2_snapshot_apply(&img->q, id_or_name, err);
    if (!r)
        img->size = img->q.size;
    return r;
}

int qb_image_snapshot_delete(qb_image *img, const char *id_or_name, qb_err *err)
{
    int r = snapshot_target(img, err);
    return r ? r : qcow2_snapshot_delete(&img->q, id_or_name, err);
}

int qb_image_repair(qb_image *img, int mode, qb_err *err)
{
    if (!img->is_qcow2)
        return QB_OK;
    if (!img->q.writable)
        return qb_err_set(err, QB_EROFS, "%s: image is open read-only", img->filename);
    return qcow2_repair(&img->q, mode, err);
}
