/*
 * Where the structures of a new qcow2 image go: the cluster allocator that
 * qb_qcow2_create runs in memory before it writes anything.
 *
 * It reproduces the placement qemu-img gives a new image (the same
 * clusters for the L1 table, the refcount blocks, a grown refcount table,
 * the L2 tables and preallocated data), so that a created image and one
 * made by qemu-img with the same options map their data to the same
 * offsets. The rules it follows, as observed on qemu-img 7.2's output:
 *   - clusters are searched for from a moving "first free" index, which is
 *     moved back when clusters are freed or an allocation is retried;
 *   - a new refcount block goes into the next free cluster; when it lies
 *     outside the range it covers itself, its own refcount is entered
 *     first (which may need yet another block), and every allocation that
 *     had to make a block starts its search again;
 *   - a refcount table too small for a new block is replaced by a new
 *     table and the missing blocks, placed together at the start of the
 *     first range no block covers yet; the old table is freed.
 * Every allocated cluster has refcount 1; the set of them is kept as
 * sorted extents, which stay few because allocation mostly appends.
 */
#ifndef QB_QCOW2_LAYOUT_H
#define QB_QCOW2_LAYOUT_H

#include "qb_types.h"

typedef struct qcow2_extent {
    uint64_t start, end;        /* clusters [start, end) */
} qcow2_extent;

/* Guest clusters [guest, guest+count) stored at host clusters from host. */
typedef struct qcow2_data_run {
    uint64_t guest, host, count;
} qcow2_data_run;

/* A refcount table replaced by a larger one: its clusters are free, but
 * they still hold it (qemu-img leaves it there, so a created image does
 * too, byte for byte). */
typedef struct qcow2_old_table {
    uint64_t cluster;
    uint64_t entries;
    uint64_t *table;            /* cluster index of each refcount block */
} qcow2_old_table;
#define QCOW2_LAYOUT_MAX_OLD_TABLES 64

typedef struct qcow2_layout {
    const qb_alloc *alloc;
    const char *filename;       /* for messages */
    unsigned cluster_bits;
    unsigned rb_bits;           /* log2 of refcounts per refcount block */
    unsigned l2_bits;           /* log2 of entries per L2 table */

    qcow2_extent *used;         /* clusters with refcount 1, sorted, disjoint */
    size_t nused, capused;
    uint64_t *reftable;         /* cluster index of each refcount block; 0 none */
    uint64_t rt_entries;
    uint64_t rt_cluster;        /* where the refcount table lies */
    uint64_t free_index;        /* where the search for free clusters starts */
    qcow2_old_table old[QCOW2_LAYOUT_MAX_OLD_TABLES];   /* in the order replaced */
    size_t nold;
    uint64_t file_end;          /* bytes: end of the furthest write */

    uint64_t l1_offset;         /* bytes; 0 without L1 table */
    uint64_t l1_entries;
    uint64_t *l2;               /* per L1 entry: cluster of its L2 table, 0 none */
    qcow2_data_run *runs;       /* preallocated data, by guest cluster */
    size_t nruns, capruns;
    uint64_t data_start;        /* falloc/full: the data area [start, end) in bytes */
    uint64_t data_end;
    uint64_t tail_cluster;      /* metadata: a partial last cluster to write whole;
                                   UINT64_MAX none */
} qcow2_layout;

/* The state right after the first three clusters (header, refcount table,
 * one refcount block) are laid down. */
int qcow2_layout_init(qcow2_layout *l, const qb_alloc *a, const char *filename,
                      unsigned cluster_bits, unsigned refcount_order, unsigned l2_entry_bytes,
                      qb_err *err);
void qcow2_layout_free(qcow2_layout *l);

/* The L1 table for `entries` entries (none when 0). */
int qcow2_layout_l1(qcow2_layout *l, uint64_t entries, qb_err *err);
/* L2 tables and data clusters for the first `size` guest bytes: cluster by
 * cluster as metadata preallocation does (`area` false), or as one data
 * area after a new refcount structure, then the L2 tables (`area` true:
 * falloc and full preallocation). */
int qcow2_layout_prealloc(qcow2_layout *l, uint64_t size, bool area, qb_err *err);
/* Refcount of one cluster (0 or 1). */
bool qcow2_layout_used(const qcow2_layout *l, uint64_t cluster);

#endif
