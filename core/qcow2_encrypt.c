/*
 * Encrypted qcow2 images: setting up the cipher when an image is opened,
 * decrypting what the read path reads and encrypting what the write path
 * writes, and the parameters of new encrypted images.
 *
 * As QEMU does: legacy AES (crypt_method 1) takes the IV from the guest
 * offset, LUKS (crypt_method 2) from the host offset, both in 512-byte
 * sectors. Only data clusters are encrypted; metadata is not, and
 * compressed clusters are stored in clear (QEMU reads them so; qcowboot
 * reads them the same way and never writes them into an encrypted image).
 *
 * The keys live in q->crypto from the open to qcow2_close, which wipes
 * them; the write buffer, which holds clear data, is wiped too. New
 * encrypted images are made by qcow2_encrypt_create.c.
 */
#include <string.h>
#include "qcow2.h"
#include "qcow2_crypto.h"

#define CRYPT_CHUNK (64u << 10)             /* bytes encrypted per backend write */
#define LUKS_MAX_HEADER (64ull << 20)       /* a LUKS1 header with 8 default slots is 2 MiB */

struct qcow2_crypto {
    qb_cipher *cipher;
    bool host_iv;           /* LUKS: IV from the host offset; AES: the guest offset */
    uint8_t *scratch;       /* CRYPT_CHUNK bytes for writes, allocated on the first one */
};

static size_t secret_len(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i])
        i++;
    return i;
}

static int check_crypto_ext(qcow2 *q, qb_err *err)
{
    if (!q->has_crypto_ext)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: LUKS encryption (crypt_method 2) without the encryption header "
                          "extension",
                          q->filename);
    if (q->crypto_offset == 0 || qcow2_offset_into_cluster(q, q->crypto_offset))
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: encryption header extension: LUKS header offset %#llx is not a "
                          "cluster boundary after the header",
                          q->filename, (unsigned long long)q->crypto_offset);
    if (q->crypto_length > LUKS_MAX_HEADER || q->crypto_offset > q->file_size ||
        q->crypto_length > q->file_size - q->crypto_offset)
        return qb_err_set(err, QB_ECORRUPT,
                          "%s: encryption header extension: LUKS header at %#llx (%llu bytes) "
                          "lies past the end of the file or exceeds %llu MiB",
                          q->filename, (unsigned long long)q->crypto_offset,
                          (unsigned long long)q->crypto_length, LUKS_MAX_HEADER >> 20);
    return QB_OK;
}

int qcow2_crypto_open(qcow2 *q, const qb_open_opts *opts, qb_err *err)
{
    qcow2_crypto *c = qb_zalloc(&q->alloc, sizeof(*c));
    if (!c)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", q->filename);
    q->crypto = c;
    size_t plen = secret_len(opts->passphrase, opts->passphrase_len);
    if (q->h.crypt_method == 1) {
        if (q->has_crypto_ext)
            return qb_err_set(err, QB_ECORRUPT,
                              "%s: encryption header extension in an image with legacy AES "
                              "encryption (crypt_method 1)",
                              q->filename);
        /* The key is the passphrase itself, cut or zero-padded to 16 bytes. */
        uint8_t key[16] = { 0 };
        memcpy(key, opts->passphrase, plen < 16 ? plen : 16);
        c->cipher = qb_cipher_new(&q->alloc, QB_MODE_CBC, QB_IV_PLAIN64, NULL, key, 16);
        qb_wipe(key, sizeof(key));
        if (!c->cipher)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for a cipher", q->filename);
        return QB_OK;
    }
    int r = check_crypto_ext(q, err);
    if (r)
        return r;
    c->host_iv = true;
    qb_kdf_progress prog = { opts->kdf_progress, opts->kdf_progress_ctx, 0, 0 };
    qb_luks_info info;
    return qb_luks_open(&q->alloc, q->file, q->filename, q->crypto_offset, q->crypto_length,
                        opts->passphrase, plen, &prog, &c->cipher, &info, err);
}

void qcow2_crypto_close(qcow2 *q)
{
    qcow2_crypto *c = q->crypto;
    if (!c)
        return;
    qb_cipher_free(&q->alloc, c->cipher);
    if (c->scratch) {
        qb_wipe(c->scratch, CRYPT_CHUNK);
        qb_free(&q->alloc, c->scratch);
    }
    qb_wipe(c, sizeof(*c));
    qb_free(&q->alloc, c);
    q->crypto = NULL;
}

static uint64_t iv_sector(const qcow2_crypto *c, uint64_t host, uint64_t guest)
{
    return (c->host_iv ? host : guest) / QB_CRYPTO_SECTOR;
}

/* Reads and decrypts the one sector holding host (sector aligned). */
static int read_sector(qcow2 *q, uint64_t host, uint64_t guest, uint8_t *sec, qb_err *err)
{
    int r = qb_backend_read(q->data_file, host, sec, QB_CRYPTO_SECTOR, err);
    if (r)
        return qb_err_prefix(err, "%s: reading data at host offset %#llx: ", q->filename,
                             (unsigned long long)host);
    qb_cipher_decrypt(q->crypto->cipher, iv_sector(q->crypto, host, guest), sec,
                      QB_CRYPTO_SECTOR);
    return QB_OK;
}

int qcow2_crypto_read(qcow2 *q, uint64_t host, uint64_t guest, uint8_t *buf, size_t len,
                      qb_err *err)
{
    const qcow2_crypto *c = q->crypto;
    while (len) {
        uint64_t in = host % QB_CRYPTO_SECTOR;
        if (in || len < QB_CRYPTO_SECTOR) {
            /* A part of a sector: the whole one through a buffer. */
            uint8_t sec[QB_CRYPTO_SECTOR];
            int r = read_sector(q, host - in, guest - in, sec, err);
            size_t n = QB_CRYPTO_SECTOR - in < len ? QB_CRYPTO_SECTOR - (size_t)in : len;
            if (!r)
                memcpy(buf, sec + in, n);
            qb_wipe(sec, sizeof(sec));
            if (r)
                return r;
            host += n;
            guest += n;
            buf += n;
            len -= n;
            continue;
        }
        size_t n = len & ~(size_t)(QB_CRYPTO_SECTOR - 1);
        int r = qb_backend_read(q->data_file, host, buf, n, err);
        if (r)
            return qb_err_prefix(err, "%s: reading data at host offset %#llx: ", q->filename,
                                 (unsigned long long)host);
        qb_cipher_decrypt(c->cipher, iv_sector(c, host, guest), buf, n);
        host += n;
        guest += n;
        buf += n;
        len -= n;
    }
    return QB_OK;
}

int qcow2_crypto_write(qcow2 *q, uint64_t host, uint64_t guest, const uint8_t *buf, size_t len,
                       qb_err *err)
{
    qcow2_crypto *c = q->crypto;
    if (!c->scratch) {
        c->scratch = qb_malloc(&q->alloc, CRYPT_CHUNK);
        if (!c->scratch)
            return qb_err_set(err, QB_ENOMEM, "%s: no memory for encryption", q->filename);
    }
    uint8_t *s = c->scratch;
    while (len) {
        uint64_t in = host % QB_CRYPTO_SECTOR;
        uint64_t hs = host - in, gs = guest - in;
        size_t n = CRYPT_CHUNK - (size_t)in < len ? CRYPT_CHUNK - (size_t)in : len;
        size_t span = ((size_t)in + n + QB_CRYPTO_SECTOR - 1) & ~(size_t)(QB_CRYPTO_SECTOR - 1);
        int r = QB_OK;
        /* Sectors written in part keep the rest of what they hold. */
        if (in)
            r = read_sector(q, hs, gs, s, err);
        if (!r && ((in + n) % QB_CRYPTO_SECTOR) && (span > QB_CRYPTO_SECTOR || !in))
            r = read_sector(q, hs + span - QB_CRYPTO_SECTOR, gs + span - QB_CRYPTO_SECTOR,
                            s + span - QB_CRYPTO_SECTOR, err);
        if (r)
            return r;
        memcpy(s + in, buf, n);
        qb_cipher_encrypt(c->cipher, iv_sector(c, hs, gs), s, span);
        r = qcow2_pwrite(q, q->data_file, hs, s, span, err);
        if (r)
            return r;
        host += n;
        guest += n;
        buf += n;
        len -= n;
    }
    return QB_OK;
}
