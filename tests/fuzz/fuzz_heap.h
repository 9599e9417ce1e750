/*
 * The fuzz targets' allocator: refuses more than FUZZ_ALLOC_LIMIT bytes
 * live, so an unbounded allocation becomes an error path instead of an
 * OOM, and counts blocks so a run can check it freed everything.
 */
#ifndef QB_FUZZ_HEAP_H
#define QB_FUZZ_HEAP_H

#include <stddef.h>
#include <stdlib.h>

#define FUZZ_ALLOC_LIMIT (256ull << 20)   /* bytes live at once */

typedef struct fuzz_heap {
    size_t live;      /* bytes */
    size_t blocks;
} fuzz_heap;

/* Size header in front of each block; max_align_t keeps the block aligned. */
typedef union fuzz_hdr {
    size_t size;
    max_align_t align;
} fuzz_hdr;

static inline void *heap_alloc(void *ctx, size_t size)
{
    fuzz_heap *h = ctx;
    if (size > FUZZ_ALLOC_LIMIT || h->live + size > FUZZ_ALLOC_LIMIT)
        return NULL;
    fuzz_hdr *p = malloc(sizeof(fuzz_hdr) + (size ? size : 1));
    if (!p)
        return NULL;
    p->size = size;
    h->live += size;
    h->blocks++;
    return p + 1;
}

static inline void heap_free(void *ctx, void *ptr)
{
    fuzz_heap *h = ctx;
    if (!ptr)
        return;
    fuzz_hdr *p = (fuzz_hdr *)ptr - 1;
    if (p->size > h->live || h->blocks == 0)
        __builtin_trap();   /* freeing more than was allocated */
    h->live -= p->size;
    h->blocks--;
    free(p);
}

#endif
