/*
 * A published disk, as the files behind qb_boot.h share it:
 *
 *   efi_blockio.c   EFI_BLOCK_IO_PROTOCOL over an open qb_image
 *   efi_overlay.c   writes kept in memory (volatile disks, and writes
 *                   waiting for the FAT driver's lock)
 *   efi_devpath.c   the disk's device path and device path helpers
 *   efi_disk.c      publish (open, install, connect) and unpublish
 *   efi_fatmap.c    image files on FAT read without the FAT driver
 *   efi_boot.c      the guest's EFI system partition, LoadImage/StartImage
 *   efi_mount.c     the resident driver that keeps a disk after `mount`
 *   efi_bench.c     Block I/O against the file protocol
 *   efi_commands.c  boot, mount, unmount, bench on the command line
 */
#ifndef QB_EFI_DISK_H
#define QB_EFI_DISK_H

#include "qb_boot.h"
#include "qb_image.h"
#include "qb_fmt.h"
#include "efi_mode.h"
#include "efi_overlay.h"

#define QB_EFI_BLOCK_SIZE 512u

/* The vendor-defined messaging node that ends every disk's device path. */
#define QB_EFI_DISK_VENDOR_GUID \
    { 0x222f59ab, 0x487e, 0x4ff9, { 0xa0, 0xe5, 0xe9, 0x4c, 0x10, 0x62, 0xda, 0x94 } }
/* Our own protocol on every disk handle we publish (qb_efi_disk_info). */
#define QB_EFI_DISK_PROTOCOL_GUID \
    { 0xa99dcaf2, 0xeca2, 0x49ca, { 0x95, 0x88, 0x1d, 0xbb, 0x15, 0x39, 0xe0, 0xce } }
extern EFI_GUID qb_efi_disk_vendor_guid;
extern EFI_GUID qb_efi_disk_protocol_guid;

/* The file the resident driver is loaded from, next to qcowboot.efi. */
#define QB_EFI_DRIVER_FILE "qcowbootdrv.efi"

/* efi_blockio.c. The protocol is the first member, so the firmware's
 * pointer leads back to the whole struct. */
typedef struct qb_efi_blockio {
    EFI_BLOCK_IO_PROTOCOL bio;
    EFI_BLOCK_IO_MEDIA media;
    qb_image *img;
    const char *name;       /* the image, for messages */
    const qb_env *env;      /* where errors are reported */
    qb_efi_mode mode;
    /* Volatile: the guest's writes. Read-write: writes made while the FAT
     * lock may be held, until drain_event writes them into the image. */
    qb_overlay *overlay;
    EFI_EVENT drain_event;
    uint64_t next_report;   /* overlay size to report memory use at */
    bool reported_near;     /* ... and that it neared its limit */
    bool flush_each;        /* flush after every write (the engine does not) */
    unsigned errors;        /* read errors so far */
    unsigned write_errors;
    unsigned drain_errors;
} qb_efi_blockio;
/* Fills the protocol for the open image `img` (virtual size at least one
 * block; opened writable for QB_EFI_READ_WRITE). */
int qb_efi_blockio_init(qb_efi_blockio *b, qb_image *img, const char *name, const qb_env *env,
                        qb_efi_mode mode, qb_err *err);
/* Writes what waits in memory into the image and flushes it (read-write;
 * nothing otherwise). Called below TPL_CALLBACK (the FAT lock free); runs
 * at TPL_CALLBACK. */
int qb_efi_blockio_sync(qb_efi_blockio *b, qb_err *err);
/* Frees the event and the overlay (the protocol must be uninstalled). */
void qb_efi_blockio_fini(qb_efi_blockio *b);

/* What the protocol with qb_efi_disk_protocol_guid points at: how
 * `unmount` and `mount` (listing) recognise our disks, also those of other
 * loaded copies of qcowboot (a resident driver). */
#define QB_EFI_DISK_INFO_REVISION 2
typedef struct qb_efi_disk_info {
    UINT32 revision;
    /* The resident driver image holding the disk (unloading it detaches
     * the disk), or NULL while a command in progress (boot, bench) has it. */
    EFI_HANDLE driver;
    const char *image;      /* canonical path when published, UTF-8 */
    const char *snapshot;   /* NULL for the image's current state */
    /* Revision 2: */
    const char *mode;       /* "read-write", "read-only" or "volatile" */
} qb_efi_disk_info;

/* efi_disk.c. */
struct qb_efi_disk {
    EFI_HANDLE handle;
    qb_efi_blockio blockio;
    EFI_DEVICE_PATH *devpath;
    qb_efi_disk_info info;
    qb_image *img;
    qb_efi_mode mode;       /* as published, after any fallback to read-only */
    qb_env env;             /* a copy: the disk outlives its publisher's frame */
    qb_opener opener;       /* env's opener, reporting backing files as they open */
    char *snapshot;
    char name[QB_PATH_MAX]; /* canonical path of the image */
};
/* Disconnects and uninstalls; EFI_SUCCESS once everything is freed. On a
 * refusal (reported on the console) the disk stays attached and valid. */
EFI_STATUS qb_efi_disk_detach(qb_efi_disk *disk);

/* efi_devpath.c. */
/* `volume` + our vendor node carrying `path` (the image's path on that
 * volume, "\dir\disk.qcow2") and `snapshot` (NULL: none) + end. From the
 * pool; NULL when out of memory or the names do not fit. */
EFI_DEVICE_PATH *qb_efi_devpath_disk(const EFI_DEVICE_PATH *volume, const char *path,
                                     const char *snapshot);
/* When `path` starts with all nodes of `prefix` (up to its end node),
 * returns the first node after them, else NULL. */
EFI_DEVICE_PATH *qb_efi_devpath_after(const EFI_DEVICE_PATH *path,
                                      const EFI_DEVICE_PATH *prefix);
/* Our vendor node in `dp`, or NULL. */
const VENDOR_DEVICE_PATH *qb_efi_devpath_vendor(const EFI_DEVICE_PATH *dp);
/* True when the disk device path `dp` belongs to the image at `path` on
 * `volume` (any snapshot); file names compare case-insensitively, as on
 * FAT. */
bool qb_efi_devpath_is_image(const EFI_DEVICE_PATH *dp, const EFI_DEVICE_PATH *volume,
                             const char *path);
/* The device path of `volume`'s file `file` ("\EFI\BOOT\BOOTX64.EFI"). */
EFI_DEVICE_PATH *qb_efi_devpath_file(EFI_HANDLE volume, const char *file);
/* Device path as text (UTF-8, from qb_efi_alloc), or NULL. */
char *qb_efi_devpath_text(const EFI_DEVICE_PATH *dp);

/* efi_fatmap.c. When the canonical `path` lies on a FAT volume, replaces
 * the open `file` by a backend reading the file's clusters through the
 * volume's Disk I/O. A read-only `file` is closed; a writable one is kept
 * inside for writes, flushes and size changes (below TPL_CALLBACK only).
 * QB_EUNSUPP: not a FAT volume; other errors: the file does not map;
 * `file` is left as it was. */
int qb_efi_fatmap(const char *path, bool writable, qb_backend **file, qb_err *err);

/* efi_mount.c. */
/* True when this copy runs as the resident driver (loaded from
 * QB_EFI_DRIVER_FILE, boot-services code) rather than as an application. */
bool qb_efi_is_driver(void);
int qb_efi_mount(const qb_env *env, const char *image, const char *snapshot, qb_efi_mode mode);
int qb_efi_mount_list(const qb_env *env);
int qb_efi_unmount(const qb_env *env, const char *image);

/* efi_bench.c. */
int qb_efi_bench(const qb_env *env, const char *image, const char *snapshot, const char *raw);

/* Error messages on env->err, prefixed with the program name. */
void qb_efi_error(const qb_env *env, const char *fmt, ...);

#endif
