/* Command dispatch, option parsing and the helpers every command uses. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_fmt.h"

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
    qb_err err = { 0, "" };
    int r = qb_image_open(out, &o, &err);
    if (r)
        qb_cmd_error(env, "%s", err.msg[0] ? err.msg : qb_strerror(r));
    return r;
}

static void usage(const qb_env *env, const qb_out *o)
{
    const char *p = env->program ? env->program : "qcowboot";
    qb_printf(o,
              "Usage: %s [--cache-size SIZE] COMMAND [OPTIONS] ...\n"
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
              "\n"
              "Run '%s COMMAND --help' for a command's options.\n",
              p, p);
}

int qb_cmd_main(const qb_env *env_in, int argc, char **argv)
{
    qb_env local = *env_in;
    const qb_env *env = &local;
    /* Global options before the command. */
    while (argc >= 1 && strncmp(argv[0], "--cache-size", 12) == 0) {
        const char *v = argv[0][12] == '=' ? argv[0] + 13 : argc >= 2 ? argv[1] : NULL;
        uint64_t bytes;
        if (!v || !qb_parse_size(v, &bytes) || bytes > (1ull << 32)) {
            qb_cmd_error(env, "--cache-size needs a size such as 8M (at most 4G)");
            return 1;
        }
        local.l2_cache_bytes = (size_t)bytes;
        int used = argv[0][12] == '=' ? 1 : 2;
        argc -= used;
        argv += used;
    }
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
