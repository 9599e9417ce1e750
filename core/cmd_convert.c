/* `convert`: the whole virtual disk to a raw file. Ranges that read as
 * zeros are never read or written, and zero blocks inside data are skipped
 * too, so they become holes in the output. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"

#define CONVERT_CHUNK (2u << 20)
#define ZERO_BLOCK 4096u

static bool all_zero(const uint8_t *p, size_t n)
{
    /* Word at a time; n is a multiple of 8 except at the very end. */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w)
            return false;
    }
    for (; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Writes buf to out at off, leaving out every all-zero ZERO_BLOCK. */
static int write_sparse(qb_backend *out, uint64_t off, const uint8_t *buf, size_t len, qb_err *err)
{
    size_t i = 0;
    while (i < len) {
        size_t blk = ZERO_BLOCK - (size_t)((off + i) % ZERO_BLOCK);
        if (blk > len - i)
            blk = len - i;
        if (all_zero(buf + i, blk)) {
            i += blk;
            continue;
        }
        /* Extend the run over following non-zero blocks. */
        size_t j = i + blk;
        while (j < len) {
            size_t b = len - j < ZERO_BLOCK ? len - j : ZERO_BLOCK;
            if (all_zero(buf + j, b))
                break;
            j += b;
        }
        int r = out->vt->write(out, off + i, buf + i, j - i, err);
        if (r)
            return r;
        i = j;
    }
    return QB_OK;
}

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: convert [-f FMT] [-l SNAPSHOT] [-O raw] IMAGE OUTPUT\n"
               "Writes the whole virtual disk of IMAGE (through its backing chain) to the raw\n"
               "file OUTPUT; ranges that read as zeros become holes.\n"
               "  -l SNAPSHOT   convert the internal snapshot with this id or name\n"
               "  -l snapshot.name=NAME, -l snapshot.id=ID   the same, as qemu-img says it\n");
}

int qb_cmd_convert(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = { { "help", false, 'h' }, { NULL, false, 0 } };
    const char *fmt = NULL, *snap = NULL;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "f:l:O:h", longs)) != -1) {
        switch (c) {
        case 'f': fmt = g.arg; break;
        case 'l':
            snap = g.arg;
            if (strncmp(snap, "snapshot.name=", 14) == 0)
                snap += 14;
            else if (strncmp(snap, "snapshot.id=", 12) == 0)
                snap += 12;
            break;
        case 'O':
            if (strcmp(g.arg, "raw") != 0) {
                qb_cmd_error(env, "convert: output format '%s' is not supported (raw)", g.arg);
                return 1;
            }
            break;
        case 'h': help(&env->out); return 0;
        default: help(&env->err); return 1;
        }
    }
    if (g.index != argc - 2) {
        help(&env->err);
        return 1;
    }
    qb_image *img;
    if (qb_cmd_open(env, argv[g.index], fmt, snap, false, &img))
        return 1;
    qb_err err = { 0, "" };
    qb_backend *out = NULL;
    uint8_t *buf = NULL;
    int rc = 1;
    if (!env->opener.create) {
        qb_cmd_error(env, "convert: cannot create files here");
        goto done;
    }
    if (env->opener.create(env->opener.ctx, argv[g.index + 1], &out, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        goto done;
    }
    buf = qb_malloc(&env->alloc, CONVERT_CHUNK);
    if (!buf) {
        qb_cmd_error(env, "convert: out of memory");
        goto done;
    }
    uint64_t size = img->size;
    for (uint64_t off = 0; off < size;) {
        qb_status st;
        uint64_t want = size - off < (1ull << 30) ? size - off : (1ull << 30);
        if (qb_image_status(img, off, want, &st, &err)) {
            qb_cmd_error(env, "%s", err.msg);
            goto done;
        }
        if (!st.zero) {
            /* Data: read it in chunks; the chain fills what this layer lacks. */
            for (uint64_t done = 0; done < st.length;) {
                size_t n = st.length - done < CONVERT_CHUNK ? (size_t)(st.length - done)
                                                            : CONVERT_CHUNK;
                if (qb_image_read(img, off + done, buf, n, &err) ||
                    write_sparse(out, off + done, buf, n, &err)) {
                    qb_cmd_error(env, "%s", err.msg);
                    goto done;
                }
                done += n;
            }
        }
        off += st.length;
        if (env->progress)
            env->progress(env->progress_ctx, off, size);
    }
    if (!out->vt->set_size || out->vt->set_size(out, size, &err) || out->vt->flush(out, &err)) {
        qb_cmd_error(env, "%s: %s", argv[g.index + 1],
                     err.msg[0] ? err.msg : "cannot set the output size");
        goto done;
    }
    rc = 0;
done:
    qb_free(&env->alloc, buf);
    if (out)
        out->vt->close(out);
    qb_image_close(img);
    return rc;
}
