/*
 * The engine's text sinks on the firmware console: UTF-8 is decoded
 * (also across writes that split a character), converted to CHAR16 and
 * written with OutputString; "\n" becomes "\r\n". Characters outside the
 * BMP and malformed bytes are shown as U+FFFD.
 */
#include "qb_efi.h"

typedef struct out_sink {
    bool is_err;
    qb_utf8_dec dec;
} out_sink;

static out_sink sink_out = { false, { 0, 0, 0 } };
static out_sink sink_err = { true, { 0, 0, 0 } };

static SIMPLE_TEXT_OUTPUT_INTERFACE *console(const out_sink *s)
{
    /* Looked up on every write: the shell swaps these for redirection. */
    if (s->is_err && ST->StdErr)
        return ST->StdErr;
    return ST->ConOut;
}

static void out_write(void *ctx, const char *str, size_t n)
{
    out_sink *s = ctx;
    SIMPLE_TEXT_OUTPUT_INTERFACE *con = console(s);
    CHAR16 buf[256];
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        uint32_t cp[2];
        unsigned k = qb_utf8_feed(&s->dec, (uint8_t)str[i], cp);

        for (unsigned j = 0; j < k; j++) {
            /* Room for "\r\n" and the NUL. */
            if (len + 3 > sizeof buf / sizeof buf[0]) {
                buf[len] = 0;
                if (con)
                    con->OutputString(con, buf);
                len = 0;
            }
            if (cp[j] == '\n')
                buf[len++] = '\r';
            buf[len++] = cp[j] > 0xffff ? QB_UTF_REPLACEMENT : (CHAR16)cp[j];
        }
    }
    if (len) {
        buf[len] = 0;
        if (con)
            con->OutputString(con, buf);
    }
}

const qb_out qb_efi_stdout = { &sink_out, out_write };
const qb_out qb_efi_stderr = { &sink_err, out_write };
