/*
 * `qemu-img check` over batches of image files, two at a time (xargs -P2),
 * in the background while the caller makes the next batch. A check passes
 * with exit status 0 (clean), or 3 (leaked clusters only) when leaks are
 * acceptable; corruptions (2), an incomplete check (1) or anything else
 * fail.
 */
#ifndef CRASH_QEMU_CHECK_H
#define CRASH_QEMU_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CHECK_BATCH_MAX 16

typedef struct check_item {
    char path[640];
    char label[128];      /* for the report: where the image came from */
    bool leaks_ok;
} check_item;

/* Called for each failed check, before the image file is deleted. */
typedef void (*check_failed_fn)(void *ctx, const check_item *it, int status, const char *output);

typedef struct check_batch {
    check_item items[CHECK_BATCH_MAX];
    size_t n;
    pid_t pid;            /* the running xargs; 0 when not started */
    char list[640];
} check_batch;

typedef struct checker {
    check_batch b[2];
    int filling;          /* the batch being filled; the other may be running */
    char dir[512];
    unsigned seq;
    check_failed_fn failed;
    void *ctx;
    size_t checked;
} checker;

void checker_init(checker *c, const char *dir, check_failed_fn failed, void *ctx);
/* Takes over the file at path (deleted once checked). */
void checker_add(checker *c, const char *path, const char *label, bool leaks_ok);
/* Waits for every check still running or queued. */
void checker_drain(checker *c);

/* One image, checked now: the exit status, output into out. */
int qemu_check_now(const char *path, char *out, size_t outlen);

#endif
