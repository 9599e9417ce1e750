/*
 * The commands (info, map, check, convert, snapshot, ...), written once and
 * run by both front ends: the Linux CLI and the UEFI shell application.
 * A front end supplies an environment and an argv whose argv[0] is the
 * command name; the result is the process exit status.
 */
#ifndef QB_CMD_H
#define QB_CMD_H

#include "qb_types.h"
#include "qb_backend.h"

/* A text sink: standard output or standard error. UTF-8, '\n' line ends. */
typedef struct qb_out {
    void *ctx;
    void (*write)(void *ctx, const char *s, size_t n);
} qb_out;

typedef struct qb_env {
    qb_alloc alloc;
    qb_opener opener;
    qb_out out;
    qb_out err;
    /* Optional progress report for long work (done out of total). */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    const char *program;    /* "qcowboot" or "qcowboot.efi", for messages */
    size_t l2_cache_bytes;  /* L2 table cache per image; 0: the default */
    /* Optional wall clock (seconds and nanoseconds since 1970, UTC) for
     * snapshot dates; NULL leaves them 0. */
    void (*now)(void *ctx, uint64_t *sec, uint32_t *nsec);
    void *now_ctx;
    /* Encrypted images: the passphrase every image is opened with (the
     * global option --passphrase-file fills it), or NULL. */
    const uint8_t *passphrase;
    size_t passphrase_len;
    /* Optional: asks for the passphrase of `image` when it needs one and
     * none was given (the firmware's console prompt); attempt counts from
     * 1 and the question is asked at most QB_PASSPHRASE_TRIES times.
     * Returns 0 with *len bytes in buf, nonzero when the user gives up. */
    int (*ask_passphrase)(void *ctx, const char *image, unsigned attempt, uint8_t *buf,
                          size_t cap, size_t *len);
    void *ask_ctx;
    /* Optional: progress of a passphrase's key derivation (PBKDF2
     * iterations done out of total). */
    void (*kdf_progress)(void *ctx, uint64_t done, uint64_t total);
    void *kdf_progress_ctx;
    /* Optional source of random bytes for new encryption keys (create with
     * encrypt.format=luks); returns 0 on success. */
    int (*rng)(void *ctx, void *buf, size_t len);
    void *rng_ctx;
} qb_env;

#define QB_PASSPHRASE_TRIES 3
#define QB_PASSPHRASE_MAX 1024     /* bytes asked for or read from a file */

/*
 * Opening an image whose passphrase is asked for: the caller loops
 *     do r = qb_image_open(&img, &o, &err);
 *     while (qb_passphrase_retry(env, &prompt, name, r, &err, &o));
 * with a zeroed prompt. While the open fails with QB_ECRYPT, no passphrase
 * came with the options and env->ask_passphrase can ask (at most
 * QB_PASSPHRASE_TRIES times), it reports a wrong one on env->err, asks,
 * points o at the answer and returns true. Otherwise it wipes the answer
 * and returns false, leaving r and err to the caller.
 */
struct qb_open_opts;
typedef struct qb_passphrase_prompt {
    uint8_t buf[QB_PASSPHRASE_MAX];
    unsigned asked;
} qb_passphrase_prompt;
bool qb_passphrase_retry(const qb_env *env, qb_passphrase_prompt *p, const char *image, int r,
                         const qb_err *err, struct qb_open_opts *o);

/* Runs one command. argv[0] is the command ("info", "map", ...); a missing
 * or unknown command prints the usage. Returns the exit status. */
int qb_cmd_main(const qb_env *env, int argc, char **argv);

/* printf-style output to a sink (the subset of qb_fmt.h). */
void qb_printf(const qb_out *o, const char *fmt, ...);

#endif
