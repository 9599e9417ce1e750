/* UTF-8 <-> UCS-2 conversion for the firmware's CHAR16 strings. */
#include "efi_utf.h"

unsigned qb_utf8_feed(qb_utf8_dec *d, uint8_t byte, uint32_t out[2])
{
    unsigned n = 0;

    if (d->need) {
        if ((byte & 0xc0) == 0x80) {
            d->cp = (d->cp << 6) | (byte & 0x3f);
            if (--d->need)
                return 0;
            /* Overlong forms, surrogates and values past U+10FFFF are
             * not characters. */
            if (d->cp < d->min || (d->cp >= 0xd800 && d->cp <= 0xdfff) || d->cp > 0x10ffff)
                out[0] = QB_UTF_INVALID;
            else
                out[0] = d->cp;
            return 1;
        }
        /* Truncated sequence: report it, then start over with this byte. */
        d->need = 0;
        out[n++] = QB_UTF_INVALID;
    }
    if (byte < 0x80) {
        out[n++] = byte;
    } else if ((byte & 0xe0) == 0xc0) {
        d->cp = byte & 0x1f; d->need = 1; d->min = 0x80;
    } else if ((byte & 0xf0) == 0xe0) {
        d->cp = byte & 0x0f; d->need = 2; d->min = 0x800;
    } else if ((byte & 0xf8) == 0xf0) {
        d->cp = byte & 0x07; d->need = 3; d->min = 0x10000;
    } else {
        out[n++] = QB_UTF_INVALID;
    }
    return n;
}

/* Encodes cp as UTF-8 into b; returns the length. */
static unsigned encode_utf8(uint32_t cp, uint8_t b[4])
{
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (uint8_t)(0xf0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

size_t qb_utf16_to_utf8(const uint16_t *s, char *out, size_t size)
{
    size_t pos = 0, kept = 0;
    bool full = false;

    for (; *s; s++) {
        uint32_t cp = *s;
        uint8_t b[4];

        if (cp >= 0xd800 && cp <= 0xdbff && s[1] >= 0xdc00 && s[1] <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (s[1] - 0xdc00u);
            s++;
        } else if (cp >= 0xd800 && cp <= 0xdfff) {
            cp = QB_UTF_REPLACEMENT;
        }
        unsigned len = encode_utf8(cp, b);
        /* Only whole characters go into a buffer that runs out. */
        if (!full && pos + len < size) {
            for (unsigned i = 0; i < len; i++)
                out[pos + i] = (char)b[i];
            kept = pos + len;
        } else {
            full = true;
        }
        pos += len;
    }
    if (size > 0)
        out[kept] = '\0';
    return pos;
}

long qb_utf8_to_ucs2(const char *s, uint16_t *out, size_t count)
{
    qb_utf8_dec d = { 0, 0, 0 };
    size_t pos = 0;
    uint32_t cp[2];

    for (; *s; s++) {
        unsigned n = qb_utf8_feed(&d, (uint8_t)*s, cp);
        for (unsigned i = 0; i < n; i++) {
            if (cp[i] == QB_UTF_INVALID || cp[i] > 0xffff || pos + 1 >= count)
                return -1;
            out[pos++] = (uint16_t)cp[i];
        }
    }
    if (d.need || count == 0)
        return -1;
    out[pos] = 0;
    return (long)pos;
}
