/*
 * Writes kept in memory over a virtual disk: a sparse map of 4 KiB blocks
 * of the disk, consulted by reads after the image has answered. Plain C
 * over the engine's allocator (the host tests build it too).
 *
 * It serves two purposes on a published disk (efi_blockio.c):
 *   - `--volatile`: every guest write lands here and stays until the disk
 *     goes away; the image is never written;
 *   - a read-write disk: writes that arrive while the firmware's FAT
 *     driver may hold its lock wait here for a moment in which the image
 *     file can be written (see efi_blockio.c), and are then drained into
 *     the image.
 */
#ifndef QB_EFI_OVERLAY_H
#define QB_EFI_OVERLAY_H

#include "qb_types.h"

#define QB_OVERLAY_BLOCK 4096u

typedef struct qb_overlay qb_overlay;

/* Fills buf with the disk's current bytes [off, off + len) (what the
 * image holds there), for the parts of a block a write does not cover. */
typedef int (*qb_overlay_fill_fn)(void *ctx, uint64_t off, void *buf, size_t len, qb_err *err);
/* Receives a run of consecutive blocks being drained. */
typedef int (*qb_overlay_drain_fn)(void *ctx, uint64_t off, const void *buf, size_t len,
                                   qb_err *err);

/* An empty overlay over a disk of disk_size bytes that holds at most
 * `limit` bytes of blocks (0: no limit but the allocator's). NULL when out
 * of memory. */
qb_overlay *qb_overlay_new(const qb_alloc *a, uint64_t disk_size, uint64_t limit);
void qb_overlay_free(qb_overlay *o);

/* Bytes of disk blocks held (4 KiB each). */
uint64_t qb_overlay_bytes(const qb_overlay *o);
uint64_t qb_overlay_limit(const qb_overlay *o);

/* Copies the blocks held over buf, which holds [off, off + len) of the
 * disk as the image reads. */
void qb_overlay_read(const qb_overlay *o, uint64_t off, void *buf, size_t len);

/* Stores [off, off + len) of the disk (within its size). A block not held
 * yet is filled first through fill, for the bytes the write leaves alone.
 * All or nothing: QB_EFULL when the limit or the allocator refuses (err
 * says which), fill's error when it fails; the overlay is then unchanged. */
int qb_overlay_write(qb_overlay *o, uint64_t off, const void *buf, size_t len,
                     qb_overlay_fill_fn fill, void *ctx, qb_err *err);

/* Hands the blocks held to fn in disk order, consecutive blocks in runs of
 * up to `run_max` bytes (a multiple of the block size), the last block cut
 * at the end of the disk, and forgets each run fn accepted. Stops at the
 * first error, keeping what was not drained. */
int qb_overlay_drain(qb_overlay *o, size_t run_max, qb_overlay_drain_fn fn, void *ctx,
                     qb_err *err);

#endif
