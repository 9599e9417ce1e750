/*
 * qb_qcow2_create with the caller's allocator: laying out a new image
 * needs memory (the refcount table, the L2 table offsets of a
 * preallocated image), and qb_create.h's declaration has no way to pass
 * an allocator in.
 */
#ifndef QB_QCOW2_CREATE_H
#define QB_QCOW2_CREATE_H

#include "qb_create.h"

/* Checks the options alone (before a file is created for them). */
int qb_qcow2_create_check(const qb_create_opts *o, const char *filename, qb_err *err);
int qb_qcow2_create_alloc(const qb_alloc *a, qb_backend *file, const char *filename,
                          const qb_create_opts *o, qb_err *err);

#endif
