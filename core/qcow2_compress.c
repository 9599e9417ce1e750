/*
 * Compressed clusters: raw deflate or zstd frames. One decompression
 * context per image, reused for every cluster: creating one per cluster
 * costs more than the decompression of a small cluster.
 *
 * Deflate goes through libdeflate first (about twice as fast as zlib's
 * inflate) and falls back to zlib whenever libdeflate does not produce a
 * full cluster; zlib's result is the one that counts for streams libdeflate
 * refuses.
 */
#include <string.h>
#include "qcow2.h"
#include "zlib.h"
#include "libdeflate.h"
#define ZSTD_STATIC_LINKING_ONLY
#include "zstd.h"

struct qcow2_decomp {
    z_stream z;
    bool z_ready;
    /* libdeflate 1.14 has no per-decompressor allocator: it takes its
     * memory from malloc/free (about 11 KB here), not from q->alloc. On the
     * host that is the C library's; in firmware the EFI front end's
     * malloc/free over the boot-services pool (efi/efi_alloc.c). */
    struct libdeflate_decompressor *ld;
    bool ld_unavailable;        /* allocation failed: zlib only */
    ZSTD_DCtx *zstd;
};

void *qcow2_zlib_alloc(void *opaque, unsigned items, unsigned size)
{
    const qb_alloc *a = opaque;
    if (size && items > SIZE_MAX / size)
        return NULL;
    return qb_malloc(a, (size_t)items * size);
}

void qcow2_codec_free(void *opaque, void *ptr)
{
    qb_free(opaque, ptr);
}

void *qcow2_codec_alloc(void *opaque, size_t size)
{
    return qb_malloc(opaque, size);
}

int qcow2_decomp_init(qcow2 *q, qb_err *err)
{
    /* Compressed data of one cluster spans at most csize_mask+1 sectors,
     * i.e. one cluster plus one sector at most for valid images; allow the
     * full descriptor range, which is still bounded by the cluster size. */
    q->cbuf_size = (size_t)((q->csize_mask + 1) * 512);
    /* Room to read ahead over sequentially stored compressed clusters. */
    if (q->cbuf_size < QCOW2_COMPRESSED_WINDOW)
        q->cbuf_size = QCOW2_COMPRESSED_WINDOW;
    q->cwin_len = 0;
    return QB_OK;
}

static int ensure_buffers(qcow2 *q, qb_err *err)
{
    if (!q->decomp) {
        q->decomp = qb_zalloc(&q->alloc, sizeof(*q->decomp));
        if (!q->decomp)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for decompression", q->filename);
    }
    if (!q->cbuf) {
        q->cbuf = qb_malloc(&q->alloc, q->cbuf_size);
        if (!q->cbuf)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for decompression", q->filename);
    }
    if (!q->ubuf) {
        q->ubuf = qb_malloc(&q->alloc, (size_t)q->cluster_size);
        if (!q->ubuf)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for decompression", q->filename);
    }
    return QB_OK;
}

void qcow2_decomp_free(qcow2 *q)
{
    if (q->decomp) {
        if (q->decomp->z_ready)
            inflateEnd(&q->decomp->z);
        if (q->decomp->ld)
            libdeflate_free_decompressor(q->decomp->ld);
        if (q->decomp->zstd)
            ZSTD_freeDCtx(q->decomp->zstd);
        qb_free(&q->alloc, q->decomp);
        q->decomp = NULL;
    }
    qb_free(&q->alloc, q->cbuf);
    qb_free(&q->alloc, q->ubuf);
    q->cbuf = q->ubuf = NULL;
}

/* The stored length is only known to 512 bytes, so running out of input
 * (Z_BUF_ERROR) is success once the cluster is full. */
static int inflate_cluster(qcow2 *q, const uint8_t *in, size_t in_len, uint8_t *dest, qb_err *err)
{
    qcow2_decomp *d = q->decomp;
    int zr;
    if (!d->z_ready) {
        memset(&d->z, 0, sizeof(d->z));
        d->z.zalloc = qcow2_zlib_alloc;
        d->z.zfree = qcow2_codec_free;
        d->z.opaque = (voidpf)&q->alloc;
        zr = inflateInit2(&d->z, -12);
        if (zr != Z_OK)
            return qb_err_set(err, QB_ENOMEM, "%s: cannot set up zlib (%d)", q->filename, zr);
        d->z_ready = true;
    } else {
        inflateReset(&d->z);
    }
    d->z.next_in = (Bytef *)in;
    d->z.avail_in = (uInt)in_len;
    d->z.next_out = dest;
    d->z.avail_out = (uInt)q->cluster_size;
    zr = inflate(&d->z, Z_FINISH);
    if ((zr == Z_STREAM_END || zr == Z_BUF_ERROR) && d->z.avail_out == 0)
        return QB_OK;
    return QB_ECORRUPT;
}

/* Deflate: libdeflate when it decodes a full cluster, else zlib.
 * libdeflate_deflate_decompress_ex stops at the end of the final block and
 * reports how much input it used, so the bytes after the stream (up to the
 * next 512-byte boundary) do not matter. It fails where QEMU's zlib
 * semantics still accept: a stream that fills the cluster without being
 * terminated (Z_BUF_ERROR with the output full) or that would produce
 * more than a cluster; zlib decides those, and rejects what is bad. */
static int deflate_cluster(qcow2 *q, const uint8_t *in, size_t in_len, uint8_t *dest,
                           qb_err *err)
{
    qcow2_decomp *d = q->decomp;
    if (!d->ld && !d->ld_unavailable) {
        d->ld = libdeflate_alloc_decompressor();
        if (!d->ld)
            d->ld_unavailable = true;
    }
    if (d->ld) {
        size_t in_used, out_len;
        enum libdeflate_result lr = libdeflate_deflate_decompress_ex(
            d->ld, in, in_len, dest, (size_t)q->cluster_size, &in_used, &out_len);
        if (lr == LIBDEFLATE_SUCCESS && out_len == q->cluster_size)
            return QB_OK;
    }
    return inflate_cluster(q, in, in_len, dest, err);
}

/* zstd: one or more frames; stop when the cluster is full. Whole frames
 * are decoded straight into the destination; the streaming decoder (which
 * copies through its own window) is the fallback for frames that are cut
 * short or overrun the cluster, where it stops exactly at the cluster end. */
static int unzstd_cluster(qcow2 *q, const uint8_t *in, size_t in_len, uint8_t *dest, qb_err *err)
{
    qcow2_decomp *d = q->decomp;
    if (!d->zstd) {
        ZSTD_customMem mem = { qcow2_codec_alloc, qcow2_codec_free, (void *)&q->alloc };
        d->zstd = ZSTD_createDCtx_advanced(mem);
        if (!d->zstd)
            return qb_err_set(err, QB_ENOMEM, "%s: cannot set up zstd", q->filename);
    }
    size_t done = 0, used = 0;
    while (done < q->cluster_size) {
        size_t frame = ZSTD_findFrameCompressedSize(in + used, in_len - used);
        if (ZSTD_isError(frame))
            break;
        size_t n = ZSTD_decompressDCtx(d->zstd, dest + done, (size_t)q->cluster_size - done,
                                       in + used, frame);
        if (ZSTD_isError(n))
            break;
        done += n;
        used += frame;
        if (n == 0 && done < q->cluster_size && used >= in_len)
            break;
    }
    if (done == q->cluster_size)
        return QB_OK;
    ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_only);
    ZSTD_outBuffer out = { dest, (size_t)q->cluster_size, 0 };
    ZSTD_inBuffer inb = { in, in_len, 0 };
    while (out.pos < out.size) {
        size_t before_in = inb.pos, before_out = out.pos;
        size_t zr = ZSTD_decompressStream(d->zstd, &out, &inb);
        if (ZSTD_isError(zr))
            return QB_ECORRUPT;
        if (inb.pos == before_in && out.pos == before_out)
            return QB_ECORRUPT;   /* no progress: input ran out */
    }
    return QB_OK;
}

int qcow2_read_compressed(qcow2 *q, const qcow2_run *run, uint8_t *dest, qb_err *err)
{
    if (!dest && q->ubuf_host == run->host && q->ubuf_csize == run->csize && q->ubuf)
        return QB_OK;
    int r = ensure_buffers(q, err);
    if (r)
        return r;
    uint64_t csize = run->csize;
    if (csize > q->cbuf_size)
        csize = q->cbuf_size;
    if (run->host >= q->file_size || q->file_size - run->host < 1)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: compressed cluster at offset %#llx lies past the end of the "
                          "file (%llu bytes)",
                          q->filename, (unsigned long long)run->host,
                          (unsigned long long)q->file_size);
    /* The last sector may be partly past EOF in a valid image (the file
     * is not padded); clamp to the file. */
    if (run->host + csize > q->file_size)
        csize = q->file_size - run->host;
    const uint8_t *in;
    if (q->cwin_len && run->host >= q->cwin_off && run->host - q->cwin_off <= q->cwin_len &&
        csize <= q->cwin_len - (run->host - q->cwin_off)) {
        in = q->cbuf + (run->host - q->cwin_off);      /* already read ahead */
    } else {
        /* Compressed clusters written in sequence lie back to back: when
         * this one starts where the last one ended, read a window ahead;
         * for scattered access read just this cluster. */
        uint64_t want = csize;
        bool sequential = q->clast_end && run->host + 512 > q->clast_end &&
                          run->host < q->clast_end + 512;
        if (sequential) {
            want = q->cbuf_size;
            if (want > q->file_size - run->host)
                want = q->file_size - run->host;
            if (want < csize)
                want = csize;
        }
        q->cwin_len = 0;
        r = qb_backend_read(q->file, run->host, q->cbuf, (size_t)want, err);
        if (r)
            return qb_err_prefix(err, "%s: reading compressed cluster at %#llx: ", q->filename,
                                 (unsigned long long)run->host);
        q->cwin_off = run->host;
        q->cwin_len = want;
        in = q->cbuf;
    }
    q->clast_end = run->host + csize;
    uint8_t *out = dest ? dest : q->ubuf;
    if (!dest)
        q->ubuf_host = UINT64_MAX;
    if (q->h.compression_type == QCOW2_COMPRESSION_ZSTD)
        r = unzstd_cluster(q, in, (size_t)csize, out, err);
    else
        r = deflate_cluster(q, in, (size_t)csize, out, err);
    if (r == QB_ECORRUPT)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: compressed cluster at offset %#llx (%llu bytes, %s) does not "
                          "decompress to a full cluster",
                          q->filename, (unsigned long long)run->host, (unsigned long long)csize,
                          q->h.compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "deflate");
    if (r || dest)
        return r;
    q->ubuf_host = run->host;
    q->ubuf_csize = run->csize;
    return QB_OK;
}
