/*
 * The handoff variable (efi_handoff.h): what the OS needs to attach the
 * image it was booted from by itself.
 *
 * The stick's volume is named as the OS can look it up without the
 * firmware: by the partition's unique GUID (GPT) or the disk signature and
 * partition number (MBR), both read from the hard-drive node of the
 * volume's device path, given as Linux spells a PARTUUID; and by the FAT
 * volume serial number (what blkid calls the file system's UUID), read
 * from the boot sector, which is all a stick formatted as a whole (no
 * partition table) has. Paths are relative to the volume's root with '/'
 * separators, as the OS writes them under the mount point.
 *
 * The firmware side leaves nothing pending for the OS: a read-write disk
 * writes through (efi_disk.c opens the image so), and after
 * ExitBootServices neither the engine nor the FAT driver can run again,
 * so the OS is then the image's only writer.
 */
#include <string.h>
#include "efi_handoff.h"

#define HD_NODE_LEN 42              /* HARDDRIVE_DEVICE_PATH as the specification lays it out */
#define RAM_DISK_DP 0x09            /* MEDIA_RAM_DISK_DP, which GNU-EFI 3.0.15 lacks */
#define SIGNATURE_MBR 0x01          /* HARDDRIVE_DEVICE_PATH.SignatureType */
#define SIGNATURE_GPT 0x02
#define ATTRIBUTES (EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS)

static CHAR16 variable_name[] = L"" QB_EFI_HANDOFF_VARIABLE;

/* The variable's text as it is built; `full` once something did not fit. */
typedef struct text {
    char *buf;
    size_t size, len;
    bool full;
} text;

static void add(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->full)
        return;
    va_start(ap, fmt);
    n = qb_vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->size - t->len)
        t->full = true;
    else
        t->len += (size_t)n;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* `key=path` with the path on its volume: the device prefix taken off and
 * '/' for '\'. A name a line cannot carry is refused. */
static bool add_path(text *t, const char *key, const char *canonical)
{
    int dl = qb_efi_path_devlen(canonical);
    const char *p = canonical + (dl >= 0 ? dl + 1 : 0);

    for (const char *c = p; *c; c++)
        if (*c == '\n' || *c == '\r')
            return false;
    add(t, "%s=", key);
    for (; *p && !t->full; p++) {
        if (t->len + 1 >= t->size) {
            t->full = true;
            break;
        }
        t->buf[t->len++] = *p == '\\' ? '/' : *p;
    }
    add(t, "\n");
    return true;
}

/* Both canonical paths lie on the same volume (no device: the one we were
 * started from). */
static bool same_volume(const char *a, const char *b)
{
    if (qb_efi_path_devlen(a) < 0 && qb_efi_path_devlen(b) < 0)
        return true;
    return qb_efi_path_same_dev(a, b);
}

/* The last hard-drive node of `dp` (the partition the volume is on), if
 * there is one, copied out (nodes need not be aligned). */
static bool hard_drive_node(const EFI_DEVICE_PATH *dp, uint8_t node[HD_NODE_LEN])
{
    bool found = false;

    for (const EFI_DEVICE_PATH *n = dp;
         DevicePathType(n) != END_DEVICE_PATH_TYPE && DevicePathNodeLength(n) >= 4;
         n = NextDevicePathNode(n)) {
        if (DevicePathType(n) == MEDIA_DEVICE_PATH && DevicePathSubType(n) == MEDIA_HARDDRIVE_DP &&
            DevicePathNodeLength(n) >= HD_NODE_LEN) {
            memcpy(node, n, HD_NODE_LEN);
            found = true;
        }
    }
    return found;
}

/* A volume the OS cannot see: inside one of our disks, or on a firmware
 * RAM disk (gone, or a different device, once the OS runs). */
static bool virtual_volume(const EFI_DEVICE_PATH *dp)
{
    if (qb_efi_devpath_vendor(dp))
        return true;
    for (const EFI_DEVICE_PATH *n = dp;
         DevicePathType(n) != END_DEVICE_PATH_TYPE && DevicePathNodeLength(n) >= 4;
         n = NextDevicePathNode(n))
        if (DevicePathType(n) == MEDIA_DEVICE_PATH && DevicePathSubType(n) == RAM_DISK_DP)
            return true;
    return false;
}

/* The FAT volume serial number from the boot sector of the volume on
 * `vol`, through its Disk I/O. False when it is no FAT file system or
 * carries no serial (no extended boot signature). */
static bool fat_serial(EFI_HANDLE vol, uint32_t *serial)
{
    EFI_BLOCK_IO *bio;
    EFI_DISK_IO *dio;
    uint8_t bs[512];
    const uint8_t *ext;

    if (BS->HandleProtocol(vol, &BlockIoProtocol, (void **)&bio) != EFI_SUCCESS ||
        BS->HandleProtocol(vol, &DiskIoProtocol, (void **)&dio) != EFI_SUCCESS ||
        dio->ReadDisk(dio, bio->Media->MediaId, 0, sizeof bs, bs) != EFI_SUCCESS)
        return false;
    if (bs[510] != 0x55 || bs[511] != 0xaa || memcmp(bs + 3, "EXFAT   ", 8) == 0 ||
        memcmp(bs + 3, "NTFS    ", 8) == 0 || le16(bs + 11) == 0 || bs[13] == 0)
        return false;
    /* FAT32 has no 16-bit FAT size, and its extended BPB 28 bytes later. */
    ext = le16(bs + 22) == 0 ? bs + 64 : bs + 36;
    if (ext[2] != 0x29 && ext[2] != 0x28)
        return false;
    *serial = le32(ext + 3);
    return true;
}

/* Where the volume holding the image is, as lines of `t`; false (with
 * `why`) when the OS could not find it from them. */
static bool add_volume(text *t, EFI_HANDLE vol, const char **why)
{
    EFI_DEVICE_PATH *dp = DevicePathFromHandle(vol);
    uint8_t hd[HD_NODE_LEN];
    uint32_t serial;
    bool named = false;

    if (!dp) {
        *why = "its volume has no device path";
        return false;
    }
    if (virtual_volume(dp)) {
        *why = "it lies on a virtual disk the OS will not have";
        return false;
    }
    if (hard_drive_node(dp, hd)) {
        uint32_t number = le32(hd + 4);
        const uint8_t *s = hd + 24;
        if (hd[41] == SIGNATURE_GPT) {
            add(t, "part_table=gpt\npart_number=%u\n", (unsigned)number);
            add(t, "part_uuid=%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x\n",
                (unsigned)le32(s), (unsigned)le16(s + 4), (unsigned)le16(s + 6), s[8], s[9],
                s[10], s[11], s[12], s[13], s[14], s[15]);
            named = true;
        } else if (hd[41] == SIGNATURE_MBR) {
            /* Linux's PARTUUID of an MBR partition: signature-number. */
            add(t, "part_table=mbr\npart_number=%u\nmbr_signature=0x%08x\n", (unsigned)number,
                (unsigned)le32(s));
            add(t, "part_uuid=%08x-%02x\n", (unsigned)le32(s), (unsigned)number);
            named = true;
        }
    }
    if (fat_serial(vol, &serial)) {
        add(t, "fat_serial=%04X-%04X\n", (unsigned)(serial >> 16), (unsigned)(serial & 0xffff));
        named = true;
    }
    if (!named)
        *why = "its volume has neither a partition GUID or MBR signature nor a FAT serial number";
    return named;
}

/* The whole text for `disk` into `t`; false (with `why`) when there is
 * nothing the OS could use. */
static bool describe(text *t, const qb_efi_disk *disk, const char **why)
{
    char dev[QB_EFI_DEV_MAX] = "";
    int dl = qb_efi_path_devlen(disk->name);
    EFI_HANDLE vol;
    qb_err err = { 0, "" };

    if (dl >= QB_EFI_DEV_MAX) {
        *why = "its device name is too long";
        return false;
    }
    if (dl > 0)
        memcpy(dev, disk->name, (size_t)dl);
    dev[dl > 0 ? dl : 0] = '\0';
    if (qb_efi_volume_handle(dev, &vol, &err) < 0) {
        *why = "its volume is not found";
        return false;
    }
    add(t, "version=%u\nmode=%s\n", QB_EFI_HANDOFF_VERSION, qb_efi_mode_name(disk->mode));
    if (!add_path(t, "path", disk->name)) {
        *why = "its name cannot be written on one line";
        return false;
    }
    if (disk->snapshot)
        add(t, "snapshot=%s\n", disk->snapshot);
    if (!add_volume(t, vol, why))
        return false;
    /* In RAM-disk mode the image was closed after the load: the disk is
     * the RAM disk, and neither its format nor its chain are known here. */
    if (disk->mode != QB_EFI_RAMDISK) {
        const qb_image *parent = disk->img;
        add(t, "format=%s\n", qb_image_format(disk->img));
        for (const qb_image *l = qb_image_backing(parent); l; parent = l, l = qb_image_backing(l)) {
            char canonical[QB_PATH_MAX];
            /* As the opener resolved it: against the naming image's
             * directory, "." and ".." gone. */
            if (qb_efi_resolve(qb_image_filename(parent), qb_image_filename(l), canonical, &err) <
                    0 ||
                !same_volume(canonical, disk->name) ||
                !add_path(t, "backing", canonical)) {
                /* On another volume the OS could not tell which. */
                add(t, "backing_unknown=1\n");
                break;
            }
        }
    }
    if (t->full) {
        *why = "its description is too long";
        return false;
    }
    return true;
}

void qb_efi_handoff_set(const qb_env *env, const qb_efi_disk *disk)
{
    text t = { NULL, 0, 0, false };
    const char *why = "";
    EFI_STATUS st;

    /* Lines of at most a path and a key each. */
    t.size = (QB_DEFAULT_MAX_CHAIN + 16) * (QB_PATH_MAX + 32);
    t.buf = qb_malloc(&qb_efi_alloc, t.size);
    if (!t.buf) {
        qb_efi_error(env, "warning: %s: out of memory: no handoff to the OS", disk->name);
        return;
    }
    /* A stale variable must not describe this boot. */
    qb_efi_handoff_clear();
    if (!describe(&t, disk, &why)) {
        qb_efi_error(env, "warning: %s: no handoff to the OS: %s", disk->name, why);
    } else {
        st = RT->SetVariable(variable_name, &qb_efi_disk_vendor_guid, ATTRIBUTES, t.len, t.buf);
        if (st != EFI_SUCCESS)
            qb_efi_error(env, "warning: %s: no handoff to the OS: the firmware refused the "
                         "variable " QB_EFI_HANDOFF_VARIABLE ": %s", disk->name,
                         qb_efi_strstatus(st));
        else
            qb_printf(&env->out, "  handoff to the OS: EFI variable " QB_EFI_HANDOFF_VARIABLE
                      " (%u bytes)\n", (unsigned)t.len);
    }
    qb_free(&qb_efi_alloc, t.buf);
}

void qb_efi_handoff_clear(void)
{
    /* Deleting a variable that is not there fails harmlessly. */
    RT->SetVariable(variable_name, &qb_efi_disk_vendor_guid, ATTRIBUTES, 0, NULL);
}
