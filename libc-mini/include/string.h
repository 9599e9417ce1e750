/* The string functions the engine and the freestanding third-party code
 * (zlib, zstd, BearSSL, libdeflate) call. In firmware they come from
 * libc-mini's string.c; on the host from the C library. */
#ifndef QB_LIBC_MINI_STRING_H
#define QB_LIBC_MINI_STRING_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);

#endif
