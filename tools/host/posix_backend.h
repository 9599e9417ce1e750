/* The host's file backend and opener. */
#ifndef QB_POSIX_BACKEND_H
#define QB_POSIX_BACKEND_H

#include "qb_backend.h"
#include "qb_path.h"

int posix_backend_open(const char *path, int flags, qb_backend **out, qb_err *err);
extern const qb_opener posix_opener;
/* An output file written by a background thread (write_behind.c). */
int write_behind_create(const char *path, qb_backend **out, qb_err *err);

#endif
