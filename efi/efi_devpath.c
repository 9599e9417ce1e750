/*
 * Device paths of published disks.
 *
 * A disk's path is the device path of the volume holding the image file,
 * then one vendor-defined messaging node of our own GUID whose data names
 * the image on that volume and the snapshot, then the end node:
 *
 *   PciRoot(0x0)/Pci(0x1D,0x0)/USB(0x0,0x0)/VenMsg(222F59AB-...,<data>)
 *   data: "\dir\disk.qcow2" NUL, snapshot name NUL (UCS-2; empty: none)
 *
 * So the path is unique per image and snapshot (a second publication of
 * the same one is refused), stable across boots and shell remappings (no
 * map name in it), and every partition the firmware finds on the disk
 * gets a path that starts with it.
 */
#include <string.h>
#include "efi_disk.h"

EFI_GUID qb_efi_disk_vendor_guid = QB_EFI_DISK_VENDOR_GUID;

static UINTN node_len(const EFI_DEVICE_PATH *n)
{
    return DevicePathNodeLength(n);
}

static bool is_end(const EFI_DEVICE_PATH *n)
{
    return DevicePathType(n) == END_DEVICE_PATH_TYPE;
}

/* Bytes before the end node. */
static UINTN path_len(const EFI_DEVICE_PATH *dp)
{
    const EFI_DEVICE_PATH *n = dp;

    while (!is_end(n) && node_len(n) >= sizeof(EFI_DEVICE_PATH))
        n = NextDevicePathNode(n);
    return (UINTN)((const UINT8 *)n - (const UINT8 *)dp);
}

EFI_DEVICE_PATH *qb_efi_devpath_disk(const EFI_DEVICE_PATH *volume, const char *path,
                                     const char *snapshot)
{
    size_t plen = strlen(path) + 1, slen = snapshot ? strlen(snapshot) + 1 : 1;
    CHAR16 *p16 = qb_malloc(&qb_efi_alloc, (plen + slen) * sizeof(CHAR16));
    EFI_DEVICE_PATH *dp = NULL;
    long pn, sn = 0;
    UINTN vol, data, nlen;
    UINT8 *q;

    if (!p16)
        return NULL;
    pn = qb_utf8_to_ucs2(path, p16, plen);
    if (pn >= 0 && snapshot)
        sn = qb_utf8_to_ucs2(snapshot, p16 + pn + 1, slen);
    else if (pn >= 0)
        p16[pn + 1] = 0;
    if (pn < 0 || sn < 0)
        goto out;
    data = ((UINTN)pn + 1 + (UINTN)sn + 1) * sizeof(CHAR16);
    nlen = sizeof(VENDOR_DEVICE_PATH) + data;
    if (nlen > 0xffff)
        goto out;
    vol = path_len(volume);
    dp = AllocatePool(vol + nlen + END_DEVICE_PATH_LENGTH);
    if (!dp)
        goto out;
    q = (UINT8 *)dp;
    memcpy(q, volume, vol);
    q += vol;

    VENDOR_DEVICE_PATH *v = (VENDOR_DEVICE_PATH *)q;
    v->Header.Type = MESSAGING_DEVICE_PATH;
    v->Header.SubType = MSG_VENDOR_DP;
    SetDevicePathNodeLength(&v->Header, nlen);
    memcpy(&v->Guid, &qb_efi_disk_vendor_guid, sizeof(EFI_GUID));
    memcpy(q + sizeof(VENDOR_DEVICE_PATH), p16, data);
    q += nlen;
    SetDevicePathEndNode((EFI_DEVICE_PATH *)q);
out:
    qb_free(&qb_efi_alloc, p16);
    return dp;
}

EFI_DEVICE_PATH *qb_efi_devpath_after(const EFI_DEVICE_PATH *path,
                                      const EFI_DEVICE_PATH *prefix)
{
    const EFI_DEVICE_PATH *a = path, *b = prefix;

    for (; !is_end(b); b = NextDevicePathNode(b), a = NextDevicePathNode(a)) {
        if (is_end(a) || node_len(a) != node_len(b) || node_len(b) < sizeof(EFI_DEVICE_PATH) ||
            memcmp(a, b, node_len(b)) != 0)
            return NULL;
    }
    return (EFI_DEVICE_PATH *)a;
}

const VENDOR_DEVICE_PATH *qb_efi_devpath_vendor(const EFI_DEVICE_PATH *dp)
{
    for (const EFI_DEVICE_PATH *n = dp; !is_end(n) && node_len(n) >= sizeof(EFI_DEVICE_PATH);
         n = NextDevicePathNode(n)) {
        if (DevicePathType(n) == MESSAGING_DEVICE_PATH && DevicePathSubType(n) == MSG_VENDOR_DP &&
            node_len(n) >= sizeof(VENDOR_DEVICE_PATH) &&
            memcmp(&((const VENDOR_DEVICE_PATH *)n)->Guid, &qb_efi_disk_vendor_guid,
                   sizeof(EFI_GUID)) == 0)
            return (const VENDOR_DEVICE_PATH *)n;
    }
    return NULL;
}

static CHAR16 fold(CHAR16 c)
{
    return c >= 'a' && c <= 'z' ? (CHAR16)(c - 'a' + 'A') : c;
}

bool qb_efi_devpath_is_image(const EFI_DEVICE_PATH *dp, const EFI_DEVICE_PATH *volume,
                             const char *path)
{
    const VENDOR_DEVICE_PATH *v = (const VENDOR_DEVICE_PATH *)qb_efi_devpath_after(dp, volume);
    const UINT8 *data;
    size_t n = strlen(path) + 1, units;
    CHAR16 *p16;
    bool same = false;

    if (!v || v != qb_efi_devpath_vendor((const EFI_DEVICE_PATH *)v))
        return false;
    data = (const UINT8 *)v + sizeof(VENDOR_DEVICE_PATH);
    units = (node_len(&v->Header) - sizeof(VENDOR_DEVICE_PATH)) / sizeof(CHAR16);
    p16 = qb_malloc(&qb_efi_alloc, n * sizeof(CHAR16));
    if (!p16)
        return false;
    if (qb_utf8_to_ucs2(path, p16, n) >= 0) {
        size_t i;
        /* The node's data may be unaligned: read it bytewise. */
        for (i = 0; i < units; i++) {
            CHAR16 c = (CHAR16)(data[2 * i] | data[2 * i + 1] << 8);
            if (fold(c) != fold(p16[i]))
                break;
            if (c == 0) {
                same = true;
                break;
            }
        }
    }
    qb_free(&qb_efi_alloc, p16);
    return same;
}

EFI_DEVICE_PATH *qb_efi_devpath_file(EFI_HANDLE volume, const char *file)
{
    size_t n = strlen(file) + 1;
    CHAR16 *f16 = qb_malloc(&qb_efi_alloc, n * sizeof(CHAR16));
    EFI_DEVICE_PATH *dp = NULL;

    if (!f16)
        return NULL;
    if (qb_utf8_to_ucs2(file, f16, n) >= 0)
        dp = FileDevicePath(volume, f16);
    qb_free(&qb_efi_alloc, f16);
    return dp;
}

char *qb_efi_devpath_text(const EFI_DEVICE_PATH *dp)
{
    CHAR16 *t = DevicePathToStr((EFI_DEVICE_PATH *)dp);
    char *s = NULL;

    if (t) {
        size_t n = qb_utf16_to_utf8(t, NULL, 0) + 1;
        s = qb_malloc(&qb_efi_alloc, n);
        if (s)
            qb_utf16_to_utf8(t, s, n);
        FreePool(t);
    }
    return s;
}
