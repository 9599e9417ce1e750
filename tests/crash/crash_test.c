/*
 * Crash-consistency test of the write engine.
 *
 * For each workload (workloads.c): one clean run over the fault backend
 * counts the backend calls that change the disk and checks the result; then
 * the workload runs again with a crash at call k, for k over every call or
 * a stride through them that always includes the calls around each flush.
 * From each crash, a few images a reboot could find (the durable state plus
 * none, all, or a random subset of the writes since the last backend flush,
 * or a random subset of their 512-byte sectors: fault_backend.h) are
 * checked:
 *   - by `qemu-img check`: no corruption (leaked clusters are fine), run in
 *     batches two at a time while the next images are made;
 *   - by the engine's own check (as `qcowboot check`): the same verdict;
 *   - by the engine, read-only: every byte not touched since the last
 *     completed qb_image_flush reads as the model says, snapshots are there
 *     (or gone) as the model says and read as when they were taken.
 * At a few crash points per workload the crashed image is also opened
 * writable, written, flushed, closed, and checked again.
 *
 *   crash_test WORKDIR [--only NAME] [--points N] [--keep DIR]
 *
 * Prints `ok   NAME` / `FAIL NAME: why` lines (details indented below);
 * exits non-zero if anything failed. A failure names the workload, the
 * crash point k and the seed; --keep saves every image that failed (with
 * its backing file) for reproduction.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "engine_run.h"
#include "qemu_check.h"

#define MAX_DETAILS 6
#define SEEDS_PER_POINT 4      /* none, all, a random subset, torn writes */

typedef struct group {
    const wl_setup *su;
    const char *keep_dir;
    unsigned failures;
    char details[MAX_DETAILS][700];
    unsigned ndetails;
} group;

static void group_reset(group *g)
{
    g->failures = 0;
    g->ndetails = 0;
}

static void group_fail(group *g, const char *fmt, ...)
{
    g->failures++;
    if (g->ndetails == MAX_DETAILS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->details[g->ndetails++], sizeof(g->details[0]), fmt, ap);
    va_end(ap);
}

/* Prints the group's line and its details; true if it passed. */
static bool group_report(group *g, const char *what, double seconds)
{
    if (g->failures == 0) {
        printf("ok   %s: %s (%.1f s)\n", g->su->w->name, what, seconds);
    } else {
        printf("FAIL %s: %s: %u failures\n", g->su->w->name, what, g->failures);
        for (unsigned i = 0; i < g->ndetails; i++)
            printf("    %s\n", g->details[i]);
        if (g->failures > g->ndetails)
            printf("    ... and %u more\n", g->failures - g->ndetails);
    }
    fflush(stdout);
    return g->failures == 0;
}

/* Copies a failing image (and the backing file it names) to --keep. */
static void keep_file(group *g, const char *label, const uint8_t *data, size_t len,
                      const char *from_path)
{
    if (!g->keep_dir)
        return;
    mkdir(g->keep_dir, 0777);
    char path[1024], cmd[2048], why[256];
    snprintf(path, sizeof(path), "%s/%s-%s.qcow2", g->keep_dir, g->su->w->name, label);
    for (char *p = path + strlen(g->keep_dir) + 1; *p; p++)
        if (*p == ' ' || *p == '=')
            *p = '_';
    if (data)
        write_sparse_file(path, data, len);
    else {
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from_path, path);
        run_shell(cmd, why, sizeof(why));
    }
    if (g->su->base_name[0]) {
        snprintf(cmd, sizeof(cmd), "cp -n '%s/%s' '%s/'", g->su->dir, g->su->base_name,
                 g->keep_dir);
        run_shell(cmd, why, sizeof(why));
    }
}

/* The lines of a qemu-img check report that say what is wrong (not the
 * leaked clusters, which are allowed), joined with '|'. */
static void check_summary(const char *output, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *line = output; *line && n + 1 < cap;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len && strncmp(line, "Leaked cluster", 14) != 0) {
            if (n && n + 1 < cap)
                out[n++] = '|';
            for (size_t i = 0; i < len && n + 1 < cap; i++)
                out[n++] = line[i];
        }
        line += len + (end != NULL);
    }
    out[n] = 0;
}

static void check_failed(void *ctx, const check_item *it, int status, const char *output)
{
    group *g = ctx;
    char summary[400];
    check_summary(output, summary, sizeof(summary));
    group_fail(g, "%s: qemu-img check exit %d: %s", it->label, status, summary);
    keep_file(g, it->label, NULL, 0, it->path);
}

/* ---- crashed images seen already (each is checked only once) ---- */

static uint64_t mix_key(uint64_t a, uint64_t b)
{
    uint64_t h = (a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2))) * 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

typedef struct hash_set {
    uint64_t *h;
    size_t n, cap;
} hash_set;

/* Adds h; false if it was there. */
static bool hash_set_add(hash_set *s, uint64_t h)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->h[i] == h)
            return false;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->h = realloc(s->h, s->cap * sizeof(*s->h));
        if (!s->h)
            abort();
    }
    s->h[s->n++] = h;
    return true;
}

/* ---- crash points ---- */

/*
 * Every call when there are at most `target`; otherwise a stride of about
 * `target`, plus the calls around each flush step of the workload (the last
 * call before it, its first and last call, the first call after) and, up to
 * another `target`, the backend flushes the engine issues on its own and
 * the call after each.
 */
static size_t choose_points(uint64_t n, const char *kinds, const flush_trace *tr,
                            unsigned target, uint64_t **out)
{
    char *mark = calloc(n + 2, 1);
    if (!mark)
        abort();
    if (n <= target) {
        for (uint64_t k = 1; k <= n; k++)
            mark[k] = 1;
    } else {
        uint64_t stride = n / target;
        for (uint64_t k = 1; k <= n; k += stride)
            mark[k] = 1;
        mark[n] = 1;
        for (size_t i = 0; i < tr->n; i++) {
            uint64_t s = tr->start[i], e = tr->end[i];
            if (s >= 1)
                mark[s] = 1;
            if (e > s) {
                mark[s + 1] = 1;
                mark[e] = 1;
            }
            if (e + 1 <= n)
                mark[e + 1] = 1;
        }
        uint64_t nflush = 0;
        for (uint64_t k = 1; k <= n; k++)
            nflush += kinds[k - 1] == CALL_FLUSH;
        uint64_t fstride = nflush / target + 1, seen = 0;
        for (uint64_t k = 1; k <= n; k++) {
            if (kinds[k - 1] != CALL_FLUSH || seen++ % fstride)
                continue;
            mark[k] = 1;
            if (k + 1 <= n)
                mark[k + 1] = 1;
        }
    }
    size_t count = 0;
    for (uint64_t k = 1; k <= n; k++)
        count += mark[k];
    *out = malloc((count ? count : 1) * sizeof(**out));
    if (!*out)
        abort();
    count = 0;
    for (uint64_t k = 1; k <= n; k++)
        if (mark[k])
            (*out)[count++] = k;
    free(mark);
    return count;
}

/* ---- the groups of one workload ---- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t be_read(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The clean run: no crash; everything must read back and the image must
 * be clean (not even leaks). Leaves the backend's call kinds in d. */
static bool clean_run(group *g, fault_disk *d, model *m, flush_trace *tr)
{
    const wl_setup *su = g->su;
    double t0 = now();
    char why[1024], path[1024], out[4096];
    group_reset(g);
    d->trace = true;
    run_opts o = { 0, true, tr };
    if (!run_workload(su, d, m, &o, why, sizeof(why))) {
        group_fail(g, "%s", why);
    } else if (!verify_image(su, d->cur.p, (size_t)d->cur.size, m, why, sizeof(why))) {
        group_fail(g, "final image: %s", why);
    } else {
        snprintf(path, sizeof(path), "%s/final.qcow2", su->dir);
        write_sparse_file(path, d->cur.p, (size_t)d->cur.size);
        int rc = qemu_check_now(path, out, sizeof(out));
        if (rc != 0) {
            group_fail(g, "final image: qemu-img check exit %d: %s", rc, out);   /* leaks too */
            keep_file(g, "final", d->cur.p, (size_t)d->cur.size, NULL);
        }
        unlink(path);
        if (su->w->leaves_compressed && strstr(out, " 0.00% compressed clusters"))
            group_fail(g, "no compressed clusters in the final image: the workload misses its "
                       "aim (%s)", out);
        if (su->w->grows_refcount_table && d->cur.size >= 64 && su->image_len >= 64 &&
            be_read(d->cur.p + 48, 8) == be_read(su->image + 48, 8) &&
            be_read(d->cur.p + 56, 4) == be_read(su->image + 56, 4))
            group_fail(g, "the refcount table did not move or grow: the workload misses its aim");
    }
    d->trace = false;
    char what[128];
    snprintf(what, sizeof(what), "clean run (%llu backend calls, %zu flush steps)",
             (unsigned long long)d->calls, tr->n);
    return group_report(g, what, now() - t0);
}

static void crash_points(group *g, fault_disk *d, model *m, const uint64_t *pts, size_t npts,
                         const char *workdir)
{
    const wl_setup *su = g->su;
    double t0 = now();
    char why[1024], label[128], path[1024], out[4096];
    group_reset(g);
    checker ck;
    checker_init(&ck, workdir, check_failed, g);
    hash_set seen = { 0 }, verified = { 0 };
    byte_buf scratch = { 0 };
    size_t images = 0;
    for (size_t i = 0; i < npts; i++) {
        uint64_t k = pts[i];
        run_opts o = { k, false, NULL };
        if (!run_workload(su, d, m, &o, why, sizeof(why))) {
            group_fail(g, "k=%llu: %s", (unsigned long long)k, why);
            continue;
        }
        if (!d->crashed) {
            group_fail(g, "k=%llu: no crash: the run made %llu calls only (not deterministic?)",
                       (unsigned long long)k, (unsigned long long)d->calls);
            continue;
        }
        for (uint64_t seed = 0; seed < SEEDS_PER_POINT; seed++) {
            /* Nothing pending: only the durable image; one pending: no subsets. */
            if ((seed >= 1 && d->npend == 0) || (seed == 2 && d->npend < 2))
                continue;
            uint64_t key;
            const byte_buf *img = fault_disk_crash_image(d, seed, &scratch, &key);
            images++;
            snprintf(label, sizeof(label), "k=%llu seed=%llu", (unsigned long long)k,
                     (unsigned long long)seed);
            /* The same image against the same model state was verified already. */
            if (hash_set_add(&verified, mix_key(key, m->version)) &&
                !verify_image(su, img->p, (size_t)img->size, m, why, sizeof(why))) {
                group_fail(g, "%s: %s", label, why);
                keep_file(g, label, img->p, (size_t)img->size, NULL);
            }
            if (!hash_set_add(&seen, key))
                continue;
            /* The engine's check must agree that nothing is corrupt. */
            int rc = engine_check(su, img->p, (size_t)img->size, out, sizeof(out));
            if (rc != 0 && rc != 3) {
                char summary[400];
                check_summary(out, summary, sizeof(summary));
                group_fail(g, "%s: qcowboot check exit %d: %s", label, rc, summary);
                keep_file(g, label, img->p, (size_t)img->size, NULL);
            }
            snprintf(path, sizeof(path), "%s/k%llu-s%llu.qcow2", su->dir, (unsigned long long)k,
                     (unsigned long long)seed);
            if (!write_sparse_file(path, img->p, (size_t)img->size)) {
                group_fail(g, "%s: cannot write %s: %s", label, path, strerror(errno));
                continue;
            }
            checker_add(&ck, path, label, true);
        }
    }
    checker_drain(&ck);
    char what[160];
    snprintf(what, sizeof(what), "%zu crash points, %zu crashed images (%zu distinct, "
             "qemu-img check and qcowboot check)", npts, images, ck.checked);
    group_report(g, what, now() - t0);
    byte_buf_free(&scratch);
    free(seen.h);
    free(verified.h);
}

static void write_again(group *g, fault_disk *d, model *m, const uint64_t *pts, size_t npts)
{
    const wl_setup *su = g->su;
    double t0 = now();
    char why[1024], path[1024], out[4096], label[64];
    group_reset(g);
    byte_buf scratch = { 0 }, result = { 0 };
    uint64_t key;
    unsigned tried = 0;
    for (unsigned q = 1; q <= 3 && npts; q++) {
        uint64_t k = pts[npts * q / 4];
        run_opts o = { k, false, NULL };
        if (!run_workload(su, d, m, &o, why, sizeof(why))) {
            group_fail(g, "k=%llu: %s", (unsigned long long)k, why);
            continue;
        }
        tried++;
        const byte_buf *img = fault_disk_crash_image(d, 3, &scratch, &key);
        snprintf(label, sizeof(label), "k=%llu seed=3 rewritten", (unsigned long long)k);
        if (!write_after_crash(su, img->p, (size_t)img->size, m, &result, why, sizeof(why))) {
            group_fail(g, "k=%llu seed=3: %s", (unsigned long long)k, why);
            keep_file(g, label, img->p, (size_t)img->size, NULL);
            continue;
        }
        int rc = engine_check(su, result.p, (size_t)result.size, out, sizeof(out));
        if (rc != 0 && rc != 3) {
            char summary[400];
            check_summary(out, summary, sizeof(summary));
            group_fail(g, "k=%llu seed=3, written after the crash: qcowboot check exit %d: %s",
                       (unsigned long long)k, rc, summary);
        }
        snprintf(path, sizeof(path), "%s/rewritten.qcow2", su->dir);
        write_sparse_file(path, result.p, (size_t)result.size);
        rc = qemu_check_now(path, out, sizeof(out));
        if (rc != 0 && rc != 3) {
            char summary[400];
            check_summary(out, summary, sizeof(summary));
            group_fail(g, "k=%llu seed=3, written after the crash: qemu-img check exit %d: %s",
                       (unsigned long long)k, rc, summary);
            keep_file(g, label, img->p, (size_t)img->size, NULL);
        }
        unlink(path);
    }
    char what[128];
    snprintf(what, sizeof(what), "written again after a crash at %u points", tried);
    group_report(g, what, now() - t0);
    byte_buf_free(&scratch);
    byte_buf_free(&result);
}

static bool run_one(const workload *w, const char *workdir, unsigned target, const char *keep)
{
    char dir[1024], why[1024];
    snprintf(dir, sizeof(dir), "%s/%s", workdir, w->name);
    mkdir(dir, 0777);
    wl_setup su;
    group g = { &su, keep, 0, { { 0 } }, 0 };
    if (!wl_setup_make(&su, w, dir, why, sizeof(why))) {
        group_reset(&g);
        group_fail(&g, "%s", why);
        group_report(&g, "setup", 0);
        wl_setup_free(&su);
        return false;
    }
    model m;
    model_init(&m, w->size, w->cluster_size, w->v2, su.base, su.initial);
    fault_disk d;
    memset(&d, 0, sizeof(d));
    static flush_trace tr;
    bool ok = clean_run(&g, &d, &m, &tr);
    if (ok) {
        uint64_t *pts;
        size_t npts = choose_points(d.calls, d.kinds, &tr, target, &pts);
        crash_points(&g, &d, &m, pts, npts, dir);
        ok = g.failures == 0;
        write_again(&g, &d, &m, pts, npts);
        ok = ok && g.failures == 0;
        free(pts);
    }
    fault_disk_free(&d);
    model_free(&m);
    wl_setup_free(&su);
    return ok;
}

int main(int argc, char **argv)
{
    const char *workdir = NULL, *only = NULL, *keep = NULL;
    unsigned target = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--points") == 0 && i + 1 < argc)
            target = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = argv[++i];
        else if (argv[i][0] != '-' && !workdir)
            workdir = argv[i];
        else {
            fprintf(stderr, "usage: crash_test WORKDIR [--only NAME] [--points N] [--keep DIR]\n");
            return 2;
        }
    }
    if (!workdir || target == 0) {
        fprintf(stderr, "usage: crash_test WORKDIR [--only NAME] [--points N] [--keep DIR]\n");
        return 2;
    }
    bool ok = true, any = false;
    for (size_t i = 0; i < workload_count; i++) {
        if (only && strcmp(only, workloads[i].name) != 0)
            continue;
        any = true;
        ok = run_one(&workloads[i], workdir, target, keep) && ok;
    }
    if (!any) {
        fprintf(stderr, "crash_test: no workload named %s\n", only);
        return 2;
    }
    return ok ? 0 : 1;
}
