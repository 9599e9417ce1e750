/*
 * Host tests of the in-memory overlay of published disks
 * (efi/efi_overlay.c), built with ASan+UBSan: random writes and reads
 * against a model of the disk, the limit and a failing allocator (all or
 * nothing), draining in order with a failure in the middle. Prints one
 * "ok   NAME" or "FAIL NAME: why" line per group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efi_overlay.h"
#include "group_check.h"

/* A disk whose size is no multiple of the block size. */
#define DISK_SIZE (1024u * 1024 + 1536)

static uint8_t image[DISK_SIZE];    /* what the image holds */
static uint8_t model[DISK_SIZE];    /* what the disk must read as */

/* An allocator that refuses once `budget` allocations are spent. */
static long budget = -1;

static void *test_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (budget == 0)
        return NULL;
    if (budget > 0)
        budget--;
    return malloc(size);
}

static void test_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static const qb_alloc alloc = { NULL, test_alloc, test_free };

static int fill_fails;

static int fill(void *ctx, uint64_t off, void *buf, size_t len, qb_err *err)
{
    (void)ctx;
    if (fill_fails)
        return qb_err_set(err, QB_EIO, "fill failed");
    if (off + len > DISK_SIZE)
        return qb_err_set(err, QB_ERANGE, "fill past the end");
    memcpy(buf, image + off, len);
    return QB_OK;
}

static int drained_runs, drain_fail_at;
static uint64_t last_off;

static int drain_fn(void *ctx, uint64_t off, const void *buf, size_t len, qb_err *err)
{
    (void)ctx;
    if (drain_fail_at && drained_runs + 1 == drain_fail_at)
        return qb_err_set(err, QB_EIO, "drain failed");
    if (drained_runs && off <= last_off)
        return qb_err_set(err, QB_EINVAL, "runs out of order");
    if (off % QB_OVERLAY_BLOCK || off + len > DISK_SIZE)
        return qb_err_set(err, QB_EINVAL, "bad run");
    memcpy(image + off, buf, len);
    drained_runs++;
    last_off = off;
    return QB_OK;
}

static uint32_t seed = 12345;

static uint32_t rnd(void)
{
    seed = seed * 1103515245 + 12345;
    return seed >> 8;
}

/* The overlay over the image reads as the model, everywhere. */
static void check_reads(const qb_overlay *o, const char *what)
{
    static uint8_t buf[DISK_SIZE];

    memcpy(buf, image, DISK_SIZE);
    qb_overlay_read(o, 0, buf, DISK_SIZE);
    if (memcmp(buf, model, DISK_SIZE) != 0) {
        failf(what, "different bytes", "the model");
        return;
    }
    /* And in pieces at odd places. */
    for (int i = 0; i < 200; i++) {
        uint64_t off = rnd() % DISK_SIZE;
        size_t len = 1 + rnd() % (DISK_SIZE - off < 20000 ? DISK_SIZE - off : 20000);
        memcpy(buf, image + off, len);
        qb_overlay_read(o, off, buf, len);
        if (memcmp(buf, model + off, len) != 0) {
            failf(what, "a piece differs", "the model");
            return;
        }
    }
}

static void random_write(qb_overlay *o, const char *what)
{
    static uint8_t data[65536];
    uint64_t off = (rnd() % (DISK_SIZE / 512)) * 512;
    size_t len = 512 * (1 + rnd() % 100);
    qb_err err = { 0, "" };

    if (len > DISK_SIZE - off)
        len = DISK_SIZE - off;
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)rnd();
    if (qb_overlay_write(o, off, data, len, fill, NULL, &err) < 0) {
        failf(what, err.msg, "success");
        return;
    }
    memcpy(model + off, data, len);
}

static int test_random(void)
{
    qb_overlay *o;
    qb_err err = { 0, "" };

    for (size_t i = 0; i < DISK_SIZE; i++)
        image[i] = (uint8_t)rnd();
    memcpy(model, image, DISK_SIZE);
    o = qb_overlay_new(&alloc, DISK_SIZE, 0);
    if (!o) {
        failf("new", "NULL", "an overlay");
        return end_group("overlay: random writes read back over the image");
    }
    check_int("empty", (long)qb_overlay_bytes(o), 0);
    check_reads(o, "empty reads as the image");
    for (int i = 0; i < 300; i++)
        random_write(o, "write");
    /* The last sector of the disk, in the block that passes its end. */
    {
        uint8_t last[512];
        memset(last, 0xab, sizeof last);
        if (qb_overlay_write(o, DISK_SIZE - 512, last, 512, fill, NULL, &err) < 0)
            failf("last sector", err.msg, "success");
        memcpy(model + DISK_SIZE - 512, last, 512);
    }
    check_reads(o, "after writes");
    if (qb_overlay_write(o, DISK_SIZE - 512, model, 1024, fill, NULL, &err) != QB_ERANGE)
        failf("past the end", err.msg, "QB_ERANGE");
    check_int("bytes are whole blocks", (long)(qb_overlay_bytes(o) % QB_OVERLAY_BLOCK), 0);
    if (qb_overlay_bytes(o) > ((DISK_SIZE + QB_OVERLAY_BLOCK - 1) / QB_OVERLAY_BLOCK) *
                                  QB_OVERLAY_BLOCK)
        failf("bytes", "more than the disk", "at most the disk");

    /* Drained into the image: the image is the model, the overlay empty. */
    drained_runs = 0;
    drain_fail_at = 0;
    if (qb_overlay_drain(o, 64 * 1024, drain_fn, NULL, &err) < 0)
        failf("drain", err.msg, "success");
    check_int("drained: empty", (long)qb_overlay_bytes(o), 0);
    if (memcmp(image, model, DISK_SIZE) != 0)
        failf("drained image", "different", "the model");
    check_reads(o, "after draining");
    /* Used again after being emptied. */
    for (int i = 0; i < 100; i++)
        random_write(o, "write after drain");
    check_reads(o, "written again");
    qb_overlay_free(o);
    return end_group("overlay: random writes read back over the image, drain in order");
}

static int test_limits(void)
{
    qb_overlay *o;
    qb_err err = { 0, "" };
    uint8_t data[3 * QB_OVERLAY_BLOCK];
    static uint8_t big[100 * QB_OVERLAY_BLOCK];
    uint64_t before;

    for (size_t i = 0; i < DISK_SIZE; i++)
        image[i] = (uint8_t)i;
    memcpy(model, image, DISK_SIZE);
    memset(data, 0x5a, sizeof data);

    /* A limit of 4 blocks: a write needing 3 more than the 2 held fails
     * whole; one fitting succeeds. */
    o = qb_overlay_new(&alloc, DISK_SIZE, 4 * QB_OVERLAY_BLOCK);
    if (qb_overlay_write(o, 0, data, 2 * QB_OVERLAY_BLOCK, fill, NULL, &err) < 0)
        failf("limit: first", err.msg, "success");
    memcpy(model, data, 2 * QB_OVERLAY_BLOCK);
    if (qb_overlay_write(o, 8 * QB_OVERLAY_BLOCK, data, 3 * QB_OVERLAY_BLOCK, fill, NULL,
                         &err) != QB_EFULL)
        failf("limit: over", err.msg, "QB_EFULL");
    else if (!strstr(err.msg, "limit"))
        failf("limit: message", err.msg, "... limit ...");
    check_int("limit: unchanged", (long)qb_overlay_bytes(o), 2 * QB_OVERLAY_BLOCK);
    /* Rewriting blocks held needs no more. */
    if (qb_overlay_write(o, 512, data, QB_OVERLAY_BLOCK, fill, NULL, &err) < 0)
        failf("limit: rewrite", err.msg, "success");
    memcpy(model + 512, data, QB_OVERLAY_BLOCK);
    if (qb_overlay_write(o, 8 * QB_OVERLAY_BLOCK, data, 2 * QB_OVERLAY_BLOCK, fill, NULL,
                         &err) < 0)
        failf("limit: up to it", err.msg, "success");
    memcpy(model + 8 * QB_OVERLAY_BLOCK, data, 2 * QB_OVERLAY_BLOCK);
    check_reads(o, "limit: reads");
    qb_overlay_free(o);

    /* The allocator refusing part way: nothing changes. */
    o = qb_overlay_new(&alloc, DISK_SIZE, 0);
    memcpy(model, image, DISK_SIZE);
    if (qb_overlay_write(o, 0, data, 512, fill, NULL, &err) < 0)
        failf("alloc: first", err.msg, "success");
    memcpy(model, data, 512);
    before = qb_overlay_bytes(o);
    /* More blocks than the first slab has left: the pointer table is
     * granted, the second slab is not. */
    budget = 1;
    if (qb_overlay_write(o, 20 * QB_OVERLAY_BLOCK, big, sizeof big, fill, NULL, &err) !=
        QB_EFULL)
        failf("alloc: refused", err.msg, "QB_EFULL");
    budget = -1;
    check_int("alloc: unchanged", (long)qb_overlay_bytes(o), (long)before);
    check_reads(o, "alloc: reads");
    /* The blocks taken back serve the next writes. */
    memset(big, 0x6b, sizeof big);
    if (qb_overlay_write(o, 20 * QB_OVERLAY_BLOCK, big, sizeof big, fill, NULL, &err) < 0)
        failf("alloc: granted again", err.msg, "success");
    memcpy(model + 20 * QB_OVERLAY_BLOCK, big, sizeof big);
    check_reads(o, "alloc: reads after");
    before = qb_overlay_bytes(o);

    /* A fill that fails: nothing changes either. */
    fill_fails = 1;
    if (qb_overlay_write(o, 130 * QB_OVERLAY_BLOCK + 512, data, 512, fill, NULL, &err) != QB_EIO)
        failf("fill error", err.msg, "QB_EIO");
    fill_fails = 0;
    check_int("fill error: unchanged", (long)qb_overlay_bytes(o), (long)before);
    /* A whole block needs no fill. */
    fill_fails = 1;
    if (qb_overlay_write(o, 131 * QB_OVERLAY_BLOCK, data, QB_OVERLAY_BLOCK, fill, NULL, &err) < 0)
        failf("whole block without fill", err.msg, "success");
    fill_fails = 0;
    memcpy(model + 131 * QB_OVERLAY_BLOCK, data, QB_OVERLAY_BLOCK);
    check_reads(o, "fill: reads");
    qb_overlay_free(o);
    return end_group("overlay: limit, failing allocator and fill leave it unchanged");
}

static int test_drain_failure(void)
{
    qb_overlay *o = qb_overlay_new(&alloc, DISK_SIZE, 0);
    qb_err err = { 0, "" };
    uint8_t data[QB_OVERLAY_BLOCK];

    for (size_t i = 0; i < DISK_SIZE; i++)
        image[i] = (uint8_t)(i * 7);
    memcpy(model, image, DISK_SIZE);
    /* Three separate runs of one, two and one blocks. */
    for (int b = 0; b < 4; b++) {
        static const uint64_t at[4] = { 2, 10, 11, 40 };
        memset(data, 0x10 + b, sizeof data);
        qb_overlay_write(o, at[b] * QB_OVERLAY_BLOCK, data, sizeof data, fill, NULL, &err);
        memcpy(model + at[b] * QB_OVERLAY_BLOCK, data, sizeof data);
    }
    drained_runs = 0;
    drain_fail_at = 2;
    if (qb_overlay_drain(o, 1 << 20, drain_fn, NULL, &err) != QB_EIO)
        failf("drain: error", err.msg, "QB_EIO");
    check_str("drain: the error is the run's", err.msg, "drain failed");
    check_int("drain: runs before the error", drained_runs, 1);
    check_int("drain: kept", (long)qb_overlay_bytes(o), 3 * QB_OVERLAY_BLOCK);
    check_reads(o, "drain: reads after the error");
    drained_runs = 0;
    drain_fail_at = 0;
    if (qb_overlay_drain(o, QB_OVERLAY_BLOCK, drain_fn, NULL, &err) < 0)
        failf("drain: again", err.msg, "success");
    check_int("drain: runs of one block", drained_runs, 3);
    check_int("drain: empty", (long)qb_overlay_bytes(o), 0);
    if (memcmp(image, model, DISK_SIZE) != 0)
        failf("drain: image", "different", "the model");
    qb_overlay_free(o);
    return end_group("overlay: a failed drain keeps what it did not write");
}

int main(void)
{
    int failed = 0;

    failed += test_random();
    failed += test_limits();
    failed += test_drain_failure();
    return failed ? 1 : 0;
}
