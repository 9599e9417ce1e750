/* The flat model (see model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

static void *xalloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "crash_test: out of memory\n");
        abort();
    }
    return p;
}

void range_list_add(range_list *l, uint64_t off, uint64_t len)
{
    if (!len)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->r = xalloc(l->r, l->cap * sizeof(*l->r));
    }
    l->r[l->n++] = (range){ off, len };
}

static int range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

void range_list_normalize(range_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->r, l->n, sizeof(*l->r), range_cmp);
    size_t out = 0;
    for (size_t i = 1; i < l->n; i++) {
        range *last = &l->r[out];
        if (l->r[i].off <= last->off + last->len) {
            uint64_t end = l->r[i].off + l->r[i].len;
            if (end > last->off + last->len)
                last->len = end - last->off;
        } else {
            l->r[++out] = l->r[i];
        }
    }
    l->n = out + 1;
}

void range_list_copy(range_list *dst, const range_list *src)
{
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++)
        range_list_add(dst, src->r[i].off, src->r[i].len);
}

void range_list_free(range_list *l)
{
    free(l->r);
    memset(l, 0, sizeof(*l));
}

/* Forgets the snapshots but keeps their buffers for the next run (a
 * snapshot's copy of the disk is many MiB, allocated again per crash point
 * otherwise). */
static void drop_snapshots(model *m)
{
    for (size_t i = 0; i < MODEL_MAX_SNAPS; i++) {
        snap_model *s = &m->snaps[i];
        uint8_t *content = s->content;
        range_list unstable = s->unstable;
        memset(s, 0, sizeof(*s));
        s->content = content;
        s->unstable = unstable;
        s->unstable.n = 0;
    }
    m->nsnaps = 0;
}

static void free_snapshots(model *m)
{
    for (size_t i = 0; i < MODEL_MAX_SNAPS; i++) {
        free(m->snaps[i].content);
        range_list_free(&m->snaps[i].unstable);
    }
    memset(m->snaps, 0, sizeof(m->snaps));
    m->nsnaps = 0;
}

void model_init(model *m, uint64_t size, uint64_t cluster_size, bool v2,
                const uint8_t *base, const uint8_t *initial)
{
    memset(m, 0, sizeof(*m));
    m->size = size;
    m->cluster_size = cluster_size;
    m->v2 = v2;
    m->base = base;
    m->cur = xalloc(NULL, size);
    m->dur = xalloc(NULL, size);
    m->initial = initial;
    memcpy(m->cur, initial, m->size);
    memcpy(m->dur, initial, m->size);
}

/* Restores only what changed: a reset per crash point stays cheap on a
 * disk of many MiB. */
void model_reset(model *m, const uint8_t *initial)
{
    if (initial != m->initial) {
        fprintf(stderr, "crash_test: model_reset with another initial content\n");
        abort();
    }
    for (size_t i = 0; i < m->changed.n; i++) {
        const range *r = &m->changed.r[i];
        memcpy(m->cur + r->off, initial + r->off, r->len);
        memcpy(m->dur + r->off, initial + r->off, r->len);
    }
    m->changed.n = 0;
    m->touched.n = 0;
    m->version = 0;
    drop_snapshots(m);
}

static void touch(model *m, uint64_t off, uint64_t len)
{
    range_list_add(&m->touched, off, len);
    range_list_add(&m->changed, off, len);
    m->version++;
}

void model_free(model *m)
{
    free_snapshots(m);
    free(m->cur);
    free(m->dur);
    range_list_free(&m->touched);
    range_list_free(&m->changed);
}

void model_write(model *m, uint64_t off, const uint8_t *data, uint64_t len)
{
    memcpy(m->cur + off, data, len);
    touch(m, off, len);
}

void model_zero(model *m, uint64_t off, uint64_t len)
{
    memset(m->cur + off, 0, len);
    touch(m, off, len);
}

void model_discard(model *m, uint64_t off, uint64_t len)
{
    uint64_t cs = m->cluster_size;
    uint64_t start = (off + cs - 1) / cs * cs;
    uint64_t end = (off + len) / cs * cs;
    if (end <= start)
        return;
    /* Without zero flags (v2) a discard would expose the backing file's
     * older data: the engine ignores it then, as QEMU does. */
    if (m->v2 && m->base)
        return;
    memset(m->cur + start, 0, end - start);
    touch(m, start, end - start);
}

void model_flushed(model *m)
{
    m->version++;
    for (size_t i = 0; i < m->touched.n; i++) {
        const range *r = &m->touched.r[i];
        memcpy(m->dur + r->off, m->cur + r->off, r->len);
    }
    m->touched.n = 0;
    for (size_t i = 0; i < m->nsnaps; i++) {
        snap_model *s = &m->snaps[i];
        if (s->create_ok) {
            s->create_durable = true;
            s->unstable.n = 0;
        }
        if (s->delete_ok)
            s->delete_durable = true;
    }
}

snap_model *model_snapshot_issue(model *m, const char *name)
{
    if (m->nsnaps == MODEL_MAX_SNAPS) {
        fprintf(stderr, "crash_test: too many snapshots in a workload\n");
        abort();
    }
    m->version++;
    snap_model *s = &m->snaps[m->nsnaps++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    if (!s->content)
        s->content = xalloc(NULL, m->size);
    memcpy(s->content, m->cur, m->size);
    range_list_copy(&s->unstable, &m->touched);
    return s;
}

snap_model *model_snapshot_find(model *m, const char *name)
{
    for (size_t i = 0; i < m->nsnaps; i++)
        if (strcmp(m->snaps[i].name, name) == 0)
            return &m->snaps[i];
    return NULL;
}

void model_snapshot_apply(model *m, const snap_model *s)
{
    memcpy(m->cur, s->content, m->size);
    touch(m, 0, m->size);
}
