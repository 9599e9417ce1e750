/*
 * RAM-disk mode: `boot --ramdisk IMAGE`, or `mode = ramdisk` in the stick's
 * config.
 *
 * A disk we publish through our own Block I/O is gone once the guest's OS
 * calls ExitBootServices: only guests living in their initramfs survive
 * it. Here the whole virtual disk is copied into memory of the type the OS
 * never takes for itself (EfiReservedMemoryType) and handed to the
 * firmware's EFI_RAM_DISK_PROTOCOL as a virtual disk. The firmware then
 * offers it as a Block I/O device of its own, and describes the range in
 * the ACPI NFIT (it insists on reserved memory for that), which Linux turns
 * into /dev/pmem0 (modules nfit and nd_pmem). The guest's boot loader is
 * started from that RAM disk, so the firmware and the OS read the same
 * bytes, and the image can be closed before the boot.
 *
 *  1. Refusals come before anything is loaded: no RAM disk protocol, or
 *     not enough memory (the disk must fit in one free block, and
 *     QB_EFI_RAMDISK_OS_MIB must stay free for the OS), with the numbers.
 *  2. Only allocated data is read: the engine says which ranges read as
 *     zeros (qb_image_status), and those are zero-filled in memory. A
 *     progress bar shows bytes and MB/s; the rates of the whole load (per
 *     virtual disk and per byte read) are printed at the end.
 *  3. The NFIT is checked for the range once registered: a firmware that
 *     registers the disk without publishing it gets a warning, since the
 *     OS will then lose the disk at ExitBootServices.
 *  4. Writes go to the RAM disk only, which the screen says; the image is
 *     opened read-only.
 *  5. When the boot loader returns (or cannot be started), the RAM disk is
 *     removed and its memory freed, unless a driver keeps it open.
 *
 * Time comes from the TSC, calibrated against BS->Stall.
 */
#include <string.h>
#include "efi_clock.h"
#include "efi_ramdisk.h"
#include "qb_cmd_internal.h"

#define PAGE 4096u
#define CHUNK (4u << 20)            /* bytes read or zeroed between progress checks */
#define BAR_WIDTH 30
#define CALIBRATION_US 50000u
#define MIB (1024u * 1024u)

static EFI_GUID ram_disk_protocol_guid = QB_EFI_RAM_DISK_PROTOCOL_GUID;
static EFI_GUID virtual_disk_guid = QB_EFI_VIRTUAL_DISK_GUID;
static EFI_GUID acpi20_table_guid = ACPI_20_TABLE_GUID;

/* --- memory ------------------------------------------------------------------ */

/* Free memory in all, and the largest run of it (adjacent free
 * descriptors count as one run). False when there is no memory map. */
static bool free_memory(uint64_t *total, uint64_t *largest)
{
    UINTN size = 0, key, desc_size = 0;
    UINT32 version;
    EFI_MEMORY_DESCRIPTOR *map = NULL;
    uint64_t run = 0, run_end = 0;
    EFI_STATUS st = EFI_BUFFER_TOO_SMALL;

    *total = *largest = 0;
    for (int tries = 0; tries < 4; tries++) {
        st = BS->GetMemoryMap(&size, map, &key, &desc_size, &version);
        if (st != EFI_BUFFER_TOO_SMALL)
            break;
        if (map)
            BS->FreePool(map);
        map = NULL;
        size += 8 * sizeof(EFI_MEMORY_DESCRIPTOR);  /* the allocation adds entries */
        if (BS->AllocatePool(EfiLoaderData, size, (void **)&map) != EFI_SUCCESS)
            return false;
    }
    if (st != EFI_SUCCESS || !map || desc_size < sizeof(EFI_MEMORY_DESCRIPTOR)) {
        if (map)
            BS->FreePool(map);
        return false;
    }
    for (UINTN off = 0; off + desc_size <= size; off += desc_size) {
        const EFI_MEMORY_DESCRIPTOR *d = (const void *)((const UINT8 *)map + off);
        uint64_t bytes = d->NumberOfPages * PAGE;

        if (d->Type != EfiConventionalMemory) {
            run = 0;
            continue;
        }
        *total += bytes;
        run = run && d->PhysicalStart == run_end ? run + bytes : bytes;
        run_end = d->PhysicalStart + bytes;
        if (run > *largest)
            *largest = run;
    }
    BS->FreePool(map);
    return true;
}

static uint64_t mib_up(uint64_t bytes)
{
    return bytes / MIB + (bytes % MIB != 0);
}

/* Refuses, with the numbers, when the disk cannot be loaded and still
 * leave the OS enough memory. */
static int check_memory(const qb_env *env, const char *name, uint64_t bytes)
{
    uint64_t total, largest;
    uint64_t need = bytes + (uint64_t)QB_EFI_RAMDISK_OS_MIB * MIB;

    if (!free_memory(&total, &largest)) {
        qb_efi_error(env, "%s: RAM-disk mode: the firmware gives no memory map", name);
        return 1;
    }
    if (total >= need && largest >= bytes)
        return 0;
    qb_efi_error(env,
                 "%s: not enough memory for RAM-disk mode: it needs %llu MiB (the %llu MiB "
                 "virtual disk in one block, and %u MiB left for the OS); the firmware has "
                 "%llu MiB free, the largest free block is %llu MiB. Nothing was loaded.",
                 name, (unsigned long long)mib_up(need), (unsigned long long)mib_up(bytes),
                 QB_EFI_RAMDISK_OS_MIB, (unsigned long long)(total / MIB),
                 (unsigned long long)(largest / MIB));
    return 1;
}

/* --- loading -------------------------------------------------------------- */

typedef struct load {
    const qb_env *env;
    uint8_t *ram;
    uint64_t size;          /* bytes of the virtual disk */
    uint64_t done;          /* bytes in memory so far */
    uint64_t read;          /* of which read from the image (allocated data) */
    uint64_t read_ticks;    /* TSC ticks spent reading them */
    uint64_t hz, t0, last_draw;
} load;

static void print_rate(char *buf, size_t size, uint64_t bytes, uint64_t us)
{
    uint64_t r = bytes * 10 / us;   /* bytes per microsecond = MB/s, in tenths */

    qb_snprintf(buf, size, "%llu.%llu MB/s", (unsigned long long)(r / 10),
                (unsigned long long)(r % 10));
}

/* The progress bar, redrawn in place every quarter of a second, and at
 * the end. */
static void draw(load *l, bool last)
{
    uint64_t now = qb_efi_ticks();
    char bar[BAR_WIDTH + 1], rate[32];
    unsigned filled;

    if (!last && now - l->last_draw < l->hz / 4)
        return;
    l->last_draw = now;
    filled = (unsigned)(l->done * BAR_WIDTH / l->size);
    for (unsigned i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    print_rate(rate, sizeof rate, l->done, qb_efi_ticks_to_us(now - l->t0, l->hz));
    qb_printf(&l->env->out, "\r  [%s] %llu/%llu MiB  %s  ", bar,
              (unsigned long long)(l->done / MIB), (unsigned long long)mib_up(l->size), rate);
    if (last)
        qb_printf(&l->env->out, "\n");
}

/* Copies the virtual disk into l->ram: data read, zeros written. */
static int fill(load *l, qb_image *img, qb_err *err)
{
    while (l->done < l->size) {
        qb_status st;
        uint64_t end;

        if (qb_image_status(img, l->done, l->size - l->done, &st, err) < 0)
            return err->code;
        if (st.length == 0 || st.length > l->size - l->done)
            return qb_err_set(err, QB_EINVAL, "the engine described no range at offset %llu",
                              (unsigned long long)l->done);
        end = l->done + st.length;
        while (l->done < end) {
            size_t n = end - l->done < CHUNK ? (size_t)(end - l->done) : CHUNK;

            if (st.zero) {
                memset(l->ram + l->done, 0, n);
            } else {
                uint64_t t = qb_efi_ticks();
                if (qb_image_read(img, l->done, l->ram + l->done, n, err) < 0)
                    return err->code;
                l->read_ticks += qb_efi_ticks() - t;
                l->read += n;
            }
            l->done += n;
            draw(l, false);
        }
    }
    return QB_OK;
}

/* --- the ACPI NFIT ------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* An NFIT whose system physical address range structures include one for
 * exactly [base, base + size). */
static bool nfit_has(const uint8_t *t, uint64_t base, uint64_t size)
{
    uint32_t len = le32(t + 4);

    /* Header (36 bytes) and 4 reserved, then structures of type, length. */
    for (uint32_t off = 40; off + 4 <= len;) {
        uint16_t type = (uint16_t)(t[off] | t[off + 1] << 8);
        uint16_t slen = (uint16_t)(t[off + 2] | t[off + 3] << 8);

        if (slen < 4 || slen > len - off)
            return false;
        if (type == 0 && slen >= 48 && le64(t + off + 32) == base && le64(t + off + 40) == size)
            return true;
        off += slen;
    }
    return false;
}

/* True when the ACPI tables the OS will get describe the RAM disk. */
static bool nfit_lists(uint64_t base, uint64_t size)
{
    const uint8_t *rsdp = NULL, *sdt;
    uint32_t entry_size, sdt_len;

    for (UINTN i = 0; i < ST->NumberOfTableEntries; i++)
        if (memcmp(&ST->ConfigurationTable[i].VendorGuid, &acpi20_table_guid,
                   sizeof(EFI_GUID)) == 0)
            rsdp = ST->ConfigurationTable[i].VendorTable;
    if (!rsdp || memcmp(rsdp, "RSD PTR ", 8) != 0)
        return false;
    /* ACPI 2.0: the XSDT (64-bit entries); the RSDT (32-bit) before. */
    if (rsdp[15] >= 2 && le64(rsdp + 24)) {
        sdt = (const uint8_t *)(UINTN)le64(rsdp + 24);
        entry_size = 8;
    } else {
        sdt = (const uint8_t *)(UINTN)le32(rsdp + 16);
        entry_size = 4;
    }
    if (!sdt)
        return false;
    sdt_len = le32(sdt + 4);
    for (uint32_t off = 36; off + entry_size <= sdt_len; off += entry_size) {
        const uint8_t *t = (const uint8_t *)(UINTN)(entry_size == 8 ? le64(sdt + off)
                                                                    : le32(sdt + off));
        if (t && memcmp(t, "NFIT", 4) == 0 && nfit_has(t, base, size))
            return true;
    }
    return false;
}

/* --- the RAM disk --------------------------------------------------------------- */

typedef struct ramdisk {
    EFI_PHYSICAL_ADDRESS base;
    UINTN pages;
    uint64_t size;              /* registered: the virtual size in whole blocks */
    EFI_DEVICE_PATH *devpath;   /* the driver's, once registered */
    EFI_HANDLE handle;
} ramdisk;

/* Removes the RAM disk and frees its memory, unless a driver will not let
 * go of it: then both stay, as freeing memory still in use would be far
 * worse than the leak. */
static void remove_ramdisk(const qb_env *env, qb_efi_ram_disk_protocol *rdp, ramdisk *rd,
                           const char *name)
{
    EFI_STATUS st = EFI_SUCCESS;

    if (rd->devpath) {
        if (rd->handle)
            st = BS->DisconnectController(rd->handle, NULL, NULL);
        /* The driver frees the device path. */
        if (st == EFI_SUCCESS)
            st = rdp->Unregister(rd->devpath);
        if (st != EFI_SUCCESS) {
            qb_efi_error(env, "%s: the firmware would not remove the RAM disk (%s): its %llu MiB "
                         "stay in use", name, qb_efi_strstatus(st),
                         (unsigned long long)(rd->pages * PAGE / MIB));
            return;
        }
        rd->devpath = NULL;
    }
    BS->FreePages(rd->base, rd->pages);
}

/* Boots from the registered RAM disk, with a raw image over its memory for
 * the partition table. The disk handed on names the image (and snapshot)
 * it came from. */
static int boot_ramdisk(const qb_env *env, const ramdisk *rd, const char *name,
                        const char *snapshot)
{
    qb_efi_disk *disk = qb_zalloc(&qb_efi_alloc, sizeof *disk);
    qb_mem_backend mem;
    qb_open_opts o;
    qb_err err = { 0, "" };
    int status;

    if (!disk) {
        qb_efi_error(env, "%s: out of memory", name);
        return 1;
    }
    qb_mem_backend_init(&mem, (const void *)(UINTN)rd->base, (size_t)rd->size);
    memset(&o, 0, sizeof o);
    o.alloc = env->alloc;
    o.filename = "RAM disk";
    o.file = &mem.base;
    o.format = "raw";
    if (qb_image_open(&disk->img, &o, &err) < 0) {
        qb_efi_error(env, "%s: %s", name, err.msg[0] ? err.msg : qb_strerror(err.code));
        qb_free(&qb_efi_alloc, disk);
        return 1;
    }
    disk->handle = rd->handle;
    disk->devpath = rd->devpath;
    disk->mode = QB_EFI_RAMDISK;
    disk->env = *env;
    qb_snprintf(disk->name, sizeof disk->name, "%s", name);
    if (snapshot) {
        size_t n = strlen(snapshot) + 1;
        disk->snapshot = qb_malloc(&qb_efi_alloc, n);
        if (disk->snapshot)
            memcpy(disk->snapshot, snapshot, n);
    }
    status = qb_efi_boot_disk(env, disk);
    qb_image_close(disk->img);
    qb_free(&qb_efi_alloc, disk->snapshot);
    qb_free(&qb_efi_alloc, disk);
    return status;
}

/* True when one of our disks (a `mount`) has the image at `name`
 * (canonical) attached read-write: its blocks may move under our reads. */
static bool attached_read_write(const char *name)
{
    char dev[QB_EFI_DEV_MAX];
    int dl = qb_efi_path_devlen(name);
    EFI_HANDLE vh, *handles = NULL;
    EFI_DEVICE_PATH *volume;
    UINTN n = 0;
    qb_err err;
    bool rw = false;

    if (dl >= QB_EFI_DEV_MAX)
        return false;
    memcpy(dev, name, dl > 0 ? (size_t)dl : 0);
    dev[dl > 0 ? dl : 0] = '\0';
    if (qb_efi_volume_handle(dev, &vh, &err) < 0 || !(volume = DevicePathFromHandle(vh)) ||
        BS->LocateHandleBuffer(ByProtocol, &qb_efi_disk_protocol_guid, NULL, &n, &handles) !=
            EFI_SUCCESS)
        return false;
    for (UINTN i = 0; i < n && !rw; i++) {
        qb_efi_disk_info *info;
        EFI_DEVICE_PATH *dp = DevicePathFromHandle(handles[i]);

        rw = dp &&
             BS->HandleProtocol(handles[i], &qb_efi_disk_protocol_guid, (void **)&info) ==
                 EFI_SUCCESS &&
             info->revision >= 2 && info->mode && strcmp(info->mode, "read-write") == 0 &&
             qb_efi_devpath_is_image(dp, volume, name + (dl > 0 ? dl + 1 : 0));
    }
    BS->FreePool(handles);
    return rw;
}

/* Opens the image read-only (the environment's opener; a passphrase as the
 * engine's commands ask for one). `name` gets its canonical path. */
static int open_image(const qb_env *env, const char *image, const char *snapshot,
                      char *name, qb_image **img)
{
    qb_err err = { 0, "" };

    if (qb_efi_resolve(NULL, image, name, &err) < 0) {
        qb_efi_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(err.code));
        return 1;
    }
    if (attached_read_write(name)) {
        qb_efi_error(env, "%s is attached read-write (unmount it first)", name);
        return 1;
    }
    qb_printf(&env->out, "Opening %s%s%s\n", name, snapshot ? " at snapshot " : "",
              snapshot ? snapshot : "");
    if (qb_cmd_open(env, name, NULL, snapshot, false, img) < 0)
        return 1;
    if (qb_image_size(*img) < QB_EFI_BLOCK_SIZE) {
        qb_efi_error(env, "%s: the virtual disk is smaller than one block", name);
        qb_image_close(*img);
        return 1;
    }
    return 0;
}

/* Loads the open image into newly reserved memory; prints the rates. */
static int load_image(const qb_env *env, qb_image *img, const char *name, ramdisk *rd)
{
    uint64_t vsize = qb_image_size(img);
    qb_err err = { 0, "" };
    load l;
    EFI_STATUS st;
    char r_disk[32], r_data[32], r_reads[32];
    uint64_t us;

    rd->size = (vsize + QB_EFI_BLOCK_SIZE - 1) / QB_EFI_BLOCK_SIZE * QB_EFI_BLOCK_SIZE;
    rd->pages = (UINTN)((rd->size + PAGE - 1) / PAGE);
    if (check_memory(env, name, (uint64_t)rd->pages * PAGE))
        return 1;
    st = BS->AllocatePages(AllocateAnyPages, EfiReservedMemoryType, rd->pages, &rd->base);
    if (st != EFI_SUCCESS) {
        qb_efi_error(env, "%s: cannot reserve %llu MiB for the RAM disk: %s", name,
                     (unsigned long long)mib_up(rd->pages * PAGE), qb_efi_strstatus(st));
        return 1;
    }
    qb_printf(&env->out, "Loading the %llu MiB virtual disk into memory the OS keeps\n",
              (unsigned long long)mib_up(vsize));
    memset(&l, 0, sizeof l);
    l.env = env;
    l.ram = (uint8_t *)(UINTN)rd->base;
    l.size = vsize;
    l.hz = qb_efi_ticks_per_second(CALIBRATION_US);
    l.t0 = l.last_draw = qb_efi_ticks();
    if (fill(&l, img, &err) < 0) {
        draw(&l, true);
        qb_efi_error(env, "%s: loading stopped at offset %llu: %s", name,
                     (unsigned long long)l.done, err.msg[0] ? err.msg : qb_strerror(err.code));
        BS->FreePages(rd->base, rd->pages);
        return 1;
    }
    /* The rest of the last block and page. */
    memset(l.ram + vsize, 0, (size_t)(rd->pages * PAGE - vsize));
    draw(&l, true);
    us = qb_efi_ticks_to_us(qb_efi_ticks() - l.t0, l.hz);
    print_rate(r_disk, sizeof r_disk, vsize, us);
    print_rate(r_data, sizeof r_data, l.read, us);
    print_rate(r_reads, sizeof r_reads, l.read, qb_efi_ticks_to_us(l.read_ticks, l.hz));
    qb_printf(&env->out,
              "RAM disk loaded: %llu bytes of virtual disk, %llu of them read (allocated), "
              "in %llu.%03llu s: %s of virtual disk, %s of allocated data (reads alone %s)\n",
              (unsigned long long)vsize, (unsigned long long)l.read,
              (unsigned long long)(us / 1000000), (unsigned long long)(us / 1000 % 1000),
              r_disk, r_data, r_reads);
    return 0;
}

int qb_efi_ramdisk_boot(const qb_env *env, const char *image, const char *snapshot)
{
    qb_efi_ram_disk_protocol *rdp;
    qb_image *img = NULL;
    char name[QB_PATH_MAX];
    ramdisk rd;
    EFI_DEVICE_PATH *rest;
    EFI_STATUS st;
    int status;

    if (BS->LocateProtocol(&ram_disk_protocol_guid, NULL, (void **)&rdp) != EFI_SUCCESS) {
        qb_efi_error(env, "%s: RAM-disk mode needs the firmware's EFI_RAM_DISK_PROTOCOL "
                     "(UEFI 2.6), and this firmware has none: boot the image without "
                     "RAM-disk mode", image);
        return 1;
    }
    if (open_image(env, image, snapshot, name, &img))
        return 1;
    memset(&rd, 0, sizeof rd);
    status = load_image(env, img, name, &rd);
    /* Everything is in memory: the image is not needed any more. */
    qb_image_close(img);
    if (status)
        return status;

    st = rdp->Register(rd.base, rd.size, &virtual_disk_guid, NULL, &rd.devpath);
    if (st != EFI_SUCCESS || !rd.devpath) {
        qb_efi_error(env, "%s: the firmware refused the RAM disk: %s", name,
                     qb_efi_strstatus(st));
        rd.devpath = NULL;
        BS->FreePages(rd.base, rd.pages);
        return 1;
    }
    rest = rd.devpath;
    if (BS->LocateDevicePath(&BlockIoProtocol, &rest, &rd.handle) != EFI_SUCCESS ||
        !IsDevicePathEnd(rest)) {
        qb_efi_error(env, "%s: the firmware registered the RAM disk but shows no disk for it",
                     name);
        rd.handle = NULL;
        remove_ramdisk(env, rdp, &rd, name);
        return 1;
    }
    /* The firmware connects it as it registers it; connecting again costs
     * nothing and covers firmware that does not. */
    BS->ConnectController(rd.handle, NULL, NULL, TRUE);
    if (nfit_lists(rd.base, rd.size))
        qb_printf(&env->out, "  RAM disk at 0x%llx, %llu MiB, in the ACPI NFIT (Linux: "
                  "/dev/pmem0 with nfit and nd_pmem)\n", (unsigned long long)rd.base,
                  (unsigned long long)mib_up(rd.size));
    else
        qb_efi_error(env, "warning: %s: the firmware did not describe the RAM disk in the "
                     "ACPI NFIT: the OS will not find it once the firmware is gone", name);
    qb_printf(&env->out, "  ramdisk: the guest's writes go to memory only and are lost at "
              "power-off; the image is not written\n");

    status = boot_ramdisk(env, &rd, name, snapshot);
    remove_ramdisk(env, rdp, &rd, name);
    return status;
}
