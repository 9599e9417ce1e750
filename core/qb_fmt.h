/*
 * A small freestanding formatter: %s %c %d %i %u %x %X %% with the length
 * modifiers l, ll, z, the flags '-' and '0', a width and a precision
 * (for %s, the maximum number of bytes). Output is always NUL-terminated
 * when size > 0; the return value is the length that would have been
 * written, as with snprintf.
 */
#ifndef QB_FMT_H
#define QB_FMT_H

#include "qb_types.h"

int qb_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int qb_snprintf(char *buf, size_t size, const char *fmt, ...);

#endif
