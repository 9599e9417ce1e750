/* Driving the engine over the fault backend (see engine_run.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "count_alloc.h"
#include "engine_run.h"
#include "pattern.h"
#include "qb_cmd.h"
#include "qb_image.h"

static bool failf(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return false;
}

bool run_shell(const char *cmd, char *why, size_t whylen)
{
    char full[4096];
    snprintf(full, sizeof(full), "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return failf(why, whylen, "cannot run: %s", cmd);
    char out[2048];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    while (fread(full, 1, sizeof(full), p) > 0)
        ;
    int st = pclose(p);
    if (st != 0)
        return failf(why, whylen, "'%s' failed (status %d): %s", cmd, st, out);
    return true;
}

/* ---- making the images ---- */

bool wl_setup_make(wl_setup *su, const workload *w, const char *dir, char *why, size_t whylen)
{
    memset(su, 0, sizeof(*su));
    su->w = w;
    snprintf(su->dir, sizeof(su->dir), "%s", dir);
    snprintf(su->image_name, sizeof(su->image_name), "%s.qcow2", w->name);
    char cmd[2048], path[1024];
    su->initial = calloc(1, w->size);
    su->scratch = malloc(w->size);
    if (!su->initial || !su->scratch)
        return failf(why, whylen, "out of memory");
    const char *backing = "";
    char backing_opt[256] = "";
    if (w->base_size) {
        snprintf(su->base_name, sizeof(su->base_name), "%s-base.qcow2", w->name);
        su->base = calloc(1, w->size > w->base_size ? w->size : w->base_size);
        if (!su->base)
            return failf(why, whylen, "out of memory");
        workload_base_content(w, su->base);
        snprintf(path, sizeof(path), "%s/%s-base.raw", dir, w->name);
        if (!write_whole_file(path, su->base, w->base_size))
            return failf(why, whylen, "cannot write %s", path);
        snprintf(cmd, sizeof(cmd),
                 "cd '%s' && qemu-img convert -q -f raw -O qcow2 -o %s %s-base.raw %s && rm %s-base.raw",
                 dir, w->base_opts, w->name, su->base_name, w->name);
        if (!run_shell(cmd, why, whylen))
            return false;
        snprintf(path, sizeof(path), "%s/%s", dir, su->base_name);
        if (!mem_files_load(&su->files, su->base_name, path))
            return failf(why, whylen, "cannot load %s", path);
        memcpy(su->initial, su->base, w->base_size < w->size ? w->base_size : w->size);
        snprintf(backing_opt, sizeof(backing_opt), "-b %s -F qcow2", su->base_name);
        backing = backing_opt;
    }
    snprintf(cmd, sizeof(cmd), "cd '%s' && qemu-img create -q -f qcow2 -o %s %s %s %llu", dir,
             w->opts, backing, su->image_name, (unsigned long long)w->size);
    if (!run_shell(cmd, why, whylen))
        return false;
    snprintf(path, sizeof(path), "%s/%s", dir, su->image_name);
    su->image = read_whole_file(path, &su->image_len);
    if (!su->image)
        return failf(why, whylen, "cannot read %s", path);
    w->build(w, &su->steps);
    su->data = calloc(su->steps.n, sizeof(*su->data));
    if (!su->data)
        return failf(why, whylen, "out of memory");
    for (size_t i = 0; i < su->steps.n; i++) {
        const step *s = &su->steps.s[i];
        if (s->kind != STEP_WRITE && s->kind != STEP_WRITE_COMPRESSED)
            continue;
        su->data[i] = malloc(s->len);
        if (!su->data[i])
            return failf(why, whylen, "out of memory");
        step_data(s, su->data[i]);
    }
    return true;
}

void wl_setup_free(wl_setup *su)
{
    free(su->image);
    free(su->base);
    free(su->initial);
    free(su->scratch);
    mem_files_free(&su->files);
    for (size_t i = 0; su->data && i < su->steps.n; i++)
        free(su->data[i]);
    free(su->data);
    step_list_free(&su->steps);
    memset(su, 0, sizeof(*su));
}

/* ---- warnings ---- */

typedef struct warn_log {
    char first_corrupt[256];
} warn_log;

static void note_warning(void *ctx, const char *msg)
{
    warn_log *l = ctx;
    if (strstr(msg, "corrupt") && !l->first_corrupt[0])
        snprintf(l->first_corrupt, sizeof(l->first_corrupt), "%s", msg);
}

static void base_opts(qb_open_opts *o, const wl_setup *su, qb_alloc alloc, const qb_opener *op,
                      warn_log *wl)
{
    memset(o, 0, sizeof(*o));
    o->alloc = alloc;
    o->opener = op;
    o->warn = (qb_warn){ wl, note_warning };
    o->filename = su->image_name;
    o->format = "qcow2";
    o->l2_cache_bytes = su->w->l2_cache;
}

/* ---- one run ---- */

static const char *step_name(int kind)
{
    switch (kind) {
    case STEP_WRITE: return "write";
    case STEP_ZERO: return "write_zeroes";
    case STEP_DISCARD: return "discard";
    case STEP_FLUSH: return "flush";
    case STEP_SNAP_CREATE: return "snapshot_create";
    case STEP_SNAP_DELETE: return "snapshot_delete";
    case STEP_SNAP_APPLY: return "snapshot_apply";
    case STEP_WRITE_COMPRESSED: return "write_compressed";
    }
    return "?";
}

/* Where two buffers first differ, or len. */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
    size_t i = 0;
    while (i + 4096 <= len && memcmp(a + i, b + i, 4096) == 0)
        i += 4096;
    while (i < len && a[i] == b[i])
        i++;
    return i;
}

/* data: the bytes of a write step (NULL: made here in buf). */
static int do_step(qb_image *img, const step *s, const uint8_t *data, model *m, uint8_t *buf,
                   qb_err *err)
{
    snap_model *sm;
    int r;
    switch (s->kind) {
    case STEP_WRITE:
        if (!data) {
            pattern_fill(buf, s->off, (size_t)s->len, s->seed);
            data = buf;
        }
        model_write(m, s->off, data, s->len);
        return qb_image_write(img, s->off, data, (size_t)s->len, err);
    case STEP_WRITE_COMPRESSED:
        model_write(m, s->off, data, s->len);
        return qb_image_write_compressed(img, s->off, data, (size_t)s->len, err);
    case STEP_ZERO:
        model_zero(m, s->off, s->len);
        return qb_image_write_zeroes(img, s->off, s->len, err);
    case STEP_DISCARD:
        model_discard(m, s->off, s->len);
        return qb_image_discard(img, s->off, s->len, err);
    case STEP_FLUSH:
        r = qb_image_flush(img, err);
        if (r == QB_OK)
            model_flushed(m);
        return r;
    case STEP_SNAP_CREATE:
        sm = model_snapshot_issue(m, s->name);
        r = qb_image_snapshot_create(img, s->name, 1700000000u + s->seed, s->seed, err);
        sm->create_ok = r == QB_OK;
        m->version++;
        return r;
    case STEP_SNAP_DELETE:
        sm = model_snapshot_find(m, s->name);
        if (!sm)
            abort();   /* the workload deletes what it never made */
        sm->delete_issued = true;
        m->version++;
        r = qb_image_snapshot_delete(img, s->name, err);
        sm->delete_ok = r == QB_OK;
        m->version++;
        return r;
    case STEP_SNAP_APPLY:
        sm = model_snapshot_find(m, s->name);
        if (!sm)
            abort();
        model_snapshot_apply(m, sm);
        return qb_image_snapshot_apply(img, s->name, err);
    }
    abort();
}

static bool readback(qb_image *img, const step *s, const model *m, uint8_t *buf,
                     char *why, size_t whylen)
{
    if (s->kind != STEP_WRITE && s->kind != STEP_ZERO && s->kind != STEP_DISCARD &&
        s->kind != STEP_WRITE_COMPRESSED)
        return true;
    qb_err err;
    if (qb_image_read(img, s->off, buf, (size_t)s->len, &err))
        return failf(why, whylen, "read back after %s %llu+%llu: %s", step_name(s->kind),
                     (unsigned long long)s->off, (unsigned long long)s->len, err.msg);
    size_t i = first_diff(buf, m->cur + s->off, (size_t)s->len);
    if (i < s->len)
        return failf(why, whylen,
                     "read back after %s %llu+%llu: byte %llu is 0x%02x, expected 0x%02x",
                     step_name(s->kind), (unsigned long long)s->off,
                     (unsigned long long)s->len, (unsigned long long)(s->off + i), buf[i],
                     m->cur[s->off + i]);
    return true;
}

static uint64_t max_step_len(const step_list *l)
{
    uint64_t n = 1;
    for (size_t i = 0; i < l->n; i++)
        if (l->s[i].len > n)
            n = l->s[i].len;
    return n;
}

bool run_workload(const wl_setup *su, fault_disk *d, model *m, const run_opts *o,
                  char *why, size_t whylen)
{
    fault_disk_reset(d, su->image, su->image_len, o->crash_at);
    model_reset(m, su->initial);
    count_alloc ca;
    qb_alloc alloc = count_alloc_make(&ca);
    mem_files *files = (mem_files *)&su->files;
    qb_opener opener = mem_files_opener(files);
    warn_log wl = { "" };
    qb_open_opts oo;
    base_opts(&oo, su, alloc, &opener, &wl);
    oo.file = fault_disk_backend(d);
    oo.writable = true;
    oo.writethrough = su->w->writethrough;
    if (o->trace)
        o->trace->n = 0;

    bool ok = true;
    qb_err err;
    qb_image *img = NULL;
    uint8_t *buf = malloc(max_step_len(&su->steps));
    if (!buf)
        abort();
    int r = qb_image_open(&img, &oo, &err);
    if (r) {
        img = NULL;
        if (!d->crashed)
            ok = failf(why, whylen, "open writable: %s", err.msg);
    }
    for (size_t i = 0; ok && img && i < su->steps.n; i++) {
        const step *s = &su->steps.s[i];
        bool is_flush = s->kind == STEP_FLUSH;
        if (is_flush && o->trace && o->trace->n < 256)
            o->trace->start[o->trace->n] = d->calls;
        r = do_step(img, s, su->data[i], m, buf, &err);
        if (is_flush && o->trace && o->trace->n < 256)
            o->trace->end[o->trace->n++] = d->calls;
        if (r) {
            if (!d->crashed)
                ok = failf(why, whylen, "step %zu (%s %llu+%llu) failed without a crash: %s", i,
                           step_name(s->kind), (unsigned long long)s->off,
                           (unsigned long long)s->len, err.msg);
            break;
        }
        if (o->readback)
            ok = readback(img, s, m, buf, why, whylen);
        if (su->w->writethrough && s->kind != STEP_SNAP_CREATE && s->kind != STEP_SNAP_DELETE &&
            s->kind != STEP_SNAP_APPLY)
            model_flushed(m);   /* the write returned: it is durable */
    }
    if (img && ok && !d->crashed) {
        r = qb_image_close_flush(img, &err);
        img = NULL;
        if (r == QB_OK)
            model_flushed(m);
        else if (!d->crashed)
            ok = failf(why, whylen, "close_flush failed without a crash: %s", err.msg);
    }
    if (img)
        qb_image_close(img);
    free(buf);
    if (ok && !d->closed)
        ok = failf(why, whylen, "the engine did not close its file");
    if (ok && (ca.live || ca.blocks))
        ok = failf(why, whylen, "leak: %zu bytes in %zu blocks after the run", ca.live,
                   ca.blocks);
    if (ok && files->open_now)
        ok = failf(why, whylen, "%u backing files left open", files->open_now);
    if (ok && wl.first_corrupt[0])
        ok = failf(why, whylen, "warning: %s", wl.first_corrupt);
    return ok;
}

/* ---- checking a crashed image ---- */

/* Reads the whole virtual disk of img into out (size bytes). */
static int read_disk(qb_image *img, uint8_t *out, uint64_t size, qb_err *err)
{
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        size_t n = size - off < (1 << 20) ? (size_t)(size - off) : 1 << 20;
        int r = qb_image_read(img, off, out + off, n, err);
        if (r)
            return r;
    }
    return QB_OK;
}

/* Compares got with want outside the ranges in `skip` (normalized). */
static bool compare_outside(const uint8_t *got, const uint8_t *want, uint64_t size,
                            const range_list *skip, const char *what, char *why, size_t whylen)
{
    uint64_t pos = 0;
    for (size_t i = 0; i <= skip->n; i++) {
        uint64_t end = i < skip->n ? skip->r[i].off : size;
        if (end > pos) {
            size_t d = first_diff(got + pos, want + pos, (size_t)(end - pos));
            if (d < end - pos)
                return failf(why, whylen,
                             "%s: byte %llu reads 0x%02x, expected 0x%02x (stable since the "
                             "last completed flush)",
                             what, (unsigned long long)(pos + d), got[pos + d], want[pos + d]);
        }
        if (i < skip->n && skip->r[i].off + skip->r[i].len > pos)
            pos = skip->r[i].off + skip->r[i].len;
    }
    return true;
}

static bool verify_snapshot(const wl_setup *su, const uint8_t *image, size_t len,
                            snap_model *s, uint8_t *disk, char *why, size_t whylen)
{
    count_alloc ca;
    qb_alloc alloc = count_alloc_make(&ca);
    qb_opener opener = mem_files_opener((mem_files *)&su->files);
    warn_log wl = { "" };
    qb_open_opts oo;
    base_opts(&oo, su, alloc, &opener, &wl);
    qb_mem_backend mb;
    qb_mem_backend_init(&mb, image, len);
    oo.file = &mb.base;
    oo.snapshot = s->name;
    bool must_exist = s->create_durable && !s->delete_issued;
    qb_image *img;
    qb_err err;
    bool ok = true;
    int r = qb_image_open(&img, &oo, &err);
    if (r == QB_ENOENT) {
        if (must_exist)
            ok = failf(why, whylen, "snapshot %s, taken before the last completed flush, is gone",
                       s->name);
    } else if (r) {
        ok = failf(why, whylen, "open snapshot %s: %s", s->name, err.msg);
    } else {
        char what[64];
        snprintf(what, sizeof(what), "snapshot %s", s->name);
        if (s->delete_durable)
            ok = failf(why, whylen, "snapshot %s, deleted before the last completed flush, "
                       "is still there", s->name);
        else if (qb_image_size(img) != su->w->size)
            ok = failf(why, whylen, "snapshot %s: virtual size %llu", s->name,
                       (unsigned long long)qb_image_size(img));
        else if ((r = read_disk(img, disk, su->w->size, &err)))
            ok = failf(why, whylen, "snapshot %s: read: %s", s->name, err.msg);
        else {
            range_list_normalize(&s->unstable);
            ok = compare_outside(disk, s->content, su->w->size, &s->unstable, what, why, whylen);
        }
        qb_image_close(img);
    }
    if (ok && (ca.live || ca.blocks))
        ok = failf(why, whylen, "leak: %zu bytes after reading snapshot %s", ca.live, s->name);
    return ok;
}

bool verify_image(const wl_setup *su, const uint8_t *image, size_t len, model *m,
                  char *why, size_t whylen)
{
    count_alloc ca;
    qb_alloc alloc = count_alloc_make(&ca);
    qb_opener opener = mem_files_opener((mem_files *)&su->files);
    warn_log wl = { "" };
    qb_open_opts oo;
    base_opts(&oo, su, alloc, &opener, &wl);
    qb_mem_backend mb;
    qb_mem_backend_init(&mb, image, len);
    oo.file = &mb.base;
    uint8_t *disk = su->scratch;
    qb_image *img;
    qb_err err;
    bool ok = true;
    if (qb_image_open(&img, &oo, &err)) {
        ok = failf(why, whylen, "open read-only: %s", err.msg);
    } else {
        if (qb_image_size(img) != su->w->size)
            ok = failf(why, whylen, "virtual size %llu, expected %llu",
                       (unsigned long long)qb_image_size(img),
                       (unsigned long long)su->w->size);
        else if (read_disk(img, disk, su->w->size, &err))
            ok = failf(why, whylen, "read: %s", err.msg);
        else {
            range_list_normalize(&m->touched);
            ok = compare_outside(disk, m->dur, su->w->size, &m->touched, "disk", why, whylen);
        }
        qb_image_close(img);
    }
    if (ok && wl.first_corrupt[0])
        ok = failf(why, whylen, "warning: %s", wl.first_corrupt);
    if (ok && (ca.live || ca.blocks))
        ok = failf(why, whylen, "leak: %zu bytes in %zu blocks after reading", ca.live,
                   ca.blocks);
    for (size_t i = 0; ok && i < m->nsnaps; i++)
        ok = verify_snapshot(su, image, len, &m->snaps[i], disk, why, whylen);
    return ok;
}

/* ---- writing again after a crash ---- */

bool write_after_crash(const wl_setup *su, const uint8_t *image, size_t len, model *m,
                       byte_buf *result, char *why, size_t whylen)
{
    const workload *w = su->w;
    uint64_t cs = w->cluster_size;
    step more[6];
    memset(more, 0, sizeof(more));
    more[0] = (step){ STEP_WRITE, w->size / 3 + 123, 150000, 0xA11CEu, "" };
    more[1] = (step){ STEP_ZERO, w->size / 2 / cs * cs, 2 * cs, 0, "" };
    more[2] = (step){ STEP_WRITE, w->size - 70000, 70000, 0xB0Bu, "" };
    more[3] = (step){ STEP_FLUSH, 0, 0, 0, "" };
    more[4] = (step){ STEP_WRITE, 100, 5000, 0xCAFEu, "" };
    more[5] = (step){ STEP_DISCARD, 2 * cs, 2 * cs, 0, "" };

    fault_disk d;
    memset(&d, 0, sizeof(d));
    fault_disk_reset(&d, image, len, 0);
    count_alloc ca;
    qb_alloc alloc = count_alloc_make(&ca);
    qb_opener opener = mem_files_opener((mem_files *)&su->files);
    warn_log wl = { "" };
    qb_open_opts oo;
    base_opts(&oo, su, alloc, &opener, &wl);
    oo.file = fault_disk_backend(&d);
    oo.writable = true;
    uint8_t *disk = malloc(w->size);
    uint8_t *buf = malloc(150000);
    if (!disk || !buf)
        abort();
    model m2;
    memset(&m2, 0, sizeof(m2));
    bool ok = true, have_model = false;
    qb_image *img = NULL;
    qb_err err;
    if (qb_image_open(&img, &oo, &err)) {
        img = NULL;
        ok = failf(why, whylen, "open writable after the crash: %s", err.msg);
    } else if (read_disk(img, disk, w->size, &err)) {
        ok = failf(why, whylen, "read after the crash: %s", err.msg);
    } else {
        range_list_normalize(&m->touched);
        ok = compare_outside(disk, m->dur, w->size, &m->touched, "disk opened writable", why,
                             whylen);
    }
    if (ok) {
        model_init(&m2, w->size, cs, w->v2, su->base, disk);
        have_model = true;
        for (size_t i = 0; ok && i < sizeof(more) / sizeof(more[0]); i++) {
            if (do_step(img, &more[i], NULL, &m2, buf, &err))
                ok = failf(why, whylen, "%s after the crash: %s", step_name(more[i].kind),
                           err.msg);
            else
                ok = readback(img, &more[i], &m2, buf, why, whylen);
        }
    }
    if (ok) {
        int r = qb_image_close_flush(img, &err);
        img = NULL;
        if (r)
            ok = failf(why, whylen, "close_flush after the crash: %s", err.msg);
        else
            model_flushed(&m2);
    }
    if (img)
        qb_image_close(img);
    if (ok && (ca.live || ca.blocks))
        ok = failf(why, whylen, "leak: %zu bytes in %zu blocks after writing again", ca.live,
                   ca.blocks);
    if (ok && wl.first_corrupt[0])
        ok = failf(why, whylen, "warning: %s", wl.first_corrupt);
    byte_buf_set(result, d.cur.p, d.cur.size);
    if (ok)
        ok = verify_image(su, result->p, (size_t)result->size, &m2, why, whylen);
    if (have_model)
        model_free(&m2);
    fault_disk_free(&d);
    free(disk);
    free(buf);
    return ok;
}

/* ---- the engine's check ---- */

typedef struct check_files {
    const wl_setup *su;
    const uint8_t *image;
    size_t len;
    qb_mem_backend mb;
    bool image_open;
} check_files;

/* The image by its name from memory, anything else from the workload's
 * backing files. */
static int check_open(void *ctx, const char *relative_to, const char *name, bool writable,
                      qb_backend **out, char *resolved, qb_err *err)
{
    check_files *c = ctx;
    if (!relative_to && strcmp(name, c->su->image_name) == 0 && !writable && !c->image_open) {
        qb_mem_backend_init(&c->mb, c->image, c->len);
        c->image_open = true;
        snprintf(resolved, QB_PATH_MAX, "%s", name);
        *out = &c->mb.base;
        return QB_OK;
    }
    qb_opener o = mem_files_opener((mem_files *)&c->su->files);
    return o.open(o.ctx, relative_to, name, writable, out, resolved, err);
}

typedef struct text_buf {
    char *p;
    size_t n, cap;
} text_buf;

static void text_write(void *ctx, const char *s, size_t n)
{
    text_buf *t = ctx;
    for (size_t i = 0; i < n && t->n + 1 < t->cap; i++)
        t->p[t->n++] = s[i];
    t->p[t->n] = 0;
}

int engine_check(const wl_setup *su, const uint8_t *image, size_t len, char *out,
                 size_t outlen)
{
    check_files files = { su, image, len, { { NULL }, NULL, 0 }, false };
    count_alloc ca;
    text_buf text = { out, 0, outlen };
    out[0] = 0;
    qb_env env;
    memset(&env, 0, sizeof(env));
    env.alloc = count_alloc_make(&ca);
    env.opener = (qb_opener){ &files, check_open, NULL };
    env.out = (qb_out){ &text, text_write };
    env.err = (qb_out){ &text, text_write };
    env.program = "crash_test";
    char check[] = "check", fmt[] = "-f", qcow2[] = "qcow2";
    char *argv[] = { check, fmt, qcow2, (char *)su->image_name, NULL };
    int rc = qb_cmd_main(&env, 4, argv);
    if (ca.live || ca.blocks) {
        snprintf(out, outlen, "leak: %zu bytes in %zu blocks after check", ca.live, ca.blocks);
        return -1;
    }
    return rc;
}
