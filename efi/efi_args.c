/*
 * The command line: the UEFI shell hands its parsed argv (quotes already
 * handled) through EFI_SHELL_PARAMETERS_PROTOCOL on our image handle;
 * gnu-efi's GetShellArgcArgv finds it. The strings are UCS-2 and are
 * converted to UTF-8 for the engine. Started outside the shell there is
 * no argv at all (argc 0).
 */
#include "qb_efi.h"

void qb_efi_args_free(qb_efi_args *args)
{
    if (args->argv) {
        for (int i = 0; i < args->argc; i++)
            qb_free(&qb_efi_alloc, args->argv[i]);
        qb_free(&qb_efi_alloc, args->argv);
    }
    args->argc = 0;
    args->argv = NULL;
}

EFI_STATUS qb_efi_args_get(EFI_HANDLE image, qb_efi_args *args)
{
    CHAR16 **argv16 = NULL;
    INTN argc = GetShellArgcArgv(image, &argv16);

    args->argc = 0;
    args->argv = NULL;
    if (argc <= 0 || !argv16)
        argc = 0;
    args->argv = qb_malloc(&qb_efi_alloc, ((size_t)argc + 1) * sizeof(char *));
    if (!args->argv)
        return EFI_OUT_OF_RESOURCES;
    for (INTN i = 0; i < argc; i++) {
        size_t len = qb_utf16_to_utf8(argv16[i], NULL, 0);
        char *s = qb_malloc(&qb_efi_alloc, len + 1);

        if (!s) {
            qb_efi_args_free(args);
            return EFI_OUT_OF_RESOURCES;
        }
        qb_utf16_to_utf8(argv16[i], s, len + 1);
        args->argv[args->argc++] = s;
    }
    args->argv[args->argc] = NULL;
    return EFI_SUCCESS;
}
