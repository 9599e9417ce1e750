/*
 * A stand-in for the UEFI shell where there is none (Secure Boot refuses
 * OVMF's built-in shell): started as \EFI\BOOT\BOOTX64.EFI, it runs the
 * command lines in \LAUNCH.TXT (ASCII, one a line, words separated by
 * spaces, the first word a program in the volume's root) the way the shell
 * would: LoadImage, EFI_SHELL_PARAMETERS_PROTOCOL with the words as argv,
 * StartImage. Each line's output is framed like a startup.nsh section of
 * tests/firmware/lib.sh:
 *
 *   === BEGIN <n>
 *   ...
 *   === END <n> 0x<status>
 *
 * and the machine is powered off at the end.
 */
#include <efi.h>
#include <efilib.h>

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab);

#define MAX_WORDS 16
#define MAX_LINE 512

static void run(EFI_HANDLE image, EFI_LOADED_IMAGE *li, CHAR16 **argv, UINTN argc, UINTN n)
{
    EFI_SHELL_PARAMETERS_PROTOCOL params;
    CHAR16 path[MAX_LINE + 2];
    EFI_DEVICE_PATH *dp;
    EFI_HANDLE child = NULL;
    EFI_STATUS st;

    Print(L"=== BEGIN %d\n", n);
    path[0] = '\\';
    StrCpy(path + 1, argv[0]);
    dp = FileDevicePath(li->DeviceHandle, path);
    st = uefi_call_wrapper(BS->LoadImage, 6, FALSE, image, dp, NULL, 0, &child);
    if (st == EFI_SUCCESS) {
        params.Argv = argv;
        params.Argc = argc;
        params.StdIn = params.StdOut = params.StdErr = NULL;
        uefi_call_wrapper(BS->InstallProtocolInterface, 4, &child, &ShellParametersProtocolGuid,
                          EFI_NATIVE_INTERFACE, &params);
        st = uefi_call_wrapper(BS->StartImage, 3, child, NULL, NULL);
        uefi_call_wrapper(BS->UninstallProtocolInterface, 3, child, &ShellParametersProtocolGuid,
                          &params);
    } else {
        Print(L"launch: cannot load %s: %r\n", path, st);
        if (child)
            uefi_call_wrapper(BS->UnloadImage, 1, child);
    }
    Print(L"=== END %d 0x%lx\n", n, (UINT64)st);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
    EFI_LOADED_IMAGE *li;
    EFI_FILE_HANDLE root, f;
    CHAR8 text[4096];
    UINTN size = sizeof text - 1, i = 0, n = 0;

    InitializeLib(image, systab);
    if (uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li) !=
            EFI_SUCCESS ||
        !(root = LibOpenRoot(li->DeviceHandle)) ||
        uefi_call_wrapper(root->Open, 5, root, &f, L"\\LAUNCH.TXT", EFI_FILE_MODE_READ, 0) !=
            EFI_SUCCESS ||
        uefi_call_wrapper(f->Read, 3, f, &size, text) != EFI_SUCCESS) {
        Print(L"launch: no \\LAUNCH.TXT\n");
        return EFI_NOT_FOUND;
    }
    text[size] = 0;
    while (i < size) {
        CHAR16 line[MAX_LINE + 1], *argv[MAX_WORDS];
        UINTN len = 0, argc = 0, j;

        while (i < size && text[i] != '\n') {
            if (text[i] != '\r' && len < MAX_LINE)
                line[len++] = text[i];
            i++;
        }
        i++;
        line[len] = 0;
        /* Words: runs of non-spaces, cut in place. */
        for (j = 0; j < len && argc < MAX_WORDS; ) {
            while (j < len && line[j] == ' ')
                line[j++] = 0;
            if (j < len)
                argv[argc++] = &line[j];
            while (j < len && line[j] != ' ')
                j++;
        }
        if (argc)
            run(image, li, argv, argc, ++n);
    }
    Print(L"launch: done\n");
    uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
    return EFI_SUCCESS;
}
