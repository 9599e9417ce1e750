/* Unit tests of the engine, run under ASan+UBSan. Images are built in
 * memory (image_builder.c) so every field can be set to what a test needs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "image_builder.h"
#include "qb_cmd.h"
#include "qb_fmt.h"
#include "qb_image.h"
#include "qb_path.h"
#include "qb_print.h"
#include "unit.h"

int unit_failures;

/* ---- allocators ---- */
typedef struct test_alloc {
    long fail_at;       /* the allocation number that fails; -1 never */
    long count;
    long live;
} test_alloc;

static void *ta_alloc(void *ctx, size_t n)
{
    test_alloc *t = ctx;
    if (t->fail_at >= 0 && t->count++ == t->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        t->live++;
    return p;
}

static void ta_free(void *ctx, void *p)
{
    test_alloc *t = ctx;
    if (p)
        t->live--;
    free(p);
}

/* Opens a built image from memory. */
static int open_mem_fmt(const built_image *b, const char *fmt, test_alloc *ta, qb_mem_backend *mb,
                        qb_image **img, qb_err *err)
{
    qb_mem_backend_init(mb, b->data, b->size);
    qb_open_opts o;
    memset(&o, 0, sizeof(o));
    o.alloc = (qb_alloc){ ta, ta_alloc, ta_free };
    o.filename = "mem.qcow2";
    o.file = &mb->base;
    o.format = fmt;
    memset(err, 0, sizeof(*err));
    return qb_image_open(img, &o, err);
}

static int open_mem(const built_image *b, test_alloc *ta, qb_mem_backend *mb, qb_image **img,
                    qb_err *err)
{
    return open_mem_fmt(b, NULL, ta, mb, img, err);
}

static test_alloc plain_alloc(void)
{
    return (test_alloc){ -1, 0, 0 };
}

/* ---- formatting ---- */
static void test_fmt(void)
{
    char a[128], b[128];
#define SAME(...) \
    do { \
        qb_snprintf(a, sizeof(a), __VA_ARGS__); \
        snprintf(b, sizeof(b), __VA_ARGS__); \
        CHECK(strcmp(a, b) == 0); \
        if (strcmp(a, b)) \
            fprintf(stderr, "    got '%s' want '%s'\n", a, b); \
    } while (0)
    SAME("%d %i %u", -5, 42, 7u);
    SAME("%5d|%-5d|%05d", 12, 12, -12);
    SAME("%x %X %llx", 0xbeefu, 0xbeefu, 0x123456789abcdefull);
    SAME("%llu %lld", 18446744073709551615ull, -9223372036854775807ll - 1);
    SAME("%zu %s %c %%", (size_t)99, "str", 'q');
    SAME("%-10s|%10s|%.3s", "ab", "cd", "truncate");
    SAME("%08llx", 0xabcull);
    SAME("%#llx %#x %#x", 0x10000ull, 0u, 255u);
    SAME("%02llu:%02llu", 3ull, 45ull);
    /* Truncation keeps the NUL and reports the full length. */
    CHECK(qb_snprintf(a, 4, "%s", "abcdef") == 6 && strcmp(a, "abc") == 0);
#undef SAME
}

static void test_size_format(void)
{
    static const struct { uint64_t v; const char *s; } cases[] = {
        { 0, "0 B" }, { 512, "512 B" }, { 999, "999 B" }, { 1000, "0.977 KiB" },
        { 1024, "1 KiB" }, { 1536, "1.5 KiB" }, { 67108864, "64 MiB" },
        { 1000ull << 20, "0.977 GiB" }, { 1ull << 30, "1 GiB" },
        { 2ull << 40, "2 TiB" }, { 1152921504606846976ull, "1 EiB" },
        { 1207959552ull, "1.12 GiB" },   /* 1.125: exact tie, rounds to even */
        { 123456789, "118 MiB" }, { 10737418240ull, "10 GiB" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[32];
        qb_format_size(buf, sizeof(buf), cases[i].v);
        CHECK(strcmp(buf, cases[i].s) == 0);
        if (strcmp(buf, cases[i].s))
            fprintf(stderr, "    %llu: got '%s' want '%s'\n", (unsigned long long)cases[i].v, buf,
                    cases[i].s);
    }
    uint64_t v;
    CHECK(qb_parse_size("64k", &v) && v == 65536);
    CHECK(qb_parse_size("2G", &v) && v == 2ull << 30);
    CHECK(!qb_parse_size("12x", &v));
    CHECK(!qb_parse_size("99999999999999999999", &v));
    CHECK(!qb_parse_size("17E", &v));
}

static void test_path(void)
{
    char out[64];
    CHECK(qb_path_combine(out, sizeof(out), "dir/top.qcow2", "base.qcow2") &&
          strcmp(out, "dir/base.qcow2") == 0);
    CHECK(qb_path_combine(out, sizeof(out), "top.qcow2", "base.qcow2") &&
          strcmp(out, "base.qcow2") == 0);
    CHECK(qb_path_combine(out, sizeof(out), "a/b/top.qcow2", "/abs/base") &&
          strcmp(out, "/abs/base") == 0);
    CHECK(qb_path_combine(out, sizeof(out), "fs0:\\img\\top.qcow2", "..\\base.qcow2") &&
          strcmp(out, "fs0:\\img\\..\\base.qcow2") == 0);
    CHECK(qb_path_combine(out, sizeof(out), "fs0:top.qcow2", "b.qcow2") &&
          strcmp(out, "fs0:b.qcow2") == 0);
    CHECK(!qb_path_combine(out, 8, "dir/top.qcow2", "base.qcow2"));
}

/* ---- header parsing ---- */
static void expect_open_error_fmt(built_image *b, const char *fmt, int code, const char *needle)
{
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img = NULL;
    qb_err err;
    int r = open_mem_fmt(b, fmt, &ta, &mb, &img, &err);
    CHECK(r == code);
    CHECK(strstr(err.msg, needle) != NULL);
    if (r != code || !strstr(err.msg, needle))
        fprintf(stderr, "    rc %d, message '%s' (wanted %d, '%s')\n", r, err.msg, code, needle);
    if (!r)
        qb_image_close(img);
    CHECK(ta.live == 0);
}

static void expect_open_error(built_image *b, int code, const char *needle)
{
    expect_open_error_fmt(b, NULL, code, needle);
}

static void test_header_errors(void)
{
    built_image b;
    build_image(&b, 16, 1 << 20, 6, 0);
    b.data[0] = 'X';
    /* Probing takes a file without the magic for raw, as qemu-img does;
     * asked for qcow2, it is refused. */
    expect_open_error_fmt(&b, "qcow2", QB_ECORRUPT, "magic");
    build_free(&b);

    build_image(&b, 16, 1 << 20, 6, 0);
    put_be32(b.data + 20, 8);
    expect_open_error(&b, QB_EUNSUPP, "cluster_bits");
    put_be32(b.data + 20, 22);
    expect_open_error(&b, QB_EUNSUPP, "cluster_bits");
    build_free(&b);

    build_image(&b, 16, 1 << 20, 6, 0);
    put_be32(b.data + 4, 4);
    expect_open_error(&b, QB_EUNSUPP, "version");
    build_free(&b);

    build_image(&b, 16, 1ull << 40, 6, 0);   /* 1 TiB needs 128 L1 entries */
    put_be32(b.data + 36, 1);
    expect_open_error(&b, QB_ECORRUPT, "l1_size");
    put_be32(b.data + 36, 0x7fffffff);
    expect_open_error(&b, QB_ECORRUPT, "l1_size");
    build_free(&b);

    build_image(&b, 16, 1 << 20, 6, 0);
    put_be32(b.data + 100, 100);
    expect_open_error(&b, QB_ECORRUPT, "header_length");
    put_be32(b.data + 100, 108);
    expect_open_error(&b, QB_ECORRUPT, "header_length");
    build_free(&b);

    build_image(&b, 16, 1 << 20, 6, 0);
    put_be64(b.data + 40, 3 * 65536 + 8);   /* unaligned L1 */
    expect_open_error(&b, QB_ECORRUPT, "L1 table");
    put_be64(b.data + 40, 100ull * 65536);  /* past EOF */
    expect_open_error(&b, QB_ECORRUPT, "past the end");
    build_free(&b);

    /* Unknown incompatible bit named by the feature table. */
    build_image(&b, 16, 1 << 20, 6, 0);
    put_be64(b.data + 72, 1ull << 9);
    expect_open_error(&b, QB_EUNSUPP, "unknown incompatible feature bit 9");
    uint8_t *ext = b.data + 112;
    put_be32(ext, 0x6803f857);
    put_be32(ext + 4, 48);
    ext[8] = 0;
    ext[9] = 9;
    memcpy(ext + 10, "teleportation", 13);
    expect_open_error(&b, QB_EUNSUPP, "teleportation");
    build_free(&b);

    /* A header extension overrunning the cluster. */
    build_image(&b, 16, 1 << 20, 6, 0);
    put_be32(b.data + 112, 0x12345678);
    put_be32(b.data + 116, 70000);
    expect_open_error(&b, QB_ECORRUPT, "overruns");
    build_free(&b);

    /* Encryption is recognised and refused. */
    build_image(&b, 16, 1 << 20, 6, 0);
    put_be32(b.data + 32, 2);
    expect_open_error(&b, QB_ECRYPT, "encrypted: passphrase required");
    build_free(&b);

    /* Absurd snapshot table. */
    build_image(&b, 16, 1 << 20, 6, 0);
    put_be32(b.data + 60, 0x7fffffff);
    put_be64(b.data + 64, 5 * 65536);
    expect_open_error(&b, QB_ECORRUPT, "nb_snapshots");
    put_be32(b.data + 60, 3);
    put_be64(b.data + 64, 5 * 65536);
    put_be32(b.data + 5 * 65536 + 36, 1000000);   /* extra data size */
    expect_open_error(&b, QB_ECORRUPT, "extra data size");
    build_free(&b);

    /* Backing file name too long. */
    build_image(&b, 16, 1 << 20, 6, 0);
    put_be64(b.data + 8, 512);
    put_be32(b.data + 16, 2000);
    expect_open_error(&b, QB_ECORRUPT, "backing_file_size");
    build_free(&b);
}

/* ---- reads ---- */
static void fill(built_image *b, unsigned cluster, uint8_t v)
{
    memset(b->data + cluster * b->cs, v, (size_t)b->cs);
}

static void test_read_kinds(void)
{
    built_image b;
    build_image(&b, 16, 8 << 16, 10, 0);
    fill(&b, 5, 0xa1);
    fill(&b, 6, 0xa2);
    fill(&b, 7, 0xa3);
    build_set_l2(&b, 0, 5 * b.cs | (1ull << 63), 0);     /* data */
    build_set_l2(&b, 1, 6 * b.cs | (1ull << 63), 0);     /* data, contiguous */
    build_set_l2(&b, 2, 1, 0);                           /* zero, no host */
    build_set_l2(&b, 3, 7 * b.cs | 1, 0);                /* zero, preallocated */
    /* 4: unallocated */
    build_set_l2(&b, 5, 7 * b.cs | (1ull << 63), 0);
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img;
    qb_err err;
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_cluster_size(img) == 65536);
    uint8_t *buf = malloc(8 << 16);
    CHECK(qb_image_read(img, 0, buf, 8 << 16, &err) == 0);
    CHECK(buf[0] == 0xa1 && buf[65535] == 0xa1 && buf[65536] == 0xa2);
    CHECK(buf[2 * 65536] == 0 && buf[3 * 65536 + 5] == 0 && buf[4 * 65536] == 0);
    CHECK(buf[5 * 65536 + 17] == 0xa3);
    /* Reads across boundaries at odd offsets. */
    CHECK(qb_image_read(img, 65530, buf, 20, &err) == 0);
    CHECK(buf[5] == 0xa1 && buf[6] == 0xa2 && buf[19] == 0xa2);
    /* Outside the disk. */
    CHECK(qb_image_read(img, 8 << 16, buf, 1, &err) == QB_ERANGE);

    qb_status st;
    CHECK(qb_image_status(img, 0, 8 << 16, &st, &err) == 0);
    CHECK(st.length == 2 * 65536 && st.data && !st.zero && st.has_offset &&
          st.offset == 5 * 65536);
    CHECK(qb_image_status(img, 2 * 65536, 65536 * 6, &st, &err) == 0);
    CHECK(st.length == 65536 && st.zero && !st.data && st.present && !st.has_offset);
    CHECK(qb_image_status(img, 3 * 65536, 65536 * 5, &st, &err) == 0);
    CHECK(st.length == 65536 && st.zero && st.has_offset && st.offset == 7 * 65536);
    CHECK(qb_image_status(img, 4 * 65536, 65536 * 4, &st, &err) == 0);
    CHECK(st.length == 65536 && st.zero && !st.present);
    qb_image_close(img);
    free(buf);
    CHECK(ta.live == 0);
    build_free(&b);
}

static void test_bad_l2_entries(void)
{
    built_image b;
    build_image(&b, 16, 4 << 16, 8, 0);
    build_set_l2(&b, 0, 5 * b.cs + 512, 0);   /* unaligned data cluster */
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img;
    qb_err err;
    uint8_t buf[512];
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, sizeof(buf), &err) == QB_ECORRUPT);
    CHECK(strstr(err.msg, "not cluster aligned") && strstr(err.msg, "entry 0"));
    qb_image_close(img);

    /* L1 entry pointing past the end of the file. */
    put_be64(b.data + b.l1_off, 50 * b.cs);
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, sizeof(buf), &err) == QB_ECORRUPT);
    CHECK(strstr(err.msg, "past the end") != NULL);
    qb_image_close(img);
    CHECK(ta.live == 0);
    build_free(&b);
}

static void test_extended_l2(void)
{
    built_image b;
    build_image(&b, 16, 1 << 16, 8, 1);   /* one cluster of 32 subclusters of 2 KiB */
    fill(&b, 5, 0x5c);
    /* subcluster 0 allocated, 1 zero, others unallocated */
    build_set_l2(&b, 0, 5 * b.cs | (1ull << 63), 1ull | (2ull << 32));
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img;
    qb_err err;
    uint8_t buf[3 * 2048];
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, sizeof(buf), &err) == 0);
    CHECK(buf[0] == 0x5c && buf[2047] == 0x5c && buf[2048] == 0 && buf[4096] == 0);
    qb_status st;
    CHECK(qb_image_status(img, 0, 65536, &st, &err) == 0);
    CHECK(st.length == 2048 && st.data);
    CHECK(qb_image_status(img, 2048, 65536 - 2048, &st, &err) == 0);
    CHECK(st.length == 2048 && st.zero && st.present && st.has_offset);
    CHECK(qb_image_status(img, 4096, 65536 - 4096, &st, &err) == 0);
    CHECK(st.length == 65536 - 4096 && !st.present && st.zero);
    qb_image_close(img);

    /* A subcluster both allocated and zero is invalid. */
    build_set_l2(&b, 0, 5 * b.cs | (1ull << 63), 1ull | (1ull << 32));
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, 16, &err) == QB_ECORRUPT);
    CHECK(strstr(err.msg, "subcluster") != NULL);
    qb_image_close(img);
    CHECK(ta.live == 0);
    build_free(&b);
}

static voidpf z_alloc_cb(voidpf o, uInt n, uInt s) { return calloc(n, s); }
static void z_free_cb(voidpf o, voidpf p) { free(p); }

/* A compressed descriptor for data at host offset `off`, `len` bytes. */
static uint64_t compressed_entry(const built_image *b, uint64_t off, uint64_t len)
{
    unsigned shift = 62 - (b->cluster_bits - 8);
    uint64_t sectors = (off + len - 1) / 512 - off / 512;   /* additional sectors */
    return (1ull << 62) | (sectors << shift) | off;
}

static void test_compressed_deflate(void)
{
    built_image b;
    build_image(&b, 12, 4 << 12, 8, 0);   /* 4 KiB clusters */
    uint8_t plain[4096];
    /* Half noise, half pattern: compresses to about half a cluster. */
    uint32_t seed = 12345;
    for (int i = 0; i < 4096; i++) {
        seed = seed * 1103515245u + 12345u;
        plain[i] = i < 2048 ? (uint8_t)(seed >> 16) : (uint8_t)(i / 7);
    }
    uint8_t comp[8192];
    z_stream z;
    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc_cb;    /* zlib is built with Z_SOLO: no default allocator */
    z.zfree = z_free_cb;
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = plain;
    z.avail_in = sizeof(plain);
    z.next_out = comp;
    z.avail_out = sizeof(comp);
    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    size_t clen = sizeof(comp) - z.avail_out;
    deflateEnd(&z);
    /* Place it mid-cluster, crossing into the next host cluster, with
     * garbage after it in the last sector (the length is only known to
     * 512 bytes). */
    uint64_t off = 5 * b.cs + 4000;
    memcpy(b.data + off, comp, clen);
    memset(b.data + off + clen, 0xee, 20);
    build_set_l2(&b, 0, compressed_entry(&b, off, clen + 20), 0);
    /* A second cluster sharing the same bytes. */
    build_set_l2(&b, 1, compressed_entry(&b, off, clen), 0);
    /* A truncated one: the descriptor covers only the first sector. */
    CHECK(clen > 1024);
    build_set_l2(&b, 2, compressed_entry(&b, off, 1), 0);
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img;
    qb_err err;
    uint8_t buf[2 * 4096];
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, sizeof(buf), &err) == 0);
    CHECK(memcmp(buf, plain, 4096) == 0 && memcmp(buf + 4096, plain, 4096) == 0);
    CHECK(qb_image_read(img, 100, buf, 10, &err) == 0 && memcmp(buf, plain + 100, 10) == 0);
    CHECK(qb_image_read(img, 2 * 4096, buf, 16, &err) == QB_ECORRUPT);
    CHECK(strstr(err.msg, "decompress") != NULL);
    qb_status st;
    CHECK(qb_image_status(img, 0, 4 * 4096, &st, &err) == 0);
    CHECK(st.data && st.compressed && !st.has_offset && st.length == 4096);
    qb_image_close(img);
    CHECK(ta.live == 0);
    build_free(&b);
}

/* Raw deflate of `len` bytes into `out` (at most `cap`), ended by `flush`. */
static size_t deflate_raw(const uint8_t *in, size_t len, uint8_t *out, size_t cap, int flush)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc_cb;
    z.zfree = z_free_cb;
    CHECK(deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = (uint8_t *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, flush);
    CHECK(zr == (flush == Z_FINISH ? Z_STREAM_END : Z_OK) && z.avail_in == 0);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

/* Streams the fast decoder refuses and zlib decides (QEMU's semantics):
 * one that fills the cluster but is never terminated (sync flush, no final
 * block) is accepted; one that holds more than a cluster gives its first
 * cluster; one that ends short of a full cluster is an error. */
static void test_compressed_deflate_fallback(void)
{
    built_image b;
    build_image(&b, 12, 4 << 12, 12, 0);   /* 4 KiB clusters */
    uint8_t plain[8192];
    uint32_t seed = 777;
    for (int i = 0; i < 8192; i++) {
        seed = seed * 1103515245u + 12345u;
        plain[i] = (i / 512) % 2 ? (uint8_t)(seed >> 16) : (uint8_t)(i / 5);
    }
    uint8_t comp[3][16384];
    size_t len[3];
    len[0] = deflate_raw(plain, 4096, comp[0], sizeof(comp[0]), Z_SYNC_FLUSH);
    len[1] = deflate_raw(plain, 8192, comp[1], sizeof(comp[1]), Z_FINISH);
    len[2] = deflate_raw(plain, 2048, comp[2], sizeof(comp[2]), Z_FINISH);
    /* Each stream ends on a sector boundary, so the descriptor's length is
     * the stream's own: after a sync flush zlib would read whatever
     * follows as the next block. */
    for (unsigned k = 0; k < 3; k++) {
        uint64_t end = (5 + 2 * k + 2) * b.cs;
        CHECK(len[k] <= 2 * b.cs);
        memcpy(b.data + end - len[k], comp[k], len[k]);
        build_set_l2(&b, k, compressed_entry(&b, end - len[k], len[k]), 0);
    }
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img;
    qb_err err;
    uint8_t buf[4096];
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, 4096, &err) == 0 && memcmp(buf, plain, 4096) == 0);
    CHECK(qb_image_read(img, 4096, buf, 4096, &err) == 0 && memcmp(buf, plain, 4096) == 0);
    CHECK(qb_image_read(img, 2 * 4096, buf, 16, &err) == QB_ECORRUPT);
    CHECK(strstr(err.msg, "decompress") != NULL);
    qb_image_close(img);
    CHECK(ta.live == 0);
    build_free(&b);
}

/* zstd frames made of raw blocks: two frames for one cluster, as a
 * compressor may emit. */
static size_t zstd_raw_frame(uint8_t *out, const uint8_t *data, size_t len)
{
    size_t n = 0;
    put_be32(out, 0);
    out[n++] = 0x28; out[n++] = 0xb5; out[n++] = 0x2f; out[n++] = 0xfd;   /* magic, LE */
    out[n++] = 0x00;          /* frame header: no content size, window descriptor follows */
    out[n++] = 0x30;          /* window 64 KiB */
    uint32_t bh = 1u | (0u << 1) | ((uint32_t)len << 3);   /* last block, raw */
    out[n++] = (uint8_t)bh; out[n++] = (uint8_t)(bh >> 8); out[n++] = (uint8_t)(bh >> 16);
    memcpy(out + n, data, len);
    return n + len;
}

static void test_compressed_zstd(void)
{
    built_image b;
    build_image(&b, 12, 2 << 12, 8, 0);
    b.data[72 + 7] = 1 << 3;        /* incompatible: compression type */
    b.data[104] = 1;                /* zstd */
    uint8_t plain[4096];
    for (int i = 0; i < 4096; i++)
        plain[i] = (uint8_t)(i * 13);
    uint8_t comp[8192];
    size_t n = zstd_raw_frame(comp, plain, 1000);
    n += zstd_raw_frame(comp + n, plain + 1000, 3096);
    uint64_t off = 5 * b.cs + 512;
    memcpy(b.data + off, comp, n);
    build_set_l2(&b, 0, compressed_entry(&b, off, n), 0);
    /* A copy of the frames cut short: input ends before the cluster is full. */
    memcpy(b.data + 7 * b.cs, comp, 1024);
    build_set_l2(&b, 1, compressed_entry(&b, 7 * b.cs, 1024), 0);
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_image *img;
    qb_err err;
    uint8_t buf[4096];
    CHECK(open_mem(&b, &ta, &mb, &img, &err) == 0);
    CHECK(qb_image_read(img, 0, buf, sizeof(buf), &err) == 0);
    CHECK(memcmp(buf, plain, 4096) == 0);
    CHECK(qb_image_read(img, 4096, buf, 16, &err) == QB_ECORRUPT);
    qb_image_close(img);
    CHECK(ta.live == 0);
    build_free(&b);
}

/* Many L2 tables with a cache of two: entries are evicted and reloaded. */
static void test_cache_eviction(void)
{
    built_image b;
    unsigned cb = 9;      /* 512 B clusters: 64 entries per L2 table */
    unsigned tables = 6;
    build_image(&b, cb, (uint64_t)tables * 64 * 512, 5 + tables + tables, 0);
    for (unsigned t = 0; t < tables; t++) {
        uint64_t l2 = (5 + t) * b.cs;
        uint64_t data = (5 + tables + t) * b.cs;
        put_be64(b.data + b.l1_off + 8 * t, l2 | (1ull << 63));
        put_be64(b.data + l2, data | (1ull << 63));   /* first cluster of each table */
        memset(b.data + data, 0x10 + t, 512);
    }
    test_alloc ta = plain_alloc();
    qb_mem_backend mb;
    qb_mem_backend_init(&mb, b.data, b.size);
    qb_open_opts o;
    memset(&o, 0, sizeof(o));
    o.alloc = (qb_alloc){ &ta, ta_alloc, ta_free };
    o.filename = "mem.qcow2";
    o.file = &mb.base;
    o.l2_cache_bytes = 1;   /* the minimum: two tables */
    qb_image *img;
    qb_err err;
    CHECK(qb_image_open(&img, &o, &err) == 0);
    for (int round = 0; round < 3; round++) {
        for (unsigned t = 0; t < tables; t++) {
            unsigned tt = round == 1 ? tables - 1 - t : t;
            uint8_t v = 0;
            CHECK(qb_image_read(img, (uint64_t)tt * 64 * 512 + 3, &v, 1, &err) == 0);
            CHECK(v == 0x10 + tt);
        }
    }
    qb_image_close(img);
    CHECK(ta.live == 0);
    build_free(&b);
}

/* Every allocation failing in turn: open and read fail cleanly with
 * QB_ENOMEM and free what they took (LeakSanitizer checks the rest). */
static void test_allocation_failures(void)
{
    built_image b;
    build_image(&b, 16, 2 << 16, 7, 0);
    fill(&b, 5, 0x77);
    build_set_l2(&b, 0, 5 * b.cs | (1ull << 63), 0);
    int successes = 0;
    for (long n = 0; n < 64; n++) {
        test_alloc ta = { n, 0, 0 };
        qb_mem_backend mb;
        qb_image *img = NULL;
        qb_err err;
        int r = open_mem(&b, &ta, &mb, &img, &err);
        if (r == 0) {
            uint8_t v = 0;
            r = qb_image_read(img, 10, &v, 1, &err);
            CHECK(r == 0 || r == QB_ENOMEM);
            if (r == 0) {
                CHECK(v == 0x77);
                successes++;
            }
            qb_image_close(img);
        } else {
            CHECK(r == QB_ENOMEM);
        }
        CHECK(ta.live == 0);
    }
    CHECK(successes > 0);
    build_free(&b);
}

/* ---- the command layer through an in-memory environment ---- */
typedef struct strbuf {
    char data[8192];
    size_t len;
} strbuf;

static void sb_write(void *ctx, const char *s, size_t n)
{
    strbuf *sb = ctx;
    if (sb->len + n < sizeof(sb->data)) {
        memcpy(sb->data + sb->len, s, n);
        sb->len += n;
        sb->data[sb->len] = '\0';
    }
}

static void *plain_malloc(void *c, size_t n) { return malloc(n); }
static void plain_free(void *c, void *p) { free(p); }

typedef struct mem_files {
    built_image *img;
    qb_mem_backend mb;
} mem_files;

static void mem_close(qb_backend *b) { (void)b; }

static int mem_open(void *ctx, const char *rel, const char *name, bool w, qb_backend **out,
                    char *resolved, qb_err *err)
{
    mem_files *f = ctx;
    if (strcmp(name, "disk.qcow2") != 0)
        return qb_err_set(err, QB_ENOENT, "could not open '%s': no such file", name);
    qb_mem_backend_init(&f->mb, f->img->data, f->img->size);
    static qb_backend_class cls;
    cls = *f->mb.base.vt;
    cls.close = mem_close;
    f->mb.base.vt = &cls;
    *out = &f->mb.base;
    strcpy(resolved, name);
    return QB_OK;
}

static int run_cmd(mem_files *files, strbuf *out, strbuf *err, int argc, char **argv)
{
    qb_env env;
    memset(&env, 0, sizeof(env));
    env.alloc = (qb_alloc){ NULL, plain_malloc, plain_free };
    env.opener = (qb_opener){ files, mem_open, NULL };
    env.out = (qb_out){ out, sb_write };
    env.err = (qb_out){ err, sb_write };
    env.program = "qcowboot";
    out->len = err->len = 0;
    out->data[0] = err->data[0] = '\0';
    return qb_cmd_main(&env, argc, argv);
}

static void test_commands(void)
{
    built_image b;
    build_image(&b, 16, 3 << 16, 7, 0);
    fill(&b, 5, 0x11);
    build_set_l2(&b, 1, 5 * b.cs | (1ull << 63), 0);
    mem_files files = { &b, { { NULL }, NULL, 0 } };
    strbuf out, err;
    char *map[] = { "map", "--json", "disk.qcow2" };
    CHECK(run_cmd(&files, &out, &err, 3, map) == 0);
    CHECK(strcmp(out.data,
                 "[{ \"start\": 0, \"length\": 65536, \"depth\": 0, \"present\": false, "
                 "\"zero\": true, \"data\": false},\n"
                 "{ \"start\": 65536, \"length\": 65536, \"depth\": 0, \"present\": true, "
                 "\"zero\": false, \"data\": true, \"offset\": 327680},\n"
                 "{ \"start\": 131072, \"length\": 65536, \"depth\": 0, \"present\": false, "
                 "\"zero\": true, \"data\": false}]\n") == 0);
    char *info[] = { "info", "disk.qcow2" };
    CHECK(run_cmd(&files, &out, &err, 2, info) == 0);
    CHECK(strstr(out.data, "virtual size: 192 KiB (196608 bytes)") != NULL);
    CHECK(strstr(out.data, "cluster_size: 65536") != NULL);
    char *check[] = { "check", "disk.qcow2" };
    /* Clusters 0-5 are used, cluster 6 has refcount 1 but no reference. */
    CHECK(run_cmd(&files, &out, &err, 2, check) == 3);
    CHECK(strstr(err.data, "Leaked cluster 6 refcount=1 reference=0") != NULL);
    CHECK(strstr(out.data, "1 leaked clusters were found on the image.") != NULL);
    char *missing[] = { "info", "nope.qcow2" };
    CHECK(run_cmd(&files, &out, &err, 2, missing) == 1);
    CHECK(strstr(err.data, "nope.qcow2") != NULL);
    char *bad[] = { "frobnicate" };
    CHECK(run_cmd(&files, &out, &err, 1, bad) == 1);
    CHECK(strstr(err.data, "unknown command 'frobnicate'") != NULL);
    char *badopt[] = { "map", "--bogus", "disk.qcow2" };
    CHECK(run_cmd(&files, &out, &err, 3, badopt) == 1);
    CHECK(strstr(err.data, "--bogus") != NULL);
    build_free(&b);
}

static const unit_test tests[] = {
    { "fmt", test_fmt },
    { "size_format", test_size_format },
    { "path", test_path },
    { "header_errors", test_header_errors },
    { "read_kinds", test_read_kinds },
    { "bad_l2_entries", test_bad_l2_entries },
    { "extended_l2", test_extended_l2 },
    { "compressed_deflate", test_compressed_deflate },
    { "compressed_deflate_fallback", test_compressed_deflate_fallback },
    { "compressed_zstd", test_compressed_zstd },
    { "cache_eviction", test_cache_eviction },
    { "allocation_failures", test_allocation_failures },
    { "commands", test_commands },
};

int main(void)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = unit_failures;
        tests[i].fn();
        if (unit_failures == before) {
            printf("ok   %s\n", tests[i].name);
            passed++;
        } else {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
