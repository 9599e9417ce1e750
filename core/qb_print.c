/* Formatted output to the front end's text sinks, and the JSON and size
 * formatting the commands share. */
#include <string.h>
#include "qb_cmd.h"
#include "qb_fmt.h"
#include "qb_print.h"

void qb_vprintf(const qb_out *o, const char *fmt, va_list ap)
{
    char buf[QB_PATH_MAX * 3];
    int n = qb_vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n < 0)
        return;
    /* A line longer than the buffer (several long paths) is printed cut
     * rather than not at all. */
    o->write(o->ctx, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void qb_printf(const qb_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qb_vprintf(o, fmt, ap);
    va_end(ap);
}

void qb_puts(const qb_out *o, const char *s)
{
    o->write(o->ctx, s, strlen(s));
}

void qb_json_string(const qb_out *o, const char *s)
{
    qb_puts(o, "\"");
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (p > run)
            o->write(o->ctx, run, (size_t)(p - run));
        if (c == '"' || c == '\\')
            qb_printf(o, "\\%c", c);
        else if (c == '\n')
            qb_puts(o, "\\n");
        else if (c == '\t')
            qb_puts(o, "\\t");
        else if (c == '\r')
            qb_puts(o, "\\r");
        else
            qb_printf(o, "\\u%04x", c);
        run = p + 1;
    }
    qb_puts(o, run);
    qb_puts(o, "\"");
}

/* As QEMU's size_to_str: "%0.3g" of the value in the largest binary unit
 * that leaves it at or above 1000/1024 (so 1000 MiB prints as 0.977 GiB). */
void qb_format_size(char *buf, size_t cap, uint64_t bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    unsigned u = 0;
    while (u < 6 && bytes / 1000 >= (1ull << (10 * u)) &&
           bytes >= (1000ull << (10 * u)))
        u++;
    uint64_t unit = 1ull << (10 * u);
    uint64_t whole = bytes / unit, rem = bytes % unit;
    /* three significant digits */
    unsigned decimals = whole >= 100 ? 0 : whole >= 10 ? 1 : whole >= 1 ? 2 : 3;
    uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; i++)
        scale *= 10;
    /* rem * scale < 2^60 * 1000 could overflow: divide the unit down first */
    uint64_t r = rem, un = unit;
    while (r > UINT64_MAX / (2 * scale)) {
        r >>= 1;
        un >>= 1;
    }
    uint64_t frac = r * scale / un, left = r * scale % un;
    /* round half to even, as printf rounds an exactly representable tie */
    if (left * 2 > un || (left * 2 == un && (frac & 1)))
        frac++;
    uint64_t scaled = whole * scale + frac;
    whole = scaled / scale;
    frac = scaled % scale;
    while (decimals && frac % 10 == 0) {   /* %g drops trailing zeros */
        frac /= 10;
        decimals--;
    }
    if (decimals)
        qb_snprintf(buf, cap, "%llu.%0*llu %s", (unsigned long long)whole, (int)decimals,
                    (unsigned long long)frac, units[u]);
    else
        qb_snprintf(buf, cap, "%llu %s", (unsigned long long)whole, units[u]);
}

/* Parses a size with an optional k/M/G/T/P/E suffix (powers of 1024). */
bool qb_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case '\0': break;
    case 'b': case 'B': shift = 0; p++; break;
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    case 'p': case 'P': shift = 50; p++; break;
    case 'e': case 'E': shift = 60; p++; break;
    default: return false;
    }
    if (*p)
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}
