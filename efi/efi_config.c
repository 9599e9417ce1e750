/*
 * The stick's config file, qcowboot.cfg. Plain C with no firmware headers
 * (the host tests compile it too).
 *
 * Where: qcowboot.efi started with no arguments (as \EFI\BOOT\BOOTX64.EFI
 * on a stick) reads qcowboot.cfg from the directory it was started from
 * (\EFI\BOOT\qcowboot.cfg) or, when there is none, from the root of the
 * same volume (\qcowboot.cfg). The file is optional.
 *
 * Syntax: UTF-8 text (a BOM is skipped), one setting per line,
 * `key = value`, blanks around keys, values and '|' ignored; keys in any
 * case. A line whose first non-blank character is '#' is a comment ('#'
 * elsewhere belongs to the value); blank lines are ignored.
 *
 *   # qcowboot.cfg
 *   timeout = 5                       seconds before the default boots
 *   default = 2                       entry number, title or image path
 *   mode = read-write                 what becomes of the guest's writes
 *   entry = debian.qcow2 | Debian 12
 *   entry = images\win.qcow2 | Windows | clean-install
 *   entry = live.qcow2 | Live system | | volatile
 *
 *   entry = IMAGE [| TITLE [| SNAPSHOT [| MODE]]]
 *       one menu entry per line, in menu order (at most 32). IMAGE is the
 *       path of the image from the root of the stick ('\' or '/'; the
 *       leading one may be left out). TITLE is what the menu shows (the
 *       path when left out); SNAPSHOT names an internal snapshot (id or
 *       name) to boot instead of the image's current state (read-only);
 *       MODE is the entry's own mode (below).
 *   mode = read-write | read-only | volatile | ramdisk
 *       what becomes of the guest's writes, for every entry without its
 *       own MODE (and the images found on the stick): written into the
 *       image (read-write, the default), refused (read-only; also
 *       "readonly"), or kept in memory and dropped after the boot, the
 *       image left as it was (volatile). ramdisk (also "ram-disk") copies
 *       the whole disk into memory the OS keeps and boots from the
 *       firmware's RAM disk (efi_ramdisk.c); writes stay in that memory.
 *   default = N | TITLE | IMAGE
 *       the entry highlighted first and booted when the countdown ends:
 *       its number (from 1), its title or its image path. Entry 1 if
 *       left out.
 *   timeout = SECONDS
 *       0 to 3600: the countdown before the default entry boots (0: at
 *       once); -1 or "off": no countdown, wait for a key. 5 if left out.
 *
 * A file without entries still sets the default and the timeout for the
 * menu of the images found on the stick. Lines that cannot be understood
 * are skipped and reported with their line number above the menu; the
 * rest of the file still counts.
 */
#include <string.h>
#include "qb_fmt.h"
#include "efi_path.h"
#include "efi_stick.h"

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive (ASCII) comparison of a NUL-terminated string with
 * `n` bytes. */
static int eq_nocase(const char *s, const char *t, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!s[i] || lower(s[i]) != lower(t[i]))
            return 0;
    return s[i] == '\0';
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims blanks from both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_blank((*s)[*n - 1]))
        (*n)--;
}

void qb_stick_config_init(qb_stick_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout = QB_STICK_TIMEOUT_UNSET;
}

void qb_stick_config_note(qb_stick_config *cfg, const char *fmt, ...)
{
    va_list ap;

    if (cfg->nmsgs >= QB_STICK_MAX_MSGS) {
        cfg->dropped_msgs++;
        return;
    }
    va_start(ap, fmt);
    qb_vsnprintf(cfg->msg[cfg->nmsgs++], QB_STICK_MSG_MAX, fmt, ap);
    va_end(ap);
}

/* Copies [s, s + n) into out (size bytes) cut at a character boundary when
 * too long. Returns 1 when it was cut. */
static int copy_cut(char *out, size_t size, const char *s, size_t n)
{
    int cut = 0;

    if (n >= size) {
        n = size - 1;
        /* Do not leave half a UTF-8 sequence. */
        while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
        cut = 1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return cut;
}

/* The image path as the opener wants it: rooted on our volume, '\'
 * separators, "." and ".." resolved. Returns a message, or NULL. */
static const char *image_path(const char *s, size_t n, char *out)
{
    char raw[QB_STICK_IMAGE_MAX];

    if (n == 0)
        return "the image path is empty";
    if (n >= sizeof raw)
        return "the image path is too long";
    memcpy(raw, s, n);
    raw[n] = '\0';
    if (qb_efi_path_devlen(raw) >= 0)
        return "device names (such as fs0:) mean nothing here: give the path from the "
               "root of this stick";
    if (qb_efi_path_join("\\", raw, out, QB_STICK_IMAGE_MAX) < 0)
        return "the image path is too long";
    if (strcmp(out, "\\") == 0)
        return "the image path names no file";
    return NULL;
}

int qb_stick_config_add(qb_stick_config *cfg, const char *image)
{
    qb_stick_entry *e;
    size_t n = strlen(image);

    if (cfg->count >= QB_STICK_MAX_ENTRIES || n >= QB_STICK_IMAGE_MAX)
        return -1;
    e = &cfg->entry[cfg->count++];
    memcpy(e->image, image, n + 1);
    copy_cut(e->title, sizeof e->title, image[0] == '\\' ? image + 1 : image,
             image[0] == '\\' ? n - 1 : n);
    e->snapshot[0] = '\0';
    e->mode = QB_EFI_MODE_UNSET;
    return 0;
}

int qb_stick_is_image_name(const char *name)
{
    static const char ext[] = ".qcow2";
    size_t n = strlen(name), k = sizeof ext - 1;

    return n > k && eq_nocase(ext, name + n - k, k);
}

/* read-write | read-only | volatile | ramdisk, and the spellings with or
 * without the hyphen. Returns 0 when the word is none of them. */
static int parse_mode(const char *s, size_t n, qb_efi_mode *mode)
{
    static const struct {
        const char *word;
        qb_efi_mode mode;
    } words[] = {
        { "read-write", QB_EFI_READ_WRITE }, { "readwrite", QB_EFI_READ_WRITE },
        { "read-only", QB_EFI_READ_ONLY },   { "readonly", QB_EFI_READ_ONLY },
        { "volatile", QB_EFI_VOLATILE },
        { "ramdisk", QB_EFI_RAMDISK },       { "ram-disk", QB_EFI_RAMDISK },
    };

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (eq_nocase(words[i].word, s, n)) {
            *mode = words[i].mode;
            return 1;
        }
    return 0;
}

/* entry = IMAGE [| TITLE [| SNAPSHOT [| MODE]]] */
static void parse_entry(qb_stick_config *cfg, int line, const char *v, size_t n)
{
    const char *field[4];
    size_t flen[4];
    int nf = 0;
    const char *p = v, *end = v + n;
    const char *why;
    qb_stick_entry *e;

    for (;;) {
        const char *bar = p;
        while (bar < end && *bar != '|')
            bar++;
        if (nf == 4) {
            qb_stick_config_note(cfg, "%s, line %d: too many '|' fields (entry = IMAGE | "
                                 "TITLE | SNAPSHOT | MODE); entry skipped", cfg->source, line);
            return;
        }
        field[nf] = p;
        flen[nf] = (size_t)(bar - p);
        trim(&field[nf], &flen[nf]);
        nf++;
        if (bar == end)
            break;
        p = bar + 1;
    }
    if (cfg->count >= QB_STICK_MAX_ENTRIES) {
        qb_stick_config_note(cfg, "%s, line %d: more than %d entries; entry skipped",
                             cfg->source, line, QB_STICK_MAX_ENTRIES);
        return;
    }
    e = &cfg->entry[cfg->count];
    why = image_path(field[0], flen[0], e->image);
    if (why) {
        qb_stick_config_note(cfg, "%s, line %d: %s; entry skipped", cfg->source, line, why);
        return;
    }
    e->mode = QB_EFI_MODE_UNSET;
    if (nf > 3 && flen[3] > 0 && !parse_mode(field[3], flen[3], &e->mode)) {
        qb_stick_config_note(cfg, "%s, line %d: mode '%.*s' is not read-write, read-only, "
                             "volatile or ramdisk; entry skipped", cfg->source, line,
                             (int)(flen[3] > 40 ? 40 : flen[3]), field[3]);
        return;
    }
    if (nf > 2 && flen[2] >= sizeof e->snapshot) {
        qb_stick_config_note(cfg, "%s, line %d: the snapshot name is longer than %d bytes; "
                             "entry skipped", cfg->source, line, QB_STICK_SNAPSHOT_MAX - 1);
        return;
    }
    if (nf > 1 && flen[1] > 0)
        copy_cut(e->title, sizeof e->title, field[1], flen[1]);
    else
        copy_cut(e->title, sizeof e->title, e->image + 1, strlen(e->image + 1));
    if (nf > 2)
        copy_cut(e->snapshot, sizeof e->snapshot, field[2], flen[2]);
    else
        e->snapshot[0] = '\0';
    cfg->count++;
}

/* timeout = SECONDS | -1 | off */
static void parse_timeout(qb_stick_config *cfg, int line, const char *v, size_t n)
{
    long t = 0;
    size_t i = 0;

    if (eq_nocase("off", v, n) || (n == 2 && v[0] == '-' && v[1] == '1')) {
        cfg->timeout = QB_STICK_NO_TIMEOUT;
        return;
    }
    if (n == 0)
        goto bad;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            goto bad;
        t = t * 10 + (v[i] - '0');
        if (t > QB_STICK_MAX_TIMEOUT)
            goto bad;
    }
    cfg->timeout = (int)t;
    return;
bad:
    qb_stick_config_note(cfg, "%s, line %d: timeout '%.*s' is not 0 to %d seconds, -1 or "
                         "off; ignored", cfg->source, line, (int)(n > 40 ? 40 : n), v,
                         QB_STICK_MAX_TIMEOUT);
}

static void parse_line(qb_stick_config *cfg, int line, const char *s, size_t n)
{
    const char *key, *val, *eq;
    size_t klen, vlen;

    trim(&s, &n);
    if (n == 0 || s[0] == '#')
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            qb_stick_config_note(cfg, "%s, line %d: control character (byte %#x) in the "
                                 "line; line skipped", cfg->source, line, c);
            return;
        }
    }
    for (eq = s; eq < s + n && *eq != '='; eq++)
        ;
    if (eq == s + n) {
        qb_stick_config_note(cfg, "%s, line %d: expected 'key = value', got '%.*s'; line "
                             "skipped", cfg->source, line, (int)(n > 40 ? 40 : n), s);
        return;
    }
    key = s;
    klen = (size_t)(eq - s);
    val = eq + 1;
    vlen = n - klen - 1;
    trim(&key, &klen);
    trim(&val, &vlen);
    if (eq_nocase("entry", key, klen)) {
        parse_entry(cfg, line, val, vlen);
    } else if (eq_nocase("timeout", key, klen)) {
        parse_timeout(cfg, line, val, vlen);
    } else if (eq_nocase("mode", key, klen)) {
        if (!parse_mode(val, vlen, &cfg->default_mode))
            qb_stick_config_note(cfg, "%s, line %d: mode '%.*s' is not read-write, read-only, "
                                 "volatile or ramdisk; ignored", cfg->source, line,
                                 (int)(vlen > 40 ? 40 : vlen), val);
    } else if (eq_nocase("default", key, klen)) {
        if (vlen == 0 || vlen >= sizeof cfg->default_spec) {
            qb_stick_config_note(cfg, "%s, line %d: default needs an entry number, title or "
                                 "image path; ignored", cfg->source, line);
            return;
        }
        memcpy(cfg->default_spec, val, vlen);
        cfg->default_spec[vlen] = '\0';
        cfg->default_line = line;
    } else {
        qb_stick_config_note(cfg, "%s, line %d: unknown key '%.*s' (expected entry, default, "
                             "timeout or mode); line skipped", cfg->source, line,
                             (int)(klen > 40 ? 40 : klen), key);
    }
}

int qb_stick_config_parse(qb_stick_config *cfg, const char *name, const char *text, size_t len)
{
    int before = cfg->nmsgs + cfg->dropped_msgs;
    size_t pos = 0;
    int line = 1;

    copy_cut(cfg->source, sizeof cfg->source, name, strlen(name));
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len) {
        size_t start = pos, n;

        while (pos < len && text[pos] != '\n')
            pos++;
        n = pos - start;
        if (n && text[start + n - 1] == '\r')
            n--;
        parse_line(cfg, line, text + start, n);
        pos++;          /* past the '\n' */
        line++;
    }
    return cfg->nmsgs + cfg->dropped_msgs - before;
}

void qb_stick_config_resolve(qb_stick_config *cfg)
{
    const char *d = cfg->default_spec;
    size_t n = strlen(d), i;
    char path[QB_STICK_IMAGE_MAX];
    long num = 0;

    for (int k = 0; k < cfg->count; k++)
        if (cfg->entry[k].mode == QB_EFI_MODE_UNSET)
            cfg->entry[k].mode = cfg->default_mode != QB_EFI_MODE_UNSET ? cfg->default_mode
                                                                         : QB_EFI_READ_WRITE;
    cfg->default_index = 0;
    if (n == 0)
        return;
    for (i = 0; i < n && d[i] >= '0' && d[i] <= '9' && num <= QB_STICK_MAX_ENTRIES; i++)
        num = num * 10 + (d[i] - '0');
    if (i == n || (d[i] >= '0' && d[i] <= '9')) {
        if (num >= 1 && num <= cfg->count) {
            cfg->default_index = (int)num - 1;
            return;
        }
        qb_stick_config_note(cfg, "%s, line %d: default %s: there %s %d %s; entry 1 is the "
                             "default", cfg->source, cfg->default_line, d,
                             cfg->count == 1 ? "is" : "are", cfg->count,
                             cfg->count == 1 ? "entry" : "entries");
        return;
    }
    for (int k = 0; k < cfg->count; k++) {
        if (eq_nocase(cfg->entry[k].title, d, n)) {
            cfg->default_index = k;
            return;
        }
    }
    if (!image_path(d, n, path)) {
        for (int k = 0; k < cfg->count; k++) {
            if (eq_nocase(cfg->entry[k].image, path, strlen(path))) {
                cfg->default_index = k;
                return;
            }
        }
    }
    qb_stick_config_note(cfg, "%s, line %d: default '%.60s' is no entry's number, title or "
                         "image; entry 1 is the default", cfg->source, cfg->default_line, d);
}
