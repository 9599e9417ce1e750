/*
 * EFI_BLOCK_IO_PROTOCOL (revision 3) over an open image: the image's
 * virtual disk in 512-byte blocks, read-write, read-only or volatile
 * (efi_mode.h).
 *
 * Every request is checked as the UEFI specification lists the errors
 * (stale MediaId, size not a multiple of the block size, blocks past the
 * end, misaligned buffer) and then served by a single engine call, which
 * reads runs of contiguous clusters in one go: a 1 MiB request is a few
 * large file reads, not 2048 small ones.
 *
 * The firmware calls these at TPL_CALLBACK or below; the engine is not
 * reentrant, so each call runs at TPL_CALLBACK, which also serialises the
 * file system calls the engine makes underneath (the FAT driver's lock is
 * at that level too).
 *
 * Writes, read-write. The image file is written through its file system
 * (efi_fatmap.c says why not past it), and that must not happen while the
 * firmware's FAT driver holds its lock: it has one for all its volumes, and
 * the FAT driver on top of this very disk calls us with it held (the shell
 * copying a file onto the guest's ESP). Entering the driver again then
 * corrupts the lock's saved TPL. The lock is only ever held at
 * TPL_CALLBACK, so:
 *   - a write that arrives below TPL_CALLBACK (a boot loader writing
 *     blocks, GRUB's save_env) goes into the image at once;
 *   - a write that arrives at TPL_CALLBACK is kept in memory (the overlay,
 *     efi_overlay.c, which reads consult) and an event at TPL_CALLBACK is
 *     signalled. The firmware runs it as soon as the TPL drops below
 *     TPL_CALLBACK, that is when whoever called us has released its lock
 *     and before any code at TPL_APPLICATION runs again; it writes the
 *     overlay into the image.
 * Since the file system is only ever called where its lock is free, the
 * image file simply grows through it as the engine allocates (no room is
 * set aside in the file beforehand, nothing to truncate afterwards).
 * The engine writes through (every write call flushes its metadata and the
 * file; raw images are flushed here), so nothing is pending when an
 * operating system's loader calls ExitBootServices, which it can only do at
 * TPL_APPLICATION, after the event has run. FlushBlocks at
 * TPL_APPLICATION drains and flushes; at TPL_CALLBACK it has nothing to
 * add to what the event will do.
 *
 * Volatile: every write goes into the overlay, up to a limit taken from
 * the free memory when the disk is published; beyond it (or when the pool
 * is exhausted) WriteBlocks fails with EFI_VOLUME_FULL and changes nothing.
 * The memory in use is reported on the console every REPORT_STEP and as it
 * nears the limit.
 */
#include <string.h>
#include "efi_disk.h"

/* Errors reported on the console per disk and kind; the rest only counted
 * (a partition driver probing a damaged disk would flood it). */
#define MAX_REPORTED_ERRORS 8
#define REPORT_STEP (256ull << 20)      /* memory use reported every 256 MiB */
#define DRAIN_RUN (1u << 20)            /* largest write when draining */
#define KEEP_FREE_MIN (64ull << 20)     /* memory always left to the guest */

static qb_efi_blockio *blockio_of(EFI_BLOCK_IO_PROTOCOL *this)
{
    return (qb_efi_blockio *)((char *)this - offsetof(qb_efi_blockio, bio));
}

static EFI_STATUS EFIAPI bio_reset(EFI_BLOCK_IO_PROTOCOL *this, BOOLEAN extended)
{
    /* Nothing to reset: no device state outside the image. */
    return EFI_SUCCESS;
}

/* The checks ReadBlocks and WriteBlocks share, in the specification's
 * order of concern. A zero-length request succeeds once the media checks
 * passed. */
static EFI_STATUS check_request(const qb_efi_blockio *b, UINT32 media_id, EFI_LBA lba,
                                UINTN size, const void *buf)
{
    const EFI_BLOCK_IO_MEDIA *m = &b->media;

    if (!m->MediaPresent)
        return EFI_NO_MEDIA;
    if (media_id != m->MediaId)
        return EFI_MEDIA_CHANGED;
    if (size == 0)
        return EFI_SUCCESS;
    if (size % m->BlockSize)
        return EFI_BAD_BUFFER_SIZE;
    if (!buf)
        return EFI_INVALID_PARAMETER;
    if (lba > m->LastBlock || (size / m->BlockSize) - 1 > m->LastBlock - lba)
        return EFI_INVALID_PARAMETER;
    if (m->IoAlign > 1 && ((UINTN)buf & (m->IoAlign - 1)))
        return EFI_INVALID_PARAMETER;
    return EFI_SUCCESS;
}

static const char *why(const qb_err *err)
{
    return err->msg[0] ? err->msg : qb_strerror(err->code);
}

static void report(qb_efi_blockio *b, unsigned *count, const char *what, UINTN size,
                   EFI_LBA lba, const qb_err *err)
{
    (*count)++;
    if (*count <= MAX_REPORTED_ERRORS)
        qb_efi_error(b->env, "%s: %s of %llu blocks at block %llu failed: %s%s", b->name, what,
                     (unsigned long long)(size / QB_EFI_BLOCK_SIZE), (unsigned long long)lba,
                     why(err),
                     *count == MAX_REPORTED_ERRORS ? " (further errors of this kind not shown)"
                                                   : "");
}

static EFI_STATUS status_of(int code)
{
    switch (code) {
    case QB_EFULL:
        return EFI_VOLUME_FULL;
    case QB_EROFS:
        return EFI_WRITE_PROTECTED;
    default:
        return EFI_DEVICE_ERROR;
    }
}

/* The overlay's reads of what the image holds under a block. */
static int fill_from_image(void *ctx, uint64_t off, void *buf, size_t len, qb_err *err)
{
    qb_efi_blockio *b = ctx;

    return qb_image_read(b->img, off, buf, len, err);
}

/* One write into the image, flushed when the engine does not flush it
 * itself (it writes qcow2 images through, raw ones not). */
static int image_write(qb_efi_blockio *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    int r = qb_image_write(b->img, off, buf, len, err);

    if (r == QB_OK && b->flush_each)
        r = qb_image_flush(b->img, err);
    return r;
}

static int drain_run(void *ctx, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    return image_write(ctx, off, buf, len, err);
}

/* Writes what waits in the overlay into the image. Only where the FAT
 * lock is free: below TPL_CALLBACK, or in the drain event. What cannot be
 * written stays in the overlay (reads keep seeing it) for the next try. */
static int drain(qb_efi_blockio *b, qb_err *err)
{
    uint64_t held;
    int r;

    if (!b->overlay || b->mode != QB_EFI_READ_WRITE)
        return QB_OK;
    held = qb_overlay_bytes(b->overlay);
    if (!held)
        return QB_OK;
    r = qb_overlay_drain(b->overlay, DRAIN_RUN, drain_run, b, err);
    if (r < 0) {
        b->drain_errors++;
        if (b->drain_errors <= MAX_REPORTED_ERRORS)
            qb_efi_error(b->env,
                         "%s: %llu KiB the guest wrote could not be written to the image: %s; "
                         "they stay in memory and are tried again",
                         b->name, (unsigned long long)(qb_overlay_bytes(b->overlay) >> 10),
                         why(err));
    }
    return r;
}

static VOID EFIAPI drain_notify(EFI_EVENT event, VOID *ctx)
{
    qb_err err = { 0, "" };

    drain(ctx, &err);
}

/* A line on the console each time the overlay passes another REPORT_STEP,
 * and once when it passes three quarters of its limit. */
static void report_memory(qb_efi_blockio *b)
{
    uint64_t held = qb_overlay_bytes(b->overlay), limit = qb_overlay_limit(b->overlay);
    bool near = !b->reported_near && held >= limit / 4 * 3;

    if (held < b->next_report && !near)
        return;
    qb_printf(&b->env->out, "%s: %llu MiB of writes kept in memory (at most %llu MiB%s)\n",
              b->name, (unsigned long long)(held >> 20), (unsigned long long)(limit >> 20),
              near ? "; writes beyond it fail" : "");
    while (b->next_report <= held)
        b->next_report += REPORT_STEP;
    b->reported_near |= near;
}

static EFI_STATUS EFIAPI bio_read(EFI_BLOCK_IO_PROTOCOL *this, UINT32 media_id, EFI_LBA lba,
                                  UINTN size, VOID *buf)
{
    qb_efi_blockio *b = blockio_of(this);
    EFI_STATUS st = check_request(b, media_id, lba, size, buf);
    EFI_TPL tpl;
    qb_err err = { 0, "" };

    if (st != EFI_SUCCESS || size == 0)
        return st;
    tpl = BS->RaiseTPL(TPL_CALLBACK);
    if (qb_image_read(b->img, lba * QB_EFI_BLOCK_SIZE, buf, size, &err) < 0) {
        report(b, &b->errors, "read", size, lba, &err);
        st = EFI_DEVICE_ERROR;
    } else if (b->overlay) {
        qb_overlay_read(b->overlay, lba * QB_EFI_BLOCK_SIZE, buf, size);
    }
    BS->RestoreTPL(tpl);
    return st;
}

/* A write kept in memory (volatile, or until the drain event). */
static EFI_STATUS write_overlay(qb_efi_blockio *b, EFI_LBA lba, UINTN size, const void *buf)
{
    qb_err err = { 0, "" };
    int r = qb_overlay_write(b->overlay, lba * QB_EFI_BLOCK_SIZE, buf, size, fill_from_image, b,
                             &err);

    if (r < 0) {
        report(b, &b->write_errors, "write", size, lba, &err);
        return r == QB_EFULL ? EFI_VOLUME_FULL : EFI_DEVICE_ERROR;
    }
    report_memory(b);
    return EFI_SUCCESS;
}

static EFI_STATUS EFIAPI bio_write(EFI_BLOCK_IO_PROTOCOL *this, UINT32 media_id, EFI_LBA lba,
                                   UINTN size, VOID *buf)
{
    qb_efi_blockio *b = blockio_of(this);
    qb_err err = { 0, "" };
    EFI_STATUS st;
    EFI_TPL tpl;

    if (!b->media.MediaPresent)
        return EFI_NO_MEDIA;
    if (media_id != b->media.MediaId)
        return EFI_MEDIA_CHANGED;
    if (b->media.ReadOnly)
        return EFI_WRITE_PROTECTED;
    st = check_request(b, media_id, lba, size, buf);
    if (st != EFI_SUCCESS || size == 0)
        return st;
    tpl = BS->RaiseTPL(TPL_CALLBACK);
    if (b->mode == QB_EFI_VOLATILE) {
        st = write_overlay(b, lba, size, buf);
    } else if (tpl >= TPL_CALLBACK) {
        /* Our caller may hold the FAT lock: later, from the event. */
        st = write_overlay(b, lba, size, buf);
        if (st == EFI_SUCCESS)
            BS->SignalEvent(b->drain_event);
    } else if (drain(b, &err) < 0) {
        /* Older writes first, or reads would see them over this one. */
        report(b, &b->write_errors, "write", size, lba, &err);
        st = status_of(err.code);
    } else if (image_write(b, lba * QB_EFI_BLOCK_SIZE, buf, size, &err) < 0) {
        report(b, &b->write_errors, "write", size, lba, &err);
        st = status_of(err.code);
    }
    BS->RestoreTPL(tpl);
    return st;
}

/* Drains and flushes (read-write). At TPL_CALLBACK, where the FAT lock is
 * known to be free. */
static int sync_image(qb_efi_blockio *b, qb_err *err)
{
    if (b->mode != QB_EFI_READ_WRITE)
        return QB_OK;
    if (drain(b, err) < 0)
        return err->code;
    return qb_image_flush(b->img, err);
}

static EFI_STATUS EFIAPI bio_flush(EFI_BLOCK_IO_PROTOCOL *this)
{
    qb_efi_blockio *b = blockio_of(this);
    qb_err err = { 0, "" };
    EFI_STATUS st = EFI_SUCCESS;
    EFI_TPL tpl;

    if (!b->media.MediaPresent)
        return EFI_NO_MEDIA;
    if (b->mode != QB_EFI_READ_WRITE)
        return EFI_SUCCESS;     /* nothing ever reaches the image */
    tpl = BS->RaiseTPL(TPL_CALLBACK);
    /* At TPL_CALLBACK the event drains once the caller lets go. */
    if (tpl < TPL_CALLBACK && sync_image(b, &err) < 0) {
        report(b, &b->write_errors, "flush", 0, 0, &err);
        st = status_of(err.code);
    }
    BS->RestoreTPL(tpl);
    return st;
}

int qb_efi_blockio_sync(qb_efi_blockio *b, qb_err *err)
{
    /* At TPL_CALLBACK like every other engine call here: the drain event
     * must not run in the middle of this one. */
    EFI_TPL tpl = BS->RaiseTPL(TPL_CALLBACK);
    int r = sync_image(b, err);

    BS->RestoreTPL(tpl);
    return r;
}

/* What the guest may have for writes kept in memory: the free memory now,
 * less a quarter of it (at least KEEP_FREE_MIN) for the guest itself. */
static uint64_t memory_limit(void)
{
    UINTN size = 0, key, desc_size;
    UINT32 version;
    EFI_MEMORY_DESCRIPTOR *map = NULL;
    uint64_t free_bytes = 0, keep;
    EFI_STATUS st;

    for (int tries = 0; tries < 4; tries++) {
        st = BS->GetMemoryMap(&size, map, &key, &desc_size, &version);
        if (st != EFI_BUFFER_TOO_SMALL)
            break;
        if (map)
            BS->FreePool(map);
        map = NULL;
        size += 8 * sizeof(EFI_MEMORY_DESCRIPTOR);  /* the allocation adds entries */
        if (BS->AllocatePool(EfiLoaderData, size, (void **)&map) != EFI_SUCCESS)
            return 0;
    }
    if (st == EFI_SUCCESS && map)
        for (UINTN off = 0; off + desc_size <= size; off += desc_size) {
            const EFI_MEMORY_DESCRIPTOR *d = (const void *)((const UINT8 *)map + off);
            if (d->Type == EfiConventionalMemory)
                free_bytes += d->NumberOfPages * 4096;
        }
    if (map)
        BS->FreePool(map);
    keep = free_bytes / 4 > KEEP_FREE_MIN ? free_bytes / 4 : KEEP_FREE_MIN;
    return free_bytes > keep ? free_bytes - keep : QB_OVERLAY_BLOCK;
}

int qb_efi_blockio_init(qb_efi_blockio *b, qb_image *img, const char *name, const qb_env *env,
                        qb_efi_mode mode, qb_err *err)
{
    uint64_t cluster = qb_image_cluster_size(img);
    UINT32 per_cluster = cluster ? (UINT32)(cluster / QB_EFI_BLOCK_SIZE) : 1;
    EFI_STATUS st;

    memset(b, 0, sizeof *b);
    b->img = img;
    b->name = name;
    b->env = env;
    b->mode = mode;
    b->next_report = REPORT_STEP;
    b->flush_each = mode == QB_EFI_READ_WRITE && strcmp(qb_image_format(img), "qcow2") != 0;

    if (mode != QB_EFI_READ_ONLY) {
        /* Read-write: only what waits for the event, which is little. */
        b->overlay = qb_overlay_new(&qb_efi_alloc, qb_image_size(img), memory_limit());
        if (!b->overlay)
            return qb_err_set(err, QB_ENOMEM, "%s: out of memory", name);
    }
    if (mode == QB_EFI_READ_WRITE) {
        st = BS->CreateEvent(EVT_NOTIFY_SIGNAL, TPL_CALLBACK, drain_notify, b, &b->drain_event);
        if (st != EFI_SUCCESS) {
            qb_efi_blockio_fini(b);
            return qb_err_set(err, qb_efi_errcode(st), "%s: cannot create an event: %s", name,
                              qb_efi_strstatus(st));
        }
    }

    b->bio.Revision = EFI_BLOCK_IO_PROTOCOL_REVISION3;
    b->bio.Media = &b->media;
    b->bio.Reset = bio_reset;
    b->bio.ReadBlocks = bio_read;
    b->bio.WriteBlocks = bio_write;
    b->bio.FlushBlocks = bio_flush;

    b->media.MediaId = 1;
    /*
     * Removable, deliberately. The firmware's Secure Boot code
     * (DxeImageVerificationLib in EDK2) picks the verification policy for
     * an image by the media it is loaded from: option ROM, removable or
     * fixed. What we offer is the content of a file that anyone who holds
     * the stick can replace, so it must never get more trust than a USB
     * stick: some platforms relax the fixed-media policy (always execute,
     * or ask the user), while none is more lenient with removable media,
     * and OVMF checks all three alike. It is also what the user expects of
     * a disk carried on a stick, and what the boot loaders it holds are
     * written for (\EFI\BOOT\BOOTX64.EFI is the removable-media path).
     */
    b->media.RemovableMedia = TRUE;
    b->media.MediaPresent = TRUE;
    b->media.LogicalPartition = FALSE;
    b->media.ReadOnly = mode == QB_EFI_READ_ONLY;
    /* Writes reach the image before WriteBlocks returns (or, at
     * TPL_CALLBACK, before the caller's caller runs again). */
    b->media.WriteCaching = FALSE;
    b->media.BlockSize = QB_EFI_BLOCK_SIZE;
    b->media.IoAlign = 0;           /* any buffer: the engine copies bytes */
    b->media.LastBlock = qb_image_size(img) / QB_EFI_BLOCK_SIZE - 1;
    /* A cluster is the unit the image allocates and compresses: requests
     * aligned to it and as long as it avoid splitting one. */
    b->media.LowestAlignedLba = 0;
    b->media.LogicalBlocksPerPhysicalBlock = per_cluster;
    b->media.OptimalTransferLengthGranularity = per_cluster;
    return QB_OK;
}

void qb_efi_blockio_fini(qb_efi_blockio *b)
{
    if (b->drain_event)
        BS->CloseEvent(b->drain_event);
    b->drain_event = NULL;
    if (b->overlay && b->mode == QB_EFI_READ_WRITE && qb_overlay_bytes(b->overlay))
        qb_efi_error(b->env, "%s: %llu KiB the guest wrote never reached the image", b->name,
                     (unsigned long long)(qb_overlay_bytes(b->overlay) >> 10));
    qb_overlay_free(b->overlay);
    b->overlay = NULL;
}
