/*
 * The write workloads: each a fixed image recipe (made by qemu-img) and a
 * deterministic list of steps applied through core/qb_image.h.
 */
#ifndef CRASH_WORKLOADS_H
#define CRASH_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum step_kind {
    STEP_WRITE,         /* pattern data with `seed` */
    STEP_ZERO,          /* qb_image_write_zeroes */
    STEP_DISCARD,
    STEP_FLUSH,
    STEP_SNAP_CREATE,   /* name */
    STEP_SNAP_DELETE,
    STEP_SNAP_APPLY,
    STEP_WRITE_COMPRESSED,  /* one unallocated cluster, compressible data */
};

typedef struct step {
    int kind;
    uint64_t off, len;
    uint32_t seed;
    char name[16];
} step;

typedef struct step_list {
    step *s;
    size_t n, cap;
} step_list;

typedef struct workload {
    const char *name;
    uint64_t size;               /* virtual size */
    uint64_t cluster_size;
    const char *opts;            /* qemu-img create -o for the image */
    bool v2;
    /* Backing file: base_size bytes of pattern data (with holes), converted
     * to qcow2 with base_opts; base_size 0: no backing file. */
    uint64_t base_size;
    const char *base_opts;
    /* Bytes of L2 cache (0: the engine's default); a small cache makes the
     * engine evict, and so write metadata back, in the middle of writes. */
    size_t l2_cache;
    /* The workload must make the image outgrow its first refcount table. */
    bool grows_refcount_table;
    /* Opened with opts.writethrough: every write, zeroes or discard that
     * returned success is durable (the firmware's mode). */
    bool writethrough;
    /* The final image must hold compressed clusters. */
    bool leaves_compressed;
    void (*build)(const struct workload *w, step_list *out);
} workload;

extern const workload workloads[];
extern const size_t workload_count;

void step_list_free(step_list *l);

/* The bytes a step writes (len of them): pattern data, compressible for
 * STEP_WRITE_COMPRESSED. */
void step_data(const step *s, uint8_t *out);

/* Content of the backing file of w (base_size bytes). */
void workload_base_content(const workload *w, uint8_t *out);

#endif
