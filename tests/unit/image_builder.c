#include <stdlib.h>
#include <string.h>
#include "image_builder.h"

void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

void build_image(built_image *b, unsigned cluster_bits, uint64_t virtual_size, unsigned clusters,
                 int extended_l2)
{
    memset(b, 0, sizeof(*b));
    b->cluster_bits = cluster_bits;
    b->cs = 1ull << cluster_bits;
    b->size = (size_t)(b->cs * clusters);
    b->data = calloc(1, b->size);
    b->rt_off = b->cs;
    b->rb_off = 2 * b->cs;
    b->l1_off = 3 * b->cs;
    b->l2_off = 4 * b->cs;
    b->l2_entry_size = extended_l2 ? 16 : 8;
    uint8_t *h = b->data;
    put_be32(h, 0x514649fb);
    put_be32(h + 4, 3);
    put_be32(h + 20, cluster_bits);
    put_be64(h + 24, virtual_size);
    uint64_t per_l2 = b->cs / b->l2_entry_size;
    uint64_t l1_size = (virtual_size + per_l2 * b->cs - 1) / (per_l2 * b->cs);
    put_be32(h + 36, (uint32_t)l1_size);
    put_be64(h + 40, b->l1_off);
    put_be64(h + 48, b->rt_off);
    put_be32(h + 56, 1);
    put_be64(h + 72, extended_l2 ? (1ull << 4) : 0);
    put_be32(h + 96, 4);
    put_be32(h + 100, 112);
    put_be64(b->data + b->rt_off, b->rb_off);
    for (unsigned i = 0; i < clusters; i++) {   /* refcount 1 for every cluster */
        b->data[b->rb_off + 2 * i] = 0;
        b->data[b->rb_off + 2 * i + 1] = 1;
    }
    put_be64(b->data + b->l1_off, b->l2_off | (1ull << 63));
}

void build_set_l2(built_image *b, unsigned index, uint64_t entry, uint64_t bitmap)
{
    uint8_t *e = b->data + b->l2_off + (size_t)index * b->l2_entry_size;
    put_be64(e, entry);
    if (b->l2_entry_size == 16)
        put_be64(e + 8, bitmap);
}

void build_free(built_image *b)
{
    free(b->data);
    b->data = NULL;
}
