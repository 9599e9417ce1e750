/*
 * UTF-8 <-> UCS-2 for the firmware's CHAR16 strings. Plain C with no
 * firmware headers, so the host tests can compile it too.
 */
#ifndef QB_EFI_UTF_H
#define QB_EFI_UTF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define QB_UTF_REPLACEMENT 0xfffdu   /* what a console shows for a bad byte */
#define QB_UTF_INVALID 0xffffffffu    /* what the decoder reports for one */

/* Incremental UTF-8 decoder, for text that arrives in pieces. Start from
 * a zeroed state. */
typedef struct qb_utf8_dec {
    uint32_t cp;        /* code point collected so far */
    uint32_t min;       /* smallest code point the sequence may encode */
    unsigned need;      /* continuation bytes still expected */
} qb_utf8_dec;

/* Feeds one byte. Returns the number of code points completed (0, 1 or 2)
 * and stores them in out[]: a malformed sequence yields QB_UTF_INVALID,
 * and the byte that broke it is decoded afresh. */
unsigned qb_utf8_feed(qb_utf8_dec *d, uint8_t byte, uint32_t out[2]);

/* Converts a NUL-terminated UCS-2/UTF-16 string to UTF-8 (surrogate pairs
 * are joined, lone surrogates become U+FFFD). Writes at most size bytes
 * including the NUL when size > 0; returns the length the whole result
 * needs, without the NUL. */
size_t qb_utf16_to_utf8(const uint16_t *s, char *out, size_t size);

/* Converts NUL-terminated UTF-8 to UCS-2 (the firmware's file names).
 * Returns the number of CHAR16 written without the NUL, or -1 when the
 * input is not valid UTF-8, needs characters outside the BMP, or does not
 * fit in `count` units including the NUL. */
long qb_utf8_to_ucs2(const char *s, uint16_t *out, size_t count);

#endif
