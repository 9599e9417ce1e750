/*
 * `mount`: a disk that outlives the command.
 *
 * An application's image is unloaded as soon as it returns, and with it
 * the code behind the Block I/O it installed. So the same objects are also
 * linked as a boot-service driver, qcowbootdrv.efi, which the firmware
 * keeps resident when its entry point returns EFI_SUCCESS:
 *
 *   qcowboot.efi mount IMAGE
 *     LoadImage(qcowbootdrv.efi from qcowboot.efi's own directory)
 *     installs EFI_SHELL_PARAMETERS_PROTOCOL on it: "mount" IMAGE ...
 *     StartImage -> the driver's efi_main runs the same command line,
 *       publishes the disk, sets its LoadedImage->Unload, returns
 *       EFI_SUCCESS and stays resident (on an error it returns the error
 *       and the firmware unloads it)
 *     uninstalls the parameters again (they live in our memory)
 *
 *   qcowboot.efi unmount [IMAGE]
 *     finds our disks by the qb_efi_disk_info protocol on their handles
 *     and calls BS->UnloadImage on the driver holding each; the driver's
 *     Unload detaches the disk (or refuses, and stays, when the firmware
 *     refuses) and the firmware frees the driver.
 *
 * One driver image per mounted disk: unloading one never touches another,
 * and the shell's `unload` works on them too. The driver is loaded with
 * LoadImage like anything else, so under Secure Boot it must be signed.
 */
#include <string.h>
#include "efi_disk.h"

/* The disk this copy holds while resident (driver role only). */
static qb_efi_disk *resident;

bool qb_efi_is_driver(void)
{
    EFI_LOADED_IMAGE *li;

    return BS->HandleProtocol(qb_efi_image, &LoadedImageProtocol, (void **)&li) == EFI_SUCCESS &&
           li->ImageCodeType == EfiBootServicesCode;
}

static EFI_STATUS EFIAPI driver_unload(EFI_HANDLE image)
{
    EFI_STATUS st;

    if (!resident)
        return EFI_SUCCESS;
    st = qb_efi_disk_detach(resident);
    if (st != EFI_SUCCESS)
        return EFI_ACCESS_DENIED;
    resident = NULL;
    return EFI_SUCCESS;
}

/* Driver role: publish and stay. */
static int driver_mount(const qb_env *env, const char *image, const char *snapshot,
                        qb_efi_mode mode)
{
    EFI_LOADED_IMAGE *li;
    qb_err err = { 0, "" };
    EFI_STATUS st;

    if (resident) {
        qb_efi_error(env, "this driver holds a disk already");
        return 1;
    }
    st = BS->HandleProtocol(qb_efi_image, &LoadedImageProtocol, (void **)&li);
    if (st != EFI_SUCCESS) {
        qb_efi_error(env, "cannot find our own loaded image: %s", qb_efi_strstatus(st));
        return 1;
    }
    if (qb_efi_disk_publish(env, image, snapshot, mode, &resident, &err) < 0) {
        qb_efi_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(err.code));
        return 1;
    }
    resident->info.driver = qb_efi_image;
    li->Unload = driver_unload;
    return 0;
}

/* The file path of the driver: qcowboot.efi's own directory on its own
 * device, from the loaded image's file path nodes. */
static EFI_DEVICE_PATH *driver_path(const qb_env *env, EFI_LOADED_IMAGE *li)
{
    char dir[QB_PATH_MAX] = "";
    size_t len = 0;
    EFI_DEVICE_PATH *n;

    for (n = li->FilePath; n && !IsDevicePathEnd(n); n = NextDevicePathNode(n)) {
        if (DevicePathType(n) != MEDIA_DEVICE_PATH || DevicePathSubType(n) != MEDIA_FILEPATH_DP)
            return NULL;
        /* The node's name, copied out: it may be unaligned. */
        UINTN units = (DevicePathNodeLength(n) - 4) / sizeof(CHAR16);
        const UINT8 *s = (const UINT8 *)n + 4;
        CHAR16 name[QB_PATH_MAX];
        if (units >= QB_PATH_MAX)
            return NULL;
        for (UINTN i = 0; i < units; i++)
            name[i] = (CHAR16)(s[2 * i] | s[2 * i + 1] << 8);
        name[units] = 0;
        if (len && dir[len - 1] != '\\' && name[0] != '\\')
            dir[len++] = '\\';
        len += qb_utf16_to_utf8(name, dir + len, sizeof dir - len);
        if (len >= sizeof dir - 1)
            return NULL;
    }
    /* Drop the file name, keep its directory. */
    while (len && dir[len - 1] != '\\')
        len--;
    if (len + sizeof QB_EFI_DRIVER_FILE + 1 > sizeof dir)
        return NULL;
    if (!len)
        dir[len++] = '\\';
    memcpy(dir + len, QB_EFI_DRIVER_FILE, sizeof QB_EFI_DRIVER_FILE);
    return qb_efi_devpath_file(li->DeviceHandle, dir);
}

static CHAR16 *ucs2(const char *s)
{
    size_t n = strlen(s) + 1;
    CHAR16 *w = qb_malloc(&qb_efi_alloc, n * sizeof(CHAR16));

    if (w && qb_utf8_to_ucs2(s, w, n) < 0) {
        qb_free(&qb_efi_alloc, w);
        w = NULL;
    }
    return w;
}

/* An exit status from the driver's EFI_STATUS (see efi_main.c). */
static int driver_status(EFI_STATUS st)
{
    const EFI_STATUS oem = EFIERR_OEM(0);

    if (st == EFI_SUCCESS)
        return 0;
    if ((st & oem) == oem && (st & ~oem) < 256)
        return (int)(st & ~oem);
    return 1;
}

static const char *mode_of_driver(EFI_HANDLE drv);

int qb_efi_mount(const qb_env *env, const char *image, const char *snapshot, qb_efi_mode mode)
{
    EFI_SHELL_PARAMETERS_PROTOCOL params, *ours;
    EFI_LOADED_IMAGE *li;
    EFI_DEVICE_PATH *path;
    EFI_HANDLE drv = NULL;
    EFI_STATUS st;
    CHAR16 *argv[10] = { NULL };
    char canon[QB_PATH_MAX];
    qb_err err = { 0, "" };
    char *where;
    int status = 1;
    UINTN argc = 0;

    if (qb_efi_is_driver())
        return driver_mount(env, image, snapshot, mode);

    /* The driver resolves names as we do (same shell, same current
     * directory), but a canonical name leaves no doubt. */
    if (qb_efi_resolve(NULL, image, canon, &err) < 0) {
        qb_efi_error(env, "%s", err.msg);
        return 1;
    }
    st = BS->HandleProtocol(qb_efi_image, &LoadedImageProtocol, (void **)&li);
    path = st == EFI_SUCCESS ? driver_path(env, li) : NULL;
    if (!path) {
        qb_efi_error(env, "mount: cannot tell where %s is (%s must be in the same directory)",
                     QB_EFI_PROGRAM, QB_EFI_DRIVER_FILE);
        return 1;
    }
    st = BS->LoadImage(FALSE, qb_efi_image, path, NULL, 0, &drv);
    if (st != EFI_SUCCESS) {
        where = qb_efi_devpath_text(path);
        qb_efi_error(env, "mount: cannot load %s (%s): %s%s", QB_EFI_DRIVER_FILE,
                     where ? where : "?", qb_efi_strstatus(st),
                     st == EFI_NOT_FOUND ? ": it belongs next to " QB_EFI_PROGRAM
                     : st == EFI_SECURITY_VIOLATION || st == EFI_ACCESS_DENIED
                         ? " (Secure Boot: it must be signed like " QB_EFI_PROGRAM ")"
                         : "");
        qb_free(&qb_efi_alloc, where);
        FreePool(path);
        if (drv)
            BS->UnloadImage(drv);
        return 1;
    }
    FreePool(path);

    /* The driver's command line, as the shell would pass it. */
    argv[argc++] = ucs2(QB_EFI_DRIVER_FILE);
    if (env->l2_cache_bytes) {
        char opt[48];
        qb_snprintf(opt, sizeof opt, "--cache-size=%llu",
                    (unsigned long long)env->l2_cache_bytes);
        argv[argc++] = ucs2(opt);
    }
    argv[argc++] = ucs2("mount");
    if (snapshot) {
        argv[argc++] = ucs2("--snapshot");
        argv[argc++] = ucs2(snapshot);
    }
    if (mode == QB_EFI_READ_ONLY)
        argv[argc++] = ucs2("--readonly");
    else if (mode == QB_EFI_VOLATILE)
        argv[argc++] = ucs2("--volatile");
    argv[argc++] = ucs2("--");
    argv[argc++] = ucs2(canon);
    for (UINTN i = 0; i < argc; i++)
        if (!argv[i]) {
            qb_efi_error(env, "mount: %s: name not representable in UCS-2 or out of memory",
                         image);
            BS->UnloadImage(drv);
            goto out;
        }
    memset(&params, 0, sizeof params);
    params.Argv = argv;
    params.Argc = argc;
    if (BS->HandleProtocol(qb_efi_image, &ShellParametersProtocolGuid, (void **)&ours) ==
        EFI_SUCCESS) {
        params.StdIn = ours->StdIn;
        params.StdOut = ours->StdOut;
        params.StdErr = ours->StdErr;
    }
    st = BS->InstallProtocolInterface(&drv, &ShellParametersProtocolGuid, EFI_NATIVE_INTERFACE,
                                      &params);
    if (st != EFI_SUCCESS) {
        qb_efi_error(env, "mount: cannot pass the command line to %s: %s", QB_EFI_DRIVER_FILE,
                     qb_efi_strstatus(st));
        BS->UnloadImage(drv);
        goto out;
    }
    st = BS->StartImage(drv, NULL, NULL);
    /* The driver is resident or, after an error, unloaded: either way the
     * handle still carries our parameters, which must not outlive us. */
    BS->UninstallProtocolInterface(drv, &ShellParametersProtocolGuid, &params);
    status = driver_status(st);
    if (status == 0)
        qb_printf(&env->out, "Mounted %s%s%s %s%s\n", canon, snapshot ? " at snapshot " : "",
                  snapshot ? snapshot : "", mode_of_driver(drv),
                  qb_efi_shell_present() ? ": 'map -r' shows its file systems" : "");
out:
    for (UINTN i = 0; i < argc; i++)
        qb_free(&qb_efi_alloc, argv[i]);
    return status;
}

/* Our disks: handles with the info protocol (from the pool: FreePool). */
static UINTN our_disks(EFI_HANDLE **handles)
{
    UINTN n = 0;

    if (BS->LocateHandleBuffer(ByProtocol, &qb_efi_disk_protocol_guid, NULL, &n, handles) !=
        EFI_SUCCESS) {
        *handles = NULL;
        return 0;
    }
    return n;
}

static qb_efi_disk_info *info_of(EFI_HANDLE h)
{
    qb_efi_disk_info *info;

    if (BS->HandleProtocol(h, &qb_efi_disk_protocol_guid, (void **)&info) != EFI_SUCCESS ||
        info->revision < QB_EFI_DISK_INFO_REVISION)
        return NULL;
    return info;
}

/* How a disk treats writes; copies older than revision 2 only read. */
static const char *mode_of(const qb_efi_disk_info *info)
{
    return info->revision >= 2 && info->mode ? info->mode : "read-only";
}

/* The mode of the disk the driver image `drv` holds. */
static const char *mode_of_driver(EFI_HANDLE drv)
{
    EFI_HANDLE *handles;
    UINTN n = our_disks(&handles);
    const char *mode = "attached";

    for (UINTN i = 0; i < n; i++) {
        qb_efi_disk_info *info = info_of(handles[i]);
        if (info && info->driver == drv)
            mode = mode_of(info);
    }
    if (handles)
        BS->FreePool(handles);
    return mode;
}

int qb_efi_mount_list(const qb_env *env)
{
    EFI_HANDLE *handles;
    UINTN n = our_disks(&handles);

    for (UINTN i = 0; i < n; i++) {
        qb_efi_disk_info *info = info_of(handles[i]);
        char *dp = qb_efi_devpath_text(DevicePathFromHandle(handles[i]));
        if (!info)
            continue;
        qb_printf(&env->out, "%s%s%s (%s)%s\n    %s\n", info->image,
                  info->snapshot ? " at snapshot " : "", info->snapshot ? info->snapshot : "",
                  mode_of(info), info->driver ? "" : " (in use by a running command)",
                  dp ? dp : "");
        qb_free(&qb_efi_alloc, dp);
    }
    if (handles)
        BS->FreePool(handles);
    return 0;
}

int qb_efi_unmount(const qb_env *env, const char *image)
{
    EFI_DEVICE_PATH *volume = NULL;
    const char *path = NULL;
    char canon[QB_PATH_MAX];
    EFI_HANDLE *handles;
    qb_err err = { 0, "" };
    UINTN n;
    int found = 0, status = 0;

    if (image) {
        /* The image by its volume's device path and its path there, as in
         * the disks' device paths: map names may have changed since. */
        char dev[QB_EFI_DEV_MAX] = "";
        int dl;
        EFI_HANDLE vh;

        if (qb_efi_resolve(NULL, image, canon, &err) < 0) {
            qb_efi_error(env, "%s", err.msg);
            return 1;
        }
        dl = qb_efi_path_devlen(canon);
        if (dl > 0 && dl < QB_EFI_DEV_MAX)
            memcpy(dev, canon, (size_t)dl);
        if (qb_efi_volume_handle(dev, &vh, &err) < 0) {
            qb_efi_error(env, "%s", err.msg);
            return 1;
        }
        volume = DevicePathFromHandle(vh);
        path = canon + (dl > 0 ? dl + 1 : 0);
    }
    n = our_disks(&handles);
    for (UINTN i = 0; i < n; i++) {
        qb_efi_disk_info *info = info_of(handles[i]);
        EFI_DEVICE_PATH *dp = DevicePathFromHandle(handles[i]);
        char name[QB_PATH_MAX];
        EFI_STATUS st;

        if (!info || !dp || (image && (!volume || !qb_efi_devpath_is_image(dp, volume, path))))
            continue;
        found++;
        qb_snprintf(name, sizeof name, "%s%s%s", info->image,
                    info->snapshot ? " at snapshot " : "", info->snapshot ? info->snapshot : "");
        if (!info->driver) {
            qb_efi_error(env, "%s is in use by a running command, not mounted", name);
            status = 1;
            continue;
        }
        /* Frees info with the driver. */
        st = BS->UnloadImage(info->driver);
        if (st != EFI_SUCCESS) {
            qb_efi_error(env, "cannot unmount %s: %s", name, qb_efi_strstatus(st));
            status = 1;
        } else {
            qb_printf(&env->out, "Unmounted %s\n", name);
        }
    }
    if (handles)
        BS->FreePool(handles);
    if (!found) {
        if (image)
            qb_efi_error(env, "%s is not mounted", canon);
        else
            qb_efi_error(env, "unmount: no image is mounted");
        return 1;
    }
    return status;
}
