/*
 * Reading an image file on a FAT volume without the FAT driver.
 *
 * A published disk usually holds a FAT file system itself (the guest's
 * ESP), and the firmware's FAT driver reads it through our Block I/O while
 * it is in the middle of a file operation. If our read went back into the
 * same FAT driver for the image file on the stick, it would enter that
 * driver a second time: EDK2's FAT driver keeps one global lock for all
 * its volumes and takes it with EfiAcquireLock, which does not nest. In a
 * release build the inner acquisition overwrites the TPL the outer one
 * saved, and when the outer operation ends the firmware stays at
 * TPL_CALLBACK: the guest's boot loader then runs at the wrong TPL
 * (WaitForEvent refuses to work there, timer events stop). A debug build
 * stops on an assertion instead.
 *
 * So, once per image file and outside any such nesting, we look the file
 * up in the FAT structures ourselves (boot sector, directories with long
 * names, the cluster chain), keep its clusters as a list of extents on the
 * volume, and read those through the volume's EFI_DISK_IO_PROTOCOL, which
 * has no global state. The first and last 64 KiB are read both ways and
 * compared before the map is trusted; when anything does not fit (not FAT,
 * exFAT, a damaged chain) the file stays read through the file system.
 *
 * Writes (a read-write disk) go through the file system, never past it.
 * The FAT driver keeps a data cache of whole pages (8 to 64 KiB of the
 * volume, so one page often holds clusters of several files and
 * directories): a partial page it writes is read into the cache, changed
 * and written back whole. Had we written the file's clusters ourselves, a
 * page cached before would be stale, and the driver's next update of a
 * neighbouring directory entry or file would write our old bytes back. So
 * writes, size changes and flushes go to the file system, the map reads
 * through the file system too until the write is flushed (the driver's
 * dirty pages are then on the volume), and after the flush the clusters
 * the file gained are looked up in the FAT and mapped. Efi_blockio.c makes
 * sure the file system is only called when its lock is free.
 */
#include <string.h>
#include "efi_disk.h"

#define WINDOW (64u * 1024)         /* FAT table bytes read at once */
#define CHUNK (1u << 20)            /* largest Disk I/O read */
#define VERIFY (64u * 1024)         /* compared at each end of the file */
#define NAME_MAX_UNITS 256

typedef struct extent {
    uint64_t file_off;
    uint64_t vol_off;
    uint64_t len;
} extent;

typedef struct fat_vol {
    EFI_DISK_IO *dio;
    UINT32 media_id;
    int type;                   /* 12, 16 or 32 */
    uint32_t cluster_bytes;
    uint32_t clusters;          /* data clusters: numbers 2 .. clusters + 1 */
    uint64_t fat_off, fat_bytes;
    uint64_t root_off;          /* FAT12/16: the fixed root directory */
    uint32_t root_bytes;
    uint32_t root_cluster;      /* FAT32 */
    uint64_t data_off;
    uint8_t *win;               /* a window of the FAT table */
    uint64_t win_off;
    size_t win_len;
} fat_vol;

typedef struct fatmap {
    qb_backend base;
    EFI_DISK_IO *dio;
    UINT32 media_id;
    uint64_t size;
    size_t n, cap;
    extent *ext;            /* the clusters mapped, in file order */
    uint64_t mapped;        /* bytes of clusters in ext */
    uint32_t last;          /* the last cluster in ext */
    /* Writable maps: the file as the file system serves it, for writes,
     * flushes and size changes, and the volume, to map the clusters the
     * file gains. */
    qb_backend *file;
    fat_vol vol;
    bool dirty;             /* written through `file` since its last flush */
    const char *rel;        /* the path on the volume, inside name */
    char name[];
} fatmap;

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

static int vol_read(const fat_vol *v, uint64_t off, void *buf, size_t len, qb_err *err)
{
    EFI_STATUS st = v->dio->ReadDisk(v->dio, v->media_id, off, len, buf);

    if (st != EFI_SUCCESS)
        return qb_err_set(err, qb_efi_errcode(st), "volume read of %zu bytes at %llu: %s", len,
                          (unsigned long long)off, qb_efi_strstatus(st));
    return QB_OK;
}

/* The boot sector, as the FAT specification (and EDK2's driver) reads it. */
static int vol_open(fat_vol *v, qb_err *err)
{
    uint8_t bs[512];
    uint32_t bps, spc, rsvd, nfats, root_ents, tot, fatsz, root_secs, first_data;

    if (vol_read(v, 0, bs, sizeof bs, err) < 0)
        return err->code;
    if (memcmp(bs + 3, "EXFAT   ", 8) == 0)
        return qb_err_set(err, QB_EUNSUPP, "exFAT");
    bps = le16(bs + 11);
    spc = bs[13];
    rsvd = le16(bs + 14);
    nfats = bs[16];
    root_ents = le16(bs + 17);
    tot = le16(bs + 19) ? le16(bs + 19) : le32(bs + 32);
    fatsz = le16(bs + 22) ? le16(bs + 22) : le32(bs + 36);
    if ((bps != 512 && bps != 1024 && bps != 2048 && bps != 4096) || !spc || (spc & (spc - 1)) ||
        bps * spc > 256u * 1024 || !rsvd || !nfats || !fatsz || bs[510] != 0x55 || bs[511] != 0xaa)
        return qb_err_set(err, QB_EUNSUPP, "no FAT boot sector");
    root_secs = (root_ents * 32 + bps - 1) / bps;
    first_data = rsvd + nfats * fatsz + root_secs;
    if (first_data >= tot)
        return qb_err_set(err, QB_EUNSUPP, "no FAT boot sector");
    v->cluster_bytes = bps * spc;
    v->clusters = (tot - first_data) / spc;
    v->type = v->clusters < 4085 ? 12 : v->clusters < 65525 ? 16 : 32;
    v->fat_off = (uint64_t)rsvd * bps;
    v->fat_bytes = (uint64_t)fatsz * bps;
    v->root_off = (uint64_t)(rsvd + nfats * fatsz) * bps;
    v->root_bytes = root_secs * bps;
    v->root_cluster = le32(bs + 44);
    v->data_off = (uint64_t)first_data * bps;
    if (v->type == 32 ? root_ents != 0 : root_ents == 0)
        return qb_err_set(err, QB_EUNSUPP, "inconsistent FAT boot sector");
    return QB_OK;
}

static bool valid_cluster(const fat_vol *v, uint32_t c)
{
    return c >= 2 && c - 2 < v->clusters;
}

/* The FAT entry of cluster c: the next cluster, or 0 at the end of the
 * chain. */
static int fat_next(fat_vol *v, uint32_t c, uint32_t *next, qb_err *err)
{
    uint64_t off = v->type == 12 ? c + c / 2 : (uint64_t)c * (v->type / 8);
    size_t need = v->type == 32 ? 4 : 2;
    uint32_t e, eoc;
    const uint8_t *p;

    if (off + need > v->fat_bytes)
        return qb_err_set(err, QB_ECORRUPT, "cluster %u outside the FAT", (unsigned)c);
    if (off < v->win_off || off + need > v->win_off + v->win_len) {
        v->win_off = off & ~(uint64_t)511;
        v->win_len = v->fat_bytes - v->win_off < WINDOW ? (size_t)(v->fat_bytes - v->win_off)
                                                        : WINDOW;
        if (vol_read(v, v->fat_off + v->win_off, v->win, v->win_len, err) < 0) {
            v->win_len = 0;
            return err->code;
        }
    }
    p = v->win + (off - v->win_off);
    if (v->type == 12) {
        e = le16(p);
        e = c & 1 ? e >> 4 : e & 0xfff;
        eoc = 0xff8;
    } else if (v->type == 16) {
        e = le16(p);
        eoc = 0xfff8;
    } else {
        e = le32(p) & 0x0fffffff;
        eoc = 0x0ffffff8;
    }
    if (e >= eoc) {
        *next = 0;
        return QB_OK;
    }
    if (!valid_cluster(v, e))
        return qb_err_set(err, QB_ECORRUPT, "cluster %u: bad FAT entry 0x%x", (unsigned)c,
                          (unsigned)e);
    *next = e;
    return QB_OK;
}

static uint64_t cluster_off(const fat_vol *v, uint32_t c)
{
    return v->data_off + (uint64_t)(c - 2) * v->cluster_bytes;
}

/* Reads a whole directory (the fixed root when cluster is 0 on FAT12/16)
 * into a buffer from qb_efi_alloc. */
static int read_dir(fat_vol *v, uint32_t cluster, uint8_t **out, size_t *len, qb_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;

    if (cluster == 0 && v->type != 32) {
        buf = qb_malloc(&qb_efi_alloc, v->root_bytes ? v->root_bytes : 1);
        if (!buf)
            return qb_err_set(err, QB_ENOMEM, "out of memory");
        if (vol_read(v, v->root_off, buf, v->root_bytes, err) < 0) {
            qb_free(&qb_efi_alloc, buf);
            return err->code;
        }
        *out = buf;
        *len = v->root_bytes;
        return QB_OK;
    }
    if (cluster == 0)
        cluster = v->root_cluster;
    for (uint32_t guard = 0; cluster; guard++) {
        if (!valid_cluster(v, cluster) || guard >= v->clusters || n > (64u << 20)) {
            qb_free(&qb_efi_alloc, buf);
            return qb_err_set(err, QB_ECORRUPT, "bad directory cluster chain");
        }
        if (n + v->cluster_bytes > cap) {
            size_t ncap = cap ? cap * 2 : v->cluster_bytes * 4;
            uint8_t *nb = qb_malloc(&qb_efi_alloc, ncap);
            if (!nb) {
                qb_free(&qb_efi_alloc, buf);
                return qb_err_set(err, QB_ENOMEM, "out of memory");
            }
            if (n)
                memcpy(nb, buf, n);
            qb_free(&qb_efi_alloc, buf);
            buf = nb;
            cap = ncap;
        }
        if (vol_read(v, cluster_off(v, cluster), buf + n, v->cluster_bytes, err) < 0 ||
            fat_next(v, cluster, &cluster, err) < 0) {
            qb_free(&qb_efi_alloc, buf);
            return err->code;
        }
        n += v->cluster_bytes;
    }
    *out = buf;
    *len = n;
    return QB_OK;
}

/* Case folding as the firmware's collation does it for names: ASCII and
 * Latin-1 letters. */
static uint16_t fold(uint16_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7))
        return (uint16_t)(c - 0x20);
    return c;
}

static bool same_name(const uint16_t *a, const uint16_t *b)
{
    for (; *a || *b; a++, b++)
        if (fold(*a) != fold(*b))
            return false;
    return true;
}

static uint8_t sfn_checksum(const uint8_t *name)
{
    uint8_t sum = 0;

    for (int i = 0; i < 11; i++)
        sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + name[i]);
    return sum;
}

/* "NAME.EXT" of a short entry, trailing spaces dropped. */
static void short_name(const uint8_t *e, uint16_t *out)
{
    int n = 0, i;

    for (i = 0; i < 8 && e[i] != ' '; i++)
        out[n++] = (uint16_t)(i == 0 && e[0] == 0x05 ? 0xe5 : e[i]);
    if (e[8] != ' ') {
        out[n++] = '.';
        for (i = 8; i < 11 && e[i] != ' '; i++)
            out[n++] = e[i];
    }
    out[n] = 0;
}

/* Finds `name` in the directory at `cluster`: its entry (32 bytes). */
static int find_entry(fat_vol *v, uint32_t cluster, const uint16_t *name, uint8_t entry[32],
                      qb_err *err)
{
    uint16_t lfn[NAME_MAX_UNITS + 16], sfn[16];
    uint8_t *dir = NULL, chk = 0;
    size_t len = 0;
    int lfn_next = 0;       /* ordinal expected next, 0: no long name pending */
    bool lfn_ok = false;
    int r = QB_ENOENT;

    if (read_dir(v, cluster, &dir, &len, err) < 0)
        return err->code;
    for (size_t off = 0; off + 32 <= len; off += 32) {
        const uint8_t *e = dir + off;
        if (e[0] == 0x00)
            break;
        if (e[0] == 0xe5) {
            lfn_next = 0;
            continue;
        }
        if ((e[11] & 0x3f) == 0x0f) {
            int ord = e[0] & 0x1f;
            if (e[0] & 0x40) {
                lfn_next = ord;
                chk = e[13];
                memset(lfn, 0, sizeof lfn);
                lfn_ok = ord >= 1 && ord * 13 <= NAME_MAX_UNITS;
            } else if (ord != lfn_next || e[13] != chk) {
                lfn_ok = false;
            }
            if (lfn_ok && ord >= 1) {
                static const uint8_t at[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 };
                for (int i = 0; i < 13; i++) {
                    uint16_t c = le16(e + at[i]);
                    lfn[(ord - 1) * 13 + i] = c == 0xffff ? 0 : c;
                }
            }
            lfn_next = ord - 1;
            continue;
        }
        if (e[11] & 0x08) {             /* volume label */
            lfn_next = 0;
            lfn_ok = false;
            continue;
        }
        short_name(e, sfn);
        bool has_lfn = lfn_ok && lfn_next == 0 && chk == sfn_checksum(e);
        lfn_ok = false;
        lfn_next = 0;
        if ((has_lfn && same_name(lfn, name)) || same_name(sfn, name)) {
            memcpy(entry, e, 32);
            r = QB_OK;
            break;
        }
    }
    qb_free(&qb_efi_alloc, dir);
    if (r == QB_ENOENT)
        qb_err_set(err, QB_ENOENT, "not found in its directory");
    return r;
}

/* The directory entry of the file at `path` ("\dir\file"): its first
 * cluster and size. */
static int find_file(fat_vol *v, const char *path, uint32_t *first, uint64_t *size, qb_err *err)
{
    uint16_t name[NAME_MAX_UNITS + 1];
    uint8_t e[32];
    uint32_t cluster = 0, c;
    const char *p = path;

    while (*p == '\\')
        p++;
    for (;;) {
        char comp[NAME_MAX_UNITS * 3 + 1];
        const char *q = strchr(p, '\\');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (!l || l >= sizeof comp)
            return qb_err_set(err, QB_EINVAL, "bad path");
        memcpy(comp, p, l);
        comp[l] = '\0';
        if (qb_utf8_to_ucs2(comp, name, NAME_MAX_UNITS + 1) < 0)
            return qb_err_set(err, QB_EINVAL, "name not representable");
        if (find_entry(v, cluster, name, e, err) < 0)
            return err->code;
        c = (v->type == 32 ? (uint32_t)le16(e + 20) << 16 : 0) | le16(e + 26);
        if (!q)
            break;
        if (!(e[11] & 0x10))
            return qb_err_set(err, QB_ENOENT, "not a directory on the way");
        cluster = c;
        p = q + 1;
    }
    if (e[11] & 0x10)
        return qb_err_set(err, QB_EINVAL, "a directory");
    *first = c;
    *size = le32(e + 28);
    return QB_OK;
}

/* Appends cluster c at the end of the map. */
static int add_cluster(fatmap *m, const fat_vol *v, uint32_t c, qb_err *err)
{
    uint64_t off = cluster_off(v, c);

    if (m->n && m->ext[m->n - 1].vol_off + m->ext[m->n - 1].len == off) {
        m->ext[m->n - 1].len += v->cluster_bytes;
    } else {
        if (m->n == m->cap) {
            size_t ncap = m->cap ? m->cap * 2 : 16;
            extent *ne = qb_malloc(&qb_efi_alloc, ncap * sizeof *ne);
            if (!ne)
                return qb_err_set(err, QB_ENOMEM, "out of memory");
            if (m->n)
                memcpy(ne, m->ext, m->n * sizeof *ne);
            qb_free(&qb_efi_alloc, m->ext);
            m->ext = ne;
            m->cap = ncap;
        }
        m->ext[m->n++] = (extent){ m->mapped, off, v->cluster_bytes };
    }
    m->mapped += v->cluster_bytes;
    m->last = c;
    return QB_OK;
}

/* Maps clusters until the map covers `size` bytes: from `first` when the
 * map is empty, else on from its last cluster. */
static int map_to(fatmap *m, fat_vol *v, uint32_t first, uint64_t size, qb_err *err)
{
    uint32_t c = m->n ? m->last : first;

    if (!m->n && size && !valid_cluster(v, c))
        return qb_err_set(err, QB_ECORRUPT, "bad first cluster %u", (unsigned)c);
    for (uint64_t guard = 0; m->mapped < size; guard++) {
        if (m->n) {
            if (guard > v->clusters || fat_next(v, c, &c, err) < 0)
                return guard > v->clusters ? qb_err_set(err, QB_ECORRUPT, "cluster chain loops")
                                           : err->code;
            if (!c)
                return qb_err_set(err, QB_ECORRUPT, "cluster chain shorter than the file");
        }
        if (add_cluster(m, v, c, err) < 0)
            return err->code;
    }
    return QB_OK;
}

/* Maps the clusters the file gained since it was last mapped, as the FAT
 * on the volume now records them (the file system flushed its caches). A
 * file that had none has a new first cluster in its directory entry. */
static int map_growth(fatmap *m, qb_err *err)
{
    uint32_t first = 0;
    uint64_t size;

    if (m->mapped >= m->size)
        return QB_OK;
    m->vol.win_len = 0;         /* the FAT changed under the window */
    if (!m->n && find_file(&m->vol, m->rel, &first, &size, err) < 0)
        return err->code;
    return map_to(m, &m->vol, first, m->size, err);
}

/* Forgets the clusters past a new, smaller size (the file system freed
 * them). */
static void map_shrink(fatmap *m, uint64_t size)
{
    uint64_t keep = (size + m->vol.cluster_bytes - 1) / m->vol.cluster_bytes *
                    m->vol.cluster_bytes;

    while (m->n && m->ext[m->n - 1].file_off >= keep)
        m->n--;
    if (m->n && m->ext[m->n - 1].file_off + m->ext[m->n - 1].len > keep) {
        extent *x = &m->ext[m->n - 1];
        x->len = keep - x->file_off;
    }
    m->mapped = m->n ? m->ext[m->n - 1].file_off + m->ext[m->n - 1].len : 0;
    if (m->n)
        m->last = (uint32_t)((m->ext[m->n - 1].vol_off + m->ext[m->n - 1].len -
                              m->vol.data_off) / m->vol.cluster_bytes + 1);
}

static fatmap *map_of(qb_backend *b)
{
    return (fatmap *)b;
}

static int map_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    fatmap *m = map_of(b);
    uint8_t *p = buf;
    size_t lo = 0, hi = m->n;

    /* Unflushed writes may still sit in the file system's cache. Only the
     * engine reads then, between a write and its flush, where the file
     * system may be called (see efi_blockio.c). */
    if (m->dirty)
        return m->file->vt->read(m->file, off, buf, len, err);
    /* The extent holding off (extents are in file order, without gaps). */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ext[mid].file_off <= off)
            lo = mid;
        else
            hi = mid;
    }
    while (len && off < m->size) {
        const extent *x = &m->ext[lo];
        uint64_t in = off - x->file_off;
        size_t n = len;
        EFI_STATUS st;

        if (in >= x->len) {
            if (++lo >= m->n)
                return qb_err_set(err, QB_EIO, "%s: offset %llu outside the file's clusters",
                                  m->name, (unsigned long long)off);
            continue;
        }
        if (n > x->len - in)
            n = (size_t)(x->len - in);
        if (n > m->size - off)
            n = (size_t)(m->size - off);
        if (n > CHUNK)
            n = CHUNK;
        st = m->dio->ReadDisk(m->dio, m->media_id, x->vol_off + in, n, p);
        if (st != EFI_SUCCESS)
            return qb_err_set(err, qb_efi_errcode(st),
                              "%s: read of %zu bytes at offset %llu failed: %s", m->name, n,
                              (unsigned long long)off, qb_efi_strstatus(st));
        p += n;
        off += n;
        len -= n;
    }
    memset(p, 0, len);
    return QB_OK;
}

static int map_write(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    fatmap *m = map_of(b);
    int r;

    if (!m->file)
        return qb_err_set(err, QB_EROFS, "%s: opened read-only", m->name);
    m->dirty = true;
    r = m->file->vt->write(m->file, off, buf, len, err);
    if (r == QB_OK && off + len > m->size)
        m->size = off + len;
    else if (r < 0) {
        /* Whatever part of it reached the file, flushed now: the engine
         * may not flush after a failed write, and reads must not go on
         * through the file system (they may come under the FAT lock). */
        qb_err ignored;
        m->file->vt->get_size(m->file, &m->size, &ignored);
        if (m->file->vt->flush(m->file, &ignored) == QB_OK && map_growth(m, &ignored) == QB_OK)
            m->dirty = false;
    }
    return r;
}

static int map_flush(qb_backend *b, qb_err *err)
{
    fatmap *m = map_of(b);

    if (!m->file)
        return QB_OK;
    if (m->file->vt->flush(m->file, err) < 0)
        return err->code;
    if (map_growth(m, err) < 0)
        return qb_err_prefix(err, "%s: cannot map the clusters the file gained: ", m->name);
    m->dirty = false;
    return QB_OK;
}

static int map_get_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    *size = map_of(b)->size;
    return QB_OK;
}

static int map_set_size(qb_backend *b, uint64_t size, qb_err *err)
{
    fatmap *m = map_of(b);
    int r;

    if (!m->file)
        return qb_err_set(err, QB_EROFS, "%s: opened read-only", m->name);
    m->dirty = true;
    r = m->file->vt->set_size(m->file, size, err);
    if (r == QB_OK) {
        m->size = size;
        if (size < m->mapped)
            map_shrink(m, size);
    }
    return r;
}

/* As the file backend: no holes before the end of the file. */
static int map_extent(qb_backend *b, uint64_t off, uint64_t len, bool *hole, uint64_t *n,
                      qb_err *err)
{
    fatmap *m = map_of(b);

    *hole = off >= m->size;
    *n = *hole || len <= m->size - off ? len : m->size - off;
    return QB_OK;
}

static int map_allocated(qb_backend *b, uint64_t *bytes, qb_err *err)
{
    *bytes = map_of(b)->mapped;
    return QB_OK;
}

static void map_close(qb_backend *b)
{
    fatmap *m = map_of(b);

    if (m->file)
        m->file->vt->close(m->file);
    qb_free(&qb_efi_alloc, m->vol.win);
    qb_free(&qb_efi_alloc, m->ext);
    qb_free(&qb_efi_alloc, m);
}

static const qb_backend_class map_class = {
    .read = map_read,
    .write = map_write,
    .flush = map_flush,
    .get_size = map_get_size,
    .set_size = map_set_size,
    .extent = map_extent,
    .allocated = map_allocated,
    .close = map_close,
};

/* The first and last VERIFY bytes read alike through both backends. */
static int verify(qb_backend *map, qb_backend *file, uint64_t size, qb_err *err)
{
    size_t n = size < VERIFY ? (size_t)size : VERIFY;
    uint8_t *a = qb_malloc(&qb_efi_alloc, 2 * VERIFY);
    uint8_t *b = a + VERIFY;
    int r = QB_OK;

    if (!a)
        return qb_err_set(err, QB_ENOMEM, "out of memory");
    for (int end = 0; end < 2 && r == QB_OK; end++) {
        uint64_t off = end ? size - n : 0;
        if (map->vt->read(map, off, a, n, err) < 0 || file->vt->read(file, off, b, n, err) < 0)
            r = err->code;
        else if (memcmp(a, b, n) != 0)
            r = qb_err_set(err, QB_ECORRUPT, "the clusters found differ from the file's data");
    }
    qb_free(&qb_efi_alloc, a);
    return r;
}

int qb_efi_fatmap(const char *path, bool writable, qb_backend **file, qb_err *err)
{
    char dev[QB_EFI_DEV_MAX] = "";
    int dl = qb_efi_path_devlen(path);
    EFI_BLOCK_IO *bio;
    EFI_HANDLE vh;
    fatmap *m = NULL;
    uint64_t fsize;
    uint32_t first;
    int r;

    if (dl >= QB_EFI_DEV_MAX)
        return qb_err_set(err, QB_EINVAL, "device name too long");
    if (dl > 0)
        memcpy(dev, path, (size_t)dl);
    if (qb_efi_volume_handle(dev, &vh, err) < 0)
        return err->code;
    m = qb_zalloc(&qb_efi_alloc, sizeof *m + strlen(path) + 1);
    if (!m)
        return qb_err_set(err, QB_ENOMEM, "out of memory");
    m->base.vt = &map_class;
    memcpy(m->name, path, strlen(path) + 1);
    m->rel = m->name + (dl > 0 ? dl + 1 : 0);
    if (BS->HandleProtocol(vh, &DiskIoProtocol, (void **)&m->vol.dio) != EFI_SUCCESS ||
        BS->HandleProtocol(vh, &BlockIoProtocol, (void **)&bio) != EFI_SUCCESS) {
        r = qb_err_set(err, QB_EUNSUPP, "the volume has no Disk I/O");
        goto out;
    }
    m->vol.media_id = bio->Media->MediaId;
    m->dio = m->vol.dio;
    m->media_id = m->vol.media_id;
    r = vol_open(&m->vol, err);
    if (r < 0)
        goto out;
    m->vol.win = qb_malloc(&qb_efi_alloc, WINDOW);
    if (!m->vol.win) {
        r = qb_err_set(err, QB_ENOMEM, "out of memory");
        goto out;
    }
    r = find_file(&m->vol, m->rel, &first, &m->size, err);
    if (r == QB_OK)
        r = map_to(m, &m->vol, first, m->size, err);
    if (r < 0)
        goto out;
    if ((*file)->vt->get_size(*file, &fsize, err) < 0) {
        r = err->code;
        goto out;
    }
    if (fsize != m->size) {
        r = qb_err_set(err, QB_ECORRUPT, "size %llu in the directory, %llu from the file system",
                       (unsigned long long)m->size, (unsigned long long)fsize);
        goto out;
    }
    r = verify(&m->base, *file, m->size, err);
    if (r < 0)
        goto out;
    if (writable) {
        m->file = *file;
    } else {
        (*file)->vt->close(*file);
        qb_free(&qb_efi_alloc, m->vol.win);
        m->vol.win = NULL;
    }
    *file = &m->base;
    m = NULL;
out:
    if (m)
        map_close(&m->base);
    return r;
}
