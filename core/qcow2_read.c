/*
 * The read path of one qcow2 layer. Runs of contiguous host clusters are
 * read with one backend call; unallocated runs are handed to the caller's
 * fill function (the backing chain, or zeros).
 */
#include <string.h>
#include "qcow2.h"

int qcow2_read(qcow2 *q, uint64_t off, uint8_t *buf, size_t len, qcow2_fill_fn fill,
               void *fill_ctx, qb_err *err)
{
    while (len) {
        qcow2_run run;
        int r = qcow2_map(q, off, len, &run, err);
        if (r)
            return r;
        size_t n = (size_t)run.length;
        switch (run.kind) {
        case QCOW2_NORMAL:
            if (q->crypto) {
                r = qcow2_crypto_read(q, run.host, off, buf, n, err);
                if (r)
                    return r;
                break;
            }
            r = qb_backend_read(q->data_file, run.host, buf, n, err);
            if (r)
                return qb_err_prefix(err, "%s: reading data at host offset %#llx: ",
                                     q->filename, (unsigned long long)run.host);
            break;
        case QCOW2_ZERO_PLAIN:
        case QCOW2_ZERO_ALLOC:
            memset(buf, 0, n);
            break;
        case QCOW2_UNALLOCATED:
        case QCOW2_UNALLOCATED_ALLOC:
            r = fill(fill_ctx, off, buf, n, err);
            if (r)
                return r;
            break;
        case QCOW2_COMPRESSED:
            if (n == q->cluster_size) {     /* whole cluster: decompress in place */
                r = qcow2_read_compressed(q, &run, buf, err);
                if (r)
                    return r;
                break;
            }
            r = qcow2_read_compressed(q, &run, NULL, err);
            if (r)
                return r;
            memcpy(buf, q->ubuf + (off & (q->cluster_size - 1)), n);
            break;
        }
        off += n;
        buf += n;
        len -= n;
    }
    return QB_OK;
}
