/* Counting allocator: a size header in front of every block. */
#include <stdlib.h>
#include "count_alloc.h"

typedef union hdr {
    size_t size;
    max_align_t align;   /* keeps the block after the header aligned */
} hdr;

static void *ca_alloc(void *ctx, size_t size)
{
    count_alloc *c = ctx;
    hdr *h = malloc(sizeof(hdr) + (size ? size : 1));
    if (!h)
        return NULL;
    h->size = size;
    c->live += size;
    c->blocks++;
    return h + 1;
}

static void ca_free(void *ctx, void *ptr)
{
    count_alloc *c = ctx;
    if (!ptr)
        return;
    hdr *h = (hdr *)ptr - 1;
    if (h->size > c->live || c->blocks == 0)
        abort();   /* freed through the wrong allocator, or twice */
    c->live -= h->size;
    c->blocks--;
    free(h);
}

qb_alloc count_alloc_make(count_alloc *c)
{
    c->live = 0;
    c->blocks = 0;
    return (qb_alloc){ c, ca_alloc, ca_free };
}
