/* The in-memory opener (see mem_files.h). */
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "mem_files.h"
#include "qb_path.h"

typedef struct mem_file_backend {
    qb_mem_backend mem;     /* the engine's read-only memory backend */
    qb_backend_class vt;    /* its class with our close */
    mem_files *owner;
} mem_file_backend;

static void mfb_close(qb_backend *b)
{
    mem_file_backend *m = (mem_file_backend *)b;
    m->owner->open_now--;
    free(m);
}

static const char *last_component(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int mf_open(void *ctx, const char *relative_to, const char *name, bool writable,
                   qb_backend **out, char *resolved, qb_err *err)
{
    mem_files *m = ctx;
    if (writable)
        return qb_err_set(err, QB_EROFS, "%s: the test serves backing files read-only", name);
    char path[QB_PATH_MAX];
    if (!qb_path_combine(path, sizeof(path), relative_to, name))
        return qb_err_set(err, QB_EINVAL, "file name too long: %s", name);
    for (unsigned i = 0; i < m->n; i++) {
        if (strcmp(m->f[i].name, last_component(path)) != 0)
            continue;
        mem_file_backend *b = calloc(1, sizeof(*b));
        if (!b)
            return qb_err_set(err, QB_ENOMEM, "no memory for %s", path);
        qb_mem_backend_init(&b->mem, m->f[i].data, m->f[i].size);
        b->vt = *b->mem.base.vt;
        b->vt.close = mfb_close;
        b->mem.base.vt = &b->vt;
        b->owner = m;
        m->open_now++;
        snprintf(resolved, QB_PATH_MAX, "%s", path);
        *out = &b->mem.base;
        return QB_OK;
    }
    return qb_err_set(err, QB_ENOENT, "%s: no such file", path);
}

qb_opener mem_files_opener(mem_files *m)
{
    return (qb_opener){ m, mf_open, NULL };
}

uint8_t *read_whole_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *p = realloc(data, cap);
            if (!p) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = p;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return NULL;
    }
    *size = n;
    return data;
}

bool write_whole_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

bool write_sparse_file(const char *path, const void *data, size_t size)
{
    static const uint8_t zero[4096];
    const uint8_t *p = data;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return false;
    bool ok = true;
    for (size_t off = 0; ok && off < size;) {
        size_t n = size - off < sizeof(zero) ? size - off : sizeof(zero);
        size_t run = n;
        /* Gather a run of non-zero blocks into one write. */
        if (memcmp(p + off, zero, n) != 0) {
            while (off + run < size) {
                size_t m = size - off - run < sizeof(zero) ? size - off - run : sizeof(zero);
                if (memcmp(p + off + run, zero, m) == 0)
                    break;
                run += m;
            }
            ok = pwrite(fd, p + off, run, (off_t)off) == (ssize_t)run;
        }
        off += run;
    }
    ok = ok && ftruncate(fd, (off_t)size) == 0;
    return close(fd) == 0 && ok;
}

bool mem_files_load(mem_files *m, const char *name, const char *path)
{
    if (m->n == MEM_FILES_MAX || strlen(name) >= sizeof(m->f[0].name))
        return false;
    mem_file *f = &m->f[m->n];
    f->data = read_whole_file(path, &f->size);
    if (!f->data)
        return false;
    snprintf(f->name, sizeof(f->name), "%s", name);
    m->n++;
    return true;
}

void mem_files_free(mem_files *m)
{
    for (unsigned i = 0; i < m->n; i++)
        free(m->f[i].data);
    memset(m, 0, sizeof(*m));
}
