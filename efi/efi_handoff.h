/*
 * The handoff to the booted OS (efi_handoff.c): before the guest's boot
 * loader starts, qcowboot leaves a volatile, runtime-visible EFI variable
 * describing what it booted, so that the OS (tools/initramfs/) can find
 * the stick, attach the same image itself and keep running from it after
 * ExitBootServices, when our disk is gone.
 *
 *   name    QcowbootHandoff
 *   vendor  222F59AB-487E-4FF9-A0E5-E94C1062DA94 (the project's GUID, the
 *           one that also marks our disks' device path nodes)
 *   attrs   BOOTSERVICE_ACCESS | RUNTIME_ACCESS: volatile, so it only ever
 *           describes the current boot
 *   data    UTF-8 text, one `key=value` per line (README, "Handing the
 *           disk to the OS", lists the keys)
 *
 * Linux shows it as
 * /sys/firmware/efi/efivars/QcowbootHandoff-222f59ab-487e-4ff9-a0e5-e94c1062da94
 * (four bytes of attributes, then the data).
 */
#ifndef QB_EFI_HANDOFF_H
#define QB_EFI_HANDOFF_H

#include "efi_disk.h"

#define QB_EFI_HANDOFF_VARIABLE "QcowbootHandoff"
#define QB_EFI_HANDOFF_VERSION 1

/* Sets the variable for `disk` (published, or the RAM disk of RAM-disk
 * mode), which is about to be booted, and prints a line saying so. When
 * the image's volume cannot be described (it lies on a virtual disk, or
 * the firmware refuses the variable) it says why and leaves no variable:
 * the boot goes on either way. */
void qb_efi_handoff_set(const qb_env *env, const qb_efi_disk *disk);

/* Deletes the variable (the boot loader returned: nothing was handed). */
void qb_efi_handoff_clear(void);

#endif
