/* `check`: the read-only consistency check, reported as qemu-img check
 * reports it (text or JSON) with its exit codes: 0 clean, 1 check not
 * completed, 2 corruptions, 3 leaks only. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"
#include "qb_fmt.h"

/* "%0.2f" of part*100/whole, rounding half to even as printf does for the
 * exactly representable ties. */
static void percent(char *buf, size_t cap, uint64_t part, uint64_t whole)
{
    while (part > UINT64_MAX / 10000) {   /* precision to spare: avoid 128-bit division */
        part >>= 1;
        whole >>= 1;
    }
    uint64_t num = part * 10000;
    uint64_t q = num / whole, r = num % whole;
    if (r * 2 > whole || (r * 2 == whole && (q & 1)))
        q++;
    qb_snprintf(buf, cap, "%llu.%02llu", (unsigned long long)(q / 100),
                (unsigned long long)(q % 100));
}

static void report_text(const qb_out *o, const qcow2_check_result *r)
{
    if (!r->corruptions && !r->leaks && !r->check_errors)
        qb_puts(o, "No errors were found on the image.\n");
    if (r->corruptions)
        qb_printf(o, "\n%llu errors were found on the image.\n"
                     "Data may be corrupted, or further writes to the image may corrupt it.\n",
                  (unsigned long long)r->corruptions);
    if (r->leaks)
        qb_printf(o, "\n%llu leaked clusters were found on the image.\n"
                     "This means waste of disk space, but no harm to data.\n",
                  (unsigned long long)r->leaks);
    if (r->check_errors)
        qb_printf(o, "\n%llu internal errors have occurred during the check.\n",
                  (unsigned long long)r->check_errors);
    if (r->total_clusters && r->allocated_clusters) {
        char a[32], f[32], c[32];
        percent(a, sizeof(a), r->allocated_clusters, r->total_clusters);
        percent(f, sizeof(f), r->fragmented_clusters, r->allocated_clusters);
        percent(c, sizeof(c), r->compressed_clusters, r->allocated_clusters);
        qb_printf(o, "%llu/%llu = %s%% allocated, %s%% fragmented, %s%% compressed clusters\n",
                  (unsigned long long)r->allocated_clusters, (unsigned long long)r->total_clusters,
                  a, f, c);
    }
    qb_printf(o, "Image end offset: %llu\n", (unsigned long long)r->image_end_offset);
}

/* Key order and presence as qemu-img prints them: optional counts only
 * when non-zero. */
static void json_count(const qb_out *o, bool *first, const char *key, uint64_t v, bool always)
{
    if (!v && !always)
        return;
    qb_printf(o, "%s    \"%s\": %llu", *first ? "" : ",\n", key, (unsigned long long)v);
    *first = false;
}

/* What a repair fixed, as the check counts it. */
typedef struct repair_counts {
    uint64_t leaks_fixed;
    uint64_t corruptions_fixed;
} repair_counts;

static void report_json(const qb_out *o, const qcow2_check_result *r, const repair_counts *fixed,
                        const char *filename)
{
    bool first = true;
    qb_puts(o, "{\n");
    json_count(o, &first, "image-end-offset", r->image_end_offset, false);
    json_count(o, &first, "compressed-clusters", r->compressed_clusters, false);
    json_count(o, &first, "total-clusters", r->total_clusters, false);
    json_count(o, &first, "corruptions", r->corruptions, false);
    json_count(o, &first, "corruptions-fixed", fixed->corruptions_fixed, false);
    json_count(o, &first, "check-errors", r->check_errors, true);
    json_count(o, &first, "leaks", r->leaks, false);
    json_count(o, &first, "leaks-fixed", fixed->leaks_fixed, false);
    json_count(o, &first, "allocated-clusters", r->allocated_clusters, false);
    qb_puts(o, ",\n    \"filename\": ");
    qb_json_string(o, filename);
    qb_puts(o, ",\n    \"format\": \"qcow2\"");
    first = false;
    json_count(o, &first, "fragmented-clusters", r->fragmented_clusters, false);
    qb_puts(o, "\n}\n");
}

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: check [--json] [-f FMT] [-r leaks|all] IMAGE\n"
               "Checks IMAGE: every cluster's refcount against the references to it, table\n"
               "alignment and placement, COPIED flags. Read-only unless -r is given.\n"
               "Exit status: 0 clean, 1 check not completed, 2 corruptions, 3 leaks only\n"
               "(after a repair: what the check of the repaired image found).\n"
               "  --json         JSON with qemu-img check's key names\n"
               "  -r leaks       repair leaked clusters (refcounts too high)\n"
               "  -r all         repair leaks and corruptions (refcounts too low, COPIED flags)\n");
}

static int exit_status(const qcow2_check_result *r)
{
    return r->check_errors ? 1 : r->corruptions ? 2 : r->leaks ? 3 : 0;
}

/* ---- repair (-r) ----------------------------------------------------------
 *
 * The output follows qemu-img check -r: the check's messages about the
 * image as found; the refcount mismatches a second time, those the repair
 * fixes as "Repairing cluster ..."; the COPIED flags as they are once the
 * refcounts are right; then, if anything was fixed, a summary and a check of
 * the repaired image. The check reports problems only as text lines, so the
 * filter below reads its lines back (the formats are qcow2_check.c's).
 */

/* A cluster whose refcount the repair sets to `refcount`. */
typedef struct fixed_cluster {
    uint64_t cluster;
    uint64_t refcount;
} fixed_cluster;

typedef struct check_filter {
    const qb_env *env;
    int mode;                   /* 0: the check as found; QB_REPAIR_*: the repair pass */
    unsigned cluster_bits;
    char line[512];
    size_t len;
    bool long_line;             /* the current line did not fit in `line` */
    repair_counts fixed;
    uint64_t copied_found;      /* COPIED flag errors of the image as found */
    bool copied_repair;         /* the repair pass fixes COPIED flags */
    fixed_cluster *clusters;    /* ascending: the check compares clusters in order */
    size_t nclusters;
    size_t cap;
    bool out_of_memory;
} check_filter;

/* Reads a decimal (base 10) or hex (base 16) number at *p. */
static bool scan_number(const char **p, unsigned base, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    for (;; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else
            break;
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    if (s == *p)
        return false;
    *p = s;
    *out = v;
    return true;
}

static bool scan_word(const char **p, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(*p, word, n) != 0)
        return false;
    *p += n;
    return true;
}

/* "Leaked cluster N refcount=S reference=R" or "ERROR cluster ..." (and
 * nothing after R: the "beyond the end of the file" lines are others). */
static bool parse_mismatch(const char *line, bool *leak, uint64_t *cluster, uint64_t *stored,
                           uint64_t *computed)
{
    const char *p = line;
    if (scan_word(&p, "Leaked cluster "))
        *leak = true;
    else if (scan_word(&p, "ERROR cluster "))
        *leak = false;
    else
        return false;
    return scan_number(&p, 10, cluster) && scan_word(&p, " refcount=") &&
           scan_number(&p, 10, stored) && scan_word(&p, " reference=") &&
           scan_number(&p, 10, computed) && *p == '\0';
}

/* "ERROR OFLAG_COPIED data cluster: l2_entry=X refcount=N" or
 * "ERROR OFLAG_COPIED L2 cluster: l1_index=I l1_entry=X refcount=N".
 * *what points at "data cluster..." / "L2 cluster...", *what_len stops
 * before " refcount=". */
static bool parse_copied(const char *line, const char **what, size_t *what_len, uint64_t *entry,
                         uint64_t *refcount)
{
    const char *p = line;
    uint64_t index;
    if (!scan_word(&p, "ERROR OFLAG_COPIED "))
        return false;
    *what = p;
    if (scan_word(&p, "data cluster: l2_entry=")) {
        if (!scan_number(&p, 16, entry))
            return false;
    } else if (scan_word(&p, "L2 cluster: l1_index=")) {
        if (!scan_number(&p, 10, &index) || !scan_word(&p, " l1_entry=") ||
            !scan_number(&p, 16, entry))
            return false;
    } else {
        return false;
    }
    *what_len = (size_t)(p - *what);
    return scan_word(&p, " refcount=") && scan_number(&p, 10, refcount) && *p == '\0';
}

static void remember_fix(check_filter *f, uint64_t cluster, uint64_t refcount)
{
    if (f->nclusters == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        fixed_cluster *n = cap < SIZE_MAX / sizeof(*n)
                               ? qb_malloc(&f->env->alloc, cap * sizeof(*n)) : NULL;
        if (!n) {
            f->out_of_memory = true;
            return;
        }
        if (f->nclusters)
            memcpy(n, f->clusters, f->nclusters * sizeof(*n));
        qb_free(&f->env->alloc, f->clusters);
        f->clusters = n;
        f->cap = cap;
    }
    f->clusters[f->nclusters].cluster = cluster;
    f->clusters[f->nclusters].refcount = refcount;
    f->nclusters++;
}

/* The refcount of `cluster` once the repair is done. */
static uint64_t refcount_after(const check_filter *f, uint64_t cluster, uint64_t now)
{
    size_t lo = 0, hi = f->nclusters;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->clusters[mid].cluster == cluster)
            return f->clusters[mid].refcount;
        if (f->clusters[mid].cluster < cluster)
            lo = mid + 1;
        else
            hi = mid;
    }
    return now;
}

static void filter_line(check_filter *f, const char *line)
{
    const qb_out *err = &f->env->err;
    bool leak;
    uint64_t cluster, stored, computed, entry;
    const char *what;
    size_t what_len;
    if (parse_mismatch(line, &leak, &cluster, &stored, &computed)) {
        bool fixable = f->mode == QB_REPAIR_ALL || (leak && f->mode == QB_REPAIR_LEAKS);
        if (!fixable) {
            qb_printf(err, "%s\n", line);
            return;
        }
        qb_printf(err, "Repairing cluster %llu refcount=%llu reference=%llu\n",
                  (unsigned long long)cluster, (unsigned long long)stored,
                  (unsigned long long)computed);
        if (leak)
            f->fixed.leaks_fixed++;
        else
            f->fixed.corruptions_fixed++;
        remember_fix(f, cluster, computed);
        return;
    }
    if (parse_copied(line, &what, &what_len, &entry, &stored)) {
        if (!f->mode) {
            f->copied_found++;
            return;   /* reported as they are after the refcounts are fixed */
        }
        uint64_t rc = refcount_after(f, (entry & QCOW2_L2E_OFFSET_MASK) >> f->cluster_bits, stored);
        bool copied = (entry & QCOW2_OFLAG_COPIED) != 0;
        if ((rc == 1) == copied)
            return;   /* the refcount repair makes the flag right */
        bool repair = f->copied_repair;
        qb_printf(err, "%s OFLAG_COPIED %.*s refcount=%llu\n", repair ? "Repairing" : "ERROR",
                  (int)what_len, what, (unsigned long long)rc);
        if (repair)
            f->fixed.corruptions_fixed++;
        return;
    }
    if (!f->mode)   /* everything else is said once, as the image was found */
        qb_printf(err, "%s\n", line);
}

static void filter_write(void *ctx, const char *s, size_t n)
{
    check_filter *f = ctx;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            if (f->long_line) {
                if (!f->mode)
                    f->env->err.write(f->env->err.ctx, "\n", 1);
            } else {
                f->line[f->len] = '\0';
                filter_line(f, f->line);
            }
            f->len = 0;
            f->long_line = false;
        } else if (f->long_line) {
            if (!f->mode)
                f->env->err.write(f->env->err.ctx, s + i, 1);
        } else if (f->len + 1 < sizeof(f->line)) {
            f->line[f->len++] = s[i];
        } else {
            /* Not a line the repair rewrites (those are short): let it through. */
            f->long_line = true;
            if (!f->mode) {
                f->env->err.write(f->env->err.ctx, f->line, f->len);
                f->env->err.write(f->env->err.ctx, s + i, 1);
            }
            f->len = 0;
        }
    }
}

/* Runs the check with its messages through a filter in `mode`. */
static int filtered_check(const qb_env *env, qb_image *img, check_filter *f, int mode,
                          qcow2_check_result *res)
{
    f->mode = mode;
    f->len = 0;
    f->long_line = false;
    qb_out sink = { f, filter_write };
    qb_err err = { 0, "" };
    if (qcow2_check(&img->q, res, &sink, env->progress, env->progress_ctx, &err)) {
        qb_cmd_error(env, "check failed: %s", err.msg);
        return 1;
    }
    if (f->out_of_memory) {
        qb_cmd_error(env, "check: out of memory for the list of clusters to repair");
        return 1;
    }
    return 0;
}

static int check_repair(const qb_env *env, const qb_image_args *a, int mode)
{
    qb_image *img;
    if (qb_cmd_open_rw(env, a->image, a->format, NULL, true, true, &img))
        return 1;
    if (!img->is_qcow2) {
        qb_cmd_error(env, "%s: format raw has no metadata to check", img->filename);
        qb_image_close(img);
        return 1;
    }
    check_filter f;
    memset(&f, 0, sizeof(f));
    f.env = env;
    f.cluster_bits = img->q.h.cluster_bits;
    qcow2_check_result found, again;
    bool writable = true;   /* img is the open for writing */
    int rc = 1;
    if (filtered_check(env, img, &f, 0, &found))
        goto out;
    /* COPIED flags count as corruptions, but -r leaks repairs them too
     * when nothing else is wrong once the leaks are gone (qemu-img's rule:
     * they are then only a consequence of refcounts being wrong). */
    f.copied_repair = mode == QB_REPAIR_ALL ||
                      (!found.check_errors && found.corruptions == f.copied_found);
    if ((found.leaks || found.corruptions) && filtered_check(env, img, &f, mode, &again))
        goto out;
    if (!f.fixed.leaks_fixed && !f.fixed.corruptions_fixed) {
        /* Nothing the mode repairs: the report of the image as found. */
        repair_counts none = { 0, 0 };
        if (a->json)
            report_json(&env->out, &found, &none, img->filename);
        else
            report_text(&env->out, &found);
        rc = exit_status(&found);
        goto out;
    }
    qb_err err = { 0, "" };
    int r = qb_image_repair(img, mode, &err);
    qb_err ferr = { 0, "" };
    int fr = qb_image_close_flush(img, &ferr);
    img = NULL;
    writable = false;
    if (r || fr) {
        qb_cmd_error(env, "%s: repair failed: %s", a->image,
                     r ? (err.msg[0] ? err.msg : qb_strerror(r))
                       : (ferr.msg[0] ? ferr.msg : qb_strerror(fr)));
        goto out;
    }
    if (!a->json)
        qb_printf(&env->out,
                  "The following inconsistencies were found and repaired:\n\n"
                  "    %llu leaked clusters\n"
                  "    %llu corruptions\n\n"
                  "Double checking the fixed image now...\n",
                  (unsigned long long)f.fixed.leaks_fixed,
                  (unsigned long long)f.fixed.corruptions_fixed);
    /* The repaired image as a fresh open reads it. */
    if (qb_cmd_open(env, a->image, a->format, NULL, true, &img))
        goto out;
    r = qcow2_check(&img->q, &again, &env->err, env->progress, env->progress_ctx, &err);
    if (r) {
        qb_cmd_error(env, "check failed: %s", err.msg);
        goto out;
    }
    if (a->json)
        report_json(&env->out, &again, &f.fixed, img->filename);
    else
        report_text(&env->out, &again);
    rc = exit_status(&again);
out:
    if (img && writable) {
        /* Nothing was repaired, but the open for writing may have marked
         * the image; closing it flushed puts it back in order. */
        qb_err cerr = { 0, "" };
        if (qb_image_close_flush(img, &cerr)) {
            qb_cmd_error(env, "%s: flush failed: %s", a->image,
                         cerr.msg[0] ? cerr.msg : qb_strerror(cerr.code));
            rc = 1;
        }
    } else if (img) {
        qb_image_close(img);
    }
    qb_free(&env->alloc, f.clusters);
    return rc;
}

/* The options: qb_cmd_image_args' (--json, --output, -f) and -r. */
static int parse_args(const qb_env *env, int argc, char **argv, qb_image_args *a, int *mode)
{
    static const qb_longopt longs[] = {
        { "json", false, 'j' }, { "output", true, 'o' }, { "repair", true, 'r' },
        { "help", false, 'h' }, { NULL, false, 0 },
    };
    memset(a, 0, sizeof(*a));
    *mode = 0;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "f:r:h", longs)) != -1) {
        switch (c) {
        case 'j':
            a->json = true;
            break;
        case 'o':
            if (strcmp(g.arg, "json") != 0 && strcmp(g.arg, "human") != 0) {
                qb_cmd_error(env, "check: --output must be json or human, not '%s'", g.arg);
                return 1;
            }
            a->json = strcmp(g.arg, "json") == 0;
            break;
        case 'f':
            a->format = g.arg;
            break;
        case 'r':
            if (strcmp(g.arg, "leaks") == 0) {
                *mode = QB_REPAIR_LEAKS;
            } else if (strcmp(g.arg, "all") == 0) {
                *mode = QB_REPAIR_ALL;
            } else {
                qb_cmd_error(env, "check: unknown value for -r (expecting 'leaks' or 'all'): %s",
                             g.arg);
                return 1;
            }
            break;
        case 'h':
            help(&env->out);
            return 0;
        default:
            help(&env->err);
            return 1;
        }
    }
    if (g.index != argc - 1) {
        help(&env->err);
        return 1;
    }
    a->image = argv[g.index];
    return -1;
}

int qb_cmd_check(const qb_env *env, int argc, char **argv)
{
    qb_image_args a;
    int mode;
    int rc = parse_args(env, argc, argv, &a, &mode);
    if (rc >= 0)
        return rc;
    if (mode)
        return check_repair(env, &a, mode);
    qb_image *img;
    if (qb_cmd_open(env, a.image, a.format, NULL, true, &img))
        return 1;
    if (!img->is_qcow2) {
        qb_cmd_error(env, "%s: format raw has no metadata to check", img->filename);
        qb_image_close(img);
        return 1;
    }
    qcow2_check_result res;
    qb_err err = { 0, "" };
    int r = qcow2_check(&img->q, &res, &env->err, env->progress, env->progress_ctx, &err);
    if (r) {
        qb_cmd_error(env, "check failed: %s", err.msg);
        rc = 1;
    } else {
        repair_counts none = { 0, 0 };
        if (a.json)
            report_json(&env->out, &res, &none, img->filename);
        else
            report_text(&env->out, &res);
        rc = exit_status(&res);
    }
    qb_image_close(img);
    return rc;
}
