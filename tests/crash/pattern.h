/*
 * Test data: every byte depends on its offset on the virtual disk and on a
 * seed, so data that lands at the wrong place or comes from the wrong write
 * never compares equal by accident (except one byte in 256).
 */
#ifndef CRASH_PATTERN_H
#define CRASH_PATTERN_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t pattern_word(uint64_t word_index, uint32_t seed)
{
    uint64_t z = word_index * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32 | seed);
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    return z ^ (z >> 29);
}

static inline uint8_t pattern_byte(uint64_t off, uint32_t seed)
{
    return (uint8_t)(pattern_word(off >> 3, seed) >> ((off & 7) * 8));
}

static inline void pattern_fill(uint8_t *buf, uint64_t off, size_t len, uint32_t seed)
{
    size_t i = 0;
    for (; i < len && ((off + i) & 7); i++)
        buf[i] = pattern_byte(off + i, seed);
    /* Whole words at once (the same bytes, in little-endian order). */
    for (; i + 8 <= len; i += 8) {
        uint64_t w = pattern_word((off + i) >> 3, seed);
        for (unsigned b = 0; b < 8; b++)
            buf[i + b] = (uint8_t)(w >> (8 * b));
    }
    for (; i < len; i++)
        buf[i] = pattern_byte(off + i, seed);
}

#endif
