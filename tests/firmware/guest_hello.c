/*
 * A test guest's boot loader (\EFI\BOOT\BOOTX64.EFI on the guest's EFI
 * system partition): says where it was loaded from, checks a data file on
 * its own volume, and powers the machine off, so a test sees its marker on
 * the serial console and QEMU exit by itself. With a file \EFI\BOOT\RETURN
 * on its volume it returns EFI_ABORTED to its caller instead. With a file
 * \EFI\BOOT\WRITE it first copies \DATA.BIN to \COPY.BIN on its volume
 * through the file system and powers off right after closing the copy: what
 * the disk was given must be in the image by then.
 *
 *   QB-GUEST-HELLO tpl start <TPL>
 *   QB-GUEST-HELLO device <device path of the volume it came from>
 *   QB-GUEST-HELLO data <CRC32 of \DATA.BIN> <size>
 *   QB-GUEST-HELLO tpl after-read <TPL>
 *   QB-GUEST-HELLO wrote <bytes> | QB-GUEST-HELLO write failed <status>
 *   QB-GUEST-HELLO tpl after-write <TPL>
 *   QB-GUEST-HELLO powering off   |   QB-GUEST-HELLO returning
 */
#include <efi.h>
#include <efilib.h>

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab);

static EFI_FILE_HANDLE open_file(EFI_FILE_HANDLE root, CHAR16 *name)
{
    EFI_FILE_HANDLE f;

    if (uefi_call_wrapper(root->Open, 5, root, &f, name, EFI_FILE_MODE_READ, 0) != EFI_SUCCESS)
        return NULL;
    return f;
}

/* Copies \DATA.BIN to a new \COPY.BIN. */
static void data_copy(EFI_FILE_HANDLE root)
{
    EFI_FILE_HANDLE f = open_file(root, L"\\DATA.BIN"), out = NULL;
    EFI_FILE_INFO *info = f ? LibFileInfo(f) : NULL;
    UINTN size = info ? (UINTN)info->FileSize : 0, n = size;
    UINT8 *buf = AllocatePool(size ? size : 1);
    EFI_STATUS st = EFI_NOT_FOUND;

    if (f && buf)
        st = uefi_call_wrapper(f->Read, 3, f, &n, buf);
    if (st == EFI_SUCCESS)
        st = uefi_call_wrapper(root->Open, 5, root, &out, L"\\COPY.BIN",
                               EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE | EFI_FILE_MODE_CREATE,
                               0);
    if (st == EFI_SUCCESS)
        st = uefi_call_wrapper(out->Write, 3, out, &n, buf);
    if (out) {
        EFI_STATUS cst = uefi_call_wrapper(out->Close, 1, out);
        if (st == EFI_SUCCESS)
            st = cst;
    }
    if (st == EFI_SUCCESS)
        Print(L"QB-GUEST-HELLO wrote %lu\n", (UINT64)n);
    else
        Print(L"QB-GUEST-HELLO write failed %r\n", st);
    if (buf)
        FreePool(buf);
    if (info)
        FreePool(info);
    if (f)
        uefi_call_wrapper(f->Close, 1, f);
}

static void data_crc(EFI_FILE_HANDLE root)
{
    EFI_FILE_HANDLE f = open_file(root, L"\\DATA.BIN");
    EFI_FILE_INFO *info;
    UINT8 *buf;
    UINTN size;
    UINT32 crc = 0;

    if (!f) {
        Print(L"QB-GUEST-HELLO data none\n");
        return;
    }
    info = LibFileInfo(f);
    size = info ? (UINTN)info->FileSize : 0;
    buf = AllocatePool(size ? size : 1);
    if (buf && uefi_call_wrapper(f->Read, 3, f, &size, buf) == EFI_SUCCESS &&
        uefi_call_wrapper(BS->CalculateCrc32, 3, buf, size, &crc) == EFI_SUCCESS)
        Print(L"QB-GUEST-HELLO data %08x %lu\n", crc, (UINT64)size);
    else
        Print(L"QB-GUEST-HELLO data unreadable\n");
    if (buf)
        FreePool(buf);
    if (info)
        FreePool(info);
    uefi_call_wrapper(f->Close, 1, f);
}

/* The TPL we run at: a boot loader is started at TPL_APPLICATION and file
 * reads must leave it there. */
static void print_tpl(const CHAR16 *when)
{
    EFI_TPL t = uefi_call_wrapper(BS->RaiseTPL, 1, TPL_HIGH_LEVEL);

    uefi_call_wrapper(BS->RestoreTPL, 1, t);
    Print(L"QB-GUEST-HELLO tpl %s %d\n", when, (UINTN)t);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
    EFI_LOADED_IMAGE *li = NULL;
    EFI_FILE_HANDLE root, f;
    BOOLEAN ret = FALSE;

    InitializeLib(image, systab);
    print_tpl(L"start");
    if (uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li) ==
        EFI_SUCCESS) {
        CHAR16 *dev = DevicePathToStr(DevicePathFromHandle(li->DeviceHandle));
        Print(L"QB-GUEST-HELLO device %s\n", dev ? dev : L"?");
        root = LibOpenRoot(li->DeviceHandle);
        if (root) {
            data_crc(root);
            print_tpl(L"after-read");
            f = open_file(root, L"\\EFI\\BOOT\\RETURN");
            if (f) {
                ret = TRUE;
                uefi_call_wrapper(f->Close, 1, f);
            }
            f = open_file(root, L"\\EFI\\BOOT\\WRITE");
            if (f) {
                uefi_call_wrapper(f->Close, 1, f);
                data_copy(root);
                print_tpl(L"after-write");
            }
            uefi_call_wrapper(root->Close, 1, root);
        }
    }
    if (ret) {
        Print(L"QB-GUEST-HELLO returning\n");
        return EFI_ABORTED;
    }
    Print(L"QB-GUEST-HELLO powering off\n");
    uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
    return EFI_SUCCESS;
}
