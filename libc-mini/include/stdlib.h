/* Only what zstd, BearSSL and libdeflate reference. In firmware, malloc
 * and friends are provided by the EFI front end over the boot-services
 * pool. */
#ifndef QB_LIBC_MINI_STDLIB_H
#define QB_LIBC_MINI_STDLIB_H

#include <stddef.h>

void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void free(void *ptr);
void abort(void) __attribute__((noreturn));

#endif
