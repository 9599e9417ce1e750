/*
 * Host tests of stick mode's config parser (efi/efi_config.c), built with
 * ASan+UBSan. Prints one "ok   NAME" or "FAIL NAME: why" line per group,
 * as tests/lib.sh does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efi_stick.h"
#include "group_check.h"

/* Some message contains `want`. */
static void check_msg(const qb_stick_config *c, const char *want)
{
    for (int i = 0; i < c->nmsgs; i++)
        if (strstr(c->msg[i], want))
            return;
    failf("messages", c->nmsgs ? c->msg[0] : "(none)", want);
}

/* Parses text (and resolves the default) into a fresh config. */
static qb_stick_config *parse(const char *text)
{
    static qb_stick_config cfg;

    qb_stick_config_init(&cfg);
    qb_stick_config_parse(&cfg, "\\qcowboot.cfg", text, strlen(text));
    qb_stick_config_resolve(&cfg);
    return &cfg;
}

static int test_basic(void)
{
    qb_stick_config *c = parse("# a stick\n"
                               "\n"
                               "timeout = 7\n"
                               "  Default=2  \n"
                               "entry = debian.qcow2 | Debian 12\n"
                               "entry=images/win.qcow2|Windows|clean install\n"
                               "ENTRY = \\images\\..\\x.qcow2\n"
                               "entry = a.qcow2 | | snap\n");

    check_int("count", c->count, 4);
    check_int("timeout", c->timeout, 7);
    check_int("default", c->default_index, 1);
    check_int("problems", c->nmsgs, 0);
    check_str("image 1", c->entry[0].image, "\\debian.qcow2");
    check_str("title 1", c->entry[0].title, "Debian 12");
    check_str("snapshot 1", c->entry[0].snapshot, "");
    check_str("image 2", c->entry[1].image, "\\images\\win.qcow2");
    check_str("title 2", c->entry[1].title, "Windows");
    check_str("snapshot 2", c->entry[1].snapshot, "clean install");
    check_str("image 3", c->entry[2].image, "\\x.qcow2");
    check_str("title 3 (the path)", c->entry[2].title, "x.qcow2");
    check_str("title 4 (empty: the path)", c->entry[3].title, "a.qcow2");
    check_str("snapshot 4", c->entry[3].snapshot, "snap");
    return end_group("config: entries, default, timeout, comments, any case and spacing");
}

static int test_line_ends(void)
{
    qb_stick_config *c = parse("\xef\xbb\xbftimeout = 0\r\nentry = a.qcow2 | A\r\n\r\n"
                               "entry = b.qcow2 | B");

    check_int("count", c->count, 2);
    check_int("timeout", c->timeout, 0);
    check_str("title 1 (no CR)", c->entry[0].title, "A");
    check_str("title 2 (no final newline)", c->entry[1].title, "B");
    check_int("problems", c->nmsgs, 0);
    c = parse("");
    check_int("empty: count", c->count, 0);
    check_int("empty: timeout unset", c->timeout, QB_STICK_TIMEOUT_UNSET);
    check_int("empty: default", c->default_index, 0);
    return end_group("config: BOM, CRLF, no final newline, empty file");
}

static int test_timeouts(void)
{
    check_int("off", parse("timeout = off\n")->timeout, QB_STICK_NO_TIMEOUT);
    check_int("-1", parse("timeout = -1\n")->timeout, QB_STICK_NO_TIMEOUT);
    check_int("3600", parse("timeout = 3600\n")->timeout, 3600);
    check_int("last wins", parse("timeout = 1\ntimeout = 2\n")->timeout, 2);
    const char *bad[] = { "timeout = 3601\n", "timeout = -2\n", "timeout = 5s\n",
                          "timeout =\n", "timeout = 99999999999999999999\n",
                          "timeout = 5 # seconds\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qb_stick_config *c = parse(bad[i]);
        check_int(bad[i], c->timeout, QB_STICK_TIMEOUT_UNSET);
        check_msg(c, "line 1: timeout");
    }
    return end_group("config: timeout range, off, bad values reported");
}

static int test_bad_lines(void)
{
    qb_stick_config *c = parse("entry = good.qcow2\n"
                               "this line has no equals sign\n"
                               "colour = red\n"
                               "entry = fs0:\\x.qcow2\n"
                               "entry = a | b | c | d | e\n"
                               "entry =   | title\n"
                               "entry = /\n"
                               "entry = x\x01y\n"
                               "default =\n"
                               "entry = last.qcow2\n");

    check_int("count", c->count, 2);
    check_str("first", c->entry[0].image, "\\good.qcow2");
    check_str("last", c->entry[1].image, "\\last.qcow2");
    check_msg(c, "\\qcowboot.cfg, line 2: expected 'key = value'");
    check_msg(c, "line 3: unknown key 'colour'");
    check_msg(c, "line 4: device names");
    check_msg(c, "line 5: too many '|' fields");
    check_msg(c, "line 6: the image path is empty");
    check_msg(c, "line 7: the image path names no file");
    check_msg(c, "line 8: control character");
    check_int("messages", c->nmsgs, 8);
    check_int("dropped", c->dropped_msgs, 0);
    check_msg(c, "line 9: default needs");
    return end_group("config: bad lines skipped with their line number, the rest kept");
}

static int test_defaults(void)
{
    static const char entries[] = "entry = a.qcow2 | Alpha\n"
                                  "entry = images/b.qcow2 | Beta\n"
                                  "entry = c.qcow2\n";
    char text[512];
    struct {
        const char *def;
        int want;
        const char *msg;
    } cases[] = {
        { "3", 2, NULL },        { "1", 0, NULL },
        { "beta", 1, NULL },     { "c.qcow2", 2, NULL },
        { "\\images\\B.QCOW2", 1, NULL },
        { "/images/b.qcow2", 1, NULL },
        { "4", 0, "line 1: default 4: there are 3 entries" },
        { "0", 0, "default 0: there are 3 entries" },
        { "99999999999999999999", 0, "there are 3 entries" },
        { "gamma", 0, "line 1: default 'gamma' is no entry's" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_stick_config *c;

        snprintf(text, sizeof text, "default = %s\n%s", cases[i].def, entries);
        c = parse(text);
        check_int(cases[i].def, c->default_index, cases[i].want);
        if (cases[i].msg)
            check_msg(c, cases[i].msg);
        else
            check_int(cases[i].def, c->nmsgs, 0);
    }
    /* A default without entries names an image found on the stick later. */
    {
        qb_stick_config cfg;

        qb_stick_config_init(&cfg);
        qb_stick_config_parse(&cfg, "\\EFI\\BOOT\\qcowboot.cfg", "default = z.qcow2\n", 18);
        check_int("found: count", cfg.count, 0);
        qb_stick_config_add(&cfg, "\\y.qcow2");
        qb_stick_config_add(&cfg, "\\z.qcow2");
        qb_stick_config_resolve(&cfg);
        check_int("found: default", cfg.default_index, 1);
        check_str("found: title", cfg.entry[1].title, "z.qcow2");
    }
    return end_group("config: default by number, title or image path; bad ones reported");
}

static int test_limits(void)
{
    char *text = malloc(64 * 40 + 1), *p = text;
    char title[200];
    qb_stick_config *c;

    for (int i = 0; i < QB_STICK_MAX_ENTRIES + 2; i++)
        p += sprintf(p, "entry = %d.qcow2\n", i);
    c = parse(text);
    check_int("count", c->count, QB_STICK_MAX_ENTRIES);
    check_msg(c, "line 33: more than 32 entries");
    free(text);

    /* A long title is cut at a character boundary, not in the middle of
     * a UTF-8 sequence. */
    p = title;
    p += sprintf(p, "entry = x.qcow2 | ");
    for (int i = 0; i < 60; i++)
        p += sprintf(p, "\xc3\xa9");
    c = parse(title);
    check_int("long title: count", c->count, 1);
    check_int("long title: cut", (long)strlen(c->entry[0].title), QB_STICK_TITLE_MAX - 1 - 1);

    /* Too long a path or snapshot name: the entry goes. */
    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "entry = ", 8);
    big[sizeof big - 1] = '\0';
    c = parse(big);
    check_int("long path", c->count, 0);
    check_msg(c, "line 1: the image path is too long");
    snprintf(big, sizeof big, "entry = a.qcow2 | t | %0300d", 0);
    c = parse(big);
    check_int("long snapshot", c->count, 0);
    check_msg(c, "line 1: the snapshot name is longer");
    return end_group("config: entry table, title, path and snapshot limits");
}

static int test_modes(void)
{
    qb_stick_config *c = parse("entry = a.qcow2\n"
                               "entry = b.qcow2 | B | | volatile\n"
                               "entry = c.qcow2 | C | snap | Read-Only\n"
                               "entry = d.qcow2 | D | | readonly\n"
                               "entry = e.qcow2 | E | | read-write\n"
                               "entry = f.qcow2 | F | |\n"
                               "entry = g.qcow2 | G | | sometimes\n"
                               "mode = bogus\n"
                               "entry = h.qcow2 | H | | ramdisk\n"
                               "entry = i.qcow2 | I | | RAM-disk\n");

    check_int("count", c->count, 8);
    check_int("a: read-write by default", c->entry[0].mode, QB_EFI_READ_WRITE);
    check_int("b: volatile", c->entry[1].mode, QB_EFI_VOLATILE);
    check_str("c: snapshot", c->entry[2].snapshot, "snap");
    check_int("c: read-only, any case", c->entry[2].mode, QB_EFI_READ_ONLY);
    check_int("d: readonly", c->entry[3].mode, QB_EFI_READ_ONLY);
    check_int("e: read-write", c->entry[4].mode, QB_EFI_READ_WRITE);
    check_int("f: empty mode field", c->entry[5].mode, QB_EFI_READ_WRITE);
    check_int("h: ramdisk", c->entry[6].mode, QB_EFI_RAMDISK);
    check_int("i: ram-disk, any case", c->entry[7].mode, QB_EFI_RAMDISK);
    check_msg(c, "line 7: mode 'sometimes' is not read-write, read-only, volatile or ramdisk; "
                 "entry skipped");
    check_msg(c, "line 8: mode 'bogus' is not");
    check_int("messages", c->nmsgs, 2);

    /* `mode = ...` is the default for entries without their own, wherever
     * it stands, and for images found on the stick. */
    c = parse("entry = a.qcow2\n"
              "entry = b.qcow2 | B | | read-write\n"
              "mode = volatile\n");
    check_int("default: a", c->entry[0].mode, QB_EFI_VOLATILE);
    check_int("default: b keeps its own", c->entry[1].mode, QB_EFI_READ_WRITE);
    {
        qb_stick_config cfg;

        qb_stick_config_init(&cfg);
        qb_stick_config_parse(&cfg, "\\qcowboot.cfg", "mode=read-only\n", 15);
        qb_stick_config_add(&cfg, "\\y.qcow2");
        qb_stick_config_resolve(&cfg);
        check_int("default: found image", cfg.entry[0].mode, QB_EFI_READ_ONLY);
        check_int("default: no problems", cfg.nmsgs, 0);
    }
    check_str("name rw", qb_efi_mode_name(QB_EFI_READ_WRITE), "read-write");
    check_str("name ro", qb_efi_mode_name(QB_EFI_READ_ONLY), "read-only");
    check_str("name volatile", qb_efi_mode_name(QB_EFI_VOLATILE), "volatile");
    return end_group("config: modes per entry (4th field) and by default (mode = ...)");
}

static int test_names(void)
{
    qb_stick_config cfg;

    check_int("a.qcow2", qb_stick_is_image_name("a.qcow2"), 1);
    check_int("A.QCOW2", qb_stick_is_image_name("A.QCOW2"), 1);
    check_int(".qcow2", qb_stick_is_image_name(".qcow2"), 0);
    check_int("a.qcow2.bak", qb_stick_is_image_name("a.qcow2.bak"), 0);
    check_int("a.qcow", qb_stick_is_image_name("a.qcow"), 0);
    qb_stick_config_init(&cfg);
    check_int("add", qb_stick_config_add(&cfg, "\\images\\d.qcow2"), 0);
    check_str("added title", cfg.entry[0].title, "images\\d.qcow2");
    for (int i = 1; i < QB_STICK_MAX_ENTRIES; i++)
        qb_stick_config_add(&cfg, "\\x.qcow2");
    check_int("full", qb_stick_config_add(&cfg, "\\y.qcow2"), -1);
    return end_group("config: image names, entries for images found on the stick");
}

/* Random bytes and random mixes of config words: no crash, no overrun
 * (ASan/UBSan watch), counts in range. */
static int test_garbage(void)
{
    static const char *words[] = { "entry", "default", "timeout", " = ", "=", "|", "\n",
                                   "\r\n", "#", "a.qcow2", "..", "/", "\\", "fs0:", "-1",
                                   "off", "3", "\xc3", "\xa9", " ", "\t", "\0" };
    unsigned seed = 12345;
    char buf[2048];

    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        qb_stick_config *c;

        seed = seed * 1103515245 + 12345;
        size_t want = (seed >> 8) % sizeof buf;
        while (n < want) {
            seed = seed * 1103515245 + 12345;
            if (round % 2) {
                buf[n++] = (char)(seed >> 16);
            } else {
                const char *w = words[(seed >> 16) % (sizeof words / sizeof words[0])];
                size_t k = *w ? strlen(w) : 1;
                if (n + k > want)
                    break;
                memcpy(buf + n, w, k);
                n += k;
            }
        }
        static qb_stick_config cfg;
        qb_stick_config_init(&cfg);
        qb_stick_config_parse(&cfg, "\\qcowboot.cfg", buf, n);
        qb_stick_config_resolve(&cfg);
        c = &cfg;
        if (c->count < 0 || c->count > QB_STICK_MAX_ENTRIES || c->default_index < 0 ||
            (c->count && c->default_index >= c->count) || c->nmsgs > QB_STICK_MAX_MSGS) {
            check_int("garbage round", round, -1);
            break;
        }
    }
    return end_group("config: random input parses without harm");
}

int main(void)
{
    int failed = 0;

    failed += test_basic();
    failed += test_line_ends();
    failed += test_timeouts();
    failed += test_bad_lines();
    failed += test_defaults();
    failed += test_limits();
    failed += test_modes();
    failed += test_names();
    failed += test_garbage();
    return failed ? 1 : 0;
}
