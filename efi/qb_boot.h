/*
 * Booting from images: publishing an image as an EFI disk (Block I/O and a
 * device path on a new handle), booting the guest's boot loader from it,
 * keeping it mounted for the shell, and the unattended stick mode.
 */
#ifndef QB_BOOT_H
#define QB_BOOT_H

#include "qb_efi.h"
#include "efi_mode.h"

typedef struct qb_efi_disk qb_efi_disk;

/* Opens `image` (and its backing chain), at `snapshot` when non-NULL,
 * installs EFI_BLOCK_IO_PROTOCOL and a device path unique to the image on
 * a new handle and connects drivers recursively, so partition and FAT
 * drivers bind to it. `mode` says what becomes of the guest's writes
 * (QB_EFI_MODE_UNSET: read-write); an image that cannot be written (a
 * read-only file or medium, the corrupt bit, a snapshot) is attached
 * read-only with a warning instead. The mode in use is printed. Errors are
 * described in err. */
int qb_efi_disk_publish(const qb_env *env, const char *image, const char *snapshot,
                        qb_efi_mode mode, qb_efi_disk **out, qb_err *err);
/* Disconnects and uninstalls in reverse order and closes the image. If the
 * firmware refuses to uninstall, the structures stay valid (leaked) rather
 * than freed under the firmware's feet. */
void qb_efi_disk_unpublish(qb_efi_disk *disk);
EFI_HANDLE qb_efi_disk_handle(const qb_efi_disk *disk);

/* Publishes the image, finds the guest's EFI system partition on it (GPT or
 * MBR type 0xEF), loads \EFI\BOOT\BOOTX64.EFI through the firmware (so
 * Secure Boot applies) and starts it. Returns when the guest returns or on
 * an error, after reporting it on env->err; returns an exit status. */
int qb_efi_boot(const qb_env *env, const char *image, const char *snapshot, qb_efi_mode mode);

/* The firmware-only commands (boot, mount, unmount, bench). Returns -1
 * when argv[0] is none of them. */
int qb_efi_command(const qb_env *env, int argc, char **argv);

/* Unattended stick mode: started with no arguments, boot what the config
 * next to us names, or offer a menu of the images on our volume. */
int qb_efi_stick_main(const qb_env *env);

#endif
