/*
 * Booting the guest: publish the image, find the EFI system partition the
 * firmware's partition driver found on it, and start the removable-media
 * boot loader \EFI\BOOT\BOOTX64.EFI from it through BS->LoadImage, so the
 * firmware verifies it (Secure Boot) exactly as it would from a real disk.
 *
 * Which partition is the ESP is read from the disk's own partition table
 * (through the image, not the firmware): the GPT entry whose unique GUID
 * the partition's device path node carries must have the ESP type GUID,
 * or the MBR entry starting where the node says must have type 0xEF. That
 * works on every firmware, with or without EFI_PARTITION_INFO_PROTOCOL.
 * Without an ESP holding the loader, the first FAT file system on the disk
 * holding one is used (a disk formatted as a whole, a mislabelled
 * partition).
 */
#include <string.h>
#include "efi_ramdisk.h"
#include "efi_handoff.h"

#if defined(__x86_64__)
#define BOOT_LOADER "\\EFI\\BOOT\\BOOTX64.EFI"
#elif defined(__aarch64__)
#define BOOT_LOADER "\\EFI\\BOOT\\BOOTAA64.EFI"
#else
#error "unknown architecture: name its removable-media boot loader"
#endif

/* The boot manager's watchdog for a boot option (UEFI 3.1.2): five
 * minutes, which the loader disables or ExitBootServices ends. */
#define WATCHDOG_SECONDS 300

#define HD_NODE_LEN 42      /* HARDDRIVE_DEVICE_PATH as the specification lays it out */

static const uint8_t esp_type_guid[16] = {  /* C12A7328-F81F-11D2-BA4B-00A0C93EC93B */
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
    0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
};

typedef struct part {
    EFI_HANDLE handle;
    UINT32 number;          /* 0: the disk as a whole */
    bool esp;
    bool fs;                /* a file system the firmware can read */
    bool loader;            /* holding BOOT_LOADER */
} part;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The GPT header at `lba`, if it is one: where the entries lie. */
static bool gpt_header(qb_image *img, uint64_t lba, uint64_t *entries, uint32_t *count,
                       uint32_t *size)
{
    uint8_t h[QB_EFI_BLOCK_SIZE];
    qb_err err;

    if (qb_image_read(img, lba * QB_EFI_BLOCK_SIZE, h, sizeof h, &err) < 0 ||
        memcmp(h, "EFI PART", 8) != 0)
        return false;
    *entries = le64(h + 72);
    *count = le32(h + 80);
    *size = le32(h + 84);
    return *size >= 128 && *size % 8 == 0 && *size <= 4096 && *count <= 16384;
}

/* The type GUID of the GPT entry whose unique GUID is `unique`. */
static bool gpt_is_esp(qb_image *img, const uint8_t unique[16])
{
    uint64_t blocks = qb_image_size(img) / QB_EFI_BLOCK_SIZE;
    uint64_t entries;
    uint32_t count, size;
    uint8_t buf[QB_EFI_BLOCK_SIZE * 8];
    qb_err err;

    /* The primary header, else the backup in the last block (which the
     * firmware uses when the primary is damaged). */
    if (!gpt_header(img, 1, &entries, &count, &size) &&
        !gpt_header(img, blocks - 1, &entries, &count, &size))
        return false;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t off = entries * QB_EFI_BLOCK_SIZE + (uint64_t)i * size;
        if (entries >= blocks || off + 128 > blocks * QB_EFI_BLOCK_SIZE)
            return false;
        /* 128 bytes of each entry are all we look at. */
        if (qb_image_read(img, off, buf, 128, &err) < 0)
            return false;
        if (memcmp(buf + 16, unique, 16) == 0)
            return memcmp(buf, esp_type_guid, 16) == 0;
    }
    return false;
}

/* The MBR's primary entry starting at `start` has type 0xEF. */
static bool mbr_is_esp(qb_image *img, uint64_t start)
{
    uint8_t mbr[QB_EFI_BLOCK_SIZE];
    qb_err err;

    if (qb_image_read(img, 0, mbr, sizeof mbr, &err) < 0 || mbr[510] != 0x55 || mbr[511] != 0xaa)
        return false;
    for (int i = 0; i < 4; i++) {
        const uint8_t *e = mbr + 446 + 16 * i;
        if (e[4] == 0xef && le32(e + 8) == start)
            return true;
    }
    return false;
}

static bool has_loader(EFI_HANDLE h)
{
    EFI_FILE_IO_INTERFACE *fs;
    EFI_FILE_HANDLE root, f;
    bool found = false;

    if (BS->HandleProtocol(h, &FileSystemProtocol, (void **)&fs) != EFI_SUCCESS ||
        fs->OpenVolume(fs, &root) != EFI_SUCCESS)
        return false;
    if (root->Open(root, &f, (CHAR16 *)L"" BOOT_LOADER, EFI_FILE_MODE_READ, 0) == EFI_SUCCESS) {
        EFI_FILE_INFO *info;
        qb_err err;
        /* A directory of that name is no loader. */
        if (qb_efi_file_info(f, BOOT_LOADER, &info, &err) == QB_OK) {
            found = !(info->Attribute & EFI_FILE_DIRECTORY);
            BS->FreePool(info);
        }
        f->Close(f);
    }
    root->Close(root);
    return found;
}

/* The disk as a whole and its partitions, as handles with Block I/O whose
 * device path is the disk's, or the disk's plus one hard-drive node. */
static int find_parts(qb_efi_disk *disk, part **out, UINTN *nout)
{
    EFI_HANDLE *handles;
    UINTN n, k = 0;
    part *parts;

    *out = NULL;
    *nout = 0;
    if (BS->LocateHandleBuffer(ByProtocol, &BlockIoProtocol, NULL, &n, &handles) != EFI_SUCCESS)
        return QB_OK;
    parts = qb_zalloc(&qb_efi_alloc, (n ? n : 1) * sizeof *parts);
    if (!parts) {
        BS->FreePool(handles);
        return QB_ENOMEM;
    }
    for (UINTN i = 0; i < n; i++) {
        EFI_DEVICE_PATH *dp = DevicePathFromHandle(handles[i]);
        EFI_DEVICE_PATH *node = dp ? qb_efi_devpath_after(dp, disk->devpath) : NULL;
        part *p = &parts[k];
        uint8_t hd[HD_NODE_LEN];

        if (!node)
            continue;
        p->handle = handles[i];
        if (IsDevicePathEnd(node)) {
            p->number = 0;
        } else if (DevicePathType(node) == MEDIA_DEVICE_PATH &&
                   DevicePathSubType(node) == MEDIA_HARDDRIVE_DP &&
                   DevicePathNodeLength(node) >= HD_NODE_LEN &&
                   IsDevicePathEnd(NextDevicePathNode(node))) {
            EFI_TPL tpl;
            memcpy(hd, node, HD_NODE_LEN);
            p->number = le32(hd + 4);
            /* The engine runs at TPL_CALLBACK, as in the disk's Block I/O:
             * a read-write disk's drain event must not cut into it. */
            tpl = BS->RaiseTPL(TPL_CALLBACK);
            if (hd[40] == MBR_TYPE_EFI_PARTITION_TABLE_HEADER && hd[41] == SIGNATURE_TYPE_GUID)
                p->esp = gpt_is_esp(disk->img, hd + 24);
            else if (hd[40] == MBR_TYPE_PCAT)
                p->esp = mbr_is_esp(disk->img, le64(hd + 8));
            BS->RestoreTPL(tpl);
        } else {
            continue;
        }
        p->fs = BS->HandleProtocol(p->handle, &FileSystemProtocol, &(void *){ NULL }) ==
                EFI_SUCCESS;
        p->loader = p->fs && has_loader(p->handle);
        k++;
    }
    BS->FreePool(handles);
    /* In partition order: the firmware lists handles in no set order. */
    for (UINTN i = 1; i < k; i++)
        for (UINTN j = i; j > 0 && parts[j - 1].number > parts[j].number; j--) {
            part t = parts[j];
            parts[j] = parts[j - 1];
            parts[j - 1] = t;
        }
    *out = parts;
    *nout = k;
    return QB_OK;
}

static void where(char *buf, size_t size, const part *p)
{
    if (p->number)
        qb_snprintf(buf, size, "partition %u", (unsigned)p->number);
    else
        qb_snprintf(buf, size, "the disk");
}

/* Picks the partition to boot from, or reports why there is none. */
static const part *choose(const qb_env *env, const qb_efi_disk *disk, const part *parts, UINTN n)
{
    const part *esp = NULL, *esp_fs = NULL, *other = NULL;
    const char *hint = disk->blockio.errors ? " (the virtual disk has read errors, see above)" : "";

    for (UINTN i = 0; i < n; i++) {
        const part *p = &parts[i];
        if (p->esp && p->loader)
            return p;
        if (p->esp && !esp)
            esp = p;
        if (p->esp && p->fs && !esp_fs)
            esp_fs = p;
        if (!p->esp && p->loader && !other)
            other = p;
    }
    if (other) {
        char w[32];
        where(w, sizeof w, other);
        qb_printf(&env->out, "%s: no EFI system partition holds %s; using %s\n", disk->name,
                  BOOT_LOADER, w);
        return other;
    }
    if (esp_fs)
        qb_efi_error(env, "%s: %s not found on the EFI system partition (partition %u)%s",
                     disk->name, BOOT_LOADER, (unsigned)esp_fs->number, hint);
    else if (esp)
        qb_efi_error(env,
                     "%s: the EFI system partition (partition %u) holds no file system the "
                     "firmware can read%s",
                     disk->name, (unsigned)esp->number, hint);
    else
        qb_efi_error(env, "%s: no EFI system partition on the virtual disk%s", disk->name, hint);
    return NULL;
}

static int start(const qb_env *env, qb_efi_disk *disk, const part *p)
{
    EFI_DEVICE_PATH *path = qb_efi_devpath_file(p->handle, BOOT_LOADER);
    EFI_HANDLE guest = NULL;
    EFI_STATUS st;
    UINTN exit_size = 0;
    CHAR16 *exit_data = NULL;
    char w[32];

    where(w, sizeof w, p);
    if (!path) {
        qb_efi_error(env, "%s: out of memory", disk->name);
        return 1;
    }
    qb_printf(&env->out, "Booting %s from %s of %s\n", BOOT_LOADER, w, disk->name);
    /* BootPolicy FALSE: an exact file path; the firmware reads the file
     * through the partition's file system and verifies it. */
    st = BS->LoadImage(FALSE, qb_efi_image, path, NULL, 0, &guest);
    FreePool(path);
    if (st != EFI_SUCCESS) {
        const char *why = "";
        if (st == EFI_SECURITY_VIOLATION || st == EFI_ACCESS_DENIED)
            why = " (Secure Boot: the boot loader is not signed by a key the firmware trusts)";
        else if (disk->blockio.errors)
            why = " (the virtual disk had read errors, see above: the image is damaged)";
        else if (st == EFI_UNSUPPORTED || st == EFI_LOAD_ERROR)
            why = " (not an EFI program for this machine)";
        qb_efi_error(env, "%s: the firmware refused to load %s from %s: %s%s", disk->name,
                     BOOT_LOADER, w, qb_efi_strstatus(st), why);
        /* A refused image may still have been given a handle. */
        if (guest)
            BS->UnloadImage(guest);
        return 1;
    }
    BS->SetWatchdogTimer(WATCHDOG_SECONDS, 0, 0, NULL);
    st = BS->StartImage(guest, &exit_size, &exit_data);
    BS->SetWatchdogTimer(0, 0, 0, NULL);
    if (exit_data && exit_size >= sizeof(CHAR16)) {
        char msg[256];
        /* Exit data: a NUL-terminated string, maybe followed by binary data. */
        size_t units = exit_size / sizeof(CHAR16);
        if (exit_data[units - 1] == 0) {
            qb_utf16_to_utf8(exit_data, msg, sizeof msg);
            qb_printf(&env->out, "%s: %s\n", BOOT_LOADER, msg);
        }
    }
    if (exit_data)
        BS->FreePool(exit_data);
    if (st != EFI_SUCCESS) {
        qb_efi_error(env, "%s: the boot loader returned: %s", disk->name, qb_efi_strstatus(st));
        return 1;
    }
    qb_printf(&env->out, "The boot loader returned (success)\n");
    return 0;
}

int qb_efi_boot_disk(const qb_env *env, qb_efi_disk *disk)
{
    part *parts;
    UINTN n;
    const part *p;
    int status;

    if (find_parts(disk, &parts, &n) < 0) {
        qb_efi_error(env, "%s: out of memory", disk->name);
        return 1;
    }
    p = choose(env, disk, parts, n);
    /* The OS learns what it was booted from (efi_handoff.h); if the loader
     * comes back, nothing was handed over. */
    if (p)
        qb_efi_handoff_set(env, disk);
    status = p ? start(env, disk, p) : 1;
    if (p)
        qb_efi_handoff_clear();
    qb_free(&qb_efi_alloc, parts);
    return status;
}

int qb_efi_boot(const qb_env *env, const char *image, const char *snapshot, qb_efi_mode mode)
{
    qb_efi_disk *disk;
    qb_err err = { 0, "" };
    int status;

    /* The disk the guest boots from is then the firmware's RAM disk. */
    if (mode == QB_EFI_RAMDISK)
        return qb_efi_ramdisk_boot(env, image, snapshot);
    if (qb_efi_disk_publish(env, image, snapshot, mode, &disk, &err) < 0) {
        qb_efi_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(err.code));
        return 1;
    }
    status = qb_efi_boot_disk(env, disk);
    if (qb_efi_disk_detach(disk) != EFI_SUCCESS && status == 0)
        status = 1;
    return status;
}
