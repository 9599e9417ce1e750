/* Shared by the command implementations: option parsing, opening images
 * with the environment's allocator and opener, error reporting. */
#ifndef QB_CMD_INTERNAL_H
#define QB_CMD_INTERNAL_H

#include "qb_cmd.h"
#include "qb_image.h"
#include "qb_print.h"

/* A re-entrant getopt: short options ("fl:" style) and long options
 * given as a NULL-terminated table. No global state. */
typedef struct qb_longopt {
    const char *name;
    bool has_arg;
    int val;
} qb_longopt;

typedef struct qb_getopt {
    int argc;
    char **argv;
    int index;          /* next argv element to look at */
    const char *next;   /* inside a cluster of short options */
    const char *arg;    /* the current option's argument */
    const qb_out *err;
    const char *cmd;
} qb_getopt;

void qb_getopt_init(qb_getopt *g, int argc, char **argv, const qb_out *err);
/* Returns the option character (or long option val), -1 at the first
 * operand or after "--", '?' on an error (already reported). Operands
 * start at g->index afterwards. */
int qb_getopt_next(qb_getopt *g, const char *shortopts, const qb_longopt *longopts);

/* The arguments of the commands that report on one image (info, map,
 * check): [--json | --output=json|human] [-f FMT] [--backing-chain] IMAGE. */
typedef struct qb_image_args {
    bool json;
    bool chain;             /* --backing-chain, where allowed */
    const char *format;
    const char *image;
} qb_image_args;
/* Parses them. Returns -1 when the command goes on, otherwise the exit
 * status to return (after --help, or a usage error reported with help). */
int qb_cmd_image_args(const qb_env *env, int argc, char **argv, bool allow_chain,
                      void (*help)(const qb_out *o), qb_image_args *a);

/* Opens an image for a command; reports the error on env->err. */
int qb_cmd_open(const qb_env *env, const char *filename, const char *format,
                const char *snapshot, bool no_backing, qb_image **out);
/* The same, opened for writing when `writable` is set. */
int qb_cmd_open_rw(const qb_env *env, const char *filename, const char *format,
                   const char *snapshot, bool no_backing, bool writable, qb_image **out);
void qb_cmd_error(const qb_env *env, const char *fmt, ...);

struct qcow2;
/* The snapshot table as qemu-img prints it (info, snapshot -l). */
void qb_snapshot_table(const qb_out *o, const struct qcow2 *q);

int qb_cmd_info(const qb_env *env, int argc, char **argv);
int qb_cmd_map(const qb_env *env, int argc, char **argv);
int qb_cmd_check(const qb_env *env, int argc, char **argv);
int qb_cmd_convert(const qb_env *env, int argc, char **argv);
int qb_cmd_snapshot(const qb_env *env, int argc, char **argv);
int qb_cmd_create(const qb_env *env, int argc, char **argv);
int qb_cmd_io(const qb_env *env, int argc, char **argv);
int qb_cmd_commit(const qb_env *env, int argc, char **argv);

#endif
