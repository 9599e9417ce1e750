/*
 * LUKS1 headers (the on-disk format of cryptsetup, which QEMU stores inside
 * qcow2 images): reading the header, unlocking a key slot with a
 * passphrase, and writing a new header for a new image.
 *
 * A key slot holds the master key split by the anti-forensic splitter into
 * `stripes` pieces, encrypted with a key PBKDF2 derives from the passphrase
 * and the slot's salt. Unlocking decrypts the pieces, merges them, and
 * checks the candidate against the header's master key digest (PBKDF2 of
 * the key with its own salt). Every header field is untrusted: offsets,
 * sizes and iteration counts are checked before anything is read or
 * computed with them.
 */
#include <string.h>
#include "qcow2_crypto.h"
#include "qb_endian.h"
#include "qb_fmt.h"

#define LUKS_PHDR_SIZE 592
#define LUKS_NUM_SLOTS 8
#define LUKS_SLOT_ENABLED 0x00ac71f3u
#define LUKS_SLOT_DISABLED 0x0000deadu
#define LUKS_DIGEST_SIZE 20
#define LUKS_SALT_SIZE 32
#define LUKS_STRIPES 4000
#define LUKS_ALIGN 4096u
/* Larger counts than this are taken for damage: a slot at the limit takes
 * about a minute to try on a fast host. */
#define LUKS_MAX_ITERATIONS 100000000u
#define LUKS_MIN_ITERATIONS 1000u

/* Field offsets in the header and in a key slot. */
enum {
    F_MAGIC = 0, F_VERSION = 6, F_CIPHER_NAME = 8, F_CIPHER_MODE = 40, F_HASH_SPEC = 72,
    F_PAYLOAD = 104, F_KEY_BYTES = 108, F_MK_DIGEST = 112, F_MK_SALT = 132, F_MK_ITER = 164,
    F_UUID = 168, F_SLOTS = 208, SLOT_SIZE = 48,
    S_ACTIVE = 0, S_ITER = 4, S_SALT = 8, S_OFFSET = 40, S_STRIPES = 44,
};

static const uint8_t luks_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

/* What the cipher fields name. */
typedef struct luks_spec {
    qb_cipher_mode mode;
    qb_ivgen ivgen;
    const qb_hash *essiv_hash;
    const qb_hash *hash;        /* PBKDF2 and the splitter */
    size_t key_bytes;
} luks_spec;

typedef struct luks_slot {
    uint32_t iterations;
    const uint8_t *salt;
    uint64_t material_offset;   /* bytes from the header's start */
    uint32_t stripes;
} luks_slot;

static size_t strnlen_32(const char *s)
{
    size_t n = 0;
    while (n < 32 && s[n])
        n++;
    return n;
}

/* A NUL-terminated string field of 32 bytes. */
static int str_field(const uint8_t *h, unsigned off, char out[32], const char *what,
                     const char *name, uint64_t base, qb_err *err)
{
    memcpy(out, h + off, 32);
    if (strnlen_32(out) == 32)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS header field %s (file offset %#llx) is not terminated",
                          what, name, (unsigned long long)(base + off));
    return QB_OK;
}

static bool valid_key_size(qb_cipher_mode mode, size_t n)
{
    if (mode == QB_MODE_XTS)
        n /= 2;
    return n == 16 || n == 24 || n == 32;
}

/* Cipher and mode strings as cryptsetup and QEMU write them: "aes" with
 * "xts-plain64", "xts-plain", "cbc-plain64", "cbc-plain" or
 * "cbc-essiv:HASH". */
static int parse_spec(const char *cipher, const char *mode, const char *hash, uint32_t key_bytes,
                      luks_spec *s, const char *what, qb_err *err)
{
    if (strcmp(cipher, "aes") != 0)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: LUKS cipher '%s' is not supported (only aes)", what, cipher);
    if (strncmp(mode, "xts-", 4) == 0)
        s->mode = QB_MODE_XTS;
    else if (strncmp(mode, "cbc-", 4) == 0)
        s->mode = QB_MODE_CBC;
    else
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: LUKS cipher mode '%s' is not supported (xts or cbc with plain, "
                          "plain64 or essiv)",
                          what, mode);
    const char *iv = mode + 4;
    s->essiv_hash = NULL;
    if (strcmp(iv, "plain64") == 0) {
        s->ivgen = QB_IV_PLAIN64;
    } else if (strcmp(iv, "plain") == 0) {
        s->ivgen = QB_IV_PLAIN;
    } else if (strncmp(iv, "essiv:", 6) == 0 && s->mode == QB_MODE_CBC) {
        s->ivgen = QB_IV_ESSIV;
        s->essiv_hash = qb_hash_by_name(iv + 6);
        if (!s->essiv_hash || !valid_key_size(QB_MODE_CBC, qb_hash_size(s->essiv_hash)))
            return qb_err_set(err, QB_EUNSUPP,
                              "%s: LUKS ESSIV hash '%s' is not supported (sha256)", what,
                              iv + 6);
    } else {
        return qb_err_set(err, QB_EUNSUPP, "%s: LUKS IV generator in '%s' is not supported",
                          what, mode);
    }
    s->hash = qb_hash_by_name(hash);
    if (!s->hash)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: LUKS hash '%s' is not supported (sha1, sha224, sha256, sha384, "
                          "sha512)",
                          what, hash);
    if (!valid_key_size(s->mode, key_bytes))
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: LUKS key size %u bytes is not supported for aes-%s", what,
                          key_bytes, mode);
    s->key_bytes = key_bytes;
    return QB_OK;
}

static uint64_t material_bytes(size_t key_bytes, uint32_t stripes)
{
    uint64_t n = (uint64_t)key_bytes * stripes;
    return (n + QB_CRYPTO_SECTOR - 1) & ~(uint64_t)(QB_CRYPTO_SECTOR - 1);
}

/* One key slot's fields; *active set for enabled slots. */
static int read_slot(const uint8_t *h, unsigned i, const luks_spec *s, uint64_t base,
                     uint64_t length, luks_slot *ks, bool *active, const char *what, qb_err *err)
{
    const uint8_t *p = h + F_SLOTS + i * SLOT_SIZE;
    uint64_t at = base + F_SLOTS + i * SLOT_SIZE;
    uint32_t state = qb_be32(p + S_ACTIVE);
    *active = state == LUKS_SLOT_ENABLED;
    if (state != LUKS_SLOT_ENABLED && state != LUKS_SLOT_DISABLED)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS key slot %u: field active (file offset %#llx) is %#x, "
                          "neither enabled nor disabled",
                          what, i, (unsigned long long)(at + S_ACTIVE), state);
    if (!*active)
        return QB_OK;
    ks->iterations = qb_be32(p + S_ITER);
    ks->salt = p + S_SALT;
    ks->material_offset = (uint64_t)qb_be32(p + S_OFFSET) * QB_CRYPTO_SECTOR;
    ks->stripes = qb_be32(p + S_STRIPES);
    if (ks->iterations == 0 || ks->iterations > LUKS_MAX_ITERATIONS)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS key slot %u: field iterations (file offset %#llx) is %u; "
                          "must be 1 to %u",
                          what, i, (unsigned long long)(at + S_ITER), ks->iterations,
                          LUKS_MAX_ITERATIONS);
    if (ks->stripes == 0)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS key slot %u: field stripes (file offset %#llx) is 0", what,
                          i, (unsigned long long)(at + S_STRIPES));
    uint64_t bytes = material_bytes(s->key_bytes, ks->stripes);
    if (ks->material_offset < LUKS_PHDR_SIZE || ks->material_offset > length ||
        bytes > length - ks->material_offset)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS key slot %u: key material at sector %u (field "
                          "key-material-offset, file offset %#llx), %llu bytes, lies outside "
                          "the LUKS header area (%llu bytes)",
                          what, i, qb_be32(p + S_OFFSET), (unsigned long long)(at + S_OFFSET),
                          (unsigned long long)bytes, (unsigned long long)length);
    return QB_OK;
}

/* The splitter's diffusion: every hash-sized block of d is replaced by
 * H(be32(block index) || block), the last one cut to what is left. */
static void af_diffuse(const qb_hash *h, uint8_t *d, size_t len)
{
    size_t hl = qb_hash_size(h);
    uint8_t out[QB_CRYPTO_MAX_HASH];
    for (uint32_t j = 0; (size_t)j * hl < len; j++) {
        uint8_t be[4];
        size_t n = len - (size_t)j * hl < hl ? len - (size_t)j * hl : hl;
        qb_put_be32(be, j);
        qb_hash2(h, be, 4, d + (size_t)j * hl, n, out);
        memcpy(d + (size_t)j * hl, out, n);
    }
    qb_wipe(out, sizeof(out));
}

/* d ends as the merged key: d = diffuse(d ^ s_i) over all stripes but the
 * last, then d ^ s_last. */
static void af_merge(const qb_hash *h, const uint8_t *split, size_t len, uint32_t stripes,
                     uint8_t *d)
{
    memset(d, 0, len);
    for (uint32_t i = 0; i + 1 < stripes; i++) {
        for (size_t k = 0; k < len; k++)
            d[k] ^= split[(size_t)i * len + k];
        af_diffuse(h, d, len);
    }
    for (size_t k = 0; k < len; k++)
        d[k] ^= split[(size_t)(stripes - 1) * len + k];
}

/* HMAC computations of a PBKDF2 run: one set of iterations per hash-sized
 * block of output (a 64-byte XTS key from SHA-256 costs twice its count). */
static uint64_t kdf_work(const qb_hash *h, uint32_t iterations, size_t out_len)
{
    return (uint64_t)iterations * ((out_len + qb_hash_size(h) - 1) / qb_hash_size(h));
}

static bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* Tries one slot: 1 when the passphrase opens it (mk holds the master
 * key), 0 when not, <0 on an error. */
static int try_slot(const qb_alloc *a, qb_backend *file, uint64_t base, const uint8_t *h,
                    const luks_spec *s, const luks_slot *ks, const uint8_t *pass,
                    size_t pass_len, qb_kdf_progress *prog, uint8_t *mk, const char *what,
                    unsigned idx, qb_err *err)
{
    uint64_t bytes = material_bytes(s->key_bytes, ks->stripes);
    uint8_t *split = qb_malloc(a, (size_t)bytes);
    if (!split)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for LUKS key slot %u (%llu bytes)",
                          what, idx, (unsigned long long)bytes);
    int r = qb_backend_read(file, base + ks->material_offset, split, (size_t)bytes, err);
    if (r) {
        qb_free(a, split);
        return qb_err_prefix(err, "%s: reading LUKS key slot %u: ", what, idx);
    }
    uint8_t slot_key[QB_CRYPTO_MAX_KEY], digest[LUKS_DIGEST_SIZE];
    qb_pbkdf2(s->hash, pass, pass_len, ks->salt, LUKS_SALT_SIZE, ks->iterations, slot_key,
              s->key_bytes, prog);
    prog->base += kdf_work(s->hash, ks->iterations, s->key_bytes);
    qb_cipher *c = qb_cipher_new(a, s->mode, s->ivgen, s->essiv_hash, slot_key, s->key_bytes);
    qb_wipe(slot_key, sizeof(slot_key));
    if (!c) {
        qb_wipe(split, (size_t)bytes);
        qb_free(a, split);
        return qb_err_set(err, QB_ENOMEM, "%s: no memory for a cipher", what);
    }
    qb_cipher_decrypt(c, 0, split, (size_t)bytes);
    qb_cipher_free(a, c);
    af_merge(s->hash, split, s->key_bytes, ks->stripes, mk);
    qb_wipe(split, (size_t)bytes);
    qb_free(a, split);
    qb_pbkdf2(s->hash, mk, s->key_bytes, h + F_MK_SALT, LUKS_SALT_SIZE, qb_be32(h + F_MK_ITER),
              digest, sizeof(digest), prog);
    prog->base += kdf_work(s->hash, qb_be32(h + F_MK_ITER), LUKS_DIGEST_SIZE);
    int ok = equal_ct(digest, h + F_MK_DIGEST, LUKS_DIGEST_SIZE);
    qb_wipe(digest, sizeof(digest));
    if (!ok)
        qb_wipe(mk, QB_CRYPTO_MAX_KEY);
    return ok;
}

/* The header's own fields, checked; the cipher fields parsed into s. */
static int read_header(const uint8_t *h, uint64_t base, luks_spec *s, qb_luks_info *info,
                       const char *what, qb_err *err)
{
    if (memcmp(h + F_MAGIC, luks_magic, sizeof(luks_magic)) != 0)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: no LUKS header at file offset %#llx (bad magic)", what,
                          (unsigned long long)base);
    if (qb_be16(h + F_VERSION) != 1)
        return qb_err_set(err, QB_EUNSUPP,
                          "%s: LUKS header version (file offset %#llx) is %u; only LUKS1 is "
                          "supported",
                          what, (unsigned long long)(base + F_VERSION), qb_be16(h + F_VERSION));
    int r = str_field(h, F_CIPHER_NAME, info->cipher_name, what, "cipher-name", base, err);
    if (!r)
        r = str_field(h, F_CIPHER_MODE, info->cipher_mode, what, "cipher-mode", base, err);
    if (!r)
        r = str_field(h, F_HASH_SPEC, info->hash_spec, what, "hash-spec", base, err);
    if (r)
        return r;
    info->key_bytes = qb_be32(h + F_KEY_BYTES);
    r = parse_spec(info->cipher_name, info->cipher_mode, info->hash_spec, info->key_bytes, s,
                   what, err);
    if (r)
        return r;
    uint32_t mk_iter = qb_be32(h + F_MK_ITER);
    if (mk_iter == 0 || mk_iter > LUKS_MAX_ITERATIONS)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS header field mk-digest-iter (file offset %#llx) is %u; must "
                          "be 1 to %u",
                          what, (unsigned long long)(base + F_MK_ITER), mk_iter,
                          LUKS_MAX_ITERATIONS);
    return QB_OK;
}

int qb_luks_open(const qb_alloc *a, qb_backend *file, const char *what, uint64_t offset,
                 uint64_t length, const uint8_t *pass, size_t pass_len,
                 const qb_kdf_progress *progress, qb_cipher **out, qb_luks_info *info,
                 qb_err *err)
{
    *out = NULL;
    memset(info, 0, sizeof(*info));
    info->slot = -1;
    if (length < LUKS_PHDR_SIZE)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS header area at offset %#llx is %llu bytes, smaller than a "
                          "LUKS header",
                          what, (unsigned long long)offset, (unsigned long long)length);
    uint8_t h[LUKS_PHDR_SIZE];
    int r = qb_backend_read(file, offset, h, sizeof(h), err);
    if (r)
        return qb_err_prefix(err, "%s: reading the LUKS header: ", what);
    luks_spec s;
    r = read_header(h, offset, &s, info, what, err);
    if (r)
        return r;
    luks_slot slots[LUKS_NUM_SLOTS];
    bool active[LUKS_NUM_SLOTS];
    qb_kdf_progress prog = { NULL, NULL, 0, 0 };
    if (progress)
        prog = *progress;
    prog.base = 0;
    prog.total = 0;
    unsigned nactive = 0;
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        r = read_slot(h, i, &s, offset, length, &slots[i], &active[i], what, err);
        if (r)
            return r;
        if (active[i]) {
            nactive++;
            prog.total += kdf_work(s.hash, slots[i].iterations, s.key_bytes) +
                          kdf_work(s.hash, qb_be32(h + F_MK_ITER), LUKS_DIGEST_SIZE);
        }
    }
    if (!nactive)
        return qb_err_set(err, QB_ECRYPT,
                          "%s: the LUKS header has no active key slot: no passphrase opens it",
                          what);
    uint8_t mk[QB_CRYPTO_MAX_KEY];
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        if (!active[i])
            continue;
        r = try_slot(a, file, offset, h, &s, &slots[i], pass, pass_len, &prog, mk, what, i,
                     err);
        if (r < 0)
            return r;
        if (r == 1) {
            *out = qb_cipher_new(a, s.mode, s.ivgen, s.essiv_hash, mk, s.key_bytes);
            qb_wipe(mk, sizeof(mk));
            if (!*out)
                return qb_err_set(err, QB_ENOMEM, "%s: no memory for a cipher", what);
            info->slot = (int)i;
            info->slot_iterations = slots[i].iterations;
            if (prog.fn)
                prog.fn(prog.ctx, prog.total, prog.total);
            return QB_OK;
        }
    }
    return qb_err_set(err, QB_ECRYPT,
                      "%s: wrong passphrase (none of the %u active LUKS key slots accepts it)",
                      what, nactive);
}

/* --- new headers --- */

/* Iterations after which deriving a key of key_len bytes takes about `ms`
 * milliseconds here (as QEMU's iter-time), measured on the caller's clock;
 * 0 when the clock does not move. */
static uint32_t measure_iterations(const qb_hash *h, size_t key_len, uint32_t ms,
                                   qb_clock_fn clock, void *ctx)
{
    static const uint8_t pw[8] = "measure", salt[LUKS_SALT_SIZE] = { 0 };
    uint8_t out[QB_CRYPTO_MAX_KEY];
    for (uint32_t n = 1u << 12; n <= (1u << 26); n <<= 1) {
        uint64_t s0, s1;
        uint32_t ns0, ns1;
        clock(ctx, &s0, &ns0);
        qb_pbkdf2(h, pw, sizeof(pw), salt, sizeof(salt), n, out, key_len, NULL);
        clock(ctx, &s1, &ns1);
        uint64_t t0 = s0 * 1000000000ull + ns0, t1 = s1 * 1000000000ull + ns1;
        if (t1 > t0 && t1 - t0 >= 100000000ull) {      /* 100 ms or more: enough */
            uint64_t it = (uint64_t)n * ms * 1000000ull / (t1 - t0);
            return it > LUKS_MAX_ITERATIONS ? LUKS_MAX_ITERATIONS : (uint32_t)it;
        }
    }
    return 0;
}

static void format_uuid(char out[40], const uint8_t r[16])
{
    uint8_t u[16];
    memcpy(u, r, 16);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);     /* version 4: random */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);     /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (unsigned i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    memset(out + o, 0, 40 - o);
}

/* The header fields from the parameters (checked by qb_encrypt_params_check). */
static int spec_of_params(const qb_encrypt_params *p, luks_spec *s, char mode[32], qb_err *err)
{
    unsigned bits = strcmp(p->cipher_alg, "aes-128") == 0   ? 128
                    : strcmp(p->cipher_alg, "aes-192") == 0 ? 192
                                                            : 256;
    bool xts = strcmp(p->cipher_mode, "xts") == 0;
    if (strcmp(p->ivgen_alg, "essiv") == 0)
        qb_snprintf(mode, 32, "%s-essiv:%s", p->cipher_mode, p->ivgen_hash_alg);
    else
        qb_snprintf(mode, 32, "%s-%s", p->cipher_mode, p->ivgen_alg);
    return parse_spec("aes", mode, p->hash_alg, bits / 8 * (xts ? 2 : 1), s, "new image", err);
}

int qb_luks_create(const qb_alloc *a, qb_encrypt_params *p, const uint8_t *pass,
                   size_t pass_len, qb_rng_fn rng, void *rng_ctx, qb_clock_fn clock,
                   void *clock_ctx, uint8_t **region, size_t *len, qb_err *err)
{
    *region = NULL;
    *len = 0;
    luks_spec s;
    char mode[32];
    int r = spec_of_params(p, &s, mode, err);
    if (r)
        return r;
    if (!rng)
        return qb_err_set(err, QB_EUNSUPP, "no random number source to make a new key here");
    uint32_t iters = 0;
    if (p->iter_time_ms && clock)
        iters = measure_iterations(s.hash, s.key_bytes, p->iter_time_ms, clock, clock_ctx);
    if (!iters)
        iters = QB_LUKS_DEFAULT_ITERS;
    if (iters < LUKS_MIN_ITERATIONS)
        iters = LUKS_MIN_ITERATIONS;
    uint32_t mk_iters = iters / 8 < LUKS_MIN_ITERATIONS ? LUKS_MIN_ITERATIONS : iters / 8;
    p->iterations = iters;

    /* Layout: header, then eight key material areas, 4 KiB aligned. */
    uint64_t slot_bytes = ((uint64_t)s.key_bytes * LUKS_STRIPES + LUKS_ALIGN - 1) & ~(uint64_t)(LUKS_ALIGN - 1);
    uint64_t total = LUKS_ALIGN + LUKS_NUM_SLOTS * slot_bytes;
    uint8_t *h = qb_zalloc(a, (size_t)total);
    if (!h)
        return qb_err_set(err, QB_ENOMEM, "no memory for a LUKS header (%llu bytes)",
                          (unsigned long long)total);
    uint8_t mk[QB_CRYPTO_MAX_KEY], slot_key[QB_CRYPTO_MAX_KEY], uuid[16];
    uint8_t *split = h + LUKS_ALIGN;    /* slot 0's area */
    size_t klen = s.key_bytes;
    if (rng(rng_ctx, mk, klen) || rng(rng_ctx, h + F_MK_SALT, LUKS_SALT_SIZE) ||
        rng(rng_ctx, h + F_SLOTS + S_SALT, LUKS_SALT_SIZE) || rng(rng_ctx, uuid, sizeof(uuid)) ||
        rng(rng_ctx, split, klen * (LUKS_STRIPES - 1))) {
        r = qb_err_set(err, QB_EIO, "the random number source failed");
        goto out;
    }
    memcpy(h + F_MAGIC, luks_magic, sizeof(luks_magic));
    h[F_VERSION + 1] = 1;                       /* version 1, big-endian */
    memcpy(h + F_CIPHER_NAME, "aes", 3);
    memcpy(h + F_CIPHER_MODE, mode, strlen(mode));
    memcpy(h + F_HASH_SPEC, p->hash_alg, strlen(p->hash_alg));
    qb_put_be32(h + F_PAYLOAD, (uint32_t)(total / QB_CRYPTO_SECTOR));
    qb_put_be32(h + F_KEY_BYTES, (uint32_t)klen);
    qb_put_be32(h + F_MK_ITER, mk_iters);
    format_uuid((char *)h + F_UUID, uuid);
    qb_pbkdf2(s.hash, mk, klen, h + F_MK_SALT, LUKS_SALT_SIZE, mk_iters, h + F_MK_DIGEST,
              LUKS_DIGEST_SIZE, NULL);
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        uint8_t *ks = h + F_SLOTS + i * SLOT_SIZE;
        qb_put_be32(ks + S_ACTIVE, i == 0 ? LUKS_SLOT_ENABLED : LUKS_SLOT_DISABLED);
        qb_put_be32(ks + S_ITER, i == 0 ? iters : 0);
        qb_put_be32(ks + S_OFFSET, (uint32_t)((LUKS_ALIGN + i * slot_bytes) / QB_CRYPTO_SECTOR));
        qb_put_be32(ks + S_STRIPES, LUKS_STRIPES);
    }
    /* Slot 0: the last stripe makes the merge come out as the master key. */
    uint8_t *last = split + klen * (LUKS_STRIPES - 1);
    af_merge(s.hash, split, klen, LUKS_STRIPES - 1, last);
    af_diffuse(s.hash, last, klen);
    for (size_t k = 0; k < klen; k++)
        last[k] ^= mk[k];
    qb_pbkdf2(s.hash, pass, pass_len, h + F_SLOTS + S_SALT, LUKS_SALT_SIZE, iters, slot_key,
              klen, NULL);
    qb_cipher *c = qb_cipher_new(a, s.mode, s.ivgen, s.essiv_hash, slot_key, klen);
    if (!c) {
        r = qb_err_set(err, QB_ENOMEM, "no memory for a cipher");
        goto out;
    }
    qb_cipher_encrypt(c, 0, split, (size_t)material_bytes(klen, LUKS_STRIPES));
    qb_cipher_free(a, c);
    *region = h;
    *len = (size_t)total;
    h = NULL;
out:
    qb_wipe(mk, sizeof(mk));
    qb_wipe(slot_key, sizeof(slot_key));
    if (h) {
        qb_wipe(h, (size_t)total);
        qb_free(a, h);
    }
    return r;
}
