/* The cluster allocator of a new qcow2 image, run in memory (see
 * qcow2_layout.h for the placement rules it follows). */
#include <string.h>
#include "qcow2_layout.h"

/* An allocation has to start over: a refcount block was placed, maybe in
 * the clusters it was about to take. */
#define AGAIN 1

/* Host offsets have 56 bits in table entries. */
#define MAX_HOST_BYTES (1ull << 56)
/* As qemu-img: one request covers less than 2 GiB, and preallocation goes
 * in steps of the largest whole number of clusters below 2 GiB. */
#define REQUEST_MAX_BYTES ((1ull << 31) - 512)
#define PREALLOC_STEP_BYTES ((1ull << 31) - 1)
#define MAX_REFTABLE_BYTES (8ull << 20)

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static uint64_t max_clusters(const qcow2_layout *l)
{
    return MAX_HOST_BYTES >> l->cluster_bits;
}

static void extend_file(qcow2_layout *l, uint64_t end_bytes)
{
    if (end_bytes > l->file_end)
        l->file_end = end_bytes;
}

/* --- the set of clusters in use --- */

static bool has_block(const qcow2_layout *l, uint64_t table_index)
{
    return table_index < l->rt_entries && l->reftable[table_index] != 0;
}

/* Index of the first extent ending after c. */
static size_t extent_after(const qcow2_layout *l, uint64_t c)
{
    size_t lo = 0, hi = l->nused;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->used[mid].end <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool qcow2_layout_used(const qcow2_layout *l, uint64_t c)
{
    if (!has_block(l, c >> l->rb_bits))
        return false;
    size_t i = extent_after(l, c);
    return i < l->nused && l->used[i].start <= c;
}

/* First cluster in [p, e) whose refcount is not 0, or UINT64_MAX. A
 * cluster without a refcount block counts as free, as a reader sees it. */
static uint64_t first_used(const qcow2_layout *l, uint64_t p, uint64_t e)
{
    for (size_t i = extent_after(l, p); i < l->nused && l->used[i].start < e; i++) {
        uint64_t c = l->used[i].start > p ? l->used[i].start : p;
        uint64_t end = l->used[i].end < e ? l->used[i].end : e;
        while (c < end) {
            uint64_t t = c >> l->rb_bits;
            if (has_block(l, t))
                return c;
            c = (t + 1) << l->rb_bits;
        }
    }
    return UINT64_MAX;
}

static int grow_extents(qcow2_layout *l, qb_err *err)
{
    size_t cap = l->capused ? l->capused * 2 : 16;
    qcow2_extent *n = qb_malloc(l->alloc, cap * sizeof(*n));
    if (!n)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory to lay out the image", l->filename);
    if (l->nused)
        memcpy(n, l->used, l->nused * sizeof(*n));
    qb_free(l->alloc, l->used);
    l->used = n;
    l->capused = cap;
    return QB_OK;
}

/* Marks [s, e) used; the caller knows these clusters are free. */
static int used_add(qcow2_layout *l, uint64_t s, uint64_t e, qb_err *err)
{
    if (s >= e)
        return QB_OK;
    size_t i = extent_after(l, s > 0 ? s - 1 : 0);
    /* used[i] is the first extent ending at or after s: merge with it when
     * they touch, and with the one after when that starts at e. */
    if (i < l->nused && l->used[i].start <= e && l->used[i].end >= s) {
        if (s < l->used[i].start)
            l->used[i].start = s;
        if (e > l->used[i].end)
            l->used[i].end = e;
        while (i + 1 < l->nused && l->used[i + 1].start <= l->used[i].end) {
            if (l->used[i + 1].end > l->used[i].end)
                l->used[i].end = l->used[i + 1].end;
            memmove(&l->used[i + 1], &l->used[i + 2], (l->nused - i - 2) * sizeof(*l->used));
            l->nused--;
        }
        return QB_OK;
    }
    if (l->nused == l->capused) {
        int r = grow_extents(l, err);
        if (r)
            return r;
    }
    memmove(&l->used[i + 1], &l->used[i], (l->nused - i) * sizeof(*l->used));
    l->used[i].start = s;
    l->used[i].end = e;
    l->nused++;
    return QB_OK;
}

/* Frees [s, e): refcounts drop to 0, so the search for free clusters
 * restarts there. */
static int used_remove(qcow2_layout *l, uint64_t s, uint64_t e, qb_err *err)
{
    if (s >= e)
        return QB_OK;
    if (s < l->free_index)
        l->free_index = s;
    size_t i = extent_after(l, s);
    while (i < l->nused && l->used[i].start < e) {
        qcow2_extent *x = &l->used[i];
        if (x->start < s && x->end > e) {         /* split in two */
            if (l->nused == l->capused) {
                int r = grow_extents(l, err);
                if (r)
                    return r;
                x = &l->used[i];
            }
            memmove(&l->used[i + 1], &l->used[i], (l->nused - i) * sizeof(*l->used));
            l->nused++;
            l->used[i].end = s;
            l->used[i + 1].start = e;
            return QB_OK;
        }
        if (x->start < s) {
            x->end = s;
            i++;
        } else if (x->end > e) {
            x->start = e;
            return QB_OK;
        } else {
            memmove(&l->used[i], &l->used[i + 1], (l->nused - i - 1) * sizeof(*l->used));
            l->nused--;
        }
    }
    return QB_OK;
}

/* --- allocation --- */

/* The first run of n free clusters from the search index on, without
 * taking it. */
static int find_free(qcow2_layout *l, uint64_t n, uint64_t *out, qb_err *err)
{
    uint64_t p = l->free_index;
    for (;;) {
        if (p > max_clusters(l) || n > max_clusters(l) - p)
            return qb_err_set(err, QB_EFULL, "%s: the image needs more than 2^56 bytes",
                              l->filename);
        uint64_t u = first_used(l, p, p + n);
        if (u == UINT64_MAX)
            break;
        p = u + 1;
    }
    l->free_index = p + n;
    *out = p;
    return QB_OK;
}

static int refcount_area(qcow2_layout *l, uint64_t start, uint64_t additional, bool exact,
                         uint64_t new_index, uint64_t new_block, uint64_t *end_out,
                         qb_err *err);

static int take(qcow2_layout *l, uint64_t start, uint64_t n, qb_err *err);

/* Makes the refcount block for cluster c (whose block is missing). Always
 * ends in AGAIN (or an error): the caller's search starts over. */
static int make_refblock(qcow2_layout *l, uint64_t c, qb_err *err)
{
    uint64_t t = c >> l->rb_bits;
    uint64_t nb;
    int r = find_free(l, 1, &nb, err);
    if (r)
        return r;
    if (nb >> l->rb_bits == t) {
        r = used_add(l, nb, nb + 1, err);        /* it counts itself */
    } else {
        r = take(l, nb, 1, err);                  /* counted by another block */
    }
    if (r)
        return r;
    extend_file(l, (nb + 1) << l->cluster_bits);
    if (t < l->rt_entries) {
        l->reftable[t] = nb;
        return AGAIN;
    }
    /* The table is full: a new one, with the blocks it needs, goes at the
     * start of the first range that no block covers yet. */
    uint64_t top = (c > nb ? c : nb) + 1;
    uint64_t blocks = div_up(top, 1ull << l->rb_bits);
    uint64_t end;
    r = refcount_area(l, blocks << l->rb_bits, 0, false, t, nb, &end, err);
    return r ? r : AGAIN;
}

/* Raises the refcount of [start, start+n) from 0 to 1, making refcount
 * blocks where missing. On AGAIN nothing of the range is taken. */
static int take(qcow2_layout *l, uint64_t start, uint64_t n, qb_err *err)
{
    uint64_t c = start, end = start + n;
    while (c < end) {
        uint64_t t = c >> l->rb_bits;
        if (!has_block(l, t)) {
            int r = make_refblock(l, c, err);
            if (r == AGAIN && l->free_index > start)
                l->free_index = start;           /* try the same clusters again */
            if (r) {
                int u = used_remove(l, start, c, err);
                return u ? u : r;
            }
        }
        uint64_t block_end = (t + 1) << l->rb_bits;
        uint64_t e = block_end < end ? block_end : end;
        int r = used_add(l, c, e, err);
        if (r)
            return r;
        c = e;
    }
    return QB_OK;
}

static int alloc(qcow2_layout *l, uint64_t n, uint64_t *out, qb_err *err)
{
    for (;;) {
        int r = find_free(l, n, out, err);
        if (r)
            return r;
        r = take(l, *out, n, err);
        if (r != AGAIN)
            return r;
    }
}

/* Takes as many of the n clusters from `at` on as are free, in a row. */
static int alloc_at(qcow2_layout *l, uint64_t at, uint64_t n, uint64_t *got, qb_err *err)
{
    for (;;) {
        uint64_t i = 0;
        while (i < n && !qcow2_layout_used(l, at + i))
            i++;
        int r = take(l, at, i, err);
        if (r == AGAIN)
            continue;
        *got = i;
        return r;
    }
}

/* Refcount blocks needed to count `clusters` clusters plus the refcount
 * structures themselves (the fixed point of blocks and table clusters);
 * `generous` adds room for half the table again. */
static uint64_t refcount_blocks_needed(const qcow2_layout *l, uint64_t clusters, bool generous)
{
    uint64_t per_table_cluster = (1ull << l->cluster_bits) / 8;
    uint64_t per_block = 1ull << l->rb_bits;
    uint64_t table = 0, blocks = 0, n = 0, last;
    do {
        last = n;
        blocks = div_up(clusters + table + blocks, per_block);
        table = div_up(blocks, per_table_cluster);
        n = clusters + blocks + table;
        if (n == last && generous) {
            clusters += div_up(table, 2);
            n = 0;
            generous = false;
        }
    } while (n != last);
    return blocks;
}

/* A new refcount table and the refcount blocks missing up to it, placed
 * from cluster `start` on, able to count `additional` more clusters after
 * them. Blocks already in the table stay where they are; new_block (when
 * not 0) is a block made for table entry new_index. The old table is
 * freed. *end_out: the first cluster after the new structures. */
static int refcount_area(qcow2_layout *l, uint64_t start, uint64_t additional, bool exact,
                         uint64_t new_index, uint64_t new_block, uint64_t *end_out,
                         qb_err *err)
{
    uint64_t per_table_cluster = (1ull << l->cluster_bits) / 8;
    if (start > max_clusters(l) || additional > max_clusters(l) - start)
        return qb_err_set(err, QB_EFULL, "%s: the image needs more than 2^56 bytes",
                          l->filename);
    uint64_t total = refcount_blocks_needed(l, start + additional, !exact);
    /* Grown in steps of half its size again, unless asked for exactly
     * what is needed. */
    uint64_t entries = exact ? total : total + div_up(total, 2);
    entries = div_up(entries, per_table_cluster) * per_table_cluster;
    if (entries > MAX_REFTABLE_BYTES / 8)
        return qb_err_set(err, QB_EFULL,
                          "%s: the refcount table would exceed %llu MiB (use larger clusters "
                          "or wider refcounts)",
                          l->filename, (unsigned long long)(MAX_REFTABLE_BYTES >> 20));
    uint64_t *table = qb_zalloc(l->alloc, (size_t)entries * 8);
    if (!table)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the refcount table", l->filename);
    uint64_t keep = l->rt_entries < entries ? l->rt_entries : entries;
    memcpy(table, l->reftable, (size_t)keep * 8);
    if (new_block) {
        if (new_index >= total) {
            qb_free(l->alloc, table);
            return qb_err_set(err, QB_EINVAL, "%s: new refcount block %llu outside the table",
                              l->filename, (unsigned long long)new_index);
        }
        table[new_index] = new_block;
    }
    uint64_t first = start >> l->rb_bits;
    uint64_t missing = 0;
    for (uint64_t i = first; i < total; i++)
        missing += table[i] == 0;
    uint64_t table_cluster = start + missing;
    uint64_t end = table_cluster + entries / per_table_cluster;
    uint64_t next = start;
    for (uint64_t i = first; i < total; i++)
        if (!table[i])
            table[i] = next++;
    if ((end - 1) >> l->rb_bits >= total) {
        qb_free(l->alloc, table);
        return qb_err_set(err, QB_EINVAL, "%s: refcount structures do not cover themselves",
                          l->filename);
    }
    uint64_t old_cluster = l->rt_cluster;
    uint64_t old_clusters = l->rt_entries / per_table_cluster;
    if (l->nold == QCOW2_LAYOUT_MAX_OLD_TABLES) {
        qb_free(l->alloc, table);
        return qb_err_set(err, QB_EINVAL, "%s: the refcount table grew too often",
                          l->filename);
    }
    l->old[l->nold++] = (qcow2_old_table){ old_cluster, l->rt_entries, l->reftable };
    l->reftable = table;
    l->rt_entries = entries;
    l->rt_cluster = table_cluster;
    int r = used_add(l, start, end, err);
    if (r)
        return r;
    extend_file(l, end << l->cluster_bits);
    r = used_remove(l, old_cluster, old_cluster + old_clusters, err);
    if (r)
        return r;
    *end_out = end;
    return QB_OK;
}

/* --- the image's structures --- */

int qcow2_layout_init(qcow2_layout *l, const qb_alloc *a, const char *filename,
                      unsigned cluster_bits, unsigned refcount_order, unsigned l2_entry_bytes,
                      qb_err *err)
{
    memset(l, 0, sizeof(*l));
    l->tail_cluster = UINT64_MAX;
    l->alloc = a;
    l->filename = filename;
    l->cluster_bits = cluster_bits;
    l->rb_bits = cluster_bits + 3 - refcount_order;
    l->l2_bits = cluster_bits - (l2_entry_bytes == 16 ? 4 : 3);
    l->rt_entries = (1ull << cluster_bits) / 8;
    l->reftable = qb_zalloc(a, (size_t)l->rt_entries * 8);
    if (!l->reftable)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for the refcount table", filename);
    /* Header in cluster 0, the refcount table in 1, its one block in 2;
     * then those three clusters are taken like any allocation. */
    l->rt_cluster = 1;
    l->reftable[0] = 2;
    l->file_end = 3ull << cluster_bits;
    uint64_t first;
    int r = alloc(l, 3, &first, err);
    if (!r && first != 0)
        r = qb_err_set(err, QB_EINVAL, "%s: the first clusters are not free", filename);
    return r;
}

void qcow2_layout_free(qcow2_layout *l)
{
    qb_free(l->alloc, l->used);
    qb_free(l->alloc, l->reftable);
    qb_free(l->alloc, l->l2);
    qb_free(l->alloc, l->runs);
    for (size_t i = 0; i < l->nold; i++)
        qb_free(l->alloc, l->old[i].table);
    memset(l, 0, sizeof(*l));
}

int qcow2_layout_l1(qcow2_layout *l, uint64_t entries, qb_err *err)
{
    l->l1_entries = entries;
    if (!entries)
        return QB_OK;
    uint64_t c;
    int r = alloc(l, div_up(entries * 8, 1ull << l->cluster_bits), &c, err);
    if (r)
        return r;
    l->l1_offset = c << l->cluster_bits;
    extend_file(l, l->l1_offset + entries * 8);   /* written to its last entry only */
    return QB_OK;
}

static int ensure_l2(qcow2_layout *l, uint64_t l1_index, qb_err *err)
{
    if (l->l2[l1_index])
        return QB_OK;
    uint64_t c;
    int r = alloc(l, 1, &c, err);
    if (r)
        return r;
    l->l2[l1_index] = c;
    extend_file(l, (c + 1) << l->cluster_bits);
    return QB_OK;
}

static int add_run(qcow2_layout *l, uint64_t guest, uint64_t host, uint64_t count, qb_err *err)
{
    if (l->nruns) {
        qcow2_data_run *last = &l->runs[l->nruns - 1];
        if (last->guest + last->count == guest && last->host + last->count == host) {
            last->count += count;
            return QB_OK;
        }
    }
    if (l->nruns == l->capruns) {
        size_t cap = l->capruns ? l->capruns * 2 : 64;
        qcow2_data_run *n = qb_malloc(l->alloc, cap * sizeof(*n));
        if (!n)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory to lay out the image",
                              l->filename);
        if (l->nruns)
            memcpy(n, l->runs, l->nruns * sizeof(*n));
        qb_free(l->alloc, l->runs);
        l->runs = n;
        l->capruns = cap;
    }
    l->runs[l->nruns++] = (qcow2_data_run){ guest, host, count };
    return QB_OK;
}

/* One allocation request of metadata preallocation: guest bytes from off
 * on, *bytes at most; maps clusters until the next L2 table breaks the
 * contiguous run of host clusters. Returns the host offset of off and, in
 * *bytes, how much was mapped. */
static int prealloc_request(qcow2_layout *l, uint64_t off, uint64_t *bytes, uint64_t *host,
                            qb_err *err)
{
    unsigned cb = l->cluster_bits;
    uint64_t cs = 1ull << cb, l2e = 1ull << l->l2_bits;
    uint64_t pos = off, remaining = *bytes, cur = 0;
    uint64_t next_host = UINT64_MAX;     /* where the host run would continue */
    *host = UINT64_MAX;
    for (;;) {
        if (*host == UINT64_MAX && next_host != UINT64_MAX)
            *host = next_host;
        pos += cur;
        remaining -= cur;
        if (next_host != UINT64_MAX)
            next_host += cur;
        if (!remaining)
            break;
        cur = remaining;
        /* Looking at the L2 entry makes the table (entries are fresh). */
        int r = ensure_l2(l, pos >> (cb + l->l2_bits), err);
        if (r)
            return r;
        uint64_t in_cluster = pos & (cs - 1);
        uint64_t n = div_up(in_cluster + cur, cs);
        uint64_t left_in_table = l2e - ((pos >> cb) & (l2e - 1));
        if (n > left_in_table)
            n = left_in_table;
        if (n > REQUEST_MAX_BYTES >> cb)
            n = REQUEST_MAX_BYTES >> cb;
        uint64_t hc;
        if (next_host == UINT64_MAX) {
            r = alloc(l, n, &hc, err);
        } else {
            hc = next_host >> cb;
            r = alloc_at(l, hc, n, &n, err);
        }
        if (r)
            return r;
        if (!n)
            break;                      /* the host run cannot go on */
        r = add_run(l, pos >> cb, hc, n, err);
        if (r)
            return r;
        next_host = (hc << cb) + in_cluster;
        if (cur > n * cs - in_cluster)
            cur = n * cs - in_cluster;
    }
    *bytes -= remaining;
    return QB_OK;
}

static int prealloc_metadata(qcow2_layout *l, uint64_t size, qb_err *err)
{
    uint64_t step = PREALLOC_STEP_BYTES & ~((1ull << l->cluster_bits) - 1);
    uint64_t off = 0, host = 0, last = 0;
    while (off < size) {
        last = size - off < step ? size - off : step;
        int r = prealloc_request(l, off, &last, &host, err);
        if (r)
            return r;
        if (!last)
            return qb_err_set(err, QB_EINVAL, "%s: preallocation made no progress at %llu",
                              l->filename, (unsigned long long)off);
        off += last;
    }
    /* The file reaches to the end of the data; a partial last cluster is
     * written whole (with zeros), as qemu-img leaves it. */
    if (size & ((1ull << l->cluster_bits) - 1)) {
        l->tail_cluster = (host + last - 1) >> l->cluster_bits;
        extend_file(l, (l->tail_cluster + 1) << l->cluster_bits);
    } else if (size) {
        extend_file(l, host + last);
    }
    return QB_OK;
}

static int prealloc_area(qcow2_layout *l, uint64_t size, qb_err *err)
{
    unsigned cb = l->cluster_bits;
    uint64_t cs = 1ull << cb, l2e = 1ull << l->l2_bits;
    /* The area starts after the last cluster in use inside the file. */
    uint64_t file_clusters = div_up(l->file_end, cs);
    uint64_t start = file_clusters;
    bool found = false;
    for (size_t i = l->nused; i-- > 0 && !found;) {
        uint64_t s = l->used[i].start;
        uint64_t e = l->used[i].end < file_clusters ? l->used[i].end : file_clusters;
        for (uint64_t c = e; c > s && !found; c--) {
            if (qcow2_layout_used(l, c - 1)) {
                start = c;
                found = true;
            }
        }
    }
    uint64_t data = div_up(size, cs);
    uint64_t tables = div_up(data, l2e) + 1;
    uint64_t at, got;
    int r = refcount_area(l, start, data + tables, true, 0, 0, &at, err);
    if (r)
        return r;
    r = alloc_at(l, at, data, &got, err);
    if (r)
        return r;
    if (got != data)
        return qb_err_set(err, QB_EINVAL, "%s: the data area at %llu is not free", l->filename,
                          (unsigned long long)(at << cb));
    l->data_start = at << cb;
    l->data_end = (at + data) << cb;
    extend_file(l, l->data_end);
    for (uint64_t g = 0; g < data;) {
        uint64_t n = l2e - (g & (l2e - 1));
        if (n > data - g)
            n = data - g;
        r = ensure_l2(l, g >> l->l2_bits, err);
        if (!r)
            r = add_run(l, g, at + g, n, err);
        if (r)
            return r;
        g += n;
    }
    return QB_OK;
}

int qcow2_layout_prealloc(qcow2_layout *l, uint64_t size, bool area, qb_err *err)
{
    if (l->l1_entries) {
        l->l2 = qb_zalloc(l->alloc, (size_t)l->l1_entries * 8);
        if (!l->l2)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for %llu L2 table offsets",
                              l->filename, (unsigned long long)l->l1_entries);
    }
    return area ? prealloc_area(l, size, err) : prealloc_metadata(l, size, err);
}
