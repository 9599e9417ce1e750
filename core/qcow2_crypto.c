/*
 * The cryptographic primitives of encrypted images, over BearSSL (the one
 * file of the engine that uses it): the SHA hashes, PBKDF2, and AES sector
 * ciphers in CBC and XTS modes with plain, plain64 and ESSIV IVs.
 *
 * AES runs on the AES-NI implementation when the CPU has the instructions
 * and on the constant-time bitsliced one (aes_ct64) otherwise. BearSSL
 * offers AES through CBC (and CTR) only, so:
 *   - a single block E(x) is a CBC encryption of x with a zero IV;
 *   - XTS encryption of one block, E(P ^ T) ^ T, is a one-block CBC
 *     encryption of P with T as the IV, then ^ T;
 *   - XTS decryption of a whole sector goes through one CBC decryption
 *     (which AES-NI runs four blocks at a time) of Y_j = C_j ^ T_j: CBC
 *     gives D(Y_j) ^ Y_{j-1}, and the chaining term is taken off again.
 */
#include <string.h>
#include "qcow2_crypto.h"
#include "qb_endian.h"
#include "bearssl_block.h"
#include "bearssl_hash.h"
#include "bearssl_hmac.h"

/* Little-endian helpers for IVs and tweaks (qb_endian.h is big-endian). */
static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

void qb_wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

/* --- hashes --- */

struct qb_hash {
    const char *name;
    const br_hash_class *cls;
};

static const qb_hash hashes[] = {
    { "sha1", &br_sha1_vtable },     { "sha224", &br_sha224_vtable },
    { "sha256", &br_sha256_vtable }, { "sha384", &br_sha384_vtable },
    { "sha512", &br_sha512_vtable },
};

const qb_hash *qb_hash_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++)
        if (strcmp(hashes[i].name, name) == 0)
            return &hashes[i];
    return NULL;
}

size_t qb_hash_size(const qb_hash *h)
{
    return (h->cls->desc >> BR_HASHDESC_OUT_OFF) & BR_HASHDESC_OUT_MASK;
}

void qb_hash2(const qb_hash *h, const void *a, size_t alen, const void *b, size_t blen,
              uint8_t *out)
{
    br_hash_compat_context ctx;
    h->cls->init(&ctx.vtable);
    h->cls->update(&ctx.vtable, a, alen);
    h->cls->update(&ctx.vtable, b, blen);
    h->cls->out(&ctx.vtable, out);
    qb_wipe(&ctx, sizeof(ctx));
}

#define KDF_PROGRESS_STEP 4096u     /* iterations between progress calls */

void qb_pbkdf2(const qb_hash *h, const uint8_t *pw, size_t pwlen, const uint8_t *salt,
               size_t saltlen, uint32_t iterations, uint8_t *out, size_t outlen,
               const qb_kdf_progress *progress)
{
    br_hmac_key_context kc;
    br_hmac_context hc;
    uint8_t u[QB_CRYPTO_MAX_HASH], t[QB_CRYPTO_MAX_HASH];
    size_t hlen = qb_hash_size(h);
    uint64_t blocks = (outlen + hlen - 1) / hlen, done = 0;
    br_hmac_key_init(&kc, h->cls, pw, pwlen);
    for (uint32_t block = 1; outlen; block++) {
        uint8_t be[4];
        qb_put_be32(be, block);
        br_hmac_init(&hc, &kc, 0);
        br_hmac_update(&hc, salt, saltlen);
        br_hmac_update(&hc, be, 4);
        br_hmac_out(&hc, u);
        memcpy(t, u, hlen);
        for (uint32_t i = 1; i < iterations; i++) {
            br_hmac_init(&hc, &kc, 0);
            br_hmac_update(&hc, u, hlen);
            br_hmac_out(&hc, u);
            for (size_t k = 0; k < hlen; k++)
                t[k] ^= u[k];
            if (progress && progress->fn && i % KDF_PROGRESS_STEP == 0)
                progress->fn(progress->ctx, progress->base + done + i, progress->total);
        }
        done += iterations;
        size_t n = outlen < hlen ? outlen : hlen;
        memcpy(out, t, n);
        out += n;
        outlen -= n;
    }
    if (progress && progress->fn)
        progress->fn(progress->ctx, progress->base + blocks * iterations, progress->total);
    qb_wipe(&kc, sizeof(kc));
    qb_wipe(&hc, sizeof(hc));
    qb_wipe(u, sizeof(u));
    qb_wipe(t, sizeof(t));
}

/* --- AES --- */

struct qb_cipher {
    qb_cipher_mode mode;
    qb_ivgen ivgen;
    br_aes_gen_cbcenc_keys enc;     /* data key */
    br_aes_gen_cbcdec_keys dec;
    br_aes_gen_cbcenc_keys aux;     /* XTS: tweak key; ESSIV: the IV key */
};

/* QB_CRYPTO_FORCE_CT64 (tests only) takes the fallback on CPUs with AES-NI. */
#ifdef QB_CRYPTO_FORCE_CT64
#define X86NI_ENC() NULL
#define X86NI_DEC() NULL
#else
#define X86NI_ENC() br_aes_x86ni_cbcenc_get_vtable()
#define X86NI_DEC() br_aes_x86ni_cbcdec_get_vtable()
#endif

static const br_block_cbcenc_class *aes_enc_class(void)
{
    const br_block_cbcenc_class *c = X86NI_ENC();
    return c ? c : &br_aes_ct64_cbcenc_vtable;
}

static const br_block_cbcdec_class *aes_dec_class(void)
{
    const br_block_cbcdec_class *c = X86NI_DEC();
    return c ? c : &br_aes_ct64_cbcdec_vtable;
}

const char *qb_cipher_impl(void)
{
    return X86NI_ENC() ? "aes-ni" : "constant-time (ct64)";
}

/* One block: out = E(in). */
static void encrypt_block(const br_aes_gen_cbcenc_keys *k, uint8_t b[16])
{
    uint8_t iv[16] = { 0 };
    k->vtable->run(&k->vtable, iv, b, 16);
}

qb_cipher *qb_cipher_new(const qb_alloc *a, qb_cipher_mode mode, qb_ivgen ivgen,
                         const qb_hash *essiv_hash, const uint8_t *key, size_t key_len)
{
    qb_cipher *c = qb_zalloc(a, sizeof(*c));
    if (!c)
        return NULL;
    c->mode = mode;
    c->ivgen = ivgen;
    size_t data_len = mode == QB_MODE_XTS ? key_len / 2 : key_len;
    const br_block_cbcenc_class *ec = aes_enc_class();
    const br_block_cbcdec_class *dc = aes_dec_class();
    ec->init(&c->enc.vtable, key, data_len);
    dc->init(&c->dec.vtable, key, data_len);
    if (mode == QB_MODE_XTS) {
        ec->init(&c->aux.vtable, key + data_len, data_len);
    } else if (ivgen == QB_IV_ESSIV) {
        uint8_t salt[QB_CRYPTO_MAX_HASH];
        br_hash_compat_context h;
        essiv_hash->cls->init(&h.vtable);
        essiv_hash->cls->update(&h.vtable, key, key_len);
        essiv_hash->cls->out(&h.vtable, salt);
        ec->init(&c->aux.vtable, salt, qb_hash_size(essiv_hash));
        qb_wipe(salt, sizeof(salt));
        qb_wipe(&h, sizeof(h));
    }
    return c;
}

void qb_cipher_free(const qb_alloc *a, qb_cipher *c)
{
    if (!c)
        return;
    qb_wipe(c, sizeof(*c));
    qb_free(a, c);
}

/* The IV (or XTS tweak before encryption) of one sector. */
static void sector_iv(const qb_cipher *c, uint64_t sector, uint8_t iv[16])
{
    memset(iv, 0, 16);
    if (c->ivgen == QB_IV_PLAIN)
        put_le64(iv, (uint32_t)sector);   /* plain: the low 32 bits */
    else
        put_le64(iv, sector);
    if (c->mode == QB_MODE_XTS || c->ivgen == QB_IV_ESSIV)
        encrypt_block(&c->aux, iv);
}

/* 64-bit lanes for the XORs (any byte order: XOR is bytewise). */
static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void st64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

#define SECTOR_BLOCKS (QB_CRYPTO_SECTOR / 16)

/* The XTS tweaks of the 32 blocks of a sector: T_0 = E2(iv), T_{j+1} =
 * T_j * alpha in GF(2^128), little-endian as IEEE 1619 says. */
static void xts_tweaks(const qb_cipher *c, uint64_t sector, uint8_t t[QB_CRYPTO_SECTOR])
{
    sector_iv(c, sector, t);
    uint64_t lo = le64(t), hi = le64(t + 8);
    for (unsigned j = 1; j < SECTOR_BLOCKS; j++) {
        uint64_t carry = hi >> 63;
        hi = (hi << 1) | (lo >> 63);
        lo = (lo << 1) ^ (0x87 & (0 - carry));
        put_le64(t + 16 * j, lo);
        put_le64(t + 16 * j + 8, hi);
    }
}

/* t and y: a sector each of scratch, owned by the caller (wiped once per
 * call rather than per sector). */
static void xts_decrypt_sector(const qb_cipher *c, uint64_t sector, uint8_t *buf, uint8_t *t,
                               uint8_t *y)
{
    uint8_t iv[16] = { 0 };
    xts_tweaks(c, sector, t);
    for (unsigned i = 0; i < QB_CRYPTO_SECTOR; i += 8)
        st64(y + i, ld64(buf + i) ^ ld64(t + i));
    c->dec.vtable->run(&c->dec.vtable, iv, y, QB_CRYPTO_SECTOR);
    /* y_j = D(C_j ^ T_j) ^ (C_{j-1} ^ T_{j-1}); backwards, so that buf
     * still holds C_{j-1}. */
    for (unsigned j = SECTOR_BLOCKS; j-- > 1;) {
        for (unsigned k = 16 * j; k < 16 * j + 16; k += 8)
            st64(buf + k, ld64(buf + k - 16) ^ ld64(t + k - 16) ^ ld64(y + k) ^ ld64(t + k));
    }
    for (unsigned k = 0; k < 16; k += 8)
        st64(buf + k, ld64(y + k) ^ ld64(t + k));
}

static void xts_encrypt_sector(const qb_cipher *c, uint64_t sector, uint8_t *buf, uint8_t *t)
{
    uint8_t iv[16];
    xts_tweaks(c, sector, t);
    for (unsigned j = 0; j < SECTOR_BLOCKS; j++) {
        memcpy(iv, t + 16 * j, 16);
        c->enc.vtable->run(&c->enc.vtable, iv, buf + 16 * j, 16);
        st64(buf + 16 * j, ld64(buf + 16 * j) ^ ld64(t + 16 * j));
        st64(buf + 16 * j + 8, ld64(buf + 16 * j + 8) ^ ld64(t + 16 * j + 8));
    }
}

void qb_cipher_decrypt(const qb_cipher *c, uint64_t sector, uint8_t *buf, size_t len)
{
    uint8_t t[QB_CRYPTO_SECTOR], y[QB_CRYPTO_SECTOR];
    for (; len >= QB_CRYPTO_SECTOR; len -= QB_CRYPTO_SECTOR, buf += QB_CRYPTO_SECTOR, sector++) {
        if (c->mode == QB_MODE_XTS) {
            xts_decrypt_sector(c, sector, buf, t, y);
        } else {
            uint8_t iv[16];
            sector_iv(c, sector, iv);
            c->dec.vtable->run(&c->dec.vtable, iv, buf, QB_CRYPTO_SECTOR);
        }
    }
    if (c->mode == QB_MODE_XTS) {
        qb_wipe(t, sizeof(t));
        qb_wipe(y, sizeof(y));
    }
}

void qb_cipher_encrypt(const qb_cipher *c, uint64_t sector, uint8_t *buf, size_t len)
{
    uint8_t t[QB_CRYPTO_SECTOR];
    for (; len >= QB_CRYPTO_SECTOR; len -= QB_CRYPTO_SECTOR, buf += QB_CRYPTO_SECTOR, sector++) {
        if (c->mode == QB_MODE_XTS) {
            xts_encrypt_sector(c, sector, buf, t);
        } else {
            uint8_t iv[16];
            sector_iv(c, sector, iv);
            c->enc.vtable->run(&c->enc.vtable, iv, buf, QB_CRYPTO_SECTOR);
        }
    }
    if (c->mode == QB_MODE_XTS)
        qb_wipe(t, sizeof(t));
}
