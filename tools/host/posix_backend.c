/* qb_backend over a POSIX file descriptor, and the opener that resolves
 * image and backing file names on the host. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "posix_backend.h"

typedef struct posix_backend {
    qb_backend base;
    int fd;
    char *path;
    /* The last extent the file system reported, [ext_start, ext_end):
     * scans of many small ranges ask about the same extent again and again. */
    uint64_t ext_start, ext_end;
    bool ext_hole;
} posix_backend;

static int io_error(qb_err *err, const posix_backend *p, const char *op, uint64_t off)
{
    return qb_err_set(err, QB_EIO, "%s: %s at offset %llu failed: %s", p->path, op,
                      (unsigned long long)off, strerror(errno));
}

static int px_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    uint8_t *out = buf;
    while (len) {
        ssize_t n = pread(p->fd, out, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return io_error(err, p, "read", off);
        }
        if (n == 0) {   /* past the end of the file: zeros, as the contract says */
            memset(out, 0, len);
            return QB_OK;
        }
        out += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return QB_OK;
}

static int px_write(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    p->ext_end = 0;     /* the extents may change */
    const uint8_t *in = buf;
    while (len) {
        ssize_t n = pwrite(p->fd, in, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return io_error(err, p, "write", off);
        }
        in += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return QB_OK;
}

static int px_flush(qb_backend *b, qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    if (fdatasync(p->fd) < 0 && errno != EINVAL && errno != EROFS)
        return io_error(err, p, "flush", 0);
    return QB_OK;
}

static int px_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    struct stat st;
    if (fstat(p->fd, &st) < 0)
        return io_error(err, p, "stat", 0);
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(p->fd, 0, SEEK_END);
        if (end < 0)
            return io_error(err, p, "seek", 0);
        *size = (uint64_t)end;
        return QB_OK;
    }
    *size = (uint64_t)st.st_size;
    return QB_OK;
}

static int px_set_size(qb_backend *b, uint64_t size, qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    p->ext_end = 0;
    if (ftruncate(p->fd, (off_t)size) < 0)
        return io_error(err, p, "truncate", size);
    return QB_OK;
}

static int px_extent_query(posix_backend *p, uint64_t off, uint64_t len, bool *hole,
                           uint64_t *n);

/* Holes as the file system reports them (SEEK_DATA/SEEK_HOLE), the same
 * source qemu-img uses. */
static int px_extent(qb_backend *b, uint64_t off, uint64_t len, bool *hole, uint64_t *n,
                     qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    if (off >= p->ext_start && off < p->ext_end) {
        *hole = p->ext_hole;
        *n = p->ext_end - off < len ? p->ext_end - off : len;
        return QB_OK;
    }
    int r = px_extent_query(p, off, len, hole, n);
    if (*n) {
        p->ext_start = off;
        p->ext_end = off + *n;
        p->ext_hole = *hole;
    }
    return r;
}

/* Asks the file system (SEEK_DATA/SEEK_HOLE). */
static int px_extent_query(posix_backend *p, uint64_t off, uint64_t len, bool *hole, uint64_t *n)
{
    off_t data = lseek(p->fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {           /* no data after off: a hole to EOF */
            *hole = true;
            *n = len;
            return QB_OK;
        }
        *hole = false;                  /* no hole support: all data */
        *n = len;
        return QB_OK;
    }
    if ((uint64_t)data > off) {
        *hole = true;
        *n = (uint64_t)data - off < len ? (uint64_t)data - off : len;
        return QB_OK;
    }
    off_t h = lseek(p->fd, (off_t)off, SEEK_HOLE);
    *hole = false;
    *n = h < 0 || (uint64_t)h - off > len ? len : (uint64_t)h - off;
    if (*n == 0)
        *n = len;
    return QB_OK;
}

static int px_allocated(qb_backend *b, uint64_t *bytes, qb_err *err)
{
    posix_backend *p = (posix_backend *)b;
    struct stat st;
    if (fstat(p->fd, &st) < 0)
        return io_error(err, p, "stat", 0);
    *bytes = (uint64_t)st.st_blocks * 512;
    return QB_OK;
}

static void px_close(qb_backend *b)
{
    posix_backend *p = (posix_backend *)b;
    close(p->fd);
    free(p->path);
    free(p);
}

static const qb_backend_class posix_class = {
    .read = px_read,
    .write = px_write,
    .flush = px_flush,
    .get_size = px_size,
    .set_size = px_set_size,
    .extent = px_extent,
    .allocated = px_allocated,
    .close = px_close,
};

int posix_backend_open(const char *path, int flags, qb_backend **out, qb_err *err)
{
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return qb_err_set(err, errno == ENOENT ? QB_ENOENT : QB_EIO, "could not open '%s': %s",
                          path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return qb_err_set(err, QB_EINVAL, "could not open '%s': is a directory", path);
    }
    posix_backend *p = calloc(1, sizeof(*p));
    char *copy = strdup(path);
    if (!p || !copy) {
        free(p);
        free(copy);
        close(fd);
        return qb_err_set(err, QB_ENOMEM, "out of memory");
    }
    p->base.vt = &posix_class;
    p->fd = fd;
    p->path = copy;
    *out = &p->base;
    return QB_OK;
}

static int px_open(void *ctx, const char *relative_to, const char *name, bool writable,
                   qb_backend **out, char *resolved, qb_err *err)
{
    char path[QB_PATH_MAX];
    if (!qb_path_combine(path, sizeof(path), relative_to, name))
        return qb_err_set(err, QB_EINVAL, "file name too long: %s", name);
    int r = posix_backend_open(path, writable ? O_RDWR : O_RDONLY, out, err);
    if (r)
        return r;
    char real[PATH_MAX];
    if (realpath(path, real) && strlen(real) < QB_PATH_MAX)
        strcpy(resolved, real);
    else
        snprintf(resolved, QB_PATH_MAX, "%s", path);
    return QB_OK;
}

static int px_create(void *ctx, const char *path, qb_backend **out, qb_err *err)
{
    return write_behind_create(path, out, err);
}

const qb_opener posix_opener = { NULL, px_open, px_create };
