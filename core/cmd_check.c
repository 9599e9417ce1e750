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

static void report_json(const qb_out *o, const qcow2_check_result *r, const char *filename)
{
    bool first = true;
    qb_puts(o, "{\n");
    json_count(o, &first, "image-end-offset", r->image_end_offset, false);
    json_count(o, &first, "compressed-clusters", r->compressed_clusters, false);
    json_count(o, &first, "total-clusters", r->total_clusters, false);
    json_count(o, &first, "corruptions", r->corruptions, false);
    json_count(o, &first, "check-errors", r->check_errors, true);
    json_count(o, &first, "leaks", r->leaks, false);
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
    qb_puts(o, "Usage: check [--json] [-f FMT] IMAGE\n"
               "Checks IMAGE read-only: every cluster's refcount against the references to\n"
               "it, table alignment and placement, COPIED flags.\n"
               "Exit status: 0 clean, 1 check not completed, 2 corruptions, 3 leaks only.\n"
               "  --json   JSON with qemu-img check's key names\n");
}

int qb_cmd_check(const qb_env *env, int argc, char **argv)
{
    qb_image_args a;
    int rc = qb_cmd_image_args(env, argc, argv, false, help, &a);
    if (rc >= 0)
        return rc;
    bool json = a.json;
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
        if (json)
            report_json(&env->out, &res, img->filename);
        else
            report_text(&env->out, &res);
        rc = res.check_errors ? 1 : res.corruptions ? 2 : res.leaks ? 3 : 0;
    }
    qb_image_close(img);
    return rc;
}
