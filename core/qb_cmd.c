/* Command dispatch, option parsing and the helpers every command uses. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_fmt.h"
#include "qcow2_crypto.h"

void qb_getopt_init(qb_getopt *g, int argc, char **argv, const qb_out *err)
{
    memset(g, 0, sizeof(*g));
    g->argc = argc;
    g->argv = argv;
    g->index = 1;
    g->err = err;
    g->cmd = argc > 0 ? argv[0] : "";
}

int qb_getopt_next(qb_getopt *g, const char *shortopts, const qb_longopt *longopts)
{
    g->arg = NULL;
    if (!g->next || !*g->next) {
        g->next = NULL;
        if (g->index >= g->argc)
            return -1;
        const char *a = g->argv[g->index];
        if (a[0] != '-' || a[1] == '\0')
            return -1;
        g->index++;
        if (strcmp(a, "--") == 0)
            return -1;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            for (const qb_longopt *lo = longopts; lo && lo->name; lo++) {
                if (strlen(lo->name) != nl || strncmp(lo->name, name, nl) != 0)
                    continue;
                if (lo->has_arg) {
                    if (eq) {
                        g->arg = eq + 1;
                    } else if (g->index < g->argc) {
                        g->arg = g->argv[g->index++];
                    } else {
                        qb_printf(g->err, "%s: option '--%s' needs an argument\n", g->cmd,
                                  lo->name);
                        return '?';
                    }
                } else if (eq) {
                    qb_printf(g->err, "%s: option '--%s' takes no argument\n", g->cmd, lo->name);
                    return '?';
                }
                return lo->val;
            }
            qb_printf(g->err, "%s: unknown option '%s'\n", g->cmd, a);
            return '?';
        }
        g->next = a + 1;
    }
    char c = *g->next++;
    const char *spec = strchr(shortopts, c);
    if (!spec || c == ':') {
        qb_printf(g->err, "%s: unknown option '-%c'\n", g->cmd, c);
        return '?';
    }
    if (spec[1] == ':') {
        if (*g->next) {
            g->arg = g->next;
        } else if (g->index < g->argc) {
            g->arg = g->argv[g->index++];
        } else {
            qb_printf(g->err, "%s: option '-%c' needs an argument\n", g->cmd, c);
            return '?';
        }
        g->next = NULL;
    }
    return c;
}

int qb_cmd_image_args(const qb_env *env, int argc, char **argv, bool allow_chain,
                      void (*help)(const qb_out *o), qb_image_args *a)
{
    static const qb_longopt longs[] = {
        { "json", false, 'j' }, { "output", true, 'o' }, { "backing-chain", false, 'b' },
        { "help", false, 'h' }, { NULL, false, 0 },
    };
    memset(a, 0, sizeof(*a));
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "f:h", longs)) != -1) {
        switch (c) {
        case 'j':
            a->json = true;
            break;
        case 'o':
            if (strcmp(g.arg, "json") != 0 && strcmp(g.arg, "human") != 0) {
                qb_cmd_error(env, "%s: --output must be json or human, not '%s'", argv[0], g.arg);
                return 1;
            }
            a->json = strcmp(g.arg, "json") == 0;
            break;
        case 'b':
            if (!allow_chain) {
                qb_cmd_error(env, "%s: unknown option '--backing-chain'", argv[0]);
                help(&env->err);
                return 1;
            }
            a->chain = true;
            break;
        case 'f':
            a->format = g.arg;
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

void qb_cmd_error(const qb_env *env, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qb_printf(&env->err, "%s: ", env->program ? env->program : "qcowboot");
    qb_vprintf(&env->err, fmt, ap);
    qb_puts(&env->err, "\n");
    va_end(ap);
}

static void warn_to_err(void *ctx, const char *msg)
{
    const qb_env *env = ctx;
    qb_printf(&env->err, "%s: warning: %s\n", env->program ? env->program : "qcowboot", msg);
}

int qb_cmd_open(const qb_env *env, const char *filename, const char *format,
                const char *snapshot, bool no_backing, qb_image **out)
{
    return qb_cmd_open_rw(env, filename, format, snapshot, no_backing, false, out);
}

int qb_cmd_open_rw(const qb_env *env, const char *filename, const char *format,
                   const char *snapshot, bool no_backing, bool writable, qb_image **out)
{
    qb_open_opts o;
    memset(&o, 0, sizeof(o));
    o.alloc = env->alloc;
    o.opener = &env->opener;
    o.warn.ctx = (void *)env;
    o.warn.warn = warn_to_err;
    o.filename = filename;
    o.format = format;
    o.snapshot = snapshot;
    o.no_backing = no_backing;
    o.writable = writable;
    o.l2_cache_bytes = env->l2_cache_bytes;
    o.passphrase = env->passphrase;
    o.passphrase_len = env->passphrase_len;
    o.kdf_progress = env->kdf_progress;
    o.kdf_progress_ctx = env->kdf_progress_ctx;
    qb_err err = { 0, "" };
    qb_passphrase_prompt prompt;
    prompt.asked = 0;
    int r;
    do
        r = qb_image_open(out, &o, &err);
    while (qb_passphrase_retry(env, &prompt, filename, r, &err, &o));
    if (r)
        qb_cmd_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(r));
    return r;
}

bool qb_passphrase_retry(const qb_env *env, qb_passphrase_prompt *p, const char *image, int r,
                         const qb_err *err, qb_open_opts *o)
{
    bool asked_before = p->asked > 0;
    if (r == QB_ECRYPT && env->ask_passphrase && p->asked < QB_PASSPHRASE_TRIES &&
        (!o->passphrase || asked_before)) {
        if (asked_before)
            qb_cmd_error(env, "%s", err->msg);
        size_t len = 0;
        p->asked++;
        if (env->ask_passphrase(env->ask_ctx, image, p->asked, p->buf, sizeof(p->buf), &len) ==
            0) {
            o->passphrase = p->buf;
            o->passphrase_len = len < sizeof(p->buf) ? len : sizeof(p->buf);
            return true;
        }
    }
    /* The answer is wiped as soon as the open that used it returned. */
    if (asked_before) {
        qb_wipe(p->buf, sizeof(p->buf));
        o->passphrase = NULL;
        o->passphrase_len = 0;
    }
    return false;
}

/* --passphrase-file: the whole file is the passphrase, byte for byte (no
 * newline is taken off, as QEMU takes a secret from a file). */
static int read_passphrase_file(const qb_env *env, const char *name, uint8_t **pass,
                                size_t *len)
{
    qb_err err = { 0, "" };
    qb_backend *f = NULL;
    char *resolved = qb_zalloc(&env->alloc, QB_PATH_MAX);
    if (!resolved) {
        qb_cmd_error(env, "no memory");
        return 1;
    }
    int r = env->opener.open ? env->opener.open(env->opener.ctx, NULL, name, false, &f, resolved,
                                                &err)
                             : qb_err_set(&err, QB_EUNSUPP, "cannot open files here");
    qb_free(&env->alloc, resolved);
    uint64_t size = 0;
    if (!r)
        r = qb_backend_size(f, &size, &err);
    if (!r && (size == 0 || size > QB_PASSPHRASE_MAX))
        r = qb_err_set(&err, QB_EINVAL, "is %llu bytes; a passphrase has 1 to %u",
                       (unsigned long long)size, QB_PASSPHRASE_MAX);
    if (!r) {
        *pass = qb_malloc(&env->alloc, (size_t)size);
        r = *pass ? qb_backend_read(f, 0, *pass, (size_t)size, &err)
                  : qb_err_set(&err, QB_ENOMEM, "no memory");
        if (r && *pass) {
            qb_wipe(*pass, (size_t)size);
            qb_free(&env->alloc, *pass);
            *pass = NULL;
        }
    }
    if (f)
        f->vt->close(f);
    if (r) {
        qb_cmd_error(env, "--passphrase-file %s: %s", name, err.msg[0] ? err.msg : qb_strerror(r));
        return 1;
    }
    *len = (size_t)size;
    return 0;
}

static void usage(const qb_env *env, const qb_out *o)
{
    const char *p = env->program ? env->program : "qcowboot";
    qb_printf(o,
              "Usage: %s [--cache-size SIZE] [--passphrase-file FILE] COMMAND [OPTIONS] ...\n"
              "Reads and writes qcow2 disk images (and raw ones) with their backing chains.\n"
              "\n"
              "Commands:\n"
              "  info [--json] [--backing-chain] [-f FMT] IMAGE\n"
              "                      show the image's format, sizes, features, snapshots\n"
              "  map [--json] [-f FMT] IMAGE\n"
              "                      show where each range of the virtual disk is stored\n"
              "  check [--json] [-r leaks|all] [-f FMT] IMAGE\n"
              "                      check refcounts and tables (exit 0 clean, 1 not completed,\n"
              "                      2 corruption, 3 leaks only)\n"
              "  convert [-f FMT] [-l SNAPSHOT] [-O raw|qcow2] [-c] [-o OPTIONS] IMAGE OUTPUT\n"
              "                      copy the virtual disk into a new raw or qcow2 file\n"
              "  snapshot -l|-c|-a|-d [NAME] IMAGE\n"
              "                      list, create, apply or delete internal snapshots\n"
              "  create [-f FMT] [-o OPTIONS] [-b BACKING -F FMT] IMAGE [SIZE]\n"
              "                      create a new image\n"
              "  io [-f FMT] [-r] IMAGE -c CMD [-c CMD ...]\n"
              "                      read, write, zero, discard, flush (qemu-io's syntax)\n"
              "  commit [-f FMT] [-d] OVERLAY\n"
              "                      write an overlay's data into its backing file\n"
              "\n"
              "\n"
              "  --cache-size SIZE   memory for cached L2 tables per image (default 8M)\n"
              "  --passphrase-file FILE\n"
              "                      the passphrase of encrypted images (the file's bytes)\n"
              "\n"
              "Run '%s COMMAND --help' for a command's options.\n",
              p, p);
}

/* A global option NAME VALUE or NAME=VALUE at argv[0]: its value (NULL
 * when missing) and how many arguments it took; NULL/0 for another word. */
static const char *global_option(int argc, char **argv, const char *name, int *used)
{
    size_t n = strlen(name);
    *used = 0;
    if (argc < 1 || strncmp(argv[0], name, n) != 0 || (argv[0][n] && argv[0][n] != '='))
        return NULL;
    *used = argv[0][n] == '=' ? 1 : 2;
    return argv[0][n] == '=' ? argv[0] + n + 1 : argc >= 2 ? argv[1] : NULL;
}

static int dispatch(const qb_env *env, int argc, char **argv);

int qb_cmd_main(const qb_env *env_in, int argc, char **argv)
{
    qb_env local = *env_in;
    const qb_env *env = &local;
    uint8_t *pass = NULL;
    size_t pass_len = 0;
    int rc = 1;
    /* Global options before the command. */
    for (;;) {
        int used;
        const char *v = global_option(argc, argv, "--cache-size", &used);
        if (used) {
            uint64_t bytes;
            if (!v || !qb_parse_size(v, &bytes) || bytes > (1ull << 32)) {
                qb_cmd_error(env, "--cache-size needs a size such as 8M (at most 4G)");
                goto out;
            }
            local.l2_cache_bytes = (size_t)bytes;
        } else if ((v = global_option(argc, argv, "--passphrase-file", &used)), used) {
            if (!v || pass) {
                qb_cmd_error(env, "--passphrase-file needs one file name");
                goto out;
            }
            if (read_passphrase_file(env, v, &pass, &pass_len))
                goto out;
            local.passphrase = pass;
            local.passphrase_len = pass_len;
        } else {
            break;
        }
        argc -= used;
        argv += used;
    }
    rc = dispatch(env, argc, argv);
out:
    if (pass) {
        qb_wipe(pass, pass_len);
        qb_free(&env->alloc, pass);
    }
    return rc;
}

static int dispatch(const qb_env *env, int argc, char **argv)
{
    if (argc < 1) {
        usage(env, &env->err);
        return 1;
    }
    const char *c = argv[0];
    if (strcmp(c, "info") == 0)
        return qb_cmd_info(env, argc, argv);
    if (strcmp(c, "map") == 0)
        return qb_cmd_map(env, argc, argv);
    if (strcmp(c, "check") == 0)
        return qb_cmd_check(env, argc, argv);
    if (strcmp(c, "convert") == 0)
        return qb_cmd_convert(env, argc, argv);
    if (strcmp(c, "snapshot") == 0)
        return qb_cmd_snapshot(env, argc, argv);
    if (strcmp(c, "create") == 0)
        return qb_cmd_create(env, argc, argv);
    if (strcmp(c, "io") == 0)
        return qb_cmd_io(env, argc, argv);
    if (strcmp(c, "commit") == 0)
        return qb_cmd_commit(env, argc, argv);
    if (strcmp(c, "help") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
        usage(env, &env->out);
        return 0;
    }
    qb_cmd_error(env, "unknown command '%s'", c);
    usage(env, &env->err);
    return 1;
}
