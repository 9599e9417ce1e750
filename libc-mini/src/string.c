/* String and memory functions for the freestanding firmware build (the
 * engine, zlib, zstd and BearSSL call them).
 *
 * The mem* functions move 64-bit words once the destination is aligned;
 * loads from a source of another alignment go through a 1-byte-aligned,
 * may_alias word type, which the compiler turns into plain unaligned loads
 * on x86-64. They never touch a byte outside [p, p + n).
 * The str* functions work byte by byte: they are not on any hot path, and
 * reading whole words past a terminator would trip AddressSanitizer in the
 * host test.
 *
 * Compiled with -ffreestanding. GCC's loop-distribution pass may still turn
 * a fill or copy loop into a call to memset/memcpy, i.e. into infinite
 * recursion here, so every function also disables it for itself. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define MINI_FN __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define MINI_FN
#endif

typedef uint64_t word_t;
/* A word that may sit at any address and alias any object. */
typedef uint64_t __attribute__((may_alias, aligned(1))) uword_t;
/* An aligned word that may alias any object. */
typedef uint64_t __attribute__((may_alias)) aword_t;

#define WSIZE sizeof(word_t)
#define WMASK (WSIZE - 1)
#define ONES ((word_t)0x0101010101010101ULL)

/* Forward copy; also correct for overlapping buffers when dst < src,
 * since every word is loaded before the store that could reach it. */
MINI_FN static void copy_fwd(unsigned char *d, const unsigned char *s, size_t n)
{
    if (n >= 2 * WSIZE) {
        while ((uintptr_t)d & WMASK) {
            *d++ = *s++;
            n--;
        }
        while (n >= 4 * WSIZE) {
            word_t a = ((const uword_t *)s)[0];
            word_t b = ((const uword_t *)s)[1];
            word_t c = ((const uword_t *)s)[2];
            word_t e = ((const uword_t *)s)[3];
            ((aword_t *)d)[0] = a;
            ((aword_t *)d)[1] = b;
            ((aword_t *)d)[2] = c;
            ((aword_t *)d)[3] = e;
            d += 4 * WSIZE;
            s += 4 * WSIZE;
            n -= 4 * WSIZE;
        }
        while (n >= WSIZE) {
            *(aword_t *)d = *(const uword_t *)s;
            d += WSIZE;
            s += WSIZE;
            n -= WSIZE;
        }
    }
    while (n--)
        *d++ = *s++;
}

/* Backward copy, for overlapping buffers with dst > src. */
MINI_FN static void copy_bwd(unsigned char *d, const unsigned char *s, size_t n)
{
    d += n;
    s += n;
    if (n >= 2 * WSIZE) {
        while ((uintptr_t)d & WMASK) {
            *--d = *--s;
            n--;
        }
        while (n >= 4 * WSIZE) {
            word_t a = ((const uword_t *)s)[-1];
            word_t b = ((const uword_t *)s)[-2];
            word_t c = ((const uword_t *)s)[-3];
            word_t e = ((const uword_t *)s)[-4];
            ((aword_t *)d)[-1] = a;
            ((aword_t *)d)[-2] = b;
            ((aword_t *)d)[-3] = c;
            ((aword_t *)d)[-4] = e;
            d -= 4 * WSIZE;
            s -= 4 * WSIZE;
            n -= 4 * WSIZE;
        }
        while (n >= WSIZE) {
            d -= WSIZE;
            s -= WSIZE;
            *(aword_t *)d = *(const uword_t *)s;
            n -= WSIZE;
        }
    }
    while (n--)
        *--d = *--s;
}

MINI_FN void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    copy_fwd(dst, src, n);
    return dst;
}

MINI_FN void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (d == s || n == 0)
        return dst;
    /* Unsigned distance: forward is safe unless dst lies inside (src, src + n). */
    if ((uintptr_t)d - (uintptr_t)s >= n)
        copy_fwd(d, s, n);
    else
        copy_bwd(d, s, n);
    return dst;
}

MINI_FN void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    unsigned char b = (unsigned char)c;

    if (n >= 2 * WSIZE) {
        word_t w = ONES * b;
        while ((uintptr_t)d & WMASK) {
            *d++ = b;
            n--;
        }
        while (n >= 4 * WSIZE) {
            ((aword_t *)d)[0] = w;
            ((aword_t *)d)[1] = w;
            ((aword_t *)d)[2] = w;
            ((aword_t *)d)[3] = w;
            d += 4 * WSIZE;
            n -= 4 * WSIZE;
        }
        while (n >= WSIZE) {
            *(aword_t *)d = w;
            d += WSIZE;
            n -= WSIZE;
        }
    }
    while (n--)
        *d++ = b;
    return dst;
}

MINI_FN int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;

    /* Skip equal words; the first differing word is then compared bytewise. */
    while (n >= WSIZE && *(const uword_t *)p == *(const uword_t *)q) {
        p += WSIZE;
        q += WSIZE;
        n -= WSIZE;
    }
    for (; n; n--, p++, q++) {
        if (*p != *q)
            return *p < *q ? -1 : 1;
    }
    return 0;
}

MINI_FN size_t strlen(const char *s)
{
    const char *p = s;

    while (*p)
        p++;
    return (size_t)(p - s);
}

MINI_FN int strcmp(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a;
    const unsigned char *q = (const unsigned char *)b;

    while (*p && *p == *q) {
        p++;
        q++;
    }
    return (*p > *q) - (*p < *q);
}

MINI_FN int strncmp(const char *a, const char *b, size_t n)
{
    const unsigned char *p = (const unsigned char *)a;
    const unsigned char *q = (const unsigned char *)b;

    for (; n; n--, p++, q++) {
        if (*p != *q)
            return *p < *q ? -1 : 1;
        if (!*p)
            break;
    }
    return 0;
}

MINI_FN char *strchr(const char *s, int c)
{
    char ch = (char)c;

    for (;; s++) {
        if (*s == ch)
            return (char *)s;
        if (!*s)
            return NULL;
    }
}

MINI_FN char *strrchr(const char *s, int c)
{
    char ch = (char)c;
    const char *last = NULL;

    for (;; s++) {
        if (*s == ch)
            last = s;
        if (!*s)
            return (char *)last;
    }
}
