/*
 * Test driver for the encryption code of the engine, linked against the
 * sanitized core objects (tests/crypto/run.sh builds it):
 *
 *   crypto_tool pbkdf2 HASH PASSWORD SALT ITERATIONS LENGTH
 *       prints the derived key in hex, then "progress CALLS DONE/TOTAL"
 *   crypto_tool cipher enc|dec xts|cbc plain|plain64|essiv KEYHEX SECTOR
 *       encrypts or decrypts standard input (whole 512-byte sectors, the
 *       first one numbered SECTOR) to standard output
 *   crypto_tool open IMAGE PASSFILE
 *       opens IMAGE with the key derivation's progress reported, prints
 *       "progress CALLS DONE/TOTAL" (and "backwards" if done ever fell)
 *   crypto_tool impl
 *       prints which AES code runs
 *   crypto_tool encrypt-new IMAGE PASSFILE OPTIONS
 *       makes IMAGE, a qcow2 image just made by `qcowboot create`, an
 *       encrypted one (OPTIONS: encrypt.format=...,encrypt.cipher-alg=...)
 *       through the engine's hook for image creation
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/random.h>
#include <time.h>

#include "posix_backend.h"
#include "qb_image.h"
#include "qcow2_crypto.h"

static void *t_alloc(void *ctx, size_t n)
{
    return malloc(n);
}

static void t_free(void *ctx, void *p)
{
    free(p);
}

static const qb_alloc alloc = { NULL, t_alloc, t_free };

static int usage(void)
{
    fprintf(stderr, "usage: crypto_tool pbkdf2|cipher|encrypt-new ...\n");
    return 2;
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

typedef struct progress_log {
    unsigned calls;
    uint64_t done, total;
    int backwards;      /* done went down: a bug */
} progress_log;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_log *l = ctx;
    if (l->calls && done < l->done)
        l->backwards = 1;
    l->calls++;
    l->done = done;
    l->total = total;
}

static int cmd_pbkdf2(int argc, char **argv)
{
    if (argc != 7)
        return usage();
    const qb_hash *h = qb_hash_by_name(argv[2]);
    size_t len = strtoul(argv[6], NULL, 10);
    if (!h || len == 0 || len > 256)
        return usage();
    uint8_t out[256];
    progress_log log = { 0, 0, 0, 0 };
    uint32_t iters = (uint32_t)strtoul(argv[5], NULL, 10);
    qb_kdf_progress p = { on_progress, &log, 0, (uint64_t)iters * ((len + qb_hash_size(h) - 1) / qb_hash_size(h)) };
    qb_pbkdf2(h, (const uint8_t *)argv[3], strlen(argv[3]), (const uint8_t *)argv[4],
              strlen(argv[4]), iters, out, len, &p);
    print_hex(out, len);
    printf("progress %u %llu/%llu%s\n", log.calls, (unsigned long long)log.done,
           (unsigned long long)log.total, log.backwards ? " backwards" : "");
    return 0;
}

static int cmd_cipher(int argc, char **argv)
{
    if (argc != 7)
        return usage();
    bool enc = strcmp(argv[2], "enc") == 0;
    qb_cipher_mode mode = strcmp(argv[3], "xts") == 0 ? QB_MODE_XTS : QB_MODE_CBC;
    qb_ivgen iv = strcmp(argv[4], "plain") == 0     ? QB_IV_PLAIN
                  : strcmp(argv[4], "plain64") == 0 ? QB_IV_PLAIN64
                                                    : QB_IV_ESSIV;
    uint8_t key[64];
    size_t klen = strlen(argv[5]) / 2;
    if (klen > sizeof(key))
        return usage();
    for (size_t i = 0; i < klen; i++)
        sscanf(argv[5] + 2 * i, "%2hhx", &key[i]);
    qb_cipher *c = qb_cipher_new(&alloc, mode, iv, qb_hash_by_name("sha256"), key, klen);
    if (!c)
        return 1;
    uint64_t sector = strtoull(argv[6], NULL, 10);
    uint8_t buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        n &= ~(size_t)511;
        if (enc)
            qb_cipher_encrypt(c, sector, buf, n);
        else
            qb_cipher_decrypt(c, sector, buf, n);
        fwrite(buf, 1, n, stdout);
        sector += n / 512;
    }
    qb_cipher_free(&alloc, c);
    return 0;
}

static int cmd_open(int argc, char **argv)
{
    if (argc != 4)
        return usage();
    FILE *pf = fopen(argv[3], "rb");
    uint8_t pass[1024];
    size_t plen = pf ? fread(pass, 1, sizeof(pass), pf) : 0;
    if (pf)
        fclose(pf);
    progress_log log = { 0, 0, 0, 0 };
    qb_open_opts o;
    memset(&o, 0, sizeof(o));
    o.alloc = alloc;
    o.opener = &posix_opener;
    o.filename = argv[2];
    o.passphrase = pass;
    o.passphrase_len = plen;
    o.kdf_progress = on_progress;
    o.kdf_progress_ctx = &log;
    qb_image *img;
    qb_err err = { 0, "" };
    if (qb_image_open(&img, &o, &err)) {
        fprintf(stderr, "crypto_tool: %s\n", err.msg);
        return 1;
    }
    qb_image_close(img);
    printf("progress %u %llu/%llu%s\n", log.calls, (unsigned long long)log.done,
           (unsigned long long)log.total, log.backwards ? " backwards" : "");
    return 0;
}

static int host_rng(void *ctx, void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = getrandom((char *)buf + done, len - done, 0);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static void host_clock(void *ctx, uint64_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *sec = (uint64_t)ts.tv_sec;
    *nsec = (uint32_t)ts.tv_nsec;
}

static int cmd_encrypt_new(int argc, char **argv)
{
    if (argc != 5)
        return usage();
    qb_encrypt_params p;
    qb_encrypt_params_init(&p);
    qb_err err = { 0, "" };
    char *opts = strdup(argv[4]);
    for (char *item = strtok(opts, ","); item; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        if (!eq || qb_encrypt_parse_option(&p, (*eq = 0, item), eq + 1, &err) != 0) {
            fprintf(stderr, "crypto_tool: option %s: %s\n", item, err.msg);
            return 1;
        }
    }
    free(opts);
    FILE *pf = fopen(argv[3], "rb");
    uint8_t pass[1024];
    size_t plen = pf ? fread(pass, 1, sizeof(pass), pf) : 0;
    if (pf)
        fclose(pf);
    qb_backend *f;
    if (posix_backend_open(argv[2], O_RDWR, &f, &err)) {
        fprintf(stderr, "crypto_tool: %s\n", err.msg);
        return 1;
    }
    int r = qcow2_encrypt_new_image(&alloc, f, argv[2], &p, pass, plen, host_rng, NULL,
                                    host_clock, NULL, &err);
    f->vt->close(f);
    if (r) {
        fprintf(stderr, "crypto_tool: %s\n", err.msg);
        return 1;
    }
    if (p.format == QB_ENCRYPT_LUKS)
        printf("iterations %u\n", p.iterations);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "pbkdf2") == 0)
        return cmd_pbkdf2(argc, argv);
    if (strcmp(argv[1], "cipher") == 0)
        return cmd_cipher(argc, argv);
    if (strcmp(argv[1], "open") == 0)
        return cmd_open(argc, argv);
    if (strcmp(argv[1], "impl") == 0)
        return printf("%s\n", qb_cipher_impl()) < 0;
    if (strcmp(argv[1], "encrypt-new") == 0)
        return cmd_encrypt_new(argc, argv);
    return usage();
}
