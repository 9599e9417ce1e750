/* EFI_STATUS in words, and as the engine's error codes. */
#include "qb_efi.h"

static const struct {
    EFI_STATUS st;
    int code;
    const char *text;
} statuses[] = {
    { EFI_SUCCESS,           QB_OK,     "success" },
    { EFI_LOAD_ERROR,        QB_EIO,    "load error" },
    { EFI_INVALID_PARAMETER, QB_EINVAL, "invalid parameter" },
    { EFI_UNSUPPORTED,       QB_EUNSUPP, "unsupported" },
    { EFI_BAD_BUFFER_SIZE,   QB_EINVAL, "bad buffer size" },
    { EFI_BUFFER_TOO_SMALL,  QB_EINVAL, "buffer too small" },
    { EFI_NOT_READY,         QB_EIO,    "not ready" },
    { EFI_DEVICE_ERROR,      QB_EIO,    "device error" },
    { EFI_WRITE_PROTECTED,   QB_EROFS,  "write protected" },
    { EFI_OUT_OF_RESOURCES,  QB_ENOMEM, "out of resources" },
    { EFI_VOLUME_CORRUPTED,  QB_EIO,    "volume corrupted" },
    { EFI_VOLUME_FULL,       QB_EFULL,  "volume full" },
    { EFI_NO_MEDIA,          QB_EIO,    "no media" },
    { EFI_MEDIA_CHANGED,     QB_EIO,    "media changed" },
    { EFI_NOT_FOUND,         QB_ENOENT, "not found" },
    { EFI_ACCESS_DENIED,     QB_EROFS,  "access denied" },
    { EFI_NO_RESPONSE,       QB_EIO,    "no response" },
    { EFI_NO_MAPPING,        QB_ENOENT, "no mapping" },
    { EFI_TIMEOUT,           QB_EIO,    "timeout" },
    { EFI_ABORTED,           QB_EIO,    "aborted" },
    { EFI_SECURITY_VIOLATION, QB_EIO,   "security violation" },
};

static int find(EFI_STATUS st)
{
    for (unsigned i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].st == st)
            return (int)i;
    return -1;
}

const char *qb_efi_strstatus(EFI_STATUS st)
{
    int i = find(st);

    return i < 0 ? "firmware error" : statuses[i].text;
}

int qb_efi_errcode(EFI_STATUS st)
{
    int i = find(st);

    return i < 0 ? QB_EIO : statuses[i].code;
}
