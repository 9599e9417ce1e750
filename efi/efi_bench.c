/*
 * `bench IMAGE`: how fast the published disk reads compared with the file
 * system underneath it. The whole virtual disk is read through the
 * disk's own EFI_BLOCK_IO_PROTOCOL in 1 MiB requests (as a boot loader or
 * the partition driver would call it), then as many bytes of a raw file
 * (--raw FILE, by default the image file itself) through the file
 * protocol, also in 1 MiB reads, three times each in turn, keeping the
 * best time of each. Time comes from the TSC, calibrated against
 * BS->Stall.
 */
#include <string.h>
#include "efi_clock.h"
#include "efi_disk.h"

#define REQUEST (1u << 20)
#define CALIBRATION_US 100000u
#define ROUNDS 3

/* "123.4 MB/s" (decimal megabytes), from bytes and microseconds. */
static uint64_t rate_x10(uint64_t bytes, uint64_t us)
{
    return bytes * 10 / us;     /* bytes per microsecond = MB/s */
}

static void report(const qb_env *env, const char *what, uint64_t bytes, uint64_t us)
{
    uint64_t r = rate_x10(bytes, us);

    qb_printf(&env->out, "%s: %llu bytes in %llu.%03llu s: %llu.%llu MB/s\n", what,
              (unsigned long long)bytes, (unsigned long long)(us / 1000000),
              (unsigned long long)(us / 1000 % 1000), (unsigned long long)(r / 10),
              (unsigned long long)(r % 10));
}

/* One pass over the disk through its Block I/O; microseconds, 0 on error. */
static uint64_t pass_blockio(const qb_env *env, const qb_efi_disk *disk,
                             EFI_BLOCK_IO_PROTOCOL *bio, uint8_t *buf, uint64_t size, uint64_t hz)
{
    uint64_t t0 = qb_efi_ticks();

    for (uint64_t off = 0; off < size; off += REQUEST) {
        UINTN n = size - off < REQUEST ? (UINTN)(size - off) : REQUEST;
        EFI_STATUS st =
            bio->ReadBlocks(bio, bio->Media->MediaId, off / bio->Media->BlockSize, n, buf);
        if (st != EFI_SUCCESS) {
            qb_efi_error(env, "%s: ReadBlocks at block %llu: %s", disk->name,
                         (unsigned long long)(off / bio->Media->BlockSize),
                         qb_efi_strstatus(st));
            return 0;
        }
    }
    return qb_efi_ticks_to_us(qb_efi_ticks() - t0, hz);
}

/* One pass over the first `bytes` of the file; microseconds, 0 on error. */
static uint64_t pass_file(const qb_env *env, qb_backend *file, uint8_t *buf, uint64_t bytes,
                          uint64_t hz)
{
    uint64_t t0 = qb_efi_ticks();
    qb_err err = { 0, "" };

    for (uint64_t off = 0; off < bytes; off += REQUEST) {
        size_t n = bytes - off < REQUEST ? (size_t)(bytes - off) : REQUEST;
        if (file->vt->read(file, off, buf, n, &err) < 0) {
            qb_efi_error(env, "%s", err.msg);
            return 0;
        }
    }
    return qb_efi_ticks_to_us(qb_efi_ticks() - t0, hz);
}

int qb_efi_bench(const qb_env *env, const char *image, const char *snapshot, const char *raw)
{
    qb_efi_disk *disk = NULL;
    EFI_BLOCK_IO_PROTOCOL *bio;
    qb_backend *file = NULL;
    qb_err err = { 0, "" };
    uint8_t *buf = NULL;
    uint64_t hz, size, raw_size, bytes, bio_us = UINT64_MAX, file_us = UINT64_MAX;
    char label[QB_PATH_MAX + 64];
    char raw_name[QB_PATH_MAX];
    EFI_STATUS st;
    int status = 1;

    /* Only read: nothing for the image to risk. */
    if (qb_efi_disk_publish(env, image, snapshot, QB_EFI_READ_ONLY, &disk, &err) < 0) {
        qb_efi_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(err.code));
        return 1;
    }
    st = BS->HandleProtocol(disk->handle, &BlockIoProtocol, (void **)&bio);
    if (st != EFI_SUCCESS) {
        qb_efi_error(env, "%s: no Block I/O on the disk: %s", disk->name, qb_efi_strstatus(st));
        goto out;
    }
    if (env->opener.open(env->opener.ctx, NULL, raw ? raw : disk->name, false, &file, raw_name,
                         &err) < 0 ||
        file->vt->get_size(file, &raw_size, &err) < 0) {
        qb_efi_error(env, "%s", err.msg);
        goto out;
    }
    buf = qb_malloc(&qb_efi_alloc, REQUEST);
    if (!buf) {
        qb_efi_error(env, "bench: out of memory");
        goto out;
    }
    hz = qb_efi_ticks_per_second(CALIBRATION_US);
    size = (bio->Media->LastBlock + 1) * bio->Media->BlockSize;
    /* As many bytes of the file as there are on the disk, or all of it. */
    bytes = raw_size < size ? raw_size : size;

    /* Alternating passes, the best of each: a busy host slows single
     * passes at random. */
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t a = pass_blockio(env, disk, bio, buf, size, hz);
        uint64_t b = a ? pass_file(env, file, buf, bytes, hz) : 0;
        if (!a || !b)
            goto out;
        bio_us = a < bio_us ? a : bio_us;
        file_us = b < file_us ? b : file_us;
    }

    qb_printf(&env->out, "Best of %d passes each:\n", ROUNDS);
    qb_snprintf(label, sizeof label, "Block I/O (%s)", disk->name);
    report(env, label, size, bio_us);
    qb_snprintf(label, sizeof label, "File (%s)", raw_name);
    report(env, label, bytes, file_us);
    if (bytes) {
        /* Block I/O rate over file rate, in hundredths. */
        uint64_t a = size * 1000 / bio_us, b = bytes * 1000 / file_us;
        uint64_t ratio = b ? a * 100 / b : 0;
        qb_printf(&env->out, "Ratio (Block I/O / file): %llu.%02llu\n",
                  (unsigned long long)(ratio / 100), (unsigned long long)(ratio % 100));
    }
    status = 0;
out:
    qb_free(&qb_efi_alloc, buf);
    if (file)
        file->vt->close(file);
    if (qb_efi_disk_detach(disk) != EFI_SUCCESS)
        status = 1;
    return status;
}
