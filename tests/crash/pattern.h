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

static inline void pattern_fill(uint8_t *buf, uint64_t off, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t o = off + i;
        buf[i] = (uint8_t)(pattern_word(o >> 3, seed) >> ((o & 7) * 8));
    }
}

#endif
