/*
 * The engine's opener in firmware: turns the names the engine is given
 * (command-line arguments, backing file names from image headers, output
 * files) into canonical shell paths and opens them through the volume's
 * EFI_FILE_PROTOCOL.
 *
 *   fs0:\images\disk.qcow2   absolute
 *   images\disk.qcow2        relative to the shell's current directory
 *   base.qcow2, ../b/base    backing names, relative to the directory of
 *                            the image that names them ('/' accepted)
 *
 * The canonical form ("FS0:\images\disk.qcow2": canonical map name in upper
 * case, '\' separators, "." and ".." resolved) is what `resolved` receives,
 * so the engine can detect backing chains that loop.
 */
#include <string.h>
#include "qb_efi.h"

/* Resolves `name` (against the directory of `relative_to` when given) into
 * the canonical path `out` (QB_PATH_MAX bytes). */
int qb_efi_resolve(const char *relative_to, const char *name, char *out, qb_err *err)
{
    char base[QB_PATH_MAX], cwd[QB_PATH_MAX];
    const char *dir = NULL;
    int ndev = qb_efi_path_devlen(name);
    int dl;

    if (!*name)
        return qb_err_set(err, QB_EINVAL, "empty file name");
    if (relative_to) {
        /* The naming image may itself be named relative to the shell. */
        if (qb_efi_resolve(NULL, relative_to, cwd, err) < 0)
            return err->code;
        if (qb_efi_path_dirname(cwd, base, sizeof base) < 0)
            return qb_err_set(err, QB_EINVAL, "%s: path too long", relative_to);
        dir = base;
    }
    if (ndev >= 0 && !qb_efi_path_is_rooted(name) && !(dir && qb_efi_path_same_dev(dir, name))) {
        /* "DEV:x" means DEV's current directory in the shell. */
        char dev[QB_EFI_DEV_MAX];
        if (ndev >= QB_EFI_DEV_MAX)
            return qb_err_set(err, QB_ENOENT, "%s: no such device", name);
        memcpy(dev, name, (size_t)ndev);
        dev[ndev] = '\0';
        if (qb_efi_shell_cwd(dev, cwd, sizeof cwd, err) < 0)
            return err->code;
        dir = cwd;
    } else if (ndev < 0 && !dir) {
        if (qb_efi_shell_cwd(NULL, cwd, sizeof cwd, err) < 0)
            return err->code;
        dir = cwd;
    }
    if (qb_efi_path_join(dir, name, out, QB_PATH_MAX) < 0)
        return qb_err_set(err, QB_EINVAL, "%s: path too long", name);

    /* The device by its canonical map name (aliases like HD0a0: give FS0:). */
    dl = qb_efi_path_devlen(out);
    if (dl > 0) {
        char dev[QB_EFI_DEV_MAX];
        size_t rest = strlen(out + dl);     /* ":\..." */
        size_t nl;

        if (dl >= QB_EFI_DEV_MAX)
            return qb_err_set(err, QB_ENOENT, "%s: no such device", name);
        memcpy(dev, out, (size_t)dl);
        dev[dl] = '\0';
        if (qb_efi_shell_canon_dev(dev, sizeof dev, err) < 0)
            return err->code;
        nl = strlen(dev);
        if (nl + rest + 1 > QB_PATH_MAX)
            return qb_err_set(err, QB_EINVAL, "%s: path too long", name);
        memmove(out + nl, out + dl, rest + 1);
        memcpy(out, dev, nl);
    }
    return QB_OK;
}

/* Opens the canonical path `path` with the EFI_FILE_PROTOCOL mode `mode`. */
static int open_path(const char *path, UINT64 mode, EFI_FILE_HANDLE *fh, qb_err *err)
{
    int dl = qb_efi_path_devlen(path);
    char dev[QB_EFI_DEV_MAX] = "";
    CHAR16 *file16;
    EFI_FILE_HANDLE root;
    EFI_STATUS st;
    size_t n = strlen(path) + 1;

    if (dl > 0) {
        memcpy(dev, path, (size_t)dl);      /* qb_efi_resolve() checked the length */
        dev[dl] = '\0';
    }
    file16 = qb_malloc(&qb_efi_alloc, n * sizeof(CHAR16));
    if (!file16)
        return qb_err_set(err, QB_ENOMEM, "%s: out of memory", path);
    if (qb_utf8_to_ucs2(path + (dl > 0 ? dl + 1 : 0), file16, n) < 0) {
        qb_free(&qb_efi_alloc, file16);
        return qb_err_set(err, QB_EINVAL, "%s: name not representable in UCS-2", path);
    }
    if (qb_efi_volume_root(dev, &root, err) < 0) {
        qb_free(&qb_efi_alloc, file16);
        return err->code;
    }
    st = root->Open(root, fh, file16, mode, 0);
    root->Close(root);
    qb_free(&qb_efi_alloc, file16);
    if (st != EFI_SUCCESS)
        return qb_err_set(err, qb_efi_errcode(st), "could not open '%s': %s",
                          path, qb_efi_strstatus(st));
    return QB_OK;
}

static int opener_open(void *ctx, const char *relative_to, const char *name, bool writable,
                       qb_backend **out, char *resolved, qb_err *err)
{
    char path[QB_PATH_MAX];
    EFI_FILE_HANDLE fh;
    UINT64 mode = EFI_FILE_MODE_READ | (writable ? EFI_FILE_MODE_WRITE : 0);

    if (qb_efi_resolve(relative_to, name, path, err) < 0)
        return err->code;
    if (open_path(path, mode, &fh, err) < 0)
        return err->code;
    if (qb_efi_file_backend(fh, path, writable, out, err) < 0)
        return err->code;
    if (resolved)
        memcpy(resolved, path, strlen(path) + 1);
    return QB_OK;
}

static int opener_create(void *ctx, const char *name, qb_backend **out, qb_err *err)
{
    char path[QB_PATH_MAX];
    EFI_FILE_HANDLE fh;

    if (qb_efi_resolve(NULL, name, path, err) < 0)
        return err->code;
    if (open_path(path, EFI_FILE_MODE_CREATE | EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE,
                  &fh, err) < 0)
        return err->code;
    if (qb_efi_file_backend(fh, path, true, out, err) < 0)
        return err->code;
    /* An existing file is truncated. */
    if ((*out)->vt->set_size(*out, 0, err) < 0) {
        (*out)->vt->close(*out);
        *out = NULL;
        return err->code;
    }
    return QB_OK;
}

const qb_opener qb_efi_opener = { NULL, opener_open, opener_create };
