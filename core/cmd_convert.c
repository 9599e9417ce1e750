/* `convert`: the whole virtual disk to a raw file or a new qcow2 image.
 * Ranges that read as zeros are never read or written, and zero blocks
 * inside data are skipped too, so they become holes in a raw output and
 * unallocated clusters in a qcow2 one. */
#include <string.h>
#include "cmd_create_opts.h"
#include "qb_image_internal.h"
#include "qb_create.h"

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
    qb_puts(o, "Usage: convert [-f FMT] [-l SNAPSHOT] [-O raw|qcow2] [-c] [-o OPTIONS] IMAGE OUTPUT\n"
               "Writes the whole virtual disk of IMAGE (through its backing chain) to OUTPUT,\n"
               "a raw file (default) or a new qcow2 image without backing file; ranges that\n"
               "read as zeros become holes (raw) or unallocated clusters (qcow2).\n"
               "  -l SNAPSHOT   convert the internal snapshot with this id or name\n"
               "  -l snapshot.name=NAME, -l snapshot.id=ID   the same, as qemu-img says it\n"
               "  -O qcow2      write a qcow2 image (v3, 64 KiB clusters unless -o says)\n"
               "  -c            compress every cluster of the qcow2 output\n"
               "  -o OPTIONS    qcow2 creation options as for create (-o help lists them)\n");
}

/* The raw output: data ranges copied with their zero blocks left out. */
static int convert_raw(const qb_env *env, qb_image *img, const char *output)
{
    qb_err err = { 0, "" };
    qb_backend *out = NULL;
    uint8_t *buf = NULL;
    int rc = 1;
    if (!env->opener.create) {
        qb_cmd_error(env, "convert: cannot create files here");
        goto done;
    }
    if (env->opener.create(env->opener.ctx, output, &out, &err)) {
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
        qb_cmd_error(env, "%s: %s", output,
                     err.msg[0] ? err.msg : "cannot set the output size");
        goto done;
    }
    rc = 0;
done:
    qb_free(&env->alloc, buf);
    if (out)
        out->vt->close(out);
    return rc;
}

/* Copies [start, end) (whole clusters of the output, or up to the end of
 * the disk) from img to dst, leaving out the clusters that are all zeros:
 * the new image reads them as zeros already. */
static int copy_clusters(qb_image *img, qb_image *dst, uint64_t start, uint64_t end,
                         uint64_t cs, bool compress, uint8_t *buf, size_t buf_len,
                         qb_err *err)
{
    while (start < end) {
        size_t n = end - start < buf_len ? (size_t)(end - start) : buf_len;
        int r = qb_image_read(img, start, buf, n, err);
        if (r)
            return r;
        for (size_t i = 0; i < n;) {
            size_t len = n - i < cs ? n - i : (size_t)cs;
            if (all_zero(buf + i, len)) {
                i += len;
                continue;
            }
            if (compress) {
                r = qb_image_write_compressed(dst, start + i, buf + i, len, err);
                i += len;
            } else {
                /* One write for the run of clusters that hold data. */
                size_t j = i + len;
                while (j < n) {
                    size_t l2 = n - j < cs ? n - j : (size_t)cs;
                    if (all_zero(buf + j, l2))
                        break;
                    j += l2;
                }
                r = qb_image_write(dst, start + i, buf + i, j - i, err);
                i = j;
            }
            if (r)
                return r;
        }
        start += n;
    }
    return QB_OK;
}

/* The qcow2 output: created as `create` would with the options given and
 * the source's virtual size, opened through the engine, and filled with
 * the clusters of the source that do not read as zeros. */
static int convert_qcow2(const qb_env *env, qb_image *img, const char *output,
                         qb_create_opts *o, qb_encrypt_params *enc, bool compress)
{
    qb_err err = { 0, "" };
    o->size = img->size;
    if (qb_qcow2_create_check(o, output, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        return 1;
    }
    if (!env->opener.create) {
        qb_cmd_error(env, "convert: cannot create files here");
        return 1;
    }
    qb_backend *file;
    if (env->opener.create(env->opener.ctx, output, &file, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        return 1;
    }
    if (qb_qcow2_create(&env->alloc, file, output, o, &err) ||
        qcow2_encrypt_new_image(&env->alloc, file, output, enc, env->passphrase,
                                env->passphrase_len, env->rng, env->rng_ctx, env->now,
                                env->now_ctx, &err)) {
        file->vt->close(file);
        qb_cmd_error(env, "%s", err.msg);
        return 1;
    }
    qb_open_opts oo;
    memset(&oo, 0, sizeof(oo));
    oo.alloc = env->alloc;
    oo.opener = &env->opener;
    oo.filename = output;
    oo.file = file;                     /* the image owns it from here on */
    oo.format = "qcow2";
    oo.writable = true;
    oo.no_backing = true;
    oo.l2_cache_bytes = env->l2_cache_bytes;
    oo.passphrase = env->passphrase;
    oo.passphrase_len = env->passphrase_len;
    oo.kdf_progress = env->kdf_progress;
    oo.kdf_progress_ctx = env->kdf_progress_ctx;
    qb_image *dst;
    if (qb_image_open(&dst, &oo, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        return 1;
    }
    uint64_t cs = qb_image_cluster_size(dst);
    size_t buf_len = CONVERT_CHUNK > cs ? CONVERT_CHUNK : (size_t)cs;
    uint8_t *buf = qb_malloc(&env->alloc, buf_len);
    if (!buf) {
        qb_image_close(dst);
        qb_cmd_error(env, "convert: out of memory");
        return 1;
    }
    uint64_t size = img->size, copied = 0;
    int r = QB_OK;
    for (uint64_t off = 0; off < size && !r;) {
        qb_status st;
        uint64_t want = size - off < (1ull << 30) ? size - off : (1ull << 30);
        r = qb_image_status(img, off, want, &st, &err);
        if (r)
            break;
        if (st.zero) {
            off += st.length;
        } else {
            /* The output's clusters around the data, each copied once. */
            uint64_t start = off & ~(cs - 1);
            if (start < copied)
                start = copied;
            uint64_t end = (off + st.length + cs - 1) & ~(cs - 1);
            if (end > size)
                end = size;
            r = copy_clusters(img, dst, start, end, cs, compress, buf, buf_len, &err);
            copied = off = end;
        }
        if (env->progress)
            env->progress(env->progress_ctx, off, size);
    }
    qb_free(&env->alloc, buf);
    if (r) {
        qb_image_close(dst);
        qb_cmd_error(env, "%s", err.msg);
        return 1;
    }
    if (qb_image_close_flush(dst, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        return 1;
    }
    return 0;
}

int qb_cmd_convert(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = { { "help", false, 'h' }, { NULL, false, 0 } };
    const char *fmt = NULL, *snap = NULL, *out_fmt = "raw";
    const char *lists[QB_CREATE_MAX_LISTS];
    size_t nlists = 0;
    bool compress = false;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "f:l:O:o:ch", longs)) != -1) {
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
            if (strcmp(g.arg, "raw") != 0 && strcmp(g.arg, "qcow2") != 0) {
                qb_cmd_error(env, "convert: output format '%s' is not supported (raw, qcow2)",
                             g.arg);
                return 1;
            }
            out_fmt = g.arg;
            break;
        case 'o':
            if (nlists == QB_CREATE_MAX_LISTS) {
                qb_cmd_error(env, "convert: too many -o options");
                return 1;
            }
            lists[nlists++] = g.arg;
            break;
        case 'c': compress = true; break;
        case 'h': help(&env->out); return 0;
        default: help(&env->err); return 1;
        }
    }
    bool qcow2_out = strcmp(out_fmt, "qcow2") == 0;
    qb_create_spec spec;
    qb_create_spec_init(&spec);
    bool want_help = false;
    int rc = 1;
    for (size_t i = 0; i < nlists; i++) {
        bool h;
        if (qb_create_spec_add(env, &spec, lists[i], "convert", &h))
            goto done;
        want_help |= h;
    }
    if (want_help) {
        qb_create_spec_help(&env->out, "qcow2");
        rc = 0;
        goto done;
    }
    if (g.index != argc - 2) {
        help(&env->err);
        goto done;
    }
    if (!qcow2_out && (compress || nlists)) {
        qb_cmd_error(env, "convert: %s needs -O qcow2 (the raw output takes no options)",
                     compress ? "-c" : "-o");
        goto done;
    }
    if (spec.size_set || spec.o.backing_file || spec.o.backing_format) {
        qb_cmd_error(env, "convert: the output takes the size of IMAGE and no backing file "
                     "(-o %s)", spec.size_set ? "size" : "backing_file/backing_fmt");
        goto done;
    }
    if (compress && spec.encrypt.format) {
        qb_cmd_error(env, "convert: Compression and encryption not supported at the same time");
        goto done;
    }
    if (qcow2_out && qb_create_spec_check(env, &spec, "qcow2", argv[g.index + 1]))
        goto done;
    if (compress && spec.o.prealloc != QB_PREALLOC_OFF) {
        qb_cmd_error(env, "convert: Compression and preallocation not supported at the same "
                     "time");
        goto done;
    }
    qb_image *img;
    if (qb_cmd_open(env, argv[g.index], fmt, snap, false, &img))
        goto done;
    if (qcow2_out)
        rc = convert_qcow2(env, img, argv[g.index + 1], &spec.o, &spec.encrypt, compress);
    else
        rc = convert_raw(env, img, argv[g.index + 1]);
    qb_image_close(img);
done:
    qb_create_spec_free(env, &spec);
    return rc;
}
