/* Host test of libc-mini/src/string.c against the C library.
 *
 * The build compiles string.c a second time with every function renamed
 * (memcpy -> mini_memcpy, ...) and links it here; this file uses the C
 * library's own functions as the reference. Buffers are allocated so that
 * they end exactly where the tested range ends, so AddressSanitizer reports
 * any access past it. Prints `N passed, N failed` last; exits non-zero when
 * anything failed. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *mini_memcpy(void *restrict dst, const void *restrict src, size_t n);
void *mini_memmove(void *dst, const void *src, size_t n);
void *mini_memset(void *dst, int c, size_t n);
int mini_memcmp(const void *a, const void *b, size_t n);
size_t mini_strlen(const char *s);
int mini_strcmp(const char *a, const char *b);
int mini_strncmp(const char *a, const char *b, size_t n);
char *mini_strchr(const char *s, int c);
char *mini_strrchr(const char *s, int c);

static int passed, failed;
static int errors; /* mismatches in the current check */

#define MAX_REPORTS 5
static void mismatch(const char *what, size_t n, size_t a, size_t b, long long extra)
{
    if (errors++ < MAX_REPORTS)
        printf("  mismatch in %s: n=%zu, offsets %zu/%zu, %lld\n", what, n, a, b, extra);
}

static void finish_check(const char *name)
{
    if (errors) {
        failed++;
        printf("FAIL %s (%d mismatches)\n", name, errors);
    } else {
        passed++;
        printf("ok   %s\n", name);
    }
    errors = 0;
}

static uint32_t rng = 0x12345678u;
static unsigned char rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (unsigned char)(rng >> 11);
}

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
}

static int sign(int v) { return (v > 0) - (v < 0); }

/* Lengths: every small one, then around word/unroll multiples, then large. */
static const size_t big_sizes[] = { 255, 256, 257, 511, 1000, 1023, 1024, 1025, 4095, 4096,
                                    4097, 65536 + 7 };
#define NBIG (sizeof(big_sizes) / sizeof(big_sizes[0]))
static size_t size_at(size_t i) { return i <= 200 ? i : big_sizes[i - 201]; }
#define NSIZES (201 + NBIG)

#define GUARD 16

static void test_memcpy(void)
{
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = size_at(si);
        for (size_t da = 0; da < 16; da++) {
            for (size_t sa = 0; sa < 16; sa++) {
                if (n > 4096 && (da % 5 || sa % 3))
                    continue;
                /* the source ends exactly at its allocation's end */
                unsigned char *src = malloc(sa + n ? sa + n : 1);
                unsigned char *dst = malloc(da + n + GUARD);
                unsigned char *ref = malloc(da + n + GUARD);
                fill(src, sa + n);
                fill(dst, da + n + GUARD);
                memcpy(ref, dst, da + n + GUARD);
                void *r = mini_memcpy(dst + da, src + sa, n);
                memcpy(ref + da, src + sa, n);
                if (r != dst + da)
                    mismatch("memcpy return", n, da, sa, 0);
                if (memcmp(dst, ref, da + n + GUARD) != 0)
                    mismatch("memcpy data", n, da, sa, 0);
                free(src);
                free(dst);
                free(ref);
            }
        }
    }
    finish_check("memcpy: sizes 0..200 and large x 16x16 alignments, guard bytes intact");
}

static void test_memmove(void)
{
    enum { LEN = 1200 };
    unsigned char *buf = malloc(LEN), *ref = malloc(LEN);
    for (size_t si = 0; si < 201 + 4; si++) {
        size_t n = si <= 200 ? si : (size_t[]){ 255, 256, 257, 511 }[si - 201];
        for (size_t base = 64; base < 64 + 16; base++) {
            for (int delta = -70; delta <= 70; delta++) {
                size_t so = base + 300, d = (size_t)((long)so + delta);
                fill(buf, LEN);
                memcpy(ref, buf, LEN);
                void *r = mini_memmove(buf + d, buf + so, n);
                memmove(ref + d, ref + so, n);
                if (r != buf + d)
                    mismatch("memmove return", n, d, so, delta);
                if (memcmp(buf, ref, LEN) != 0)
                    mismatch("memmove data", n, d, so, delta);
            }
        }
    }
    /* far apart, both directions, large */
    for (size_t n = 0; n < 600; n += 7) {
        for (size_t a = 0; a < 16; a++) {
            fill(buf, LEN);
            memcpy(ref, buf, LEN);
            mini_memmove(buf + a, buf + 600, n);
            memmove(ref + a, ref + 600, n);
            mini_memmove(buf + 600 - a, buf + 1, n);
            memmove(ref + 600 - a, ref + 1, n);
            if (memcmp(buf, ref, LEN) != 0)
                mismatch("memmove far", n, a, 600, 0);
        }
    }
    free(buf);
    free(ref);
    finish_check("memmove: overlaps -70..+70 bytes both directions, 16 alignments, disjoint");
}

static void test_memset(void)
{
    static const int values[] = { 0, 1, 0x7f, 0x80, 0xff, 0x1a5, -1, -128, 0x12345678 };
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = size_at(si);
        for (size_t a = 0; a < 16; a++) {
            for (size_t vi = 0; vi < sizeof(values) / sizeof(values[0]); vi++) {
                unsigned char *dst = malloc(a + n + GUARD);
                unsigned char *ref = malloc(a + n + GUARD);
                fill(dst, a + n + GUARD);
                memcpy(ref, dst, a + n + GUARD);
                void *r = mini_memset(dst + a, values[vi], n);
                memset(ref + a, values[vi], n);
                if (r != dst + a)
                    mismatch("memset return", n, a, 0, values[vi]);
                if (memcmp(dst, ref, a + n + GUARD) != 0)
                    mismatch("memset data", n, a, 0, values[vi]);
                free(dst);
                free(ref);
            }
        }
    }
    finish_check("memset: sizes x 16 alignments x values (int truncated to byte), guard bytes intact");
}

static void test_memcmp(void)
{
    for (size_t si = 0; si < 201; si++) {
        size_t n = si;
        for (size_t aa = 0; aa < 16; aa += 3) {
            for (size_t ba = 0; ba < 16; ba += 1) {
                unsigned char *a = malloc(aa + n + 1), *b = malloc(ba + n + 1);
                fill(a + aa, n);
                memcpy(b + ba, a + aa, n);
                /* equal */
                if (sign(mini_memcmp(a + aa, b + ba, n)) != 0)
                    mismatch("memcmp equal", n, aa, ba, 0);
                /* one difference at every position (every 7th for speed), both signs */
                for (size_t pos = 0; pos < n; pos += (n > 40 ? 7 : 1)) {
                    unsigned char save = b[ba + pos];
                    static const unsigned char alts[] = { 0x00, 0x7f, 0x80, 0xff };
                    for (size_t k = 0; k < 4; k++) {
                        b[ba + pos] = alts[k];
                        int want = sign(memcmp(a + aa, b + ba, n));
                        int got = sign(mini_memcmp(a + aa, b + ba, n));
                        if (want != got)
                            mismatch("memcmp diff", n, aa, ba, (long long)pos);
                        /* a later difference must not matter */
                        if (alts[k] != a[aa + pos] && pos + 1 < n) {
                            b[ba + n - 1] ^= 0xff;
                            if (sign(mini_memcmp(a + aa, b + ba, n)) != want)
                                mismatch("memcmp first diff", n, aa, ba, (long long)pos);
                            b[ba + n - 1] ^= 0xff;
                        }
                    }
                    b[ba + pos] = save;
                }
                free(a);
                free(b);
            }
        }
    }
    /* large, difference near the end */
    for (size_t bi = 0; bi < NBIG; bi++) {
        size_t n = big_sizes[bi];
        unsigned char *a = malloc(n), *b = malloc(n);
        fill(a, n);
        memcpy(b, a, n);
        if (mini_memcmp(a, b, n) != 0)
            mismatch("memcmp large equal", n, 0, 0, 0);
        b[n - 1] ^= 0x80;
        if (sign(mini_memcmp(a, b, n)) != sign(memcmp(a, b, n)))
            mismatch("memcmp large diff", n, 0, 0, 0);
        free(a);
        free(b);
    }
    finish_check("memcmp: equal, first difference at each position, high-bit bytes, alignments");
}

/* A heap string of length len at alignment a, ending exactly at its
 * allocation's end; characters are 1..255 (no NUL inside). */
static char *make_str(size_t a, size_t len, char **base)
{
    unsigned char *p = malloc(a + len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c;
        do
            c = rnd();
        while (c == 0);
        p[a + i] = c;
    }
    p[a + len] = 0;
    *base = (char *)p;
    return (char *)p + a;
}

static void test_strlen(void)
{
    for (size_t len = 0; len < 300; len++) {
        for (size_t a = 0; a < 16; a++) {
            char *base, *s = make_str(a, len, &base);
            if (mini_strlen(s) != len)
                mismatch("strlen", len, a, 0, (long long)mini_strlen(s));
            free(base);
        }
    }
    finish_check("strlen: lengths 0..299 x 16 alignments, high-bit characters");
}

static void test_strcmp(void)
{
    for (size_t len = 0; len < 100; len++) {
        for (size_t a = 0; a < 8; a++) {
            char *ba, *s = make_str(a, len, &ba);
            char *bb, *t = make_str(7 - a, len, &bb);
            memcpy(t, s, len);
            if (mini_strcmp(s, t) != 0)
                mismatch("strcmp equal", len, a, 7 - a, 0);
            /* t differs from s at pos (or ends there, for 0x00) */
            for (size_t pos = 0; pos < len; pos++) {
                char save = t[pos];
                static const unsigned char alts[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
                for (size_t k = 0; k < 5; k++) {
                    t[pos] = (char)alts[k];
                    int want = sign(strcmp(s, t));
                    if (sign(mini_strcmp(s, t)) != want)
                        mismatch("strcmp", len, a, pos, alts[k]);
                    if (sign(mini_strcmp(t, s)) != -want)
                        mismatch("strcmp swapped", len, a, pos, alts[k]);
                    /* n around the difference and around the end */
                    const size_t ns[] = { 0, 1, pos, pos + 1, pos + 2, len, len + 1, len + 2, SIZE_MAX };
                    for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
                        size_t n = ns[ni];
                        int w = sign(strncmp(s, t, n));
                        if (sign(mini_strncmp(s, t, n)) != w)
                            mismatch("strncmp", len, n, pos, alts[k]);
                        if (sign(mini_strncmp(t, s, n)) != -w)
                            mismatch("strncmp swapped", len, n, pos, alts[k]);
                    }
                }
                t[pos] = save;
            }
            free(ba);
            free(bb);
        }
    }
    /* prefixes and n past both terminators */
    static const char *pairs[][2] = { { "", "" }, { "", "a" }, { "abc", "abcd" }, { "abcd", "abc" },
                                      { "abc", "abd" }, { "\x80", "\x7f" }, { "a\xff", "a\x01" } };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *x = pairs[i][0], *y = pairs[i][1];
        if (sign(mini_strcmp(x, y)) != sign(strcmp(x, y)))
            mismatch("strcmp pair", i, 0, 0, 0);
        for (size_t n = 0; n < 8; n++)
            if (sign(mini_strncmp(x, y, n)) != sign(strncmp(x, y, n)))
                mismatch("strncmp pair", i, n, 0, 0);
    }
    /* n larger than any buffer: must stop at the terminator */
    if (mini_strncmp("abc", "abc", SIZE_MAX) != 0)
        mismatch("strncmp SIZE_MAX", 3, 0, 0, 0);
    finish_check("strcmp/strncmp: each differing position, unsigned order, prefixes, n limits");
}

static void test_strchr(void)
{
    for (size_t len = 0; len < 120; len++) {
        for (size_t a = 0; a < 8; a++) {
            char *base, *s = make_str(a, len, &base);
            /* a few distinct characters, so repeats are likely */
            for (size_t i = 0; i < len; i++)
                s[i] = "ab\x80\xff"[(unsigned char)s[i] % 4];
            static const int cs[] = { 'a', 'b', 0x80, 0xff, -1, -128, 'z', 0, 0x100 + 'a', 0x180 };
            for (size_t k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
                if (mini_strchr(s, cs[k]) != strchr(s, cs[k]))
                    mismatch("strchr", len, a, 0, cs[k]);
                if (mini_strrchr(s, cs[k]) != strrchr(s, cs[k]))
                    mismatch("strrchr", len, a, 0, cs[k]);
            }
            free(base);
        }
    }
    finish_check("strchr/strrchr: first/last match, absent, NUL, int argument truncated to char");
}

int main(void)
{
    test_memcpy();
    test_memmove();
    test_memset();
    test_memcmp();
    test_strlen();
    test_strcmp();
    test_strchr();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
