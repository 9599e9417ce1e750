/*
 * Encrypted qcow2 images: the cryptographic primitives (qcow2_crypto.c,
 * the only file that talks to BearSSL), the LUKS1 header and its key
 * slots (luks.c), and the layer that reads and writes encrypted clusters
 * (qcow2_encrypt.c).
 *
 * Two methods exist (header field crypt_method):
 *   1  legacy AES: AES-128-CBC, the key is the passphrase's first 16 bytes
 *      (zero padded), the IV is the guest sector number (plain64);
 *   2  LUKS: a LUKS1 header in clusters of the image (the crypto header
 *      extension says where) holds the cipher and the master key in up to
 *      eight key slots; the IV is the host sector number (the offset in
 *      the file divided by 512).
 * Data is encrypted in 512-byte sectors either way.
 */
#ifndef QB_QCOW2_CRYPTO_H
#define QB_QCOW2_CRYPTO_H

#include "qb_types.h"
#include "qb_backend.h"

#define QB_CRYPTO_SECTOR 512u
#define QB_CRYPTO_MAX_KEY 64u          /* AES-256-XTS: two 32-byte keys */
#define QB_CRYPTO_MAX_HASH 64u         /* SHA-512 */

/* Wipes n bytes in a way the compiler cannot drop as a dead store. */
void qb_wipe(void *p, size_t n);

/* Progress of a key derivation, `done` out of `total` iterations. */
typedef struct qb_kdf_progress {
    void (*fn)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
    uint64_t base;      /* added to done: work already finished before this call */
    uint64_t total;     /* of the whole job this call is part of */
} qb_kdf_progress;

/* --- hashes --- */
typedef struct qb_hash qb_hash;     /* opaque: one of BearSSL's hash classes */
/* "sha1", "sha224", "sha256", "sha384", "sha512"; NULL when unknown. */
const qb_hash *qb_hash_by_name(const char *name);
size_t qb_hash_size(const qb_hash *h);
/* out = H(a || b) (out holds qb_hash_size bytes). */
void qb_hash2(const qb_hash *h, const void *a, size_t alen, const void *b, size_t blen,
              uint8_t *out);
/* PBKDF2 (RFC 8018) with HMAC over h. Calls progress every few thousand
 * iterations when given. Every intermediate value is wiped. */
void qb_pbkdf2(const qb_hash *h, const uint8_t *pw, size_t pwlen, const uint8_t *salt,
               size_t saltlen, uint32_t iterations, uint8_t *out, size_t outlen,
               const qb_kdf_progress *progress);

/* --- AES sector ciphers --- */
typedef enum qb_cipher_mode { QB_MODE_CBC, QB_MODE_XTS } qb_cipher_mode;
typedef enum qb_ivgen { QB_IV_PLAIN, QB_IV_PLAIN64, QB_IV_ESSIV } qb_ivgen;
typedef struct qb_cipher qb_cipher; /* opaque, holds the expanded keys */
/* key_len: 16, 24 or 32 (CBC), twice that (XTS). essiv_hash: the hash of
 * the key that keys the ESSIV cipher (its size must be an AES key size).
 * Returns NULL when the allocator fails. */
qb_cipher *qb_cipher_new(const qb_alloc *a, qb_cipher_mode mode, qb_ivgen ivgen,
                         const qb_hash *essiv_hash, const uint8_t *key, size_t key_len);
/* Wipes the keys and frees. NULL is allowed. */
void qb_cipher_free(const qb_alloc *a, qb_cipher *c);
/* len bytes (a multiple of 512) of consecutive sectors from `sector`, in place. */
void qb_cipher_decrypt(const qb_cipher *c, uint64_t sector, uint8_t *buf, size_t len);
void qb_cipher_encrypt(const qb_cipher *c, uint64_t sector, uint8_t *buf, size_t len);
/* Which AES code runs: "aes-ni" or "constant-time (ct64)". */
const char *qb_cipher_impl(void);

/* --- LUKS1 (luks.c) --- */
typedef struct qb_luks_info {
    char cipher_name[32];
    char cipher_mode[32];
    char hash_spec[32];
    uint32_t key_bytes;
    uint32_t slot_iterations;   /* of the slot that opened it */
    int slot;                   /* that slot's index */
} qb_luks_info;

/* Reads the LUKS1 header at [offset, offset+length) of `file`, tries the
 * passphrase on every active key slot and returns the data cipher. Errors:
 * QB_ECRYPT for a passphrase no slot accepts, QB_EUNSUPP for a cipher or
 * hash not supported, QB_ECORRUPT for a malformed header (named field and
 * offset). `what` names the file in messages. */
int qb_luks_open(const qb_alloc *a, qb_backend *file, const char *what, uint64_t offset,
                 uint64_t length, const uint8_t *pass, size_t pass_len,
                 const qb_kdf_progress *progress, qb_cipher **out, qb_luks_info *info,
                 qb_err *err);

/* --- creation parameters (qcow2_encrypt.c) --- */
enum { QB_ENCRYPT_NONE = 0, QB_ENCRYPT_AES = 1, QB_ENCRYPT_LUKS = 2 };

typedef struct qb_encrypt_params {
    int format;                 /* QB_ENCRYPT_*; also the header's crypt_method */
    char cipher_alg[16];        /* "aes-128", "aes-192", "aes-256" (default) */
    char cipher_mode[8];        /* "xts" (default) or "cbc" */
    char ivgen_alg[8];          /* "plain64" (default), "plain" or "essiv" */
    char ivgen_hash_alg[8];     /* essiv: "sha256" (default) */
    char hash_alg[8];           /* PBKDF2 and anti-forensic hash: "sha256" (default) */
    uint32_t iter_time_ms;      /* 0: fixed iteration counts (QB_LUKS_DEFAULT_ITERS) */
    uint32_t iterations;        /* set by qb_luks_create: the key slot's count */
} qb_encrypt_params;

/* Key slot iterations of a new image without encrypt.iter-time, whatever
 * the hash (the master key digest gets an eighth). qemu-img picks about 6
 * million on the development host (its 2 s of PBKDF2, on SHA instructions);
 * BearSSL's portable SHA-256 computes about 1.5 million HMACs a second
 * there, so a 64-byte XTS key (two PBKDF2 blocks) opens in about 3 s, in
 * firmware as well, where nothing faster is at hand. */
#define QB_LUKS_DEFAULT_ITERS 2000000u

/* Random bytes for new keys; returns 0, or nonzero when none are to be had. */
typedef int (*qb_rng_fn)(void *ctx, void *buf, size_t len);
/* Wall clock for encrypt.iter-time (seconds and nanoseconds). */
typedef void (*qb_clock_fn)(void *ctx, uint64_t *sec, uint32_t *nsec);

void qb_encrypt_params_init(qb_encrypt_params *p);
/* One `-o` option: name without or with the "encrypt." prefix as qemu-img
 * takes it (format, cipher-alg, cipher-mode, ivgen-alg, ivgen-hash-alg,
 * hash-alg, iter-time; key-secret is accepted and ignored: the passphrase
 * comes from --passphrase-file). Returns 1 when `name` is not an
 * encryption option, 0 when taken, <0 for a bad value (err set). */
int qb_encrypt_parse_option(qb_encrypt_params *p, const char *name, const char *value,
                            qb_err *err);
/* Checks the combination (cipher, mode, ivgen, hashes) is one we can
 * write. */
int qb_encrypt_params_check(const qb_encrypt_params *p, qb_err *err);

/*
 * A new image's LUKS1 header region, built in memory: the header, slot 0
 * holding a random master key under the passphrase, slots 1-7 disabled,
 * laid out as qemu-img lays it out (key material from 4 KiB, 4 KiB
 * aligned). The creator allocates whole clusters for *len bytes at some
 * offset, writes the region there, records {offset, *len} in the crypto
 * header extension (0x0537be77) and sets crypt_method 2.
 * rng is required; clock only for iter_time_ms. *region is allocated with
 * `a` (the caller frees it: it holds no secret in clear).
 */
int qb_luks_create(const qb_alloc *a, qb_encrypt_params *p, const uint8_t *pass,
                   size_t pass_len, qb_rng_fn rng, void *rng_ctx, qb_clock_fn clock,
                   void *clock_ctx, uint8_t **region, size_t *len, qb_err *err);

/*
 * Makes the qcow2 image qb_qcow2_create has just written into `file` an
 * encrypted one, as p says (format NONE: nothing to do). AES sets
 * crypt_method 1 (the key is the passphrase itself). LUKS builds a header
 * (qb_luks_create), stores it in the first free clusters and records it in
 * the crypto header extension. The image must be new: no data, no
 * snapshots, no preallocation. pass is the passphrase (NULL: refused);
 * rng is required for LUKS, clock only for p->iter_time_ms.
 */
int qcow2_encrypt_new_image(const qb_alloc *a, qb_backend *file, const char *filename,
                            qb_encrypt_params *p, const uint8_t *pass, size_t pass_len,
                            qb_rng_fn rng, void *rng_ctx, qb_clock_fn clock, void *clock_ctx,
                            qb_err *err);

#endif
