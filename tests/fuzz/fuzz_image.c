/*
 * libFuzzer target for the read engine and the commands built on it.
 *
 * Input layout: a 4-byte little-endian split point S, then S bytes of the
 * image, then the backing file (everything after). Without a full 4-byte
 * prefix the whole input is the image. Both files are served from memory:
 * the name "image" opens the image, any other name (backing file, external
 * data file) opens the second buffer. Each distinct name resolves to its
 * own canonical path, so a file naming itself is seen as a loop while a
 * chain of different names walks down to the depth limit.
 *
 * Each run:
 *   info --json --backing-chain image, map --json image, check image,
 *   snapshot -l image                         (output discarded, but read)
 *   qb_image_open + status/read over the virtual disk (bounded)
 *   the same through internal snapshot "1"
 * with an allocator that refuses more than FUZZ_ALLOC_LIMIT bytes live, so
 * an unbounded allocation becomes an error path instead of an OOM, and that
 * must find every byte freed at the end of the run.
 *
 * Aborts (findings) beyond the sanitizers': memory still allocated after a
 * run, a status answer of zero length or longer than asked, and a range
 * whose status says "reads as zeros" but whose bytes are not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_backend.h"
#include "qb_cmd.h"
#include "qb_image.h"
#include "qb_path.h"
#include "fuzz_heap.h"

#define FUZZ_READ_CHUNK (1u << 20)
#define FUZZ_READ_BUDGET (64ull << 20)    /* bytes of data read per open */
#define FUZZ_STATUS_BUDGET 4096u          /* status calls per open */
#define FUZZ_ZERO_CHECK 512u              /* bytes of each zero range checked */

/* The harness's own byte loops are kept out of the coverage feedback (and
 * its cost): only the engine's comparisons should steer the fuzzer. */
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#define FUZZ_MAX_OPENS 256                /* backends handed out per command */

/* ---- the two in-memory files ---- */

typedef struct fuzz_files {
    const uint8_t *image;
    size_t image_len;
    const uint8_t *backing;
    size_t backing_len;
    qb_mem_backend pool[FUZZ_MAX_OPENS];
    unsigned used;
} fuzz_files;

static int fuzz_open(void *ctx, const char *relative_to, const char *name, bool writable,
                     qb_backend **out, char *resolved, qb_err *err)
{
    fuzz_files *f = ctx;
    if (writable)
        return qb_err_set(err, QB_EROFS, "%s: read-only", name);
    if (f->used >= FUZZ_MAX_OPENS)
        return qb_err_set(err, QB_EIO, "%s: too many opens", name);
    char path[QB_PATH_MAX];
    if (!qb_path_combine(path, sizeof(path), relative_to, name))
        return qb_err_set(err, QB_EINVAL, "file name too long: %s", name);
    qb_mem_backend *m = &f->pool[f->used++];
    if (strcmp(path, "image") == 0)
        qb_mem_backend_init(m, f->image, f->image_len);
    else
        qb_mem_backend_init(m, f->backing, f->backing_len);
    memcpy(resolved, path, strlen(path) + 1);
    *out = &m->base;
    return QB_OK;
}

/* ---- output sinks: read every byte, keep nothing ---- */

static volatile uint8_t sink_hash;

NO_COVERAGE static void sink_write(void *ctx, const char *s, size_t n)
{
    uint8_t h = 0;
    for (size_t i = 0; i < n; i++)
        h ^= (uint8_t)s[i];
    sink_hash ^= h;
}

static void sink_warn(void *ctx, const char *msg)
{
    sink_write(ctx, msg, strlen(msg));
}

/* ---- a bounded walk over the virtual disk ---- */

NO_COVERAGE static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

NO_COVERAGE static void walk(qb_image *img, uint8_t *buf)
{
    qb_err err;
    uint64_t size = qb_image_size(img);
    uint64_t data_read = 0;
    unsigned calls = 0;
    for (uint64_t off = 0; off < size && data_read < FUZZ_READ_BUDGET &&
                           calls < FUZZ_STATUS_BUDGET;
         calls++) {
        uint64_t want = size - off < (1ull << 30) ? size - off : (1ull << 30);
        qb_status st;
        memset(&st, 0, sizeof(st));
        if (qb_image_status(img, off, want, &st, &err))
            return;
        if (st.length == 0 || st.length > want) {
            fprintf(stderr, "qb_image_status(%llu, %llu) returned length %llu\n",
                    (unsigned long long)off, (unsigned long long)want,
                    (unsigned long long)st.length);
            __builtin_trap();
        }
        if (st.filename)
            sink_write(NULL, st.filename, strlen(st.filename));
        if (st.zero) {
            /* Spot-check the start of the range: it must read as zeros. */
            size_t n = st.length < FUZZ_ZERO_CHECK ? (size_t)st.length : FUZZ_ZERO_CHECK;
            if (qb_image_read(img, off, buf, n, &err) == QB_OK && !all_zero(buf, n)) {
                fprintf(stderr, "status says zeros at %llu (+%llu) but read gives data\n",
                        (unsigned long long)off, (unsigned long long)st.length);
                __builtin_trap();
            }
        } else {
            for (uint64_t done = 0; done < st.length && data_read < FUZZ_READ_BUDGET;) {
                size_t n = st.length - done < FUZZ_READ_CHUNK ? (size_t)(st.length - done)
                                                              : FUZZ_READ_CHUNK;
                if (qb_image_read(img, off + done, buf, n, &err))
                    return;
                sink_write(NULL, (const char *)buf, n < 64 ? n : 64);
                done += n;
                data_read += n;
            }
        }
        off += st.length;
    }
    /* A last unaligned read at the very end of the disk. */
    if (size) {
        size_t n = size < 4096 ? (size_t)size : 4096;
        if (qb_image_read(img, size - n, buf, n, &err) == QB_OK)
            sink_write(NULL, (const char *)buf, 1);
    }
}

static void open_and_walk(fuzz_files *files, qb_alloc alloc, const char *snapshot, uint8_t *buf)
{
    qb_opener opener = { files, fuzz_open, NULL };
    qb_open_opts o;
    memset(&o, 0, sizeof(o));
    o.alloc = alloc;
    o.opener = &opener;
    o.warn = (qb_warn){ NULL, sink_warn };
    o.filename = "image";
    o.snapshot = snapshot;
    files->used = 0;
    qb_err err;
    qb_image *img;
    if (qb_image_open(&img, &o, &err) != QB_OK) {
        sink_write(NULL, err.msg, strlen(err.msg));
        return;
    }
    for (qb_image *l = img; l; l = qb_image_backing(l)) {
        const char *s = qb_image_format(l);
        sink_write(NULL, s, strlen(s));
        s = qb_image_filename(l);
        sink_write(NULL, s, strlen(s));
    }
    walk(img, buf);
    qb_image_close(img);
}

static void run_cmd(fuzz_files *files, const qb_env *env, int argc, const char *const *argv)
{
    char *args[8];
    for (int i = 0; i < argc; i++)
        args[i] = (char *)argv[i];
    args[argc] = NULL;
    files->used = 0;
    (void)qb_cmd_main(env, argc, args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[FUZZ_READ_CHUNK];
    fuzz_files *files = calloc(1, sizeof(*files));
    if (!files)
        abort();
    if (size >= 4) {
        uint32_t split = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
                         (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
        size_t rest = size - 4;
        files->image = data + 4;
        files->image_len = split < rest ? split : rest;
        files->backing = data + 4 + files->image_len;
        files->backing_len = rest - files->image_len;
    } else {
        files->image = data;
        files->image_len = size;
        files->backing = data + size;
        files->backing_len = 0;
    }

    fuzz_heap heap = { 0, 0 };
    qb_alloc alloc = { &heap, heap_alloc, heap_free };
    qb_env env;
    memset(&env, 0, sizeof(env));
    env.alloc = alloc;
    env.opener = (qb_opener){ files, fuzz_open, NULL };
    env.out = (qb_out){ NULL, sink_write };
    env.err = (qb_out){ NULL, sink_write };
    env.program = "qcowboot";

    static const char *const info[] = { "info", "--json", "--backing-chain", "image" };
    static const char *const map[] = { "map", "--json", "image" };
    static const char *const check[] = { "check", "image" };
    static const char *const snap[] = { "snapshot", "-l", "image" };
    run_cmd(files, &env, 4, info);
    run_cmd(files, &env, 3, map);
    run_cmd(files, &env, 2, check);
    run_cmd(files, &env, 3, snap);

    open_and_walk(files, alloc, NULL, buf);
    open_and_walk(files, alloc, "1", buf);

    if (heap.live || heap.blocks) {
        fprintf(stderr, "leak: %zu bytes in %zu blocks still allocated after the run\n",
                heap.live, heap.blocks);
        __builtin_trap();
    }
    free(files);
    return 0;
}
