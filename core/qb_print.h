/* Output helpers shared by the commands. */
#ifndef QB_PRINT_H
#define QB_PRINT_H

#include "qb_cmd.h"

void qb_vprintf(const qb_out *o, const char *fmt, va_list ap);
void qb_puts(const qb_out *o, const char *s);
/* Writes s as a JSON string literal, quotes included. */
void qb_json_string(const qb_out *o, const char *s);
/* "64 MiB", "1.5 GiB": as qemu-img prints sizes. */
void qb_format_size(char *buf, size_t cap, uint64_t bytes);
bool qb_parse_size(const char *s, uint64_t *out);

#endif
