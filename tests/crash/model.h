/*
 * The flat model of a virtual disk under a workload: what every byte holds
 * now, what it held at the last completed flush, and which ranges were
 * touched since (those may read either way after a crash; every other
 * byte must read back exactly as at the last completed flush).
 *
 * Internal snapshots are modelled too: the disk's content when each was
 * taken, and whether it must, may or must not exist after a crash.
 */
#ifndef CRASH_MODEL_H
#define CRASH_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct range {
    uint64_t off, len;
} range;

typedef struct range_list {
    range *r;
    size_t n, cap;
} range_list;

void range_list_add(range_list *l, uint64_t off, uint64_t len);
/* Sorts and merges overlapping or adjacent ranges. */
void range_list_normalize(range_list *l);
void range_list_copy(range_list *dst, const range_list *src);
void range_list_free(range_list *l);

#define MODEL_MAX_SNAPS 16

typedef struct snap_model {
    char name[32];
    uint8_t *content;         /* the disk when the snapshot was taken */
    range_list unstable;      /* ranges of content not yet flushed then */
    bool create_ok;           /* qb_image_snapshot_create returned success */
    bool create_durable;      /* ... and a flush completed after it */
    bool delete_issued;
    bool delete_ok;
    bool delete_durable;
} snap_model;

typedef struct model {
    uint64_t size;
    uint64_t cluster_size;
    bool v2;                  /* discards over a backing file are ignored */
    const uint8_t *base;      /* backing content, size bytes; NULL: none */
    uint8_t *cur;             /* now */
    uint8_t *dur;             /* at the last completed flush */
    range_list touched;       /* since the last completed flush */
    range_list changed;       /* since model_reset (what the next reset restores) */
    uint64_t version;         /* changes counted since model_reset: the same
                                 workload prefix gives the same version */
    const uint8_t *initial;
    snap_model snaps[MODEL_MAX_SNAPS];
    size_t nsnaps;
} model;

/* initial: the disk's content before the workload (size bytes). */
void model_init(model *m, uint64_t size, uint64_t cluster_size, bool v2,
                const uint8_t *base, const uint8_t *initial);
/* Back to `initial` (the same buffer as at model_init). */
void model_reset(model *m, const uint8_t *initial);
void model_free(model *m);

void model_write(model *m, uint64_t off, const uint8_t *data, uint64_t len);
void model_zero(model *m, uint64_t off, uint64_t len);
/* Whole clusters inside the range read as zeros; nothing changes on a v2
 * image with a backing file (no zero flag: the discard is ignored). */
void model_discard(model *m, uint64_t off, uint64_t len);
/* A flush completed: everything so far is durable. */
void model_flushed(model *m);

snap_model *model_snapshot_issue(model *m, const char *name);
snap_model *model_snapshot_find(model *m, const char *name);
/* The disk becomes the snapshot's content (all of it touched). */
void model_snapshot_apply(model *m, const snap_model *s);

#endif
