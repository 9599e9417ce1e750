/*
 * `create`: a new qcow2 or raw image, with qemu-img create's syntax,
 * options and messages. The backing file is opened (unless -u) to check
 * it and, without SIZE, to take its virtual size, as qemu-img does.
 */
#include <string.h>
#include "cmd_create_opts.h"
#include "qb_create.h"

#define ZERO_CHUNK (1u << 20)

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: create [-q] [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] [-u]\n"
               "              IMAGE [SIZE]\n"
               "Creates IMAGE, a qcow2 (default) or raw image of SIZE bytes (a k, M, G, T, P\n"
               "or E suffix multiplies by powers of 1024; rounded up to 512 bytes).\n"
               "  -f FMT        qcow2 or raw\n"
               "  -o OPTIONS    NAME=VALUE,... (-o help lists them): cluster_size, compat,\n"
               "                refcount_bits, extended_l2, lazy_refcounts, compression_type,\n"
               "                preallocation, backing_file, backing_fmt, size\n"
               "  -b BACKING    backing file (qcow2 only); needs -F. Without SIZE the image\n"
               "                takes the backing file's virtual size\n"
               "  -F FMT        format of the backing file (qcow2 or raw)\n"
               "  -u            do not open the backing file (SIZE is then needed)\n"
               "  -q            do not print the Formatting line\n");
}

/* The backing file as the new image will see it: opened relative to the
 * image's directory, without its own backing chain. */
static int backing_size(const qb_env *env, const char *image, const qb_create_opts *o,
                        uint64_t *size)
{
    qb_err err = { 0, "" };
    if (!env->opener.open) {
        qb_cmd_error(env, "%s: cannot open files here", image);
        return 1;
    }
    char resolved[QB_PATH_MAX];
    qb_backend *file = NULL;
    if (env->opener.open(env->opener.ctx, image, o->backing_file, false, &file, resolved, &err)) {
        qb_cmd_error(env, "%s: %s\nCould not open backing image.", image, err.msg);
        return 1;
    }
    qb_open_opts oo;
    memset(&oo, 0, sizeof(oo));
    oo.alloc = env->alloc;
    oo.opener = &env->opener;
    oo.filename = resolved;
    oo.file = file;
    oo.format = o->backing_format;
    oo.no_backing = true;
    oo.l2_cache_bytes = env->l2_cache_bytes;
    qb_image *img;
    if (qb_image_open(&img, &oo, &err)) {
        qb_cmd_error(env, "%s: %s\nCould not open backing image.", image, err.msg);
        return 1;
    }
    *size = qb_image_size(img);
    qb_image_close(img);
    return 0;
}

static int create_raw(const qb_env *env, qb_backend *file, const char *image, uint64_t size,
                      qb_prealloc prealloc, qb_err *err)
{
    size = (size + 511) & ~511ull;
    if (prealloc == QB_PREALLOC_FULL) {
        uint8_t *zeros = qb_zalloc(&env->alloc, ZERO_CHUNK);
        if (!zeros)
            return qb_err_set(err, QB_ENOMEM, "%s: out of memory", image);
        int r = QB_OK;
        for (uint64_t off = 0; off < size && !r;) {
            size_t n = size - off < ZERO_CHUNK ? (size_t)(size - off) : ZERO_CHUNK;
            r = file->vt->write(file, off, zeros, n, err);
            off += n;
        }
        qb_free(&env->alloc, zeros);
        if (r)
            return r;
    }
    /* falloc: the backend cannot reserve space, so the file is sparse. */
    if (!file->vt->set_size)
        return qb_err_set(err, QB_EUNSUPP, "%s: the file cannot be resized here", image);
    int r = file->vt->set_size(file, size, err);
    if (!r)
        r = file->vt->flush(file, err);
    return r;
}

int qb_cmd_create(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = { { "help", false, 'h' }, { NULL, false, 0 } };
    const char *fmt = "qcow2", *backing = NULL, *backing_fmt = NULL;
    bool unsafe = false, quiet = false, want_help = false;
    const char *lists[QB_CREATE_MAX_LISTS];
    size_t nlists = 0;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "f:o:b:F:uqh", longs)) != -1) {
        switch (c) {
        case 'f': fmt = g.arg; break;
        case 'o':
            if (nlists == QB_CREATE_MAX_LISTS) {
                qb_cmd_error(env, "create: too many -o options");
                return 1;
            }
            lists[nlists++] = g.arg;
            break;
        case 'b': backing = g.arg; break;
        case 'F': backing_fmt = g.arg; break;
        case 'u': unsafe = true; break;
        case 'q': quiet = true; break;
        case 'h': help(&env->out); return 0;
        default: help(&env->err); return 1;
        }
    }
    if (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0) {
        qb_cmd_error(env, "create: format '%s' is not supported (qcow2, raw)", fmt);
        return 1;
    }
    int nargs = argc - g.index;
    /* -o help needs no image. */
    for (size_t i = 0; i < nlists; i++)
        if (strcmp(lists[i], "help") == 0 || strcmp(lists[i], "?") == 0) {
            qb_create_spec_help(&env->out, fmt);
            return 0;
        }
    if (nargs < 1 || nargs > 2) {
        if (nargs > 2)
            qb_cmd_error(env, "create: unexpected argument: %s", argv[g.index + 2]);
        else
            qb_cmd_error(env, "create: an image name is needed");
        help(&env->err);
        return 1;
    }
    const char *image = argv[g.index];
    qb_create_spec s;
    qb_create_spec_init(&s);
    int rc = 1;
    for (size_t i = 0; i < nlists; i++) {
        bool h;
        if (qb_create_spec_add(env, &s, lists[i], image, &h))
            goto done;
        want_help |= h;
    }
    if (want_help) {
        qb_create_spec_help(&env->out, fmt);
        rc = 0;
        goto done;
    }
    if (backing) {
        if (s.o.backing_file) {
            qb_cmd_error(env, "%s: the backing file is given twice (-b and -o backing_file)",
                         image);
            goto done;
        }
        s.o.backing_file = backing;
    }
    if (backing_fmt)
        s.o.backing_format = backing_fmt;
    if (qb_create_spec_check(env, &s, fmt, image))
        goto done;
    if (strcmp(fmt, "raw") == 0 && backing) {
        qb_cmd_error(env, "%s: Backing file not supported for file format 'raw'", image);
        goto done;
    }
    if (s.o.backing_file && !s.o.backing_format) {
        qb_cmd_error(env, "%s: Backing file specified without backing format", image);
        goto done;
    }
    if (s.o.backing_format && !s.o.backing_file) {
        qb_cmd_error(env, "%s: a backing format needs a backing file (-b)", image);
        goto done;
    }
    if (nargs == 2) {
        uint64_t size;
        if (s.size_set) {
            qb_cmd_error(env, "%s: The image size must be specified only once", image);
            goto done;
        }
        if (!qb_parse_size(argv[g.index + 1], &size)) {
            qb_cmd_error(env, "Invalid image size specified. You may use k, M, G, T, P or E "
                         "suffixes for\nkilobytes, megabytes, gigabytes, terabytes, petabytes "
                         "and exabytes.");
            goto done;
        }
        s.o.size = size;
        s.size_set = true;
    }
    if (s.size_set && s.o.size > (uint64_t)INT64_MAX) {
        qb_cmd_error(env, "Invalid image size specified. Must be between 0 and "
                     "9223372036854775807.");
        goto done;
    }
    if (s.o.backing_file && !unsafe) {
        uint64_t bsize;
        if (backing_size(env, image, &s.o, &bsize))
            goto done;
        if (!s.size_set) {
            s.o.size = bsize;
            s.size_set = true;
        }
    }
    if (!s.size_set) {
        qb_cmd_error(env, "%s: Image creation needs a size parameter", image);
        goto done;
    }
    qb_err err = { 0, "" };
    if (strcmp(fmt, "qcow2") == 0 && qb_qcow2_create_check(&s.o, image, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        goto done;
    }
    if (!env->opener.create) {
        qb_cmd_error(env, "%s: cannot create files here", image);
        goto done;
    }
    if (!quiet)
        qb_create_spec_print(&env->out, &s, fmt, image, s.o.size);
    qb_backend *file;
    if (env->opener.create(env->opener.ctx, image, &file, &err)) {
        qb_cmd_error(env, "%s", err.msg);
        goto done;
    }
    int r;
    if (strcmp(fmt, "raw") == 0)
        r = create_raw(env, file, image, s.o.size, s.o.prealloc, &err);
    else
        r = qb_qcow2_create(&env->alloc, file, image, &s.o, &err);
    if (!r)
        r = qcow2_encrypt_new_image(&env->alloc, file, image, &s.encrypt, env->passphrase,
                                    env->passphrase_len, env->rng, env->rng_ctx, env->now,
                                    env->now_ctx, &err);
    file->vt->close(file);
    if (r) {
        qb_cmd_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(r));
        goto done;
    }
    rc = 0;
done:
    qb_create_spec_free(env, &s);
    return rc;
}
