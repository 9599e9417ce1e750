/*
 * Read-only files served by name from memory, through a qb_opener: the
 * backing files of the workloads (loaded from the files qemu-img made).
 */
#ifndef CRASH_MEM_FILES_H
#define CRASH_MEM_FILES_H

#include <stddef.h>
#include <stdint.h>
#include "qb_backend.h"

#define MEM_FILES_MAX 4

typedef struct mem_file {
    char name[64];      /* matched against the last component of the path */
    uint8_t *data;
    size_t size;
} mem_file;

typedef struct mem_files {
    mem_file f[MEM_FILES_MAX];
    unsigned n;
    unsigned open_now;   /* backends handed out and not yet closed */
} mem_files;

/* Adds `name` with a copy of the file at `path`; false if unreadable. */
bool mem_files_load(mem_files *m, const char *name, const char *path);
void mem_files_free(mem_files *m);
qb_opener mem_files_opener(mem_files *m);

/* Reads a whole file into malloc'd memory; NULL on error. */
uint8_t *read_whole_file(const char *path, size_t *size);
bool write_whole_file(const char *path, const void *data, size_t size);
/* The same, leaving runs of zeros as holes (qemu-img check reads metadata,
 * and the crashed images are mostly zeros). */
bool write_sparse_file(const char *path, const void *data, size_t size);

#endif
