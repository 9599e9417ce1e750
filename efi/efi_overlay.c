/*
 * The in-memory overlay of a published disk (see efi_overlay.h): a hash
 * table from block number to a 4 KiB copy of the block, open addressing
 * with linear probing (removal shifts the following entries back, so no
 * tombstones pile up while a read-write disk drains over and over).
 *
 * Blocks come from slabs of SLAB_BLOCKS: the firmware's pool hands out
 * whole pages for anything near a page, so a block allocated on its own
 * would cost two pages with the allocator's bookkeeping. Drained blocks go
 * to a free list; slabs are returned when the overlay is freed.
 */
#include <string.h>
#include "efi_overlay.h"

#define MIN_SLOTS 64u
#define SLAB_BLOCKS 64u
#define SLAB_HEAD 64u           /* the link to the next slab; keeps blocks aligned */

typedef struct slot {
    uint64_t block;
    uint8_t *data;          /* NULL: the slot is empty */
} slot;

struct qb_overlay {
    qb_alloc alloc;
    uint64_t disk_size;
    uint64_t limit;         /* bytes of blocks at most; UINT64_MAX: none */
    size_t count;           /* blocks held */
    size_t cap;             /* slots, a power of two */
    slot *slots;
    uint8_t *slabs;         /* the newest slab; each starts with a link to the one before */
    size_t slab_used;       /* blocks handed out from the newest slab */
    uint8_t *free_blocks;   /* blocks given back; each starts with a link to the next */
};

static uint8_t *block_get(qb_overlay *o)
{
    uint8_t *b = o->free_blocks;

    if (b) {
        memcpy(&o->free_blocks, b, sizeof(uint8_t *));
        return b;
    }
    if (!o->slabs || o->slab_used == SLAB_BLOCKS) {
        uint8_t *slab = qb_malloc(&o->alloc, SLAB_HEAD + (size_t)SLAB_BLOCKS * QB_OVERLAY_BLOCK);
        if (!slab)
            return NULL;
        memcpy(slab, &o->slabs, sizeof(uint8_t *));
        o->slabs = slab;
        o->slab_used = 0;
    }
    return o->slabs + SLAB_HEAD + o->slab_used++ * QB_OVERLAY_BLOCK;
}

static void block_put(qb_overlay *o, uint8_t *b)
{
    if (!b)
        return;
    memcpy(b, &o->free_blocks, sizeof(uint8_t *));
    o->free_blocks = b;
}

static size_t hash(uint64_t block, size_t cap)
{
    uint64_t h = block * 0x9e3779b97f4a7c15ull;

    return (size_t)(h ^ (h >> 32)) & (cap - 1);
}

static size_t home(const qb_overlay *o, uint64_t block)
{
    return hash(block, o->cap);
}

static slot *find(const qb_overlay *o, uint64_t block)
{
    for (size_t i = home(o, block);; i = (i + 1) & (o->cap - 1)) {
        slot *s = &o->slots[i];
        if (!s->data)
            return NULL;
        if (s->block == block)
            return s;
    }
}

/* Stores into a table known to have room. */
static void put(slot *slots, size_t cap, uint64_t block, uint8_t *data)
{
    size_t i = hash(block, cap);

    while (slots[i].data)
        i = (i + 1) & (cap - 1);
    slots[i].block = block;
    slots[i].data = data;
}

/* Makes room for `want` blocks at a load of at most one half. */
static int reserve(qb_overlay *o, size_t want)
{
    size_t cap = o->cap;
    slot *ns;

    while (want > cap / 2) {
        if (cap > ((size_t)-1 / sizeof(slot)) / 4)
            return QB_ENOMEM;
        cap *= 2;
    }
    if (cap == o->cap)
        return QB_OK;
    ns = qb_zalloc(&o->alloc, cap * sizeof *ns);
    if (!ns)
        return QB_ENOMEM;
    for (size_t i = 0; i < o->cap; i++)
        if (o->slots[i].data)
            put(ns, cap, o->slots[i].block, o->slots[i].data);
    qb_free(&o->alloc, o->slots);
    o->slots = ns;
    o->cap = cap;
    return QB_OK;
}

/* Empties slot s and moves the entries after it that belong before it
 * back, so every entry stays reachable from its home slot. */
static void remove_slot(qb_overlay *o, slot *s)
{
    size_t hole = (size_t)(s - o->slots), mask = o->cap - 1;

    block_put(o, s->data);
    s->data = NULL;
    o->count--;
    for (size_t i = (hole + 1) & mask; o->slots[i].data; i = (i + 1) & mask) {
        size_t h = home(o, o->slots[i].block);
        /* The entry may move to the hole unless its home lies after the
         * hole (cyclically) and at or before its current slot. */
        bool stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
        if (!stays) {
            o->slots[hole] = o->slots[i];
            o->slots[i].data = NULL;
            hole = i;
        }
    }
}

qb_overlay *qb_overlay_new(const qb_alloc *a, uint64_t disk_size, uint64_t limit)
{
    qb_overlay *o = qb_zalloc(a, sizeof *o);

    if (!o)
        return NULL;
    o->alloc = *a;
    o->disk_size = disk_size;
    o->limit = limit ? limit : UINT64_MAX;
    o->cap = MIN_SLOTS;
    o->slots = qb_zalloc(a, o->cap * sizeof *o->slots);
    if (!o->slots) {
        qb_free(a, o);
        return NULL;
    }
    return o;
}

void qb_overlay_free(qb_overlay *o)
{
    if (!o)
        return;
    while (o->slabs) {
        uint8_t *next;
        memcpy(&next, o->slabs, sizeof next);
        qb_free(&o->alloc, o->slabs);
        o->slabs = next;
    }
    qb_free(&o->alloc, o->slots);
    qb_free(&o->alloc, o);
}

uint64_t qb_overlay_bytes(const qb_overlay *o)
{
    return (uint64_t)o->count * QB_OVERLAY_BLOCK;
}

uint64_t qb_overlay_limit(const qb_overlay *o)
{
    return o->limit;
}

void qb_overlay_read(const qb_overlay *o, uint64_t off, void *buf, size_t len)
{
    uint8_t *p = buf;

    if (!o->count || !len)
        return;
    for (uint64_t b = off / QB_OVERLAY_BLOCK; b <= (off + len - 1) / QB_OVERLAY_BLOCK; b++) {
        const slot *s = find(o, b);
        uint64_t start = b * QB_OVERLAY_BLOCK, end = start + QB_OVERLAY_BLOCK;
        if (!s)
            continue;
        if (start < off)
            start = off;
        if (end > off + len)
            end = off + len;
        memcpy(p + (start - off), s->data + (start % QB_OVERLAY_BLOCK), (size_t)(end - start));
    }
}

/* The disk's bytes of block b as the image holds them (zeros past the end
 * of the disk). */
static int fill_block(const qb_overlay *o, uint64_t b, uint8_t *data, qb_overlay_fill_fn fill,
                      void *ctx, qb_err *err)
{
    uint64_t start = b * QB_OVERLAY_BLOCK;
    size_t n = o->disk_size - start < QB_OVERLAY_BLOCK ? (size_t)(o->disk_size - start)
                                                       : QB_OVERLAY_BLOCK;

    memset(data + n, 0, QB_OVERLAY_BLOCK - n);
    return fill(ctx, start, data, n, err);
}

int qb_overlay_write(qb_overlay *o, uint64_t off, const void *buf, size_t len,
                     qb_overlay_fill_fn fill, void *ctx, qb_err *err)
{
    const uint8_t *p = buf;
    uint64_t first, last;
    size_t fresh = 0, k = 0;
    uint8_t **bufs = NULL;
    int r = QB_OK;

    if (!len)
        return QB_OK;
    if (off > o->disk_size || len > o->disk_size - off)
        return qb_err_set(err, QB_ERANGE, "write past the end of the disk");
    first = off / QB_OVERLAY_BLOCK;
    last = (off + len - 1) / QB_OVERLAY_BLOCK;
    for (uint64_t b = first; b <= last; b++)
        if (!find(o, b))
            fresh++;
    if (fresh) {
        if ((uint64_t)(o->count + fresh) > o->limit / QB_OVERLAY_BLOCK)
            return qb_err_set(err, QB_EFULL,
                              "the writes kept in memory would pass their limit of %llu MiB",
                              (unsigned long long)(o->limit >> 20));
        if (reserve(o, o->count + fresh) < 0)
            return qb_err_set(err, QB_EFULL, "out of memory for the writes kept in memory");
        /* Every new block first, so a refusal changes nothing. */
        bufs = qb_zalloc(&o->alloc, fresh * sizeof *bufs);
        if (!bufs)
            return qb_err_set(err, QB_EFULL, "out of memory for the writes kept in memory");
        for (uint64_t b = first; b <= last && r == QB_OK; b++) {
            if (find(o, b))
                continue;
            uint64_t start = b * QB_OVERLAY_BLOCK;
            uint64_t end = o->disk_size - start < QB_OVERLAY_BLOCK ? o->disk_size
                                                                   : start + QB_OVERLAY_BLOCK;
            bufs[k] = block_get(o);
            if (!bufs[k])
                r = qb_err_set(err, QB_EFULL, "out of memory for the writes kept in memory");
            /* A block the write covers only in part keeps the rest. */
            else if (off > start || off + len < end)
                r = fill_block(o, b, bufs[k], fill, ctx, err);
            else
                memset(bufs[k], 0, QB_OVERLAY_BLOCK);
            k++;
        }
        if (r < 0) {
            for (size_t i = 0; i < fresh; i++)
                block_put(o, bufs[i]);
            qb_free(&o->alloc, bufs);
            return r;
        }
        k = 0;
        for (uint64_t b = first; b <= last; b++)
            if (!find(o, b)) {
                put(o->slots, o->cap, b, bufs[k++]);
                o->count++;
            }
        qb_free(&o->alloc, bufs);
    }
    for (uint64_t b = first; b <= last; b++) {
        slot *s = find(o, b);
        uint64_t start = b * QB_OVERLAY_BLOCK, end = start + QB_OVERLAY_BLOCK;
        if (start < off)
            start = off;
        if (end > off + len)
            end = off + len;
        memcpy(s->data + (start % QB_OVERLAY_BLOCK), p + (start - off), (size_t)(end - start));
    }
    return QB_OK;
}

/* In-place heap sort of block numbers. */
static void sift(uint64_t *v, size_t n, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        uint64_t t;
        if (c >= n)
            return;
        if (c + 1 < n && v[c + 1] > v[c])
            c++;
        if (v[i] >= v[c])
            return;
        t = v[i];
        v[i] = v[c];
        v[c] = t;
        i = c;
    }
}

static void sort_blocks(uint64_t *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(v, n, i);
    for (size_t end = n; end > 1; end--) {
        uint64_t t = v[0];
        v[0] = v[end - 1];
        v[end - 1] = t;
        sift(v, end - 1, 0);
    }
}

int qb_overlay_drain(qb_overlay *o, size_t run_max, qb_overlay_drain_fn fn, void *ctx,
                     qb_err *err)
{
    size_t n = 0, per_run = run_max / QB_OVERLAY_BLOCK;
    uint64_t *blocks;
    uint8_t *run;
    int r = QB_OK;

    if (!o->count)
        return QB_OK;
    if (!per_run)
        per_run = 1;
    blocks = qb_malloc(&o->alloc, o->count * sizeof *blocks);
    run = qb_malloc(&o->alloc, per_run * QB_OVERLAY_BLOCK);
    if (!blocks || !run) {
        qb_free(&o->alloc, blocks);
        qb_free(&o->alloc, run);
        return qb_err_set(err, QB_ENOMEM, "out of memory to write back the writes kept in memory");
    }
    for (size_t i = 0; i < o->cap; i++)
        if (o->slots[i].data)
            blocks[n++] = o->slots[i].block;
    sort_blocks(blocks, n);
    for (size_t i = 0; i < n && r == QB_OK;) {
        size_t j = i;
        uint64_t off = blocks[i] * QB_OVERLAY_BLOCK;
        size_t len;

        while (j < n && j - i < per_run && blocks[j] == blocks[i] + (j - i)) {
            memcpy(run + (j - i) * QB_OVERLAY_BLOCK, find(o, blocks[j])->data, QB_OVERLAY_BLOCK);
            j++;
        }
        len = (j - i) * QB_OVERLAY_BLOCK;
        if (len > o->disk_size - off)
            len = (size_t)(o->disk_size - off);
        r = fn(ctx, off, run, len, err);
        if (r == QB_OK)
            for (size_t k = i; k < j; k++)
                remove_slot(o, find(o, blocks[k]));
        i = j;
    }
    qb_free(&o->alloc, blocks);
    qb_free(&o->alloc, run);
    return r;
}
