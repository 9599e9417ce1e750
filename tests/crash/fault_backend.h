/*
 * A fault-injecting in-memory backend: the disk under a write workload.
 *
 * It keeps what a real disk with a volatile write cache has: the durable
 * image (as of the last completed flush) and the writes (and size changes)
 * issued since, which a power cut may or may not have made durable. Reads
 * see everything issued, as they would through the cache.
 *
 * Given a crash point k, calls 1..k-1 that change the disk (write, flush,
 * set_size: the counted calls) go through, call k fails with QB_EIO and so
 * does every call after it, reads included: the world stopped. The image a
 * reboot would find is then the durable image plus any subset of the
 * pending changes, applied in their original order; fault_disk_crash_image
 * builds one such image for a seed.
 */
#ifndef CRASH_FAULT_BACKEND_H
#define CRASH_FAULT_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "qb_backend.h"

typedef struct byte_buf {
    uint8_t *p;
    uint64_t size, cap;
} byte_buf;

void byte_buf_resize(byte_buf *b, uint64_t size);   /* new bytes are zero */
void byte_buf_set(byte_buf *b, const void *data, uint64_t size);
void byte_buf_write(byte_buf *b, uint64_t off, const void *data, uint64_t len);
void byte_buf_free(byte_buf *b);

typedef struct pending_change {
    uint64_t off;      /* write: where; resize: the new size */
    uint64_t len;      /* write: bytes of data; resize: 0 */
    uint64_t data;     /* write: where its bytes are in the log */
    uint64_t call;     /* the counted call that made it */
    bool resize;
} pending_change;

/* The backend refuses to grow a file past this: an image of a few MiB of
 * virtual disk that wants more has gone wrong, and the test should say so
 * rather than run out of memory. */
#define FAULT_DISK_MAX (1ull << 30)

#define FAULT_SECTOR 512

/* What each counted call was, in order, for choosing crash points. */
enum { CALL_WRITE = 'W', CALL_FLUSH = 'F', CALL_RESIZE = 'S' };

typedef struct fault_disk {
    qb_backend base;
    byte_buf cur;              /* durable image plus every pending change */
    byte_buf dur;              /* as of the last completed flush */
    pending_change *pend;
    size_t npend, cappend;
    byte_buf log;              /* the bytes of the pending writes */
    uint64_t calls;            /* counted calls made so far */
    uint64_t flushes;          /* completed flushes */
    uint64_t crash_at;         /* the counted call that fails first; 0: never */
    bool crashed;
    bool closed;               /* the engine released the backend */
    /* Kind of each counted call (calls bytes), kept when trace is set. */
    bool trace;
    char *kinds;
    size_t kinds_cap;
} fault_disk;

/* Starts over from `image` as the durable state, with crash point crash_at. */
void fault_disk_reset(fault_disk *d, const uint8_t *image, uint64_t size, uint64_t crash_at);
void fault_disk_free(fault_disk *d);
/* The backend to hand to the engine (its close only marks d->closed). */
qb_backend *fault_disk_backend(fault_disk *d);

/*
 * The image after a power cut now: durable state plus the pending changes
 * selected by `seed`, in order:
 *   0     none of them
 *   1     all of them
 *   2     each with probability 1/2 (a PRNG seeded with seed)
 *   3...  each 512-byte sector of each write with probability 1/2: a disk
 *         keeps whole sectors, not whole writes
 * Returns the durable or current image itself for seeds 0 and 1, else
 * builds it in `scratch`. *key identifies the image by how it was made
 * (the flushes before it and the calls and sectors applied on top): runs
 * of a deterministic workload that give the same key give the same bytes.
 */
const byte_buf *fault_disk_crash_image(const fault_disk *d, uint64_t seed, byte_buf *scratch,
                                       uint64_t *key);

#endif
