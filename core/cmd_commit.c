/*
 * `commit`: writes what an overlay holds itself into its backing file, as
 * qemu-img commit does, then empties the overlay (unless -d) so it reads
 * through to the backing file again.
 *
 * Three opens, never two writable handles on one file at once: the whole
 * chain read-only, to learn the backing file's name (resolved as the
 * engine resolves it) and format; the backing file writable; the overlay
 * alone (no backing) to read it. The overlay is emptied only once the
 * backing file is flushed, so a failure anywhere leaves the data in at
 * least one place.
 */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"

#define COMMIT_CHUNK (2u << 20)
#define STATUS_SPAN (1ull << 30)   /* bytes asked about per status call */

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: commit [-f FMT] [-d] [-q] OVERLAY\n"
               "Writes the data and zeroed ranges OVERLAY holds itself into its backing file,\n"
               "then empties OVERLAY so it reads through to the backing file again.\n"
               "  -d   keep OVERLAY's clusters (do not empty it)\n"
               "  -q   quiet: print nothing but errors\n"
               "The backing file must be at least as large as OVERLAY (it is not grown).\n");
}

/* The backing file's name and format, from the chain opened read-only. */
static int find_backing(const qb_env *env, const char *overlay, const char *fmt, char *name,
                        size_t cap, const char **backing_fmt)
{
    qb_image *chain;
    if (qb_cmd_open(env, overlay, fmt, NULL, false, &chain))
        return 1;
    int rc = 1;
    qb_image *backing = qb_image_backing(chain);
    if (!backing) {
        qb_cmd_error(env, "%s: image does not have a backing file", overlay);
        goto out;
    }
    uint64_t top_size = qb_image_size(chain), base_size = qb_image_size(backing);
    if (base_size < top_size) {
        qb_cmd_error(env, "%s: the backing file %s (%llu bytes) is smaller than the image "
                          "(%llu bytes); growing it is not supported",
                     overlay, qb_image_filename(backing), (unsigned long long)base_size,
                     (unsigned long long)top_size);
        goto out;
    }
    size_t n = strlen(qb_image_filename(backing));
    if (n >= cap) {
        qb_cmd_error(env, "%s: backing file name too long", overlay);
        goto out;
    }
    memcpy(name, qb_image_filename(backing), n + 1);
    /* A static string: "qcow2" or "raw". Passing it on avoids probing a
     * raw backing file's contents as a format. */
    *backing_fmt = qb_image_format(backing);
    rc = 0;
out:
    qb_image_close(chain);
    return rc;
}

/* Copies every range the overlay holds itself into base. */
static int copy_layer(const qb_env *env, qb_image *top, qb_image *base, uint8_t *buf)
{
    qb_err err = { 0, "" };
    uint64_t size = qb_image_size(top);
    for (uint64_t off = 0; off < size;) {
        qb_status st;
        uint64_t want = size - off < STATUS_SPAN ? size - off : STATUS_SPAN;
        if (qb_image_status(top, off, want, &st, &err))
            goto fail;
        if (st.present && st.zero) {
            if (qb_image_write_zeroes(base, off, st.length, &err))
                goto fail;
        } else if (st.present) {
            for (uint64_t done = 0; done < st.length;) {
                size_t n = st.length - done < COMMIT_CHUNK ? (size_t)(st.length - done)
                                                           : COMMIT_CHUNK;
                if (qb_image_read(top, off + done, buf, n, &err) ||
                    qb_image_write(base, off + done, buf, n, &err))
                    goto fail;
                done += n;
            }
        }
        off += st.length;
        if (env->progress)
            env->progress(env->progress_ctx, off, size);
    }
    return 0;
fail:
    qb_cmd_error(env, "commit failed: %s", err.msg[0] ? err.msg : qb_strerror(err.code));
    return 1;
}

/*
 * Drops the overlay's clusters so it reads from the backing file again.
 * qb_image_discard does that on version 2 images only: on version 3 ones a
 * discarded cluster reads as zeros, which would hide the committed data.
 * Those keep their clusters (they hold what the backing file now holds, so
 * the overlay still reads the same) until the engine can unallocate.
 */
static int empty_overlay(const qb_env *env, const char *overlay, const char *fmt)
{
    qb_image *top;
    if (qb_cmd_open_rw(env, overlay, fmt, NULL, true, true, &top))
        return 1;
    qb_err err = { 0, "" };
    int r = qb_image_make_empty(top, &err);
    qb_err ferr = { 0, "" };
    int fr = qb_image_close_flush(top, &ferr);
    if (r || fr) {
        const qb_err *e = r ? &err : &ferr;
        qb_cmd_error(env, "%s: emptying the image after the commit failed: %s", overlay,
                     e->msg[0] ? e->msg : qb_strerror(e->code));
        return 1;
    }
    return 0;
}

int qb_cmd_commit(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = { { "help", false, 'h' }, { NULL, false, 0 } };
    const char *fmt = NULL;
    bool keep = false, quiet = false;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "f:dqh", longs)) != -1) {
        switch (c) {
        case 'f': fmt = g.arg; break;
        case 'd': keep = true; break;
        case 'q': quiet = true; break;
        case 'h': help(&env->out); return 0;
        default: help(&env->err); return 1;
        }
    }
    if (g.index != argc - 1) {
        help(&env->err);
        return 1;
    }
    const char *overlay = argv[g.index];
    char *backing_name = qb_malloc(&env->alloc, QB_PATH_MAX);
    uint8_t *buf = qb_malloc(&env->alloc, COMMIT_CHUNK);
    const char *backing_fmt = NULL;
    qb_image *top = NULL, *base = NULL;
    int rc = 1;
    if (!backing_name || !buf) {
        qb_cmd_error(env, "commit: out of memory");
        goto out;
    }
    if (find_backing(env, overlay, fmt, backing_name, QB_PATH_MAX, &backing_fmt))
        goto out;
    if (qb_cmd_open_rw(env, backing_name, backing_fmt, NULL, false, true, &base) ||
        qb_cmd_open(env, overlay, fmt, NULL, true, &top))
        goto out;
    int copied = copy_layer(env, top, base, buf);
    qb_image_close(top);
    top = NULL;
    qb_err err = { 0, "" };
    int flushed = qb_image_close_flush(base, &err);
    base = NULL;
    if (copied)
        goto out;
    if (flushed) {
        qb_cmd_error(env, "%s: flush failed: %s", backing_name,
                     err.msg[0] ? err.msg : qb_strerror(err.code));
        goto out;
    }
    if (!keep && empty_overlay(env, overlay, fmt))
        goto out;
    if (!quiet)
        qb_puts(&env->out, "Image committed.\n");
    rc = 0;
out:
    if (top)
        qb_image_close(top);
    if (base)
        qb_image_close(base);
    qb_free(&env->alloc, buf);
    qb_free(&env->alloc, backing_name);
    return rc;
}
