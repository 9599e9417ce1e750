/*
 * Entry point of qcowboot.efi. gnu-efi's crt0 calls efi_main with the SysV
 * ABI after relocating the image, so it is not EFIAPI.
 *
 * From the UEFI shell: `qcowboot.efi COMMAND ARGS...` runs one command:
 * the firmware-only ones (boot, mount, unmount, bench) or an engine command
 * exactly as `qcowboot COMMAND ARGS...` runs it on Linux; the exit status
 * becomes the image's return status (the shell's %lasterror%). Started
 * without arguments, typically as a stick's \EFI\BOOT\BOOTX64.EFI, it runs
 * stick mode: the configured image or a menu of the stick's images.
 */
#include "qb_boot.h"
#include "efi_disk.h"
#include "efi_passphrase.h"

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab);

EFI_HANDLE qb_efi_image;

/* Exit status 0 is success; any other status n is returned as the
 * OEM-defined error EFIERR_OEM(n): no standard EFI_STATUS claims a meaning
 * it does not have, and EDK2's shell, which keeps only the low bits, shows
 * the exit status itself in %lasterror% (0x1 for 1). */
static EFI_STATUS exit_status(int status)
{
    return status == 0 ? EFI_SUCCESS : (EFI_STATUS)EFIERR_OEM((UINT64)(unsigned)status);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
    qb_efi_args args;
    EFI_STATUS st;
    int status;

    InitializeLib(image, systab);
    qb_efi_image = image;
    /* Long conversions must not be cut short by the boot watchdog. */
    BS->SetWatchdogTimer(0, 0, 0, NULL);

    const qb_env e = {
        .alloc = qb_efi_alloc,
        .opener = qb_efi_opener,
        .out = qb_efi_stdout,
        .err = qb_efi_stderr,
        .program = QB_EFI_PROGRAM,
        .ask_passphrase = qb_efi_ask_passphrase,
        .kdf_progress = qb_efi_kdf_progress,
    };

    st = qb_efi_args_get(image, &args);
    if (st != EFI_SUCCESS) {
        qb_printf(&e.err, "%s: cannot read the command line: %s\n", e.program,
                  qb_efi_strstatus(st));
        return st;
    }
    /* argv[0] is the program itself; the engine wants the command first. */
    if (args.argc < 2 && qb_efi_is_driver()) {
        /* The driver build only mounts; loaded bare (the shell's `load`)
         * it must not start booting from its own volume. */
        qb_printf(&e.err, "%s: the driver build only runs 'mount IMAGE' (use qcowboot.efi mount)\n",
                  QB_EFI_DRIVER_FILE);
        status = 1;
    } else if (args.argc < 2) {
        status = qb_efi_stick_main(&e);
    } else {
        status = qb_efi_command(&e, args.argc - 1, args.argv + 1);
        if (status < 0)
            status = qb_cmd_main(&e, args.argc - 1, args.argv + 1);
    }
    qb_efi_args_free(&args);
    return exit_status(status);
}
