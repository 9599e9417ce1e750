/*
 * The UEFI shell's names for file systems: map names ("FS0:") and the
 * current directory, through EFI_SHELL_PROTOCOL. Without the shell (the
 * image started by the boot manager) the only volume is the one this
 * image was loaded from: the empty device, current directory "\".
 */
#include "qb_efi.h"

static EFI_SHELL_PROTOCOL *shell(void)
{
    static EFI_SHELL_PROTOCOL *sh;
    static bool looked;

    if (!looked) {
        looked = true;
        if (BS->LocateProtocol(&ShellProtocolGuid, NULL, (void **)&sh) != EFI_SUCCESS)
            sh = NULL;
    }
    return sh;
}

bool qb_efi_shell_present(void)
{
    return shell() != NULL;
}

/* dev ("FS0") as the CHAR16 map name the shell takes ("FS0:"). */
static int dev_name16(const char *dev, CHAR16 *out, size_t count, qb_err *err)
{
    long n = qb_utf8_to_ucs2(dev, out, count - 1);

    if (n < 0)
        return qb_err_set(err, QB_EINVAL, "bad device name '%s'", dev);
    out[n] = ':';
    out[n + 1] = 0;
    return QB_OK;
}

int qb_efi_shell_cwd(const char *dev, char *out, size_t size, qb_err *err)
{
    EFI_SHELL_PROTOCOL *sh = shell();
    CHAR16 name[QB_EFI_DEV_MAX + 1];
    const CHAR16 *cwd;

    if (!sh) {
        if (dev && *dev)
            return qb_err_set(err, QB_ENOENT, "%s: no such device (no UEFI shell)", dev);
        if (size < 2)
            return qb_err_set(err, QB_EINVAL, "path too long");
        out[0] = '\\';
        out[1] = '\0';
        return QB_OK;
    }
    if (dev && dev_name16(dev, name, QB_EFI_DEV_MAX + 1, err) < 0)
        return err->code;
    cwd = sh->GetCurDir(dev ? name : NULL);
    if (!cwd) {
        if (dev)
            return qb_err_set(err, QB_ENOENT, "%s: no such device", dev);
        return qb_err_set(err, QB_ENOENT, "no current directory (change to a file system such as fs0: first)");
    }
    if (qb_utf16_to_utf8(cwd, out, size) >= size)
        return qb_err_set(err, QB_EINVAL, "current directory too long");
    return QB_OK;
}

/* The device path the shell maps `dev` to. */
static int dev_path(const char *dev, EFI_DEVICE_PATH **dp, qb_err *err)
{
    CHAR16 name[QB_EFI_DEV_MAX + 1];

    if (dev_name16(dev, name, QB_EFI_DEV_MAX + 1, err) < 0)
        return err->code;
    *dp = (EFI_DEVICE_PATH *)shell()->GetDevicePathFromMap(name);
    if (!*dp)
        return qb_err_set(err, QB_ENOENT, "%s: no such device", dev);
    return QB_OK;
}

int qb_efi_shell_canon_dev(char *dev, size_t size, qb_err *err)
{
    EFI_DEVICE_PATH *dp;
    const CHAR16 *maps;
    const CHAR16 *best = NULL, *p;
    size_t best_len = 0;

    if (!shell() || !*dev)
        return QB_OK;
    if (dev_path(dev, &dp, err) < 0)
        return err->code;
    /* "FS0:;BLK1:" style list: take the first FSn name, else the first.
     * The list is not ours to free, whatever the specification says: EDK2's
     * shell puts it on its own free list and releases it after the command,
     * so a FreePool here is a double free. */
    maps = shell()->GetMapFromDevicePath(&dp);
    if (!maps)
        return QB_OK;
    for (p = maps; *p; ) {
        const CHAR16 *q = p;
        while (*q && *q != ';' && *q != ':')
            q++;
        bool fs = (p[0] == 'F' || p[0] == 'f') && (p[1] == 'S' || p[1] == 's');
        if (q > p && (!best || (fs && !(best[0] == 'F' || best[0] == 'f')))) {
            best = p;
            best_len = (size_t)(q - p);
        }
        while (*q && *q != ';')
            q++;
        p = *q ? q + 1 : q;
    }
    if (best && best_len < size && best_len < QB_EFI_DEV_MAX) {
        for (size_t i = 0; i < best_len; i++) {
            CHAR16 c = best[i];
            dev[i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        }
        dev[best_len] = '\0';
    }
    return QB_OK;
}

static int open_volume(EFI_HANDLE handle, const char *dev, EFI_FILE_HANDLE *root, qb_err *err)
{
    EFI_FILE_IO_INTERFACE *fs;
    EFI_STATUS st;

    st = BS->HandleProtocol(handle, &FileSystemProtocol, (void **)&fs);
    if (st == EFI_SUCCESS)
        st = fs->OpenVolume(fs, root);
    if (st != EFI_SUCCESS)
        return qb_err_set(err, qb_efi_errcode(st), "%s: cannot open the file system: %s",
                          *dev ? dev : "boot device", qb_efi_strstatus(st));
    return QB_OK;
}

int qb_efi_volume_handle(const char *dev, EFI_HANDLE *handle, qb_err *err)
{
    EFI_DEVICE_PATH *dp;
    EFI_STATUS st;

    if (!*dev) {
        /* No shell: the volume this image came from. */
        EFI_LOADED_IMAGE *li;
        st = BS->HandleProtocol(qb_efi_image, &LoadedImageProtocol, (void **)&li);
        if (st != EFI_SUCCESS)
            return qb_err_set(err, QB_EIO, "cannot find the boot device: %s", qb_efi_strstatus(st));
        *handle = li->DeviceHandle;
        return QB_OK;
    }
    if (!shell())
        return qb_err_set(err, QB_ENOENT, "%s: no such device (no UEFI shell)", dev);
    if (dev_path(dev, &dp, err) < 0)
        return err->code;
    st = BS->LocateDevicePath(&FileSystemProtocol, &dp, handle);
    if (st != EFI_SUCCESS)
        return qb_err_set(err, QB_ENOENT, "%s: not a file system: %s", dev, qb_efi_strstatus(st));
    return QB_OK;
}

int qb_efi_volume_root(const char *dev, EFI_FILE_HANDLE *root, qb_err *err)
{
    EFI_HANDLE handle;

    if (qb_efi_volume_handle(dev, &handle, err) < 0)
        return err->code;
    return open_volume(handle, dev, root, err);
}
