/* Builds small qcow2 images in memory for the unit tests: header, refcount
 * table and block, L1 and one L2 table, then data clusters. */
#ifndef QB_IMAGE_BUILDER_H
#define QB_IMAGE_BUILDER_H

#include <stdint.h>
#include <stddef.h>

typedef struct built_image {
    uint8_t *data;
    size_t size;
    unsigned cluster_bits;
    uint64_t cs;
    uint64_t l1_off, l2_off, rt_off, rb_off;
    unsigned l2_entry_size;
} built_image;

/* Layout: cluster 0 header, 1 refcount table, 2 refcount block, 3 L1,
 * 4 L2, data from cluster 5 on. `clusters` is the total file size in
 * clusters (at least 5). */
void build_image(built_image *b, unsigned cluster_bits, uint64_t virtual_size, unsigned clusters,
                 int extended_l2);
void build_set_l2(built_image *b, unsigned index, uint64_t entry, uint64_t bitmap);
void build_free(built_image *b);
void put_be32(uint8_t *p, uint32_t v);
void put_be64(uint8_t *p, uint64_t v);

#endif
