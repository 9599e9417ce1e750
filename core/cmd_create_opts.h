/*
 * The `-o` option lists of `create` and `convert -O`, in qemu-img's syntax:
 * NAME=VALUE pairs separated by commas, a comma inside a value written as
 * two; several -o options add up. What is allowed depends on the output
 * format, which may be given after -o, so the list is checked against the
 * format once the command line is read.
 */
#ifndef QB_CMD_CREATE_OPTS_H
#define QB_CMD_CREATE_OPTS_H

#include "qb_cmd_internal.h"
#include "qb_create.h"
#include "qcow2_crypto.h"

#define QB_CREATE_MAX_LISTS 16

typedef struct qb_create_spec {
    qb_create_opts o;
    bool size_set;              /* size=... given (o.size holds it) */
    const char *compat;         /* the values as given, for the Formatting line */
    const char *prealloc;
    unsigned set;               /* which options were given (bit per option) */
    qb_encrypt_params encrypt;  /* encrypt.* options */
    const char *encrypt_given[8];   /* their values as given, for the Formatting line */
    char *lists[QB_CREATE_MAX_LISTS];   /* unescaped copies the pointers point into */
    size_t nlists;
} qb_create_spec;

void qb_create_spec_init(qb_create_spec *s);
void qb_create_spec_free(const qb_env *env, qb_create_spec *s);
/* Adds one -o list. Returns 0, or 1 after reporting the error. `help` is
 * set when the list is "help" or "?". */
int qb_create_spec_add(const qb_env *env, qb_create_spec *s, const char *list,
                       const char *image, bool *help);
/* Checks the options given against the format ("qcow2" or "raw"). Returns
 * 0, or 1 after reporting the error. */
int qb_create_spec_check(const qb_env *env, const qb_create_spec *s, const char *fmt,
                         const char *image);
/* The options of a format, for -o help. */
void qb_create_spec_help(const qb_out *o, const char *fmt);
/* qemu-img's "Formatting 'IMAGE', fmt=... size=..." line. */
void qb_create_spec_print(const qb_out *out, const qb_create_spec *s, const char *fmt,
                          const char *image, uint64_t size);

#endif
