/*
 * Publishing an image as a disk: open it with its backing chain, install
 * the device path, Block I/O and our own info protocol on a new handle,
 * and connect drivers recursively, so the partition driver (GPT, MBR) and
 * the FAT driver bind to it and its file systems appear. The firmware
 * connects only boot-order devices by itself (OVMF, once any device has a
 * boot index): without ConnectController(..., TRUE) nothing would bind.
 *
 * Unpublishing undoes it in reverse order. If the firmware refuses to
 * uninstall (a file system on the disk is still open, say), everything
 * stays allocated and working: freeing memory the firmware may still call
 * into would be far worse than the leak.
 */
#include <string.h>
#include "efi_disk.h"

EFI_GUID qb_efi_disk_protocol_guid = QB_EFI_DISK_PROTOCOL_GUID;

void qb_efi_error(const qb_env *env, const char *fmt, ...)
{
    va_list ap;
    char msg[QB_ERR_MSG_MAX + QB_PATH_MAX];

    va_start(ap, fmt);
    qb_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qb_printf(&env->err, "%s: %s\n", env->program ? env->program : QB_EFI_PROGRAM, msg);
}

static void warn_console(void *ctx, const char *msg)
{
    const qb_env *env = ctx;

    qb_efi_error(env, "warning: %s", msg);
}

/* Opens one file of the image through the environment's opener and, when
 * it lies on a FAT volume, reads it past the FAT driver from then on (see
 * efi_fatmap.c for why that matters). `resolved`: QB_PATH_MAX bytes. */
static int open_layer_file(qb_efi_disk *disk, const char *relative_to, const char *name,
                           bool writable, qb_backend **out, char *resolved, qb_err *err)
{
    qb_err ferr = { 0, "" };
    int r = disk->env.opener.open(disk->env.opener.ctx, relative_to, name, writable, out,
                                  resolved, err);

    if (r < 0)
        return r;
    r = qb_efi_fatmap(resolved, writable, out, &ferr);
    if (r < 0 && r != QB_EUNSUPP)
        qb_efi_error(&disk->env, "warning: %s: read through the file system (%s)", resolved,
                     ferr.msg);
    return QB_OK;
}

/* The opener the engine gets: the files as above, and a line for each
 * backing file, since a long chain on a slow stick takes a while. */
static int progress_open(void *ctx, const char *relative_to, const char *name, bool writable,
                         qb_backend **out, char *resolved, qb_err *err)
{
    qb_efi_disk *disk = ctx;
    char buf[QB_PATH_MAX];
    int r;

    /* Writable: the top image's external data file. */
    r = open_layer_file(disk, relative_to, name, writable, out, resolved ? resolved : buf, err);
    if (r == QB_OK && relative_to)
        qb_printf(&disk->env.out, "  backing file %s\n", resolved ? resolved : buf);
    return r;
}

/* Frees what publish allocated before the install; a read-write image is
 * flushed as it is closed. */
static void disk_free(qb_efi_disk *disk)
{
    qb_err err = { 0, "" };

    if (disk->img && disk->mode == QB_EFI_READ_WRITE) {
        if (qb_image_close_flush(disk->img, &err) < 0)
            qb_efi_error(&disk->env, "%s: closing the image: %s", disk->name,
                         err.msg[0] ? err.msg : qb_strerror(err.code));
    } else if (disk->img) {
        qb_image_close(disk->img);
    }
    if (disk->devpath)
        FreePool(disk->devpath);
    qb_free(&qb_efi_alloc, disk->snapshot);
    qb_free(&qb_efi_alloc, disk);
}

/* The image's volume and its path there, from the canonical name. */
static int volume_of(const char *name, EFI_DEVICE_PATH **volume, const char **path, qb_err *err)
{
    char dev[QB_EFI_DEV_MAX] = "";
    int dl = qb_efi_path_devlen(name);
    EFI_HANDLE h;

    if (dl >= QB_EFI_DEV_MAX)
        return qb_err_set(err, QB_ENOENT, "%s: no such device", name);
    if (dl > 0)
        memcpy(dev, name, (size_t)dl);
    dev[dl > 0 ? dl : 0] = '\0';
    if (qb_efi_volume_handle(dev, &h, err) < 0)
        return err->code;
    *volume = DevicePathFromHandle(h);
    if (!*volume)
        return qb_err_set(err, QB_ENOENT, "%s: the volume has no device path", name);
    *path = name + (dl > 0 ? dl + 1 : 0);
    return QB_OK;
}

/* Another of our disks holds the image in a way that excludes this one:
 * a read-write disk shares its image with no other disk, not even one of
 * its snapshots, since every write may move what the others read. */
static int check_exclusive(const qb_efi_disk *disk, const EFI_DEVICE_PATH *volume,
                           const char *path, bool writable, qb_err *err)
{
    EFI_HANDLE *handles = NULL;
    UINTN n = 0;
    int r = QB_OK;

    if (BS->LocateHandleBuffer(ByProtocol, &qb_efi_disk_protocol_guid, NULL, &n, &handles) !=
        EFI_SUCCESS)
        return QB_OK;
    for (UINTN i = 0; i < n && r == QB_OK; i++) {
        qb_efi_disk_info *info;
        EFI_DEVICE_PATH *dp = DevicePathFromHandle(handles[i]);
        bool other_rw;

        if (!dp || BS->HandleProtocol(handles[i], &qb_efi_disk_protocol_guid, (void **)&info) !=
                       EFI_SUCCESS ||
            !qb_efi_devpath_is_image(dp, volume, path))
            continue;
        /* Before revision 2 every disk was read-only. */
        other_rw = info->revision >= 2 && info->mode && strcmp(info->mode, "read-write") == 0;
        if (writable)
            r = qb_err_set(err, QB_EINVAL,
                           "%s is attached already%s%s (unmount it first, or attach this one "
                           "--readonly or --volatile)",
                           disk->name, info->snapshot ? " at snapshot " : "",
                           info->snapshot ? info->snapshot : "");
        else if (other_rw)
            r = qb_err_set(err, QB_EINVAL, "%s is attached read-write (unmount it first)",
                           disk->name);
    }
    BS->FreePool(handles);
    return r;
}

/* Opens the image file and its chain, writable or not. */
static int open_image(qb_efi_disk *disk, bool writable, qb_err *err)
{
    char resolved[QB_PATH_MAX];
    qb_backend *file = NULL;
    qb_open_opts o;
    qb_passphrase_prompt prompt;    /* encrypted images: asked on the console */
    int r;

    memset(&o, 0, sizeof o);
    prompt.asked = 0;
again:
    r = open_layer_file(disk, NULL, disk->name, writable, &file, resolved, err);
    if (r < 0)
        return r;
    o.alloc = disk->env.alloc;
    o.opener = &disk->opener;
    o.warn = (qb_warn){ &disk->env, warn_console };
    o.filename = disk->name;
    o.file = file;
    o.snapshot = disk->snapshot;
    o.l2_cache_bytes = disk->env.l2_cache_bytes;
    o.writable = writable;
    /* Nothing may wait in the engine for a flush that never comes: the
     * guest's loader may call ExitBootServices after any write. */
    o.writethrough = writable;
    o.kdf_progress = disk->env.kdf_progress;
    o.kdf_progress_ctx = disk->env.kdf_progress_ctx;
    r = qb_image_open(&disk->img, &o, err);     /* owns file from here on */
    if (qb_passphrase_retry(&disk->env, &prompt, disk->name, r, err, &o))
        goto again;
    if (r == QB_OK && writable && !qb_image_is_writable(disk->img)) {
        qb_image_close(disk->img);
        disk->img = NULL;
        r = qb_err_set(err, QB_EUNSUPP, "%s: writing this image is not supported", disk->name);
    }
    return r;
}

static const char *mode_line(qb_efi_mode mode)
{
    switch (mode) {
    case QB_EFI_READ_WRITE:
        return "read-write: the guest's writes go into the image";
    case QB_EFI_VOLATILE:
        return "volatile: the guest's writes are kept in memory and dropped with the disk; "
               "the image is not written";
    default:
        return "read-only";
    }
}

int qb_efi_disk_publish(const qb_env *env, const char *image, const char *snapshot,
                        qb_efi_mode mode, qb_efi_disk **out, qb_err *err)
{
    qb_efi_disk *disk = qb_zalloc(&qb_efi_alloc, sizeof *disk);
    EFI_DEVICE_PATH *volume = NULL, *rest;
    EFI_HANDLE other;
    const char *path = NULL;
    bool writable;
    EFI_STATUS st;
    int r;

    *out = NULL;
    if (!disk)
        return qb_err_set(err, QB_ENOMEM, "%s: out of memory", image);
    disk->env = *env;
    disk->opener = (qb_opener){ disk, progress_open, NULL };
    if (mode == QB_EFI_MODE_UNSET)
        mode = QB_EFI_READ_WRITE;
    if (snapshot) {
        size_t n = strlen(snapshot) + 1;
        disk->snapshot = qb_malloc(&qb_efi_alloc, n);
        if (!disk->snapshot) {
            r = qb_err_set(err, QB_ENOMEM, "%s: out of memory", image);
            goto fail;
        }
        memcpy(disk->snapshot, snapshot, n);
    }

    /* Opened by its canonical name: the same in messages, in the device
     * path and in the engine's loop detection. */
    r = qb_efi_resolve(NULL, image, disk->name, err);
    if (r < 0)
        goto fail;
    r = volume_of(disk->name, &volume, &path, err);
    if (r < 0)
        goto fail;
    disk->devpath = qb_efi_devpath_disk(volume, path, disk->snapshot);
    if (!disk->devpath) {
        r = qb_err_set(err, QB_ENOMEM, "%s: cannot make a device path", disk->name);
        goto fail;
    }
    /* One disk per image and snapshot: two handles with one device path
     * would confuse every driver and boot option that looks it up. */
    rest = disk->devpath;
    if (BS->LocateDevicePath(&BlockIoProtocol, &rest, &other) == EFI_SUCCESS &&
        IsDevicePathEnd(rest)) {
        r = qb_err_set(err, QB_EINVAL, "%s%s%s is mounted already (unmount it first)", disk->name,
                       snapshot ? " at snapshot " : "", snapshot ? snapshot : "");
        goto fail;
    }
    /* A snapshot is only ever read: its writes can stay in memory. */
    writable = mode == QB_EFI_READ_WRITE && !snapshot;
    r = check_exclusive(disk, volume, path, writable, err);
    if (r < 0)
        goto fail;

    qb_printf(&disk->env.out, "Opening %s%s%s\n", disk->name, snapshot ? " at snapshot " : "",
              snapshot ? snapshot : "");
    r = open_image(disk, writable, err);
    /* A file or medium that refuses writes, an image marked corrupt or
     * using what the engine cannot write: read-only, and say so. */
    if (writable && (r == QB_EROFS || r == QB_EUNSUPP)) {
        qb_efi_error(&disk->env, "warning: %s cannot be written (%s): attached read-only",
                     disk->name, err->msg[0] ? err->msg : qb_strerror(r));
        writable = false;
        r = open_image(disk, false, err);
    }
    if (r < 0)
        goto fail;
    if (mode == QB_EFI_READ_WRITE && !writable)
        mode = QB_EFI_READ_ONLY;
    disk->mode = mode;
    if (qb_image_size(disk->img) < QB_EFI_BLOCK_SIZE) {
        r = qb_err_set(err, QB_EINVAL, "%s: the virtual disk is smaller than one block",
                       disk->name);
        goto fail;
    }
    r = qb_efi_blockio_init(&disk->blockio, disk->img, disk->name, &disk->env, mode, err);
    if (r < 0)
        goto fail;
    qb_printf(&disk->env.out, "  %s%s\n", mode_line(mode),
              snapshot && mode == QB_EFI_READ_ONLY ? " (a snapshot is never written)" : "");

    disk->info.revision = QB_EFI_DISK_INFO_REVISION;
    disk->info.image = disk->name;
    disk->info.snapshot = disk->snapshot;
    disk->info.mode = qb_efi_mode_name(mode);
    st = BS->InstallMultipleProtocolInterfaces(&disk->handle, &DevicePathProtocol, disk->devpath,
                                               &BlockIoProtocol, &disk->blockio.bio,
                                               &qb_efi_disk_protocol_guid, &disk->info, NULL);
    if (st != EFI_SUCCESS) {
        r = qb_err_set(err, qb_efi_errcode(st), "%s: cannot install the disk: %s", disk->name,
                       qb_efi_strstatus(st));
        qb_efi_blockio_fini(&disk->blockio);
        goto fail;
    }
    /* EFI_NOT_FOUND only says no driver wanted the disk (no partition
     * table, no file system): the disk is there all the same. */
    BS->ConnectController(disk->handle, NULL, NULL, TRUE);
    *out = disk;
    return QB_OK;
fail:
    disk_free(disk);
    return r;
}

EFI_STATUS qb_efi_disk_detach(qb_efi_disk *disk)
{
    EFI_STATUS st;
    qb_err err = { 0, "" };

    /* Drivers first (file systems, partitions: they write back what they
     * cached), then what the guest wrote into the image, then our
     * protocols in the reverse order of their installation. */
    BS->DisconnectController(disk->handle, NULL, NULL);
    if (qb_efi_blockio_sync(&disk->blockio, &err) < 0)
        qb_efi_error(&disk->env, "%s: writing back to the image failed: %s", disk->name,
                     err.msg[0] ? err.msg : qb_strerror(err.code));
    st = BS->UninstallMultipleProtocolInterfaces(disk->handle, &qb_efi_disk_protocol_guid,
                                                 &disk->info, &BlockIoProtocol,
                                                 &disk->blockio.bio, &DevicePathProtocol,
                                                 disk->devpath, NULL);
    if (st != EFI_SUCCESS) {
        /* The firmware reconnected what it had disconnected: the disk
         * stays usable, and allocated. */
        qb_efi_error(&disk->env,
                     "%s: the firmware refused to remove the disk (%s): is one of its file "
                     "systems still in use? It stays attached.",
                     disk->name, qb_efi_strstatus(st));
        return st;
    }
    qb_efi_blockio_fini(&disk->blockio);
    disk_free(disk);
    return EFI_SUCCESS;
}

void qb_efi_disk_unpublish(qb_efi_disk *disk)
{
    if (disk)
        qb_efi_disk_detach(disk);
}

EFI_HANDLE qb_efi_disk_handle(const qb_efi_disk *disk)
{
    return disk->handle;
}
