/*
 * What backs each range of the virtual disk, with the meaning qemu-img map
 * gives it: walk down the chain until a layer has data or zeros, clamp to
 * shorter backing files, and for preallocated images ask the file whether
 * the host range is a hole.
 */
#include <string.h>
#include "qb_image_internal.h"

/* One layer's answer, before looking further down the chain. */
static int layer_status(qb_image *img, uint64_t off, uint64_t len, qb_status *st, qb_err *err)
{
    memset(st, 0, sizeof(*st));
    st->filename = img->filename;
    if (!img->is_qcow2) {
        /* A raw layer is its file: data or hole, always allocated. */
        bool hole = false;
        uint64_t n = len;
        uint64_t fsize = img->file_size;   /* images are not resized while open */
        int r;
        if (off >= fsize) {
            hole = true;
        } else {
            if (n > fsize - off)
                n = fsize - off;
            if (img->file->vt->extent) {
                r = img->file->vt->extent(img->file, off, n, &hole, &n, err);
                if (r)
                    return r;
            }
        }
        st->length = n;
        st->present = true;
        st->data = !hole;
        st->zero = hole;
        st->has_offset = true;
        st->offset = off;
        return QB_OK;
    }
    qcow2 *q = &img->q;
    qcow2_run run;
    int r = qcow2_map(q, off, len, &run, err);
    if (r)
        return r;
    st->length = run.length;
    switch (run.kind) {
    case QCOW2_NORMAL:
        st->data = true;
        st->has_offset = true;
        break;
    case QCOW2_ZERO_ALLOC:
        st->zero = true;
        st->has_offset = true;
        break;
    case QCOW2_UNALLOCATED_ALLOC:
        st->has_offset = true;
        break;
    case QCOW2_ZERO_PLAIN:
        st->zero = true;
        break;
    case QCOW2_COMPRESSED:
        st->data = true;
        st->compressed = true;
        break;
    case QCOW2_UNALLOCATED:
        break;
    }
    /* As QEMU: the file offset of encrypted data is not a place to read
     * the guest's bytes from, so none is given. */
    if (q->h.crypt_method)
        st->has_offset = false;
    if (st->has_offset) {
        st->offset = run.host;
        if (q->data_file != q->file)
            st->filename = q->data_file_path;
    }
    st->present = st->data || st->zero;

    /* Preallocated metadata: data clusters that were never written are
     * holes in the file and read as zeros. */
    if (st->data && st->has_offset) {
        if (img->prealloc_state < 0)
            img->prealloc_state = qcow2_detect_metadata_prealloc(q) == 1;
        if (img->prealloc_state == 1) {
            qb_backend *f = q->data_file;
            uint64_t fsize = q->data_file_size;
            if (st->offset >= fsize) {
                st->zero = true;
            } else if (f->vt->extent) {
                bool hole;
                uint64_t n = st->length;
                if (n > fsize - st->offset)
                    n = fsize - st->offset;
                if (f->vt->extent(f, st->offset, n, &hole, &n, err) == QB_OK) {
                    st->length = n;
                    st->zero = hole;
                }
            }
        }
    }
    return QB_OK;
}

int qb_image_status(qb_image *img, uint64_t off, uint64_t len, qb_status *st, qb_err *err)
{
    if (off >= img->size || len == 0)
        return qb_err_set(err, QB_ERANGE, "%s: status query at %llu outside the virtual disk",
                          img->filename, (unsigned long long)off);
    if (len > img->size - off)
        len = img->size - off;
    unsigned depth = 0;
    for (qb_image *cur = img;; cur = cur->backing, depth++) {
        int r = layer_status(cur, off, len, st, err);
        if (r)
            return r;
        len = st->length;
        st->depth = depth;
        if (st->data || st->zero)
            return QB_OK;
        if (!cur->backing || off >= cur->backing->size) {
            st->zero = true;   /* nothing below: reads as zeros */
            return QB_OK;
        }
        if (len > cur->backing->size - off)
            len = cur->backing->size - off;
    }
}
