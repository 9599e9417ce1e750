/*
 * EFI_BLOCK_IO_PROTOCOL (revision 3) over an open image: the image's
 * virtual disk in 512-byte blocks, read-only until the engine can write.
 *
 * Every request is checked as the UEFI specification lists the errors
 * (stale MediaId, size not a multiple of the block size, blocks past the
 * end, misaligned buffer) and then served by a single qb_image_read, which
 * reads runs of contiguous clusters in one go: a 1 MiB request is a few
 * large file reads, not 2048 small ones.
 *
 * The firmware calls these at TPL_CALLBACK or below; the engine is not
 * reentrant, so each call runs at TPL_CALLBACK, which also serialises the
 * file system calls the engine makes underneath (the FAT driver's lock is
 * at that level too).
 */
#include <string.h>
#include "efi_disk.h"

/* Read errors reported on the console per disk; the rest only counted
 * (a partition driver probing a damaged disk would flood it). */
#define MAX_REPORTED_ERRORS 8

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

static EFI_STATUS EFIAPI bio_read(EFI_BLOCK_IO_PROTOCOL *this, UINT32 media_id, EFI_LBA lba,
                                  UINTN size, VOID *buf)
{
    qb_efi_blockio *b = blockio_of(this);
    EFI_STATUS st = check_request(b, media_id, lba, size, buf);
    EFI_TPL tpl;
    qb_err err = { 0, "" };
    int r;

    if (st != EFI_SUCCESS || size == 0)
        return st;
    tpl = BS->RaiseTPL(TPL_CALLBACK);
    r = qb_image_read(b->img, lba * QB_EFI_BLOCK_SIZE, buf, size, &err);
    if (r < 0) {
        b->errors++;
        if (b->errors <= MAX_REPORTED_ERRORS)
            qb_efi_error(b->env, "%s: read of %llu blocks at block %llu failed: %s%s", b->name,
                         (unsigned long long)(size / QB_EFI_BLOCK_SIZE),
                         (unsigned long long)lba, err.msg[0] ? err.msg : qb_strerror(r),
                         b->errors == MAX_REPORTED_ERRORS ? " (further read errors not shown)"
                                                          : "");
        st = EFI_DEVICE_ERROR;
    }
    BS->RestoreTPL(tpl);
    return st;
}

static EFI_STATUS EFIAPI bio_write(EFI_BLOCK_IO_PROTOCOL *this, UINT32 media_id, EFI_LBA lba,
                                   UINTN size, VOID *buf)
{
    qb_efi_blockio *b = blockio_of(this);
    EFI_STATUS st;

    if (!b->media.MediaPresent)
        return EFI_NO_MEDIA;
    if (media_id != b->media.MediaId)
        return EFI_MEDIA_CHANGED;
    if (b->media.ReadOnly)
        return EFI_WRITE_PROTECTED;
    st = check_request(b, media_id, lba, size, buf);
    if (st != EFI_SUCCESS || size == 0)
        return st;
    /* No writable image yet: ReadOnly is always set. */
    return EFI_WRITE_PROTECTED;
}

static EFI_STATUS EFIAPI bio_flush(EFI_BLOCK_IO_PROTOCOL *this)
{
    qb_efi_blockio *b = blockio_of(this);

    if (!b->media.MediaPresent)
        return EFI_NO_MEDIA;
    /* Read-only: nothing is ever pending. */
    return EFI_SUCCESS;
}

void qb_efi_blockio_init(qb_efi_blockio *b, qb_image *img, const char *name, const qb_env *env)
{
    uint64_t cluster = qb_image_cluster_size(img);
    UINT32 per_cluster = cluster ? (UINT32)(cluster / QB_EFI_BLOCK_SIZE) : 1;

    memset(b, 0, sizeof *b);
    b->img = img;
    b->name = name;
    b->env = env;

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
    b->media.ReadOnly = TRUE;
    b->media.WriteCaching = FALSE;
    b->media.BlockSize = QB_EFI_BLOCK_SIZE;
    b->media.IoAlign = 0;           /* any buffer: the engine copies bytes */
    b->media.LastBlock = qb_image_size(img) / QB_EFI_BLOCK_SIZE - 1;
    /* A cluster is the unit the image allocates and compresses: reads
     * aligned to it and as long as it avoid splitting one. */
    b->media.LowestAlignedLba = 0;
    b->media.LogicalBlocksPerPhysicalBlock = per_cluster;
    b->media.OptimalTransferLengthGranularity = per_cluster;
}
