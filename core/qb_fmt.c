/* A small snprintf for the freestanding engine (see qb_fmt.h). */
#include "qb_fmt.h"

typedef struct fmt_buf {
    char *buf;
    size_t size;
    size_t len;     /* length that would have been written */
} fmt_buf;

static void put_char(fmt_buf *b, char c)
{
    if (b->len + 1 < b->size)
        b->buf[b->len] = c;
    b->len++;
}

static void put_padded(fmt_buf *b, const char *s, size_t n, int width, bool left, char pad)
{
    size_t w = width > 0 ? (size_t)width : 0;
    if (!left)
        for (size_t i = n; i < w; i++)
            put_char(b, pad);
    for (size_t i = 0; i < n; i++)
        put_char(b, s[i]);
    if (left)
        for (size_t i = n; i < w; i++)
            put_char(b, ' ');
}

static size_t utoa(char *out, uint64_t v, unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

int qb_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    fmt_buf b = { buf, size, 0 };
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            put_char(&b, *p);
            continue;
        }
        p++;
        bool left = false, alt = false;
        char pad = ' ';
        for (;; p++) {
            if (*p == '-')
                left = true;
            else if (*p == '#')
                alt = true;
            else if (*p == '0')
                pad = '0';
            else
                break;
        }
        int width = 0;
        if (*p == '*') {
            width = va_arg(ap, int);
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                width = width * 10 + (*p++ - '0');
        }
        int precision = -1;
        if (*p == '.') {
            p++;
            precision = 0;
            if (*p == '*') {
                precision = va_arg(ap, int);
                p++;
            } else {
                while (*p >= '0' && *p <= '9')
                    precision = precision * 10 + (*p++ - '0');
            }
        }
        int lng = 0;    /* 0 int, 1 long, 2 long long, 3 size_t */
        while (*p == 'l' || *p == 'z') {
            lng = *p == 'z' ? 3 : lng + 1;
            p++;
        }
        char num[24];
        size_t n;
        switch (*p) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t sl = 0;
            while (s[sl] && (precision < 0 || sl < (size_t)precision))
                sl++;
            put_padded(&b, s, sl, width, left, ' ');
            break;
        }
        case 'c':
            num[0] = (char)va_arg(ap, int);
            put_padded(&b, num, 1, width, left, ' ');
            break;
        case 'd':
        case 'i': {
            int64_t v;
            if (lng == 0)
                v = va_arg(ap, int);
            else if (lng == 1)
                v = va_arg(ap, long);
            else if (lng == 3)
                v = (int64_t)va_arg(ap, size_t);
            else
                v = va_arg(ap, long long);
            uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
            n = 0;
            if (v < 0)
                num[n++] = '-';
            n += utoa(num + n, u, 10, false);
            if (v < 0 && pad == '0' && !left) {
                put_char(&b, '-');
                put_padded(&b, num + 1, n - 1, width - 1, false, '0');
            } else {
                put_padded(&b, num, n, width, left, pad);
            }
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v;
            if (lng == 0)
                v = va_arg(ap, unsigned);
            else if (lng == 1)
                v = va_arg(ap, unsigned long);
            else if (lng == 3)
                v = va_arg(ap, size_t);
            else
                v = va_arg(ap, unsigned long long);
            n = 0;
            if (alt && v && *p != 'u') {     /* "%#x": 0x prefix, none for zero */
                num[n++] = '0';
                num[n++] = *p == 'X' ? 'X' : 'x';
            }
            n += utoa(num + n, v, *p == 'u' ? 10 : 16, *p == 'X');
            put_padded(&b, num, n, width, left, pad);
            break;
        }
        case '%':
            put_char(&b, '%');
            break;
        case '\0':
            p--;
            break;
        default:
            put_char(&b, '%');
            put_char(&b, *p);
            break;
        }
    }
    if (size)
        buf[b.len < size ? b.len : size - 1] = '\0';
    return (int)b.len;
}

int qb_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = qb_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
