/* `map`: where each range of the virtual disk lives, merged into extents
 * exactly as `qemu-img map` merges them. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"
#include "qb_fmt.h"

/* As qemu-img: adjacent extents merge when every flag agrees and, where
 * they have host offsets, the offsets continue each other. */
static bool mergeable(const qb_status *a, const qb_status *b)
{
    if (a->length == 0)
        return false;
    if (a->zero != b->zero || a->data != b->data || a->depth != b->depth ||
        a->present != b->present || a->has_offset != b->has_offset)
        return false;
    if (a->has_offset) {
        if (a->offset + a->length != b->offset)
            return false;
        if (strcmp(a->filename, b->filename) != 0)
            return false;
    }
    return true;
}

static void print_hex(const qb_out *o, uint64_t v)
{
    /* "%#-16llx": no 0x prefix for zero, as printf does. */
    char buf[24];
    if (v)
        qb_snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
    else
        qb_snprintf(buf, sizeof(buf), "0");
    qb_printf(o, "%-16s", buf);
}

static void dump(const qb_out *o, bool json, uint64_t start, const qb_status *e, bool more)
{
    if (json) {
        qb_printf(o,
                  "{ \"start\": %llu, \"length\": %llu, \"depth\": %u, \"present\": %s, "
                  "\"zero\": %s, \"data\": %s",
                  (unsigned long long)start, (unsigned long long)e->length, e->depth,
                  e->present ? "true" : "false", e->zero ? "true" : "false",
                  e->data ? "true" : "false");
        if (e->has_offset)
            qb_printf(o, ", \"offset\": %llu", (unsigned long long)e->offset);
        qb_puts(o, "}");
        if (more)
            qb_puts(o, ",\n");
        return;
    }
    if (e->data && e->has_offset) {
        print_hex(o, start);
        print_hex(o, e->length);
        print_hex(o, e->offset);
        qb_printf(o, "%s\n", e->filename);
    }
}

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: map [--json] [-f FMT] IMAGE\n"
               "Lists the extents of the virtual disk: where each is stored (layer of the\n"
               "backing chain, host offset) and whether it holds data or reads as zeros.\n"
               "  --json   the JSON of `qemu-img map --output=json`\n");
}

int qb_cmd_map(const qb_env *env, int argc, char **argv)
{
    qb_image_args a;
    int arc = qb_cmd_image_args(env, argc, argv, false, help, &a);
    if (arc >= 0)
        return arc;
    bool json = a.json;
    qb_image *img;
    if (qb_cmd_open(env, a.image, a.format, NULL, false, &img))
        return 1;
    const qb_out *o = &env->out;
    if (json)
        qb_puts(o, "[");
    else
        qb_printf(o, "%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    uint64_t size = img->size, off = 0, cur_start = 0;
    qb_status cur;
    memset(&cur, 0, sizeof(cur));
    int rc = 0;
    while (off < size) {
        /* qemu-img asks for at most 1 GiB at a time; merging hides it. */
        uint64_t n = size - off;
        if (n > (1ull << 30))
            n = 1ull << 30;
        qb_status st;
        qb_err err = { 0, "" };
        if (qb_image_status(img, off, n, &st, &err)) {
            if (json)
                qb_puts(o, "]\n");
            qb_cmd_error(env, "%s", err.msg);
            rc = 1;
            break;
        }
        if (mergeable(&cur, &st)) {
            cur.length += st.length;
        } else {
            if (cur.length)
                dump(o, json, cur_start, &cur, true);
            cur = st;
            cur_start = off;
        }
        off += st.length;
        if (env->progress)
            env->progress(env->progress_ctx, off, size);
    }
    if (rc == 0) {
        if (cur.length)
            dump(o, json, cur_start, &cur, false);
        if (json)
            qb_puts(o, "]\n");
    }
    qb_image_close(img);
    return rc;
}
