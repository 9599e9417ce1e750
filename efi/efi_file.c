/*
 * A qb_backend over an EFI_FILE_PROTOCOL file.
 *
 * Reads and writes go in pieces of at most 1 MiB: some firmware breaks on
 * large transfers. The size is read with GetInfo at open and then tracked
 * here, because the protocol refuses reads that start past the end of the
 * file, while the engine expects zeros there (and a hole, for extent).
 */
#include <string.h>
#include "qb_efi.h"

#define CHUNK (1u << 20)

typedef struct efi_file {
    qb_backend base;
    EFI_FILE_HANDLE fh;
    uint64_t size;
    bool writable;
    char name[];
} efi_file;

static efi_file *file_of(qb_backend *b)
{
    return (efi_file *)b;
}

static int file_error(efi_file *f, qb_err *err, EFI_STATUS st, const char *what,
                      uint64_t off, size_t len)
{
    return qb_err_set(err, qb_efi_errcode(st), "%s: %s of %zu bytes at offset %llu failed: %s",
                      f->name, what, len, (unsigned long long)off, qb_efi_strstatus(st));
}

int qb_efi_file_info(EFI_FILE_HANDLE fh, const char *name, EFI_FILE_INFO **info, qb_err *err)
{
    UINTN size = SIZE_OF_EFI_FILE_INFO + 256 * sizeof(CHAR16);
    EFI_STATUS st;

    for (int tries = 0; tries < 2; tries++) {
        st = BS->AllocatePool(EfiLoaderData, size, (void **)info);
        if (st != EFI_SUCCESS)
            break;
        st = fh->GetInfo(fh, &GenericFileInfo, &size, *info);
        if (st == EFI_SUCCESS)
            return QB_OK;
        BS->FreePool(*info);
        *info = NULL;
        if (st != EFI_BUFFER_TOO_SMALL)
            break;
    }
    return qb_err_set(err, qb_efi_errcode(st), "%s: cannot get file information: %s",
                      name, qb_efi_strstatus(st));
}

static int file_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    efi_file *f = file_of(b);
    uint8_t *p = buf;
    EFI_STATUS st;

    if (off < f->size) {
        st = f->fh->SetPosition(f->fh, off);
        if (st != EFI_SUCCESS)
            return file_error(f, err, st, "seek", off, len);
    }
    while (len && off < f->size) {
        UINTN n = len;

        if (n > CHUNK)
            n = CHUNK;
        if (n > f->size - off)
            n = (UINTN)(f->size - off);
        st = f->fh->Read(f->fh, &n, p);
        if (st != EFI_SUCCESS)
            return file_error(f, err, st, "read", off, len);
        if (n == 0)
            break;          /* shorter than we thought: the rest is zeros */
        p += n;
        off += n;
        len -= n;
    }
    /* Past the end of the file. */
    memset(p, 0, len);
    return QB_OK;
}

static int file_set_size(qb_backend *b, uint64_t size, qb_err *err)
{
    efi_file *f = file_of(b);
    EFI_FILE_INFO *info;
    EFI_STATUS st;

    if (!f->writable)
        return qb_err_set(err, QB_EROFS, "%s: opened read-only", f->name);
    if (qb_efi_file_info(f->fh, f->name, &info, err) < 0)
        return err->code;
    info->FileSize = size;
    st = f->fh->SetInfo(f->fh, &GenericFileInfo, info->Size, info);
    BS->FreePool(info);
    if (st != EFI_SUCCESS)
        return qb_err_set(err, qb_efi_errcode(st), "%s: cannot set the size to %llu: %s",
                          f->name, (unsigned long long)size, qb_efi_strstatus(st));
    f->size = size;
    return QB_OK;
}

static int file_write(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    efi_file *f = file_of(b);
    const uint8_t *p = buf;
    EFI_STATUS st;

    if (!f->writable)
        return qb_err_set(err, QB_EROFS, "%s: opened read-only", f->name);
    /* Grow explicitly first, so the gap reads as zeros on any driver. */
    if (off > f->size && file_set_size(b, off, err) < 0)
        return err->code;
    st = f->fh->SetPosition(f->fh, off);
    if (st != EFI_SUCCESS)
        return file_error(f, err, st, "seek", off, len);
    while (len) {
        UINTN n = len > CHUNK ? CHUNK : len;
        UINTN want = n;

        st = f->fh->Write(f->fh, &n, (void *)p);
        if (st == EFI_SUCCESS && n != want)
            st = EFI_VOLUME_FULL;
        if (st != EFI_SUCCESS)
            return file_error(f, err, st, "write", off, len);
        p += n;
        off += n;
        len -= n;
        if (off > f->size)
            f->size = off;
    }
    return QB_OK;
}

static int file_flush(qb_backend *b, qb_err *err)
{
    efi_file *f = file_of(b);
    EFI_STATUS st;

    if (!f->writable)
        return QB_OK;
    st = f->fh->Flush(f->fh);
    if (st != EFI_SUCCESS)
        return qb_err_set(err, qb_efi_errcode(st), "%s: flush failed: %s",
                          f->name, qb_efi_strstatus(st));
    return QB_OK;
}

static int file_get_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    efi_file *f = file_of(b);
    EFI_FILE_INFO *info;

    if (qb_efi_file_info(f->fh, f->name, &info, err) < 0)
        return err->code;
    f->size = info->FileSize;
    BS->FreePool(info);
    *size = f->size;
    return QB_OK;
}

/* FAT and the other firmware file systems have no holes: everything up to
 * the end of the file is data, and what lies past it reads as zeros. */
static int file_extent(qb_backend *b, uint64_t off, uint64_t len, bool *hole,
                       uint64_t *n, qb_err *err)
{
    efi_file *f = file_of(b);

    *hole = off >= f->size;
    *n = *hole || len <= f->size - off ? len : f->size - off;
    return QB_OK;
}

static int file_allocated(qb_backend *b, uint64_t *bytes, qb_err *err)
{
    efi_file *f = file_of(b);
    EFI_FILE_INFO *info;

    if (qb_efi_file_info(f->fh, f->name, &info, err) < 0)
        return err->code;
    *bytes = info->PhysicalSize;
    BS->FreePool(info);
    return QB_OK;
}

static void file_close(qb_backend *b)
{
    efi_file *f = file_of(b);

    f->fh->Close(f->fh);
    qb_free(&qb_efi_alloc, f);
}

static const qb_backend_class file_class = {
    .read = file_read,
    .write = file_write,
    .flush = file_flush,
    .get_size = file_get_size,
    .set_size = file_set_size,
    .extent = file_extent,
    .allocated = file_allocated,
    .close = file_close,
};

int qb_efi_file_backend(EFI_FILE_HANDLE fh, const char *name, bool writable,
                        qb_backend **out, qb_err *err)
{
    size_t nlen = strlen(name);
    efi_file *f = qb_malloc(&qb_efi_alloc, sizeof *f + nlen + 1);
    EFI_FILE_INFO *info;

    if (!f) {
        fh->Close(fh);
        return qb_err_set(err, QB_ENOMEM, "%s: out of memory", name);
    }
    memcpy(f->name, name, nlen + 1);
    f->base.vt = &file_class;
    f->fh = fh;
    f->writable = writable;
    if (qb_efi_file_info(fh, name, &info, err) < 0) {
        file_close(&f->base);
        return err->code;
    }
    f->size = info->FileSize;
    bool dir = (info->Attribute & EFI_FILE_DIRECTORY) != 0;
    BS->FreePool(info);
    if (dir) {
        file_close(&f->base);
        return qb_err_set(err, QB_EINVAL, "%s: is a directory", name);
    }
    *out = &f->base;
    return QB_OK;
}
