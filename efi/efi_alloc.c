/*
 * Memory from the boot-services pool: the engine's qb_alloc, and the
 * malloc/calloc/free/abort that zstd, BearSSL and libdeflate call in firmware
 * (declared by libc-mini's stdlib.h).
 *
 * The pool only promises 8-byte alignment; blocks here are 16-byte aligned
 * like malloc's on x86_64, with the pool's own pointer stored just below.
 */
#include <stdlib.h>
#include <string.h>
#include "qb_efi.h"

#define POOL_ALIGN 16

static void *pool_alloc(size_t size)
{
    void *raw;
    uintptr_t p;

    if (size > (size_t)-1 - 2 * POOL_ALIGN)
        return NULL;
    if (BS->AllocatePool(EfiLoaderData, size + 2 * POOL_ALIGN, &raw) != EFI_SUCCESS)
        return NULL;
    p = ((uintptr_t)raw + POOL_ALIGN + sizeof(void *)) & ~(uintptr_t)(POOL_ALIGN - 1);
    ((void **)p)[-1] = raw;
    return (void *)p;
}

static void pool_free(void *ptr)
{
    if (ptr)
        BS->FreePool(((void **)ptr)[-1]);
}

static void *efi_alloc(void *ctx, size_t size)
{
    return pool_alloc(size);
}

static void efi_free(void *ctx, void *ptr)
{
    pool_free(ptr);
}

const qb_alloc qb_efi_alloc = { NULL, efi_alloc, efi_free };

void *malloc(size_t size)
{
    return pool_alloc(size);
}

void *calloc(size_t n, size_t size)
{
    void *p;

    if (size && n > (size_t)-1 / size)
        return NULL;
    p = pool_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void free(void *ptr)
{
    pool_free(ptr);
}

/* A library found its own state broken. Say so and leave through
 * BS->Exit, which returns to the shell with an error status; if even that
 * fails, stop here rather than run on. */
void abort(void)
{
    static const char msg[] = QB_EFI_PROGRAM ": internal error (abort), stopping\n";

    qb_efi_stderr.write(qb_efi_stderr.ctx, msg, sizeof msg - 1);
    BS->Exit(qb_efi_image, EFI_ABORTED, 0, NULL);
    for (;;)
        __asm__ volatile("hlt");
}
