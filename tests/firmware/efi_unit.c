/*
 * Host tests of the firmware front end's plain-C parts: shell path
 * canonicalisation (efi/efi_path.c) and UTF-8/UCS-2 conversion
 * (efi/efi_utf.c). Built with ASan+UBSan. Prints one "ok   NAME" or
 * "FAIL NAME: why" line per group, as tests/lib.sh does.
 */
#include <stdio.h>
#include <string.h>

#include "efi_path.h"
#include "efi_utf.h"
#include "group_check.h"

static void join(const char *dir, const char *name, const char *want)
{
    char out[64], what[160];
    int r = qb_efi_path_join(dir, name, out, sizeof out);

    snprintf(what, sizeof what, "join(%s, %s)", dir ? dir : "NULL", name);
    if (!want) {
        check_int(what, r, -1);
        return;
    }
    check_int(what, r, 0);
    if (r == 0)
        check_str(what, out, want);
}

static int test_join(void)
{
    join("FS0:\\", "a.qcow2", "FS0:\\a.qcow2");
    join("FS0:\\dir", "sub/b.qcow2", "FS0:\\dir\\sub\\b.qcow2");
    join("FS0:\\dir", "sub\\b.qcow2", "FS0:\\dir\\sub\\b.qcow2");
    join("fs0:\\dir", "x", "FS0:\\dir\\x");
    join("FS0:\\a\\b", "..\\x", "FS0:\\a\\x");
    join("FS0:\\a\\b", "../../../..//x", "FS0:\\x");
    join("FS0:\\", "..", "FS0:\\");
    join("FS0:\\a\\.\\b\\", "./c/.", "FS0:\\a\\b\\c");
    join("FS0:\\a\\b", "\\abs\\y", "FS0:\\abs\\y");
    join("FS0:\\a\\b", "/abs//y/", "FS0:\\abs\\y");
    join("FS0:\\a", "fs1:\\z", "FS1:\\z");
    join("FS0:\\a", "fs1:/z", "FS1:\\z");
    join("FS0:\\a", "fs0:rel", "FS0:\\a\\rel");
    join("FS0:\\a", "fs1:rel", "FS1:\\rel");
    join(NULL, "hd0a0:\\q", "HD0A0:\\q");
    join(NULL, "rel", NULL);
    join(NULL, "\\rel", NULL);
    join("\\EFI\\BOOT", "x.qcow2", "\\EFI\\BOOT\\x.qcow2");
    join("\\EFI\\BOOT", "..\\..\\y", "\\y");
    join("FS0:\\", "fs0:", "FS0:\\");
    /* 64-byte buffer: the result must fit with its NUL. */
    join("FS0:\\", "0123456789012345678901234567890123456789012345678901234567",
         "FS0:\\0123456789012345678901234567890123456789012345678901234567");
    join("FS0:\\", "01234567890123456789012345678901234567890123456789012345678", NULL);
    join("FS0:\\d", "012345678901234567890123456789012345678901234567890123456/..", NULL);
    return end_group("path: join resolves devices, separators, . and ..");
}

static void dirname_is(const char *path, const char *want)
{
    char out[64];

    check_int(path, qb_efi_path_dirname(path, out, sizeof out), 0);
    check_str(path, out, want);
}

static int test_parts(void)
{
    char small[4];

    dirname_is("FS0:\\a\\b.qcow2", "FS0:\\a");
    dirname_is("FS0:\\b.qcow2", "FS0:\\");
    dirname_is("\\x", "\\");
    dirname_is("\\d\\x", "\\d");
    check_int("dirname overflow", qb_efi_path_dirname("FS0:\\abc\\d", small, sizeof small), -1);

    check_int("devlen fs0:\\x", qb_efi_path_devlen("fs0:\\x"), 3);
    check_int("devlen x:y", qb_efi_path_devlen("x:y"), 1);
    check_int("devlen \\a:b", qb_efi_path_devlen("\\a:b"), -1);
    check_int("devlen a/b:c", qb_efi_path_devlen("a/b:c"), -1);
    check_int("devlen :x", qb_efi_path_devlen(":x"), -1);
    check_int("devlen abc", qb_efi_path_devlen("abc"), -1);
    check_int("rooted fs0:\\x", qb_efi_path_is_rooted("fs0:\\x"), 1);
    check_int("rooted fs0:x", qb_efi_path_is_rooted("fs0:x"), 0);
    check_int("rooted /x", qb_efi_path_is_rooted("/x"), 1);
    check_int("rooted x/y", qb_efi_path_is_rooted("x/y"), 0);
    check_int("same_dev", qb_efi_path_same_dev("FS0:\\a", "fs0:b"), 1);
    check_int("same_dev other", qb_efi_path_same_dev("FS0:\\a", "fs1:b"), 0);
    check_int("same_dev none", qb_efi_path_same_dev("\\a", "\\b"), 0);
    return end_group("path: devices, roots, dirname");
}

static int test_utf16_to_utf8(void)
{
    static const uint16_t mixed[] = { 'A', 0xe9, 0x20ac, 0xd83d, 0xde00, 'z', 0 };
    static const uint16_t lone[] = { 'a', 0xdc00, 'b', 0xd800, 0 };
    char out[32];

    check_int("mixed length", (long)qb_utf16_to_utf8(mixed, out, sizeof out), 11);
    check_str("mixed", out, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z");
    check_int("lone length", (long)qb_utf16_to_utf8(lone, out, sizeof out), 8);
    check_str("lone", out, "a\xef\xbf\xbd" "b\xef\xbf\xbd");
    /* Only whole characters go into a short buffer; the length is still
     * the full one. */
    check_int("short length", (long)qb_utf16_to_utf8(mixed, out, 5), 11);
    check_str("short", out, "A\xc3\xa9");
    check_int("size 0", (long)qb_utf16_to_utf8(mixed, NULL, 0), 11);
    return end_group("utf: UCS-2/UTF-16 to UTF-8");
}

static int test_utf8_to_ucs2(void)
{
    uint16_t out[8];

    check_int("ascii", qb_utf8_to_ucs2("fs0:\\a", out, 8), 6);
    check_int("ascii value", out[5], 'a');
    check_int("ascii NUL", out[6], 0);
    check_int("bmp", qb_utf8_to_ucs2("\xc3\xa9\xe2\x82\xac", out, 8), 2);
    check_int("bmp values", out[0] == 0xe9 && out[1] == 0x20ac, 1);
    check_int("outside BMP", qb_utf8_to_ucs2("\xf0\x9f\x98\x80", out, 8), -1);
    check_int("overlong", qb_utf8_to_ucs2("\xc0\xaf", out, 8), -1);
    check_int("surrogate", qb_utf8_to_ucs2("\xed\xa0\x80", out, 8), -1);
    check_int("stray continuation", qb_utf8_to_ucs2("a\x80", out, 8), -1);
    check_int("truncated", qb_utf8_to_ucs2("a\xc3", out, 8), -1);
    check_int("fits exactly", qb_utf8_to_ucs2("1234567", out, 8), 7);
    check_int("too long", qb_utf8_to_ucs2("12345678", out, 8), -1);
    check_int("literal U+FFFD", qb_utf8_to_ucs2("\xef\xbf\xbd", out, 8), 1);
    return end_group("utf: UTF-8 to UCS-2 file names");
}

static int test_feed(void)
{
    qb_utf8_dec d = { 0, 0, 0 };
    uint32_t cp[2];

    /* A character split across two writes. */
    check_int("first half", qb_utf8_feed(&d, 0xe2, cp), 0);
    check_int("middle", qb_utf8_feed(&d, 0x82, cp), 0);
    check_int("last", qb_utf8_feed(&d, 0xac, cp), 1);
    check_int("euro", cp[0], 0x20ac);
    /* A sequence broken by ASCII: the error, then the ASCII character. */
    check_int("lead", qb_utf8_feed(&d, 0xc3, cp), 0);
    check_int("broken", qb_utf8_feed(&d, '\n', cp), 2);
    check_int("broken values", cp[0] == QB_UTF_INVALID && cp[1] == '\n', 1);
    check_int("bad lead", qb_utf8_feed(&d, 0xff, cp), 1);
    check_int("bad lead value", cp[0], (long)QB_UTF_INVALID);
    return end_group("utf: incremental decoding for the console");
}

int main(void)
{
    int failed = 0;

    failed += test_join();
    failed += test_parts();
    failed += test_utf16_to_utf8();
    failed += test_utf8_to_ucs2();
    failed += test_feed();
    return failed ? 1 : 0;
}
