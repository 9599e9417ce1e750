/*
 * How a published disk treats the guest's writes. Plain C with no
 * firmware headers: the config parser (efi_config.c) uses it too.
 *
 *   read-write  writes go through the engine into the image file (the
 *               default, as a disk under QEMU)
 *   read-only   writes are refused (EFI_WRITE_PROTECTED)
 *   volatile    writes are kept in memory and lost when the disk goes
 *               away; the image is opened read-only and never written
 *   ramdisk     boot only: the whole virtual disk is copied into memory
 *               the OS keeps, and handed to the firmware's RAM disk
 *               (efi_ramdisk.c); writes stay in that memory
 */
#ifndef QB_EFI_MODE_H
#define QB_EFI_MODE_H

typedef enum qb_efi_mode {
    QB_EFI_MODE_UNSET = 0,      /* config entries: the config's default */
    QB_EFI_READ_WRITE,
    QB_EFI_READ_ONLY,
    QB_EFI_VOLATILE,
    QB_EFI_RAMDISK,
} qb_efi_mode;

static inline const char *qb_efi_mode_name(qb_efi_mode m)
{
    switch (m) {
    case QB_EFI_READ_ONLY:
        return "read-only";
    case QB_EFI_VOLATILE:
        return "volatile";
    case QB_EFI_RAMDISK:
        return "ramdisk";
    default:
        return "read-write";
    }
}

#endif
