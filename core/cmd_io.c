/*
 * `io`: reads, writes, zeroes, discards and flushes on one open image, as a
 * list of -c commands in the syntax and output of qemu-io's (a subset, and
 * only the first line of each report: no timing line).
 *
 * Every command is parsed before the image is opened, so a typo in the
 * third command does not leave the first two done. Execution stops at the
 * first command that fails.
 */
#include <string.h>
#include "qb_cmd_internal.h"

/* Largest buffer one command reads or writes through at a time; longer
 * requests are done in pieces. */
#define IO_CHUNK (4u << 20)
#define IO_MAX_TOKENS 16
#define IO_MAX_COMMAND 256

typedef enum { IO_READ, IO_WRITE, IO_DISCARD, IO_FLUSH } io_kind;

typedef struct io_op {
    io_kind kind;
    uint64_t off;
    uint64_t len;
    int pattern;        /* read: the byte to verify, -1 for none; write: the fill byte */
    bool zeroes;        /* write -z */
    bool compressed;    /* write -c */
    bool quiet;         /* -q: no report line */
} io_op;

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: io [-f FMT] [-r] IMAGE -c COMMAND [-c COMMAND ...]\n"
               "Runs each COMMAND in turn on IMAGE (opened for writing unless -r), stopping\n"
               "at the first that fails. Offsets and lengths are bytes, 0x hex, or a number\n"
               "with a k, M, G or T suffix.\n"
               "  read [-P BYTE] [-q] OFF LEN       read; with -P check every byte is BYTE\n"
               "  write [-P BYTE] [-z] [-c] [-q] OFF LEN\n"
               "                                    write BYTE (default 0xcd); -z zeroes;\n"
               "                                    -c compressed, whole clusters only\n"
               "  discard [-q] OFF LEN              drop the whole clusters in the range\n"
               "  flush                             make what was written durable\n"
               "  -r   open the image read-only (write and discard are refused)\n");
}

/* A byte offset or length: decimal with an optional b/k/M/G/T/P/E suffix
 * (powers of 1024), or 0x hex. */
static bool parse_number(const char *s, uint64_t *out)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        const char *p = s + 2;
        uint64_t v = 0;
        if (!*p)
            return false;
        for (; *p; p++) {
            unsigned d;
            if (*p >= '0' && *p <= '9')
                d = (unsigned)(*p - '0');
            else if (*p >= 'a' && *p <= 'f')
                d = (unsigned)(*p - 'a' + 10);
            else if (*p >= 'A' && *p <= 'F')
                d = (unsigned)(*p - 'A' + 10);
            else
                return false;
            if (v >> 60)
                return false;
            v = v << 4 | d;
        }
        *out = v;
        return true;
    }
    return qb_parse_size(s, out);
}

/* A pattern byte: 0..255, decimal or 0x hex (no size suffix). */
static bool parse_byte(const char *s, int *out)
{
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    for (const char *p = hex ? s + 2 : s; *p; p++) {
        bool digit = *p >= '0' && *p <= '9';
        bool hex_letter = (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F');
        if (!digit && !(hex && hex_letter))
            return false;
    }
    uint64_t v;
    if (!parse_number(s, &v) || v > 255)
        return false;
    *out = (int)v;
    return true;
}

/* Splits `text` (copied into buf) at blanks. Returns the token count, or
 * -1 when there are too many or the command is too long. */
static int tokenize(const char *text, char *buf, size_t cap, char **tok)
{
    size_t n = strlen(text);
    if (n >= cap)
        return -1;
    memcpy(buf, text, n + 1);
    int count = 0;
    char *p = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (!*p)
            return count;
        if (count == IO_MAX_TOKENS)
            return -1;
        tok[count++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
}

/* Parses one -c command into op. Errors are reported on env->err. */
static int parse_command(const qb_env *env, const char *text, bool read_only, io_op *op)
{
    char buf[IO_MAX_COMMAND];
    char *tok[IO_MAX_TOKENS + 1];
    int ntok = tokenize(text, buf, sizeof(buf), tok);
    if (ntok < 0) {
        qb_cmd_error(env, "io: command too long: '%.60s...'", text);
        return 1;
    }
    if (ntok == 0) {
        qb_cmd_error(env, "io: empty command");
        return 1;
    }
    tok[ntok] = NULL;
    memset(op, 0, sizeof(*op));
    op->pattern = -1;
    const char *name = tok[0];
    const char *opts;
    if (strcmp(name, "read") == 0) {
        op->kind = IO_READ;
        opts = "P:q";
    } else if (strcmp(name, "write") == 0) {
        op->kind = IO_WRITE;
        opts = "P:zcq";
    } else if (strcmp(name, "discard") == 0) {
        op->kind = IO_DISCARD;
        opts = "q";
    } else if (strcmp(name, "flush") == 0) {
        op->kind = IO_FLUSH;
        opts = "";
    } else {
        qb_cmd_error(env, "io: unknown command '%s' (read, write, discard, flush)", name);
        return 1;
    }
    if (read_only && (op->kind == IO_WRITE || op->kind == IO_DISCARD)) {
        qb_cmd_error(env, "io: %s: the image is opened read-only (-r)", name);
        return 1;
    }
    qb_getopt g;
    qb_getopt_init(&g, ntok, tok, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            if (!parse_byte(g.arg, &op->pattern)) {
                qb_cmd_error(env, "io: %s: -P needs a byte value (0 to 255), not '%s'", name,
                             g.arg);
                return 1;
            }
            break;
        case 'z': op->zeroes = true; break;
        case 'c': op->compressed = true; break;
        case 'q': op->quiet = true; break;
        default: return 1;   /* qb_getopt said what */
        }
    }
    if (op->kind == IO_WRITE) {
        if (op->zeroes && op->pattern >= 0) {
            qb_cmd_error(env, "io: write: -z and -P cannot be combined");
            return 1;
        }
        if (op->zeroes && op->compressed) {
            qb_cmd_error(env, "io: write: -z and -c cannot be combined");
            return 1;
        }
        if (op->pattern < 0)
            op->pattern = 0xcd;
    }
    int operands = ntok - g.index;
    if (op->kind == IO_FLUSH) {
        if (operands != 0) {
            qb_cmd_error(env, "io: flush takes no arguments");
            return 1;
        }
        return 0;
    }
    if (operands != 2) {
        qb_cmd_error(env, "io: %s needs OFF and LEN", name);
        return 1;
    }
    if (!parse_number(tok[g.index], &op->off)) {
        qb_cmd_error(env, "io: %s: bad offset '%s'", name, tok[g.index]);
        return 1;
    }
    if (!parse_number(tok[g.index + 1], &op->len)) {
        qb_cmd_error(env, "io: %s: bad length '%s'", name, tok[g.index + 1]);
        return 1;
    }
    return 0;
}

static const char *op_name(const io_op *op)
{
    switch (op->kind) {
    case IO_READ: return "read";
    case IO_WRITE: return "write";
    case IO_DISCARD: return "discard";
    default: return "flush";
    }
}

static int failed(const qb_env *env, const io_op *op, const qb_err *err)
{
    qb_cmd_error(env, "%s failed: %s", op_name(op), err->msg[0] ? err->msg : qb_strerror(err->code));
    return 1;
}

static int do_read(const qb_env *env, qb_image *img, const io_op *op, uint8_t *buf)
{
    qb_err err = { 0, "" };
    bool mismatch = false;
    uint64_t bad_off = 0;
    uint8_t bad_byte = 0;
    for (uint64_t done = 0; done < op->len;) {
        size_t n = op->len - done < IO_CHUNK ? (size_t)(op->len - done) : IO_CHUNK;
        if (qb_image_read(img, op->off + done, buf, n, &err))
            return failed(env, op, &err);
        if (op->pattern >= 0 && !mismatch) {
            for (size_t i = 0; i < n; i++) {
                if (buf[i] != (uint8_t)op->pattern) {
                    mismatch = true;
                    bad_off = op->off + done + i;
                    bad_byte = buf[i];
                    break;
                }
            }
        }
        done += n;
    }
    /* The lines qemu-io prints, in its order; then why, on stderr. */
    if (mismatch)
        qb_printf(&env->out, "Pattern verification failed at offset %llu, %llu bytes\n",
                  (unsigned long long)op->off, (unsigned long long)op->len);
    if (!op->quiet || mismatch)
        qb_printf(&env->out, "read %llu/%llu bytes at offset %llu\n",
                  (unsigned long long)op->len, (unsigned long long)op->len,
                  (unsigned long long)op->off);
    if (mismatch) {
        qb_cmd_error(env, "read -P: byte at offset %llu is 0x%02x, expected 0x%02x",
                     (unsigned long long)bad_off, bad_byte, (unsigned)op->pattern);
        return 1;
    }
    return 0;
}

static int do_write_compressed(const qb_env *env, qb_image *img, const io_op *op, uint8_t *buf)
{
    uint64_t cs = qb_image_cluster_size(img);
    uint64_t end = op->off + op->len;
    if (!cs) {
        qb_cmd_error(env, "write -c: compressed writes need a qcow2 image");
        return 1;
    }
    if (op->off % cs || (op->len % cs && end != qb_image_size(img))) {
        qb_cmd_error(env, "write -c: offset %llu and length %llu must be multiples of the "
                          "cluster size (%llu), or end at the end of the disk",
                     (unsigned long long)op->off, (unsigned long long)op->len,
                     (unsigned long long)cs);
        return 1;
    }
    qb_err err = { 0, "" };
    for (uint64_t off = op->off; off < end; off += cs) {
        size_t n = end - off < cs ? (size_t)(end - off) : (size_t)cs;
        if (qb_image_write_compressed(img, off, buf, n, &err))
            return failed(env, op, &err);
    }
    return 0;
}

static int do_write(const qb_env *env, qb_image *img, const io_op *op, uint8_t *buf)
{
    qb_err err = { 0, "" };
    if (op->zeroes) {
        if (op->len && qb_image_write_zeroes(img, op->off, op->len, &err))
            return failed(env, op, &err);
    } else {
        /* Every piece has the same contents: fill the buffer once. */
        if (op->len)
            memset(buf, op->pattern, op->len < IO_CHUNK ? (size_t)op->len : IO_CHUNK);
        if (op->compressed) {
            if (do_write_compressed(env, img, op, buf))
                return 1;
        } else {
            for (uint64_t done = 0; done < op->len;) {
                size_t n = op->len - done < IO_CHUNK ? (size_t)(op->len - done) : IO_CHUNK;
                if (qb_image_write(img, op->off + done, buf, n, &err))
                    return failed(env, op, &err);
                done += n;
            }
        }
    }
    if (!op->quiet)
        qb_printf(&env->out, "wrote %llu/%llu bytes at offset %llu\n",
                  (unsigned long long)op->len, (unsigned long long)op->len,
                  (unsigned long long)op->off);
    return 0;
}

static int run_op(const qb_env *env, qb_image *img, const io_op *op, uint8_t *buf)
{
    qb_err err = { 0, "" };
    if (op->kind == IO_FLUSH)
        return qb_image_flush(img, &err) ? failed(env, op, &err) : 0;
    uint64_t size = qb_image_size(img);
    if (op->off > size || op->len > size - op->off) {
        qb_cmd_error(env, "%s failed: %llu bytes at offset %llu reach past the end of the virtual "
                          "disk (%llu bytes)",
                     op_name(op), (unsigned long long)op->len, (unsigned long long)op->off,
                     (unsigned long long)size);
        return 1;
    }
    switch (op->kind) {
    case IO_READ:
        return do_read(env, img, op, buf);
    case IO_WRITE:
        return do_write(env, img, op, buf);
    default:
        if (op->len && qb_image_discard(img, op->off, op->len, &err))
            return failed(env, op, &err);
        if (!op->quiet)
            qb_printf(&env->out, "discard %llu/%llu bytes at offset %llu\n",
                      (unsigned long long)op->len, (unsigned long long)op->len,
                      (unsigned long long)op->off);
        return 0;
    }
}

/* Bytes of buffer the commands need: what the largest read or written
 * piece takes. */
static size_t buffer_size(const io_op *ops, int n, uint64_t cluster_size)
{
    size_t need = 0;
    for (int i = 0; i < n; i++) {
        uint64_t want;
        if (ops[i].kind == IO_READ || (ops[i].kind == IO_WRITE && !ops[i].zeroes))
            want = ops[i].len;
        else
            continue;
        if (ops[i].compressed && cluster_size > want)
            want = cluster_size;   /* a short last cluster is still one buffer */
        if (want > IO_CHUNK)
            want = IO_CHUNK;
        if (want > need)
            need = (size_t)want;
    }
    return need;
}

int qb_cmd_io(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = {
        { "help", false, 'h' }, { "read-only", false, 'r' }, { "cmd", true, 'c' },
        { NULL, false, 0 },
    };
    const char *fmt = NULL, *image = NULL;
    bool read_only = false;
    /* At most one command per argument. */
    const char **cmds = qb_malloc(&env->alloc, sizeof(*cmds) * (size_t)(argc > 0 ? argc : 1));
    io_op *ops = qb_malloc(&env->alloc, sizeof(*ops) * (size_t)(argc > 0 ? argc : 1));
    uint8_t *buf = NULL;
    qb_image *img = NULL;
    int ncmds = 0, rc = 1;
    if (!cmds || !ops) {
        qb_cmd_error(env, "io: out of memory");
        goto out;
    }
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    /* Options may come before or after IMAGE, as with qemu-io. */
    while (g.index < argc) {
        int c = qb_getopt_next(&g, "f:rc:h", longs);
        if (c == -1) {
            if (g.index >= argc)
                break;
            if (image) {
                qb_cmd_error(env, "io: one image only ('%s' and '%s')", image, argv[g.index]);
                help(&env->err);
                goto out;
            }
            image = argv[g.index++];
            continue;
        }
        switch (c) {
        case 'f': fmt = g.arg; break;
        case 'r': read_only = true; break;
        case 'c': cmds[ncmds++] = g.arg; break;
        case 'h': help(&env->out); rc = 0; goto out;
        default: help(&env->err); goto out;
        }
    }
    if (!image || ncmds == 0) {
        qb_cmd_error(env, "io: %s", !image ? "no image given" : "no command given (-c)");
        help(&env->err);
        goto out;
    }
    for (int i = 0; i < ncmds; i++)
        if (parse_command(env, cmds[i], read_only, &ops[i]))
            goto out;
    if (qb_cmd_open_rw(env, image, fmt, NULL, false, !read_only, &img))
        goto out;
    size_t need = buffer_size(ops, ncmds, qb_image_cluster_size(img));
    if (need) {
        buf = qb_malloc(&env->alloc, need);
        if (!buf) {
            qb_cmd_error(env, "io: out of memory for a %llu byte buffer", (unsigned long long)need);
            goto out;
        }
    }
    rc = 0;
    for (int i = 0; i < ncmds && rc == 0; i++)
        rc = run_op(env, img, &ops[i], buf);
out:
    if (img) {
        /* What was written before a failing command is kept, and made
         * durable, as it would be without the failure. */
        qb_err err = { 0, "" };
        if (read_only) {
            qb_image_close(img);
        } else if (qb_image_close_flush(img, &err)) {
            qb_cmd_error(env, "flush failed: %s", err.msg[0] ? err.msg : qb_strerror(err.code));
            rc = 1;
        }
    }
    qb_free(&env->alloc, buf);
    qb_free(&env->alloc, ops);
    qb_free(&env->alloc, cmds);
    return rc;
}
