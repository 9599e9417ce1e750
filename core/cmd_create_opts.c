/* The -o option lists of create and convert (see cmd_create_opts.h). The
 * messages are qemu-img's, so scripts see the same errors. */
#include <string.h>
#include "cmd_create_opts.h"
#include "qcow2.h"

enum {
    OPT_SIZE = 1u << 0,
    OPT_CLUSTER_SIZE = 1u << 1,
    OPT_COMPAT = 1u << 2,
    OPT_REFCOUNT_BITS = 1u << 3,
    OPT_EXTENDED_L2 = 1u << 4,
    OPT_LAZY_REFCOUNTS = 1u << 5,
    OPT_COMPRESSION_TYPE = 1u << 6,
    OPT_PREALLOCATION = 1u << 7,
    OPT_BACKING_FILE = 1u << 8,
    OPT_BACKING_FMT = 1u << 9,
};
#define RAW_OPTS (OPT_SIZE | OPT_PREALLOCATION)

static const struct {
    const char *name;
    unsigned bit;
    const char *help;
} options[] = {
    { "backing_file", OPT_BACKING_FILE, "File name of a base image" },
    { "backing_fmt", OPT_BACKING_FMT, "Image format of the base image" },
    { "cluster_size", OPT_CLUSTER_SIZE, "qcow2 cluster size (512 to 2M, default 64k)" },
    { "compat", OPT_COMPAT, "Compatibility level (v2 [0.10] or v3 [1.1], default v3)" },
    { "compression_type", OPT_COMPRESSION_TYPE, "Compression method for compressed clusters "
                                                "(zlib, zstd)" },
    { "extended_l2", OPT_EXTENDED_L2, "Extended L2 tables (on/off)" },
    { "lazy_refcounts", OPT_LAZY_REFCOUNTS, "Postpone refcount updates (on/off)" },
    { "preallocation", OPT_PREALLOCATION, "Preallocation mode (allowed values: off, "
                                          "metadata, falloc, full)" },
    { "refcount_bits", OPT_REFCOUNT_BITS, "Width of a reference count entry in bits "
                                          "(1 to 64, a power of two)" },
    { "size", OPT_SIZE, "Virtual disk size" },
};
#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

/* The encrypt.* options, in the order qemu-img prints them. */
static const char *const encrypt_names[8] = {
    "format", "key-secret", "cipher-alg", "cipher-mode", "ivgen-alg", "ivgen-hash-alg",
    "hash-alg", "iter-time",
};

void qb_create_spec_init(qb_create_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->o.compression_type = QCOW2_COMPRESSION_ZLIB;
    qb_encrypt_params_init(&s->encrypt);
}

void qb_create_spec_free(const qb_env *env, qb_create_spec *s)
{
    for (size_t i = 0; i < s->nlists; i++)
        qb_free(&env->alloc, s->lists[i]);
    s->nlists = 0;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const on[] = { "on", "yes", "true", "y" };
    static const char *const off[] = { "off", "no", "false", "n" };
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, on[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(v, off[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_decimal(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    if (!*v)
        return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return true;
}

static int bad_value(const qb_env *env, const char *image, const char *name, const char *v)
{
    qb_cmd_error(env, "%s: Parameter '%s' does not accept value '%s'", image, name, v);
    return 1;
}

static int set_option(const qb_env *env, qb_create_spec *s, const char *image,
                      unsigned bit, const char *name, const char *v)
{
    qb_create_opts *o = &s->o;
    uint64_t n;
    bool b;
    switch (bit) {
    case OPT_SIZE:
    case OPT_CLUSTER_SIZE:
        if (!qb_parse_size(v, &n)) {
            qb_cmd_error(env, "%s: Parameter '%s' expects a non-negative number below 2^64\n"
                         "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, "
                         "peta-\nand exabytes, respectively.", image, name);
            return 1;
        }
        if (bit == OPT_SIZE) {
            o->size = n;
            s->size_set = true;
        } else if (n < 512 || n > (2u << 20) || (n & (n - 1))) {
            qb_cmd_error(env, "%s: Cluster size must be a power of two between 512 and 2048k",
                         image);
            return 1;
        } else {
            unsigned bits = 0;
            while ((1ull << bits) < n)
                bits++;
            o->cluster_bits = bits;
        }
        return 0;
    case OPT_COMPAT:
        if (strcmp(v, "0.10") == 0 || strcmp(v, "v2") == 0)
            o->version = 2;
        else if (strcmp(v, "1.1") == 0 || strcmp(v, "v3") == 0)
            o->version = 3;
        else
            return bad_value(env, image, "version", v);
        s->compat = v;
        return 0;
    case OPT_REFCOUNT_BITS:
        if (!parse_decimal(v, &n)) {
            qb_cmd_error(env, "%s: Parameter 'refcount_bits' expects a number", image);
            return 1;
        }
        if (n == 0 || n > 64 || (n & (n - 1))) {
            qb_cmd_error(env, "%s: Refcount width must be a power of two and may not exceed "
                         "64 bits", image);
            return 1;
        }
        o->refcount_bits = (unsigned)n;
        return 0;
    case OPT_EXTENDED_L2:
    case OPT_LAZY_REFCOUNTS:
        if (!parse_bool(v, &b)) {
            qb_cmd_error(env, "%s: Parameter '%s' expects 'on' or 'off'", image, name);
            return 1;
        }
        if (bit == OPT_EXTENDED_L2)
            o->extended_l2 = b;
        else
            o->lazy_refcounts = b;
        return 0;
    case OPT_COMPRESSION_TYPE:
        if (strcmp(v, "zlib") == 0)
            o->compression_type = QCOW2_COMPRESSION_ZLIB;
        else if (strcmp(v, "zstd") == 0)
            o->compression_type = QCOW2_COMPRESSION_ZSTD;
        else
            return bad_value(env, image, "compression-type", v);
        return 0;
    case OPT_PREALLOCATION:
        if (strcmp(v, "off") == 0)
            o->prealloc = QB_PREALLOC_OFF;
        else if (strcmp(v, "metadata") == 0)
            o->prealloc = QB_PREALLOC_METADATA;
        else if (strcmp(v, "falloc") == 0)
            o->prealloc = QB_PREALLOC_FALLOC;
        else if (strcmp(v, "full") == 0)
            o->prealloc = QB_PREALLOC_FULL;
        else
            return bad_value(env, image, "preallocation", v);
        s->prealloc = v;
        return 0;
    case OPT_BACKING_FILE:
        o->backing_file = v;
        return 0;
    case OPT_BACKING_FMT:
        o->backing_format = v;
        return 0;
    }
    return 1;
}

/* Splits the copy in place at single commas, turning ",," into ",". */
static char *next_item(char **cursor)
{
    char *start = *cursor, *w = start, *r = start;
    if (!start)
        return NULL;
    for (;;) {
        if (*r == ',' && r[1] == ',') {
            *w++ = ',';
            r += 2;
        } else if (*r == ',' || *r == '\0') {
            *cursor = *r ? r + 1 : NULL;
            *w = '\0';
            return start;
        } else {
            *w++ = *r++;
        }
    }
}

int qb_create_spec_add(const qb_env *env, qb_create_spec *s, const char *list,
                       const char *image, bool *help)
{
    *help = false;
    if (strcmp(list, "help") == 0 || strcmp(list, "?") == 0) {
        *help = true;
        return 0;
    }
    if (s->nlists == QB_CREATE_MAX_LISTS) {
        qb_cmd_error(env, "too many -o options (at most %d)", QB_CREATE_MAX_LISTS);
        return 1;
    }
    size_t len = strlen(list);
    char *copy = qb_malloc(&env->alloc, len + 1);
    if (!copy) {
        qb_cmd_error(env, "out of memory");
        return 1;
    }
    memcpy(copy, list, len + 1);
    s->lists[s->nlists++] = copy;
    char *cursor = copy, *item;
    while ((item = next_item(&cursor)) != NULL) {
        if (!*item)
            continue;
        if (strcmp(item, "help") == 0 || strcmp(item, "?") == 0) {
            *help = true;
            continue;
        }
        char *eq = strchr(item, '=');
        if (eq)
            *eq = '\0';
        if (strncmp(item, "encrypt.", 8) == 0) {
            qb_err err = { 0, "" };
            if (!eq) {
                qb_cmd_error(env, "%s: Parameter '%s' needs a value", image, item);
                return 1;
            }
            int er = qb_encrypt_parse_option(&s->encrypt, item, eq + 1, &err);
            if (er < 0) {
                qb_cmd_error(env, "%s: %s", image, err.msg);
                return 1;
            }
            if (er == 0) {
                for (size_t k = 0; k < 8; k++)
                    if (strcmp(item + 8, encrypt_names[k]) == 0)
                        s->encrypt_given[k] = eq + 1;
                continue;
            }
        }
        size_t i = 0;
        while (i < OPTION_COUNT && strcmp(options[i].name, item) != 0)
            i++;
        if (i == OPTION_COUNT) {
            qb_cmd_error(env, "%s: Invalid parameter '%s'", image, item);
            return 1;
        }
        if (!eq) {
            /* A flag without a value means "on", as qemu-img reads it. */
            if (options[i].bit != OPT_EXTENDED_L2 && options[i].bit != OPT_LAZY_REFCOUNTS) {
                qb_cmd_error(env, "%s: Parameter '%s' needs a value", image, item);
                return 1;
            }
        }
        if (options[i].bit == OPT_SIZE && s->size_set) {
            qb_cmd_error(env, "%s: The image size must be specified only once", image);
            return 1;
        }
        if (set_option(env, s, image, options[i].bit, options[i].name, eq ? eq + 1 : "on"))
            return 1;
        s->set |= options[i].bit;
    }
    return 0;
}

int qb_create_spec_check(const qb_env *env, const qb_create_spec *s, const char *fmt,
                         const char *image)
{
    if (strcmp(fmt, "raw") != 0) {
        qb_err err = { 0, "" };
        if (qb_encrypt_params_check(&s->encrypt, &err)) {
            qb_cmd_error(env, "%s: %s", image, err.msg);
            return 1;
        }
        if (s->encrypt.format && !env->passphrase) {
            qb_cmd_error(env, "%s: encrypt.format=%s needs a passphrase (--passphrase-file)",
                         image, s->encrypt.format == QB_ENCRYPT_AES ? "aes" : "luks");
            return 1;
        }
        if (s->encrypt.format == QB_ENCRYPT_LUKS && !env->rng) {
            qb_cmd_error(env, "%s: no random number source here for a new key", image);
            return 1;
        }
        if (s->encrypt.format && s->o.prealloc != QB_PREALLOC_OFF) {
            qb_cmd_error(env, "%s: preallocation is not supported with encryption", image);
            return 1;
        }
        return 0;
    }
    for (size_t k = 0; k < 8; k++) {
        if (s->encrypt_given[k]) {
            qb_cmd_error(env, "%s: Invalid parameter 'encrypt.%s'", image, encrypt_names[k]);
            return 1;
        }
    }
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if ((s->set & options[i].bit) && !(options[i].bit & RAW_OPTS)) {
            if (options[i].bit == OPT_BACKING_FILE)
                qb_cmd_error(env, "%s: Backing file not supported for file format 'raw'",
                             image);
            else
                qb_cmd_error(env, "%s: Invalid parameter '%s'", image, options[i].name);
            return 1;
        }
    }
    if (s->o.prealloc == QB_PREALLOC_METADATA) {
        qb_cmd_error(env, "%s: Unsupported preallocation mode: metadata", image);
        return 1;
    }
    return 0;
}

void qb_create_spec_help(const qb_out *o, const char *fmt)
{
    bool raw = strcmp(fmt, "raw") == 0;
    qb_printf(o, "Supported %s options:\n", raw ? "raw" : "qcow2");
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (raw && !(options[i].bit & RAW_OPTS))
            continue;
        qb_printf(o, "  %-17s- %s\n", options[i].name, options[i].help);
    }
    if (!raw)
        qb_puts(o, "  encrypt.format   - Encrypt the image: luks or aes (passphrase from "
                   "--passphrase-file)\n"
                   "  encrypt.cipher-alg, encrypt.cipher-mode, encrypt.ivgen-alg,\n"
                   "  encrypt.ivgen-hash-alg, encrypt.hash-alg, encrypt.iter-time\n"
                   "                   - LUKS: as qemu-img (aes-128/192/256, xts/cbc, "
                   "plain64/plain/essiv,\n"
                   "                     sha1/224/256/384/512, milliseconds of PBKDF2)\n");
}

void qb_create_spec_print(const qb_out *out, const qb_create_spec *s, const char *fmt,
                          const char *image, uint64_t size)
{
    const qb_create_opts *o = &s->o;
    qb_printf(out, "Formatting '%s', fmt=%s ", image, fmt);
    if (strcmp(fmt, "raw") == 0) {
        qb_printf(out, "size=%llu", (unsigned long long)size);
        if (s->prealloc)
            qb_printf(out, " preallocation=%s", s->prealloc);
        qb_puts(out, "\n");
        return;
    }
    for (size_t k = 0; k < 8; k++)
        if (s->encrypt_given[k])
            qb_printf(out, "encrypt.%s=%s ", encrypt_names[k], s->encrypt_given[k]);
    qb_printf(out, "cluster_size=%llu extended_l2=%s ",
              1ull << (o->cluster_bits ? o->cluster_bits : 16), o->extended_l2 ? "on" : "off");
    if (s->prealloc)
        qb_printf(out, "preallocation=%s ", s->prealloc);
    qb_printf(out, "compression_type=%s size=%llu",
              o->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
              (unsigned long long)size);
    if (s->compat)
        qb_printf(out, " compat=%s", s->compat);
    if (o->backing_file)
        qb_printf(out, " backing_file=%s", o->backing_file);
    if (o->backing_format)
        qb_printf(out, " backing_fmt=%s", o->backing_format);
    qb_printf(out, " lazy_refcounts=%s refcount_bits=%u\n", o->lazy_refcounts ? "on" : "off",
              o->refcount_bits ? o->refcount_bits : 16);
}
