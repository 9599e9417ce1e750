/* Batched qemu-img check (see qemu_check.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "qemu_check.h"

#define CHECK_CMD "qemu-img check -U -f qcow2"

static void batch_start(checker *c, check_batch *b)
{
    snprintf(b->list, sizeof(b->list), "%s/check-list-%u", c->dir, c->seq++);
    FILE *f = fopen(b->list, "w");
    if (!f) {
        perror(b->list);
        exit(2);
    }
    for (size_t i = 0; i < b->n; i++)
        fprintf(f, "%s\n", b->items[i].path);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "xargs -a '%s' -d '\\n' -P 2 -n 4 sh -c "
             "'for f; do " CHECK_CMD " \"$f\" >\"$f.out\" 2>&1; echo $? >\"$f.rc\"; done' sh",
             b->list);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
}

static size_t slurp(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
    return n;
}

static void batch_finish(checker *c, check_batch *b)
{
    if (!b->pid)
        return;
    int st;
    while (waitpid(b->pid, &st, 0) < 0)
        ;
    b->pid = 0;
    for (size_t i = 0; i < b->n; i++) {
        check_item *it = &b->items[i];
        char p[700], rc[32], out[4096];
        snprintf(p, sizeof(p), "%s.rc", it->path);
        int status = slurp(p, rc, sizeof(rc)) ? atoi(rc) : -1;
        unlink(p);
        snprintf(p, sizeof(p), "%s.out", it->path);
        slurp(p, out, sizeof(out));
        unlink(p);
        bool ok = status == 0 || (status == 3 && it->leaks_ok);
        if (!ok)
            c->failed(c->ctx, it, status, status < 0 ? "qemu-img check did not run" : out);
        unlink(it->path);
        c->checked++;
    }
    unlink(b->list);
    b->n = 0;
}

void checker_init(checker *c, const char *dir, check_failed_fn failed, void *ctx)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    c->failed = failed;
    c->ctx = ctx;
}

void checker_add(checker *c, const char *path, const char *label, bool leaks_ok)
{
    check_batch *b = &c->b[c->filling];
    check_item *it = &b->items[b->n++];
    snprintf(it->path, sizeof(it->path), "%s", path);
    snprintf(it->label, sizeof(it->label), "%s", label);
    it->leaks_ok = leaks_ok;
    if (b->n == CHECK_BATCH_MAX) {
        check_batch *other = &c->b[!c->filling];
        batch_finish(c, other);
        batch_start(c, b);
        c->filling = !c->filling;
    }
}

void checker_drain(checker *c)
{
    batch_finish(c, &c->b[!c->filling]);
    check_batch *b = &c->b[c->filling];
    if (b->n) {
        batch_start(c, b);
        batch_finish(c, b);
    }
}

int qemu_check_now(const char *path, char *out, size_t outlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), CHECK_CMD " '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(out, outlen, "cannot run qemu-img");
        return -1;
    }
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = 0;
    char skip[1024];
    while (fread(skip, 1, sizeof(skip), p) > 0)
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
