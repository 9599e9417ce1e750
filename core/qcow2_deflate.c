/*
 * Compression of clusters for writing, in the two forms a qcow2 reader
 * accepts: raw deflate with a 4 KiB window (no zlib header or checksum),
 * or one zstd frame without a checksum.
 *
 * One compressor per image, made by the first compressed write and reused
 * (reset) for every cluster after it: setting one up costs more than
 * compressing a small cluster. Both libraries take their memory from the
 * image's allocator.
 */
#include <string.h>
#include "qcow2.h"
#include "zlib.h"
#define ZSTD_STATIC_LINKING_ONLY
#include "zstd.h"
#include "zstd_errors.h"

/* zlib's defaults for level and memory; the window must stay at 4 KiB
 * (window bits 12): readers inflate with that window. */
#define DEFLATE_WINDOW_BITS 12
#define DEFLATE_MEM_LEVEL 9

struct qcow2_comp {
    z_stream z;
    bool z_ready;
    ZSTD_CCtx *zstd;
};

static int deflate_cluster(qcow2 *q, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                           size_t *out_len, qb_err *err)
{
    qcow2_comp *c = q->comp;
    int zr;
    if (!c->z_ready) {
        memset(&c->z, 0, sizeof(c->z));
        c->z.zalloc = qcow2_zlib_alloc;
        c->z.zfree = qcow2_codec_free;
        c->z.opaque = (voidpf)&q->alloc;
        zr = deflateInit2(&c->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -DEFLATE_WINDOW_BITS,
                          DEFLATE_MEM_LEVEL, Z_DEFAULT_STRATEGY);
        if (zr != Z_OK)
            return qb_err_set(err, QB_ENOMEM, "%s: cannot set up deflate (zlib error %d)",
                              q->filename, zr);
        c->z_ready = true;
    } else if (deflateReset(&c->z) != Z_OK) {
        return qb_err_set(err, QB_EINVAL, "%s: cannot reset deflate", q->filename);
    }
    if (len > UINT32_MAX || cap > UINT32_MAX)
        return qb_err_set(err, QB_EINVAL, "%s: cluster too large to compress", q->filename);
    c->z.next_in = (Bytef *)src;
    c->z.avail_in = (uInt)len;
    c->z.next_out = dst;
    c->z.avail_out = (uInt)cap;
    zr = deflate(&c->z, Z_FINISH);
    if (zr == Z_STREAM_END) {
        *out_len = cap - c->z.avail_out;
        return QB_OK;
    }
    /* Z_OK or Z_BUF_ERROR: the output is full before the stream ends. */
    if (zr == Z_OK || zr == Z_BUF_ERROR)
        return 1;
    return qb_err_set(err, QB_EINVAL, "%s: deflate failed (zlib error %d)", q->filename, zr);
}

static int zstd_cluster(qcow2 *q, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                        size_t *out_len, qb_err *err)
{
    qcow2_comp *c = q->comp;
    if (!c->zstd) {
        ZSTD_customMem mem = { qcow2_codec_alloc, qcow2_codec_free, (void *)&q->alloc };
        c->zstd = ZSTD_createCCtx_advanced(mem);
        if (!c->zstd)
            return qb_err_set(err, QB_ENOMEM, "%s: cannot set up zstd compression",
                              q->filename);
    }
    /* A fresh session keeps the parameters (the defaults: level 3, no
     * checksum, content size in the frame header). */
    ZSTD_CCtx_reset(c->zstd, ZSTD_reset_session_only);
    size_t n = ZSTD_compress2(c->zstd, dst, cap, src, len);
    if (!ZSTD_isError(n)) {
        *out_len = n;
        return QB_OK;
    }
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
        return 1;
    if (ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for zstd compression", q->filename);
    return qb_err_set(err, QB_EINVAL, "%s: zstd compression failed (%s)", q->filename,
                      ZSTD_getErrorName(n));
}

int qcow2_compress_cluster(qcow2 *q, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                           size_t *out_len, qb_err *err)
{
    if (len > q->cluster_size)
        return qb_err_set(err, QB_EINVAL, "%s: %zu bytes to compress exceed one cluster",
                          q->filename, len);
    if (!q->comp) {
        q->comp = qb_zalloc(&q->alloc, sizeof(*q->comp));
        if (!q->comp)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for compression", q->filename);
    }
    switch (q->h.compression_type) {
    case QCOW2_COMPRESSION_ZLIB:
        return deflate_cluster(q, src, len, dst, cap, out_len, err);
    case QCOW2_COMPRESSION_ZSTD:
        return zstd_cluster(q, src, len, dst, cap, out_len, err);
    default:
        return qb_err_set(err, QB_EUNSUPP, "%s: unknown compression type %u", q->filename,
                          (unsigned)q->h.compression_type);
    }
}

void qcow2_comp_free(qcow2 *q)
{
    if (!q->comp)
        return;
    if (q->comp->z_ready)
        deflateEnd(&q->comp->z);
    if (q->comp->zstd)
        ZSTD_freeCCtx(q->comp->zstd);
    qb_free(&q->alloc, q->comp);
    q->comp = NULL;
}
