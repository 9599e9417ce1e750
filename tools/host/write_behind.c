/*
 * An output file written by a background thread. The engine is
 * single-threaded by design (firmware gives us one CPU); on the host, the
 * kernel's copy of output data into the page cache is the largest cost of
 * `convert`, so it runs beside the engine instead of after it: write()
 * copies the data into a free slot and returns, the thread pwrite()s the
 * slots in order. flush, set_size and close wait until every slot is
 * written; the first write error is reported by the next call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "posix_backend.h"

#define WB_SLOTS 6
#define WB_SLOT_SIZE (2u << 20)

typedef struct wb_slot {
    uint8_t *data;
    size_t len;
    uint64_t off;
} wb_slot;

typedef struct write_behind {
    qb_backend base;
    int fd;
    char *path;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    wb_slot slots[WB_SLOTS];
    unsigned head;      /* next slot to fill */
    unsigned tail;      /* next slot to write */
    unsigned used;      /* slots filled, not yet written */
    bool stop;
    int error;          /* first errno from the thread */
    bool error_reported; /* returned to a caller at least once */
    uint64_t error_off;
} write_behind;

static void *wb_thread(void *arg)
{
    write_behind *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->used && !w->stop)
            pthread_cond_wait(&w->changed, &w->lock);
        if (!w->used && w->stop)
            break;
        wb_slot *s = &w->slots[w->tail];
        pthread_mutex_unlock(&w->lock);
        const uint8_t *p = s->data;
        size_t len = s->len;
        uint64_t off = s->off;
        int e = 0;
        while (len) {
            ssize_t n = pwrite(w->fd, p, len, (off_t)off);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                e = errno;
                break;
            }
            p += n;
            off += (uint64_t)n;
            len -= (size_t)n;
        }
        pthread_mutex_lock(&w->lock);
        if (e && !w->error) {
            w->error = e;
            w->error_off = off;
        }
        w->tail = (w->tail + 1) % WB_SLOTS;
        w->used--;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int take_error(write_behind *w, qb_err *err)
{
    if (!w->error)
        return QB_OK;
    w->error_reported = true;
    return qb_err_set(err, QB_EIO, "%s: write at offset %llu failed: %s", w->path,
                      (unsigned long long)w->error_off, strerror(w->error));
}

/* Waits until every queued slot is written. Called with the lock held. */
static void drain_locked(write_behind *w)
{
    while (w->used)
        pthread_cond_wait(&w->changed, &w->lock);
}

/* Waits until every queued slot is written; with err, also returns the
 * first write error so far (it stays set: every later call reports it). */
static int drain(write_behind *w, qb_err *err)
{
    pthread_mutex_lock(&w->lock);
    drain_locked(w);
    int r = err ? take_error(w, err) : QB_OK;
    pthread_mutex_unlock(&w->lock);
    return r;
}

static int wb_write(qb_backend *b, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    write_behind *w = (write_behind *)b;
    const uint8_t *in = buf;
    while (len) {
        size_t n = len < WB_SLOT_SIZE ? len : WB_SLOT_SIZE;
        pthread_mutex_lock(&w->lock);
        while (w->used == WB_SLOTS)
            pthread_cond_wait(&w->changed, &w->lock);
        int r = take_error(w, err);
        wb_slot *s = &w->slots[w->head];
        pthread_mutex_unlock(&w->lock);
        if (r)
            return r;
        /* The slot is ours until `used` counts it. */
        memcpy(s->data, in, n);
        s->len = n;
        s->off = off;
        pthread_mutex_lock(&w->lock);
        w->head = (w->head + 1) % WB_SLOTS;
        w->used++;
        pthread_cond_broadcast(&w->changed);
        pthread_mutex_unlock(&w->lock);
        in += n;
        off += n;
        len -= n;
    }
    return QB_OK;
}

static int wb_read(qb_backend *b, uint64_t off, void *buf, size_t len, qb_err *err)
{
    write_behind *w = (write_behind *)b;
    int r = drain(w, err);
    if (r)
        return r;
    uint8_t *out = buf;
    while (len) {
        ssize_t n = pread(w->fd, out, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qb_err_set(err, QB_EIO, "%s: read at offset %llu failed: %s", w->path,
                              (unsigned long long)off, strerror(errno));
        if (n == 0) {
            memset(out, 0, len);
            break;
        }
        out += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return QB_OK;
}

static int wb_flush(qb_backend *b, qb_err *err)
{
    write_behind *w = (write_behind *)b;
    int r = drain(w, err);
    if (r)
        return r;
    if (fdatasync(w->fd) < 0 && errno != EINVAL && errno != EROFS)
        return qb_err_set(err, QB_EIO, "%s: flush failed: %s", w->path, strerror(errno));
    return QB_OK;
}

static int wb_size(qb_backend *b, uint64_t *size, qb_err *err)
{
    write_behind *w = (write_behind *)b;
    drain(w, NULL);
    struct stat st;
    if (fstat(w->fd, &st) < 0)
        return qb_err_set(err, QB_EIO, "%s: stat failed: %s", w->path, strerror(errno));
    *size = (uint64_t)st.st_size;
    return QB_OK;
}

static int wb_set_size(qb_backend *b, uint64_t size, qb_err *err)
{
    write_behind *w = (write_behind *)b;
    int r = drain(w, err);
    if (r)
        return r;
    if (ftruncate(w->fd, (off_t)size) < 0)
        return qb_err_set(err, QB_EIO, "%s: truncate to %llu failed: %s", w->path,
                          (unsigned long long)size, strerror(errno));
    return QB_OK;
}

static void wb_close(qb_backend *b)
{
    write_behind *w = (write_behind *)b;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (w->error && !w->error_reported)   /* nobody heard of it: say it now */
        fprintf(stderr, "qcowboot: %s: write at offset %llu failed: %s\n", w->path,
                (unsigned long long)w->error_off, strerror(w->error));
    for (unsigned i = 0; i < WB_SLOTS; i++)
        free(w->slots[i].data);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->changed);
    close(w->fd);
    free(w->path);
    free(w);
}

static const qb_backend_class write_behind_class = {
    .read = wb_read,
    .write = wb_write,
    .flush = wb_flush,
    .get_size = wb_size,
    .set_size = wb_set_size,
    .close = wb_close,
};

int write_behind_create(const char *path, qb_backend **out, qb_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return qb_err_set(err, QB_EIO, "could not create '%s': %s", path, strerror(errno));
    write_behind *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(path))) {
        free(w);
        close(fd);
        return qb_err_set(err, QB_ENOMEM, "out of memory");
    }
    w->base.vt = &write_behind_class;
    w->fd = fd;
    for (unsigned i = 0; i < WB_SLOTS; i++) {
        w->slots[i].data = malloc(WB_SLOT_SIZE);
        if (!w->slots[i].data)
            goto nomem;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    if (pthread_create(&w->thread, NULL, wb_thread, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->changed);
        goto nomem;
    }
    *out = &w->base;
    return QB_OK;
nomem:
    for (unsigned i = 0; i < WB_SLOTS; i++)
        free(w->slots[i].data);
    free(w->path);
    free(w);
    close(fd);
    return qb_err_set(err, QB_ENOMEM, "out of memory for the output buffers");
}
