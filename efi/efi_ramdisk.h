/*
 * RAM-disk mode (efi_ramdisk.c): the whole virtual disk copied into memory
 * the OS keeps and handed to the firmware's RAM disk driver, which
 * describes it in the ACPI NFIT; Linux then finds it as /dev/pmem0 after
 * ExitBootServices, where a disk of ours would be gone.
 */
#ifndef QB_EFI_RAMDISK_H
#define QB_EFI_RAMDISK_H

#include "efi_disk.h"

/* EFI_RAM_DISK_PROTOCOL (UEFI 2.6 and later), which GNU-EFI 3.0.15 does not
 * declare. Register installs Block I/O and a device path on a new handle
 * for [base, base + size) and returns that device path, which stays the
 * driver's: it is freed by Unregister, never by us. */
#define QB_EFI_RAM_DISK_PROTOCOL_GUID \
    { 0xab38a0df, 0x6873, 0x44a9, { 0x87, 0xe6, 0xd4, 0xeb, 0x56, 0x14, 0x84, 0x49 } }
/* The RAM disk types of the specification's RAM disk device path node:
 * a virtual disk, lost at power-off (77AB535A-45FC-624B-5560-F7B281D1F96E). */
#define QB_EFI_VIRTUAL_DISK_GUID \
    { 0x77ab535a, 0x45fc, 0x624b, { 0x55, 0x60, 0xf7, 0xb2, 0x81, 0xd1, 0xf9, 0x6e } }

typedef struct qb_efi_ram_disk_protocol {
    EFI_STATUS(EFIAPI *Register)(UINT64 base, UINT64 size, EFI_GUID *type,
                                 EFI_DEVICE_PATH *parent, EFI_DEVICE_PATH **path);
    EFI_STATUS(EFIAPI *Unregister)(EFI_DEVICE_PATH *path);
} qb_efi_ram_disk_protocol;

/* Memory the OS is left at least, beyond the RAM disk, before loading. */
#define QB_EFI_RAMDISK_OS_MIB 128u

/* Loads `image` (at `snapshot` when non-NULL) into reserved memory,
 * registers it as a RAM disk and boots its \EFI\BOOT\BOOTX64.EFI from the
 * RAM disk. Refuses before loading when the firmware has no RAM disk
 * protocol or too little memory. If the boot loader returns, the RAM disk
 * is removed and its memory freed. Returns an exit status. */
int qb_efi_ramdisk_boot(const qb_env *env, const char *image, const char *snapshot);

/* efi_boot.c: boots from a disk already on a handle of its own: finds its
 * EFI system partition and starts the boot loader through the firmware.
 * Uses disk->devpath, disk->img (the disk's bytes, for its partition
 * table), disk->name and disk->blockio.errors. */
int qb_efi_boot_disk(const qb_env *env, qb_efi_disk *disk);

#endif
