/*
 * New encrypted images: the `encrypt.*` options of create and convert (as
 * qemu-img names them), and turning an image qb_qcow2_create has just
 * written into an encrypted one.
 *
 * The LUKS header goes into the first free clusters of the new image,
 * which for an image without preallocation are those right after the L1
 * table: where qemu-img puts it, so both tools lay new images out alike.
 * The header extension pointing at it goes after the backing format and
 * data file extensions and before the others, in qemu-img's order.
 */
#include <string.h>
#include "qcow2.h"
#include "qcow2_crypto.h"
#include "qb_endian.h"
#include "qb_fmt.h"

void qb_encrypt_params_init(qb_encrypt_params *p)
{
    memset(p, 0, sizeof(*p));
    qb_snprintf(p->cipher_alg, sizeof(p->cipher_alg), "aes-256");
    qb_snprintf(p->cipher_mode, sizeof(p->cipher_mode), "xts");
    qb_snprintf(p->ivgen_alg, sizeof(p->ivgen_alg), "plain64");
    qb_snprintf(p->ivgen_hash_alg, sizeof(p->ivgen_hash_alg), "sha256");
    qb_snprintf(p->hash_alg, sizeof(p->hash_alg), "sha256");
}

static int set_choice(char *dst, size_t cap, const char *value, const char *const *allowed,
                      const char *name, qb_err *err)
{
    for (; *allowed; allowed++) {
        if (strcmp(value, *allowed) == 0) {
            qb_snprintf(dst, cap, "%s", value);
            return 0;
        }
    }
    return qb_err_set(err, QB_EINVAL, "encrypt.%s: '%s' is not supported", name, value);
}

int qb_encrypt_parse_option(qb_encrypt_params *p, const char *name, const char *value,
                            qb_err *err)
{
    static const char *const formats[] = { "aes", "luks", NULL };
    static const char *const algs[] = { "aes-128", "aes-192", "aes-256", NULL };
    static const char *const modes[] = { "xts", "cbc", NULL };
    static const char *const ivgens[] = { "plain64", "plain", "essiv", NULL };
    static const char *const hashes[] = { "sha1", "sha224", "sha256", "sha384", "sha512", NULL };
    if (strncmp(name, "encrypt.", 8) != 0)
        return 1;
    name += 8;
    if (strcmp(name, "format") == 0) {
        char f[8];
        int r = set_choice(f, sizeof(f), value, formats, name, err);
        if (!r)
            p->format = strcmp(f, "aes") == 0 ? QB_ENCRYPT_AES : QB_ENCRYPT_LUKS;
        return r;
    }
    if (strcmp(name, "key-secret") == 0)
        return 0;
    if (strcmp(name, "cipher-alg") == 0)
        return set_choice(p->cipher_alg, sizeof(p->cipher_alg), value, algs, name, err);
    if (strcmp(name, "cipher-mode") == 0)
        return set_choice(p->cipher_mode, sizeof(p->cipher_mode), value, modes, name, err);
    if (strcmp(name, "ivgen-alg") == 0)
        return set_choice(p->ivgen_alg, sizeof(p->ivgen_alg), value, ivgens, name, err);
    if (strcmp(name, "ivgen-hash-alg") == 0)
        return set_choice(p->ivgen_hash_alg, sizeof(p->ivgen_hash_alg), value, hashes, name,
                          err);
    if (strcmp(name, "hash-alg") == 0)
        return set_choice(p->hash_alg, sizeof(p->hash_alg), value, hashes, name, err);
    if (strcmp(name, "iter-time") == 0) {
        uint64_t v = 0;
        const char *s = value;
        for (; *s >= '0' && *s <= '9' && v <= 3600000; s++)
            v = v * 10 + (uint64_t)(*s - '0');
        if (s == value || *s || v == 0 || v > 3600000)
            return qb_err_set(err, QB_EINVAL,
                              "encrypt.iter-time: '%s' is not a number of milliseconds (1 to "
                              "3600000)",
                              value);
        p->iter_time_ms = (uint32_t)v;
        return 0;
    }
    return qb_err_set(err, QB_EINVAL, "unknown option 'encrypt.%s'", name);
}

int qb_encrypt_params_check(const qb_encrypt_params *p, qb_err *err)
{
    qb_encrypt_params d;
    qb_encrypt_params_init(&d);
    if (p->format == QB_ENCRYPT_AES) {
        if (strcmp(p->cipher_alg, d.cipher_alg) || strcmp(p->cipher_mode, d.cipher_mode) ||
            strcmp(p->ivgen_alg, d.ivgen_alg) || strcmp(p->ivgen_hash_alg, d.ivgen_hash_alg) ||
            strcmp(p->hash_alg, d.hash_alg) || p->iter_time_ms)
            return qb_err_set(err, QB_EINVAL,
                              "encrypt.format=aes takes no cipher, hash or iteration options "
                              "(it is AES-128-CBC keyed by the passphrase)");
        return QB_OK;
    }
    if (p->format != QB_ENCRYPT_LUKS)
        return QB_OK;
    if (strcmp(p->ivgen_alg, "essiv") == 0 && strcmp(p->cipher_mode, "cbc") != 0)
        return qb_err_set(err, QB_EINVAL,
                          "encrypt.ivgen-alg=essiv needs encrypt.cipher-mode=cbc");
    if (strcmp(p->ivgen_alg, "essiv") == 0 && strcmp(p->ivgen_hash_alg, "sha256") != 0)
        return qb_err_set(err, QB_EINVAL,
                          "encrypt.ivgen-hash-alg=%s: ESSIV needs a hash as long as an AES key "
                          "(sha256)",
                          p->ivgen_hash_alg);
    return QB_OK;
}

/* Clusters for the LUKS header, through the engine's allocator (which
 * also makes the refcount blocks they need), made durable. */
static int alloc_header_clusters(const qb_alloc *a, qb_backend *file, const char *filename,
                                 uint64_t len, uint64_t *off, uint64_t *cluster_size,
                                 qb_err *err)
{
    qcow2 *q = qb_zalloc(a, sizeof(*q));
    if (!q)
        return qb_err_set(err, QB_ENOMEM, "%s: no memory", filename);
    qb_open_opts o;
    memset(&o, 0, sizeof(o));
    o.alloc = *a;
    o.filename = filename;
    o.writable = true;
    int r = qcow2_open(q, &o, file, filename, err);
    if (!r && (q->h.crypt_method || q->nb_snapshots))
        r = qb_err_set(err, QB_EINVAL, "%s: not a new unencrypted image", filename);
    if (!r)
        r = qcow2_prepare_write(q, err);
    if (!r) {
        *cluster_size = q->cluster_size;
        r = qcow2_alloc_clusters(q, (len + q->cluster_size - 1) >> q->h.cluster_bits, off, err);
    }
    if (!r)
        r = qcow2_flush_meta(q, err);
    if (!r)
        r = qcow2_sync(q, err);
    qcow2_close(q);
    qb_free(a, q);
    return r;
}

/* Rewrites the first cluster: crypt_method 2 and the crypto header
 * extension among the others, the backing file name moved after them. */
static int add_crypto_extension(const qb_alloc *a, qb_backend *file, const char *filename,
                                uint64_t cs, uint64_t off, uint64_t len, qb_err *err)
{
    uint8_t *old = qb_zalloc(a, (size_t)cs), *h = qb_zalloc(a, (size_t)cs);
    int r = old && h ? qb_backend_read(file, 0, old, (size_t)cs, err)
                     : qb_err_set(err, QB_ENOMEM, "%s: no memory", filename);
    if (r)
        goto out;
    uint32_t version = qb_be32(old + 4);
    uint64_t hlen = version >= 3 ? qb_be32(old + 100) : 72;
    uint64_t bfo = qb_be64(old + 8);
    uint32_t bfs = qb_be32(old + 16);
    memcpy(h, old, (size_t)hlen);
    qb_put_be32(h + 32, QB_ENCRYPT_LUKS);
    uint8_t crypto[24];
    qb_put_be32(crypto, QCOW2_EXT_CRYPTO);
    qb_put_be32(crypto + 4, 16);
    qb_put_be64(crypto + 8, off);
    qb_put_be64(crypto + 16, len);
    uint64_t in = hlen, out_at = hlen;
    bool placed = false;
    for (;;) {
        uint32_t type = qb_be32(old + in), elen = qb_be32(old + in + 4);
        uint64_t step = 8 + (((uint64_t)elen + 7) & ~7ull);
        bool early = type == QCOW2_EXT_BACKING_FMT || type == QCOW2_EXT_DATA_FILE;
        if (!placed && !early) {
            memcpy(h + out_at, crypto, sizeof(crypto));
            out_at += sizeof(crypto);
            placed = true;
        }
        if (type == QCOW2_EXT_END)
            break;
        if (in + step + 8 > cs || out_at + step + 8 + sizeof(crypto) > cs) {
            r = qb_err_set(err, QB_EUNSUPP, "%s: no room for the encryption header extension",
                           filename);
            goto out;
        }
        memcpy(h + out_at, old + in, (size_t)step);
        in += step;
        out_at += step;
    }
    out_at += 8;    /* the end marker (zeros) */
    if (bfo) {
        if (out_at + bfs > cs || bfo + bfs > cs) {
            r = qb_err_set(err, QB_EUNSUPP, "%s: no room for the encryption header extension",
                           filename);
            goto out;
        }
        memcpy(h + out_at, old + bfo, bfs);
        qb_put_be64(h + 8, out_at);
    }
    r = qb_backend_write(file, 0, h, (size_t)cs, err);
    if (!r)
        r = qb_backend_flush(file, err);
out:
    qb_free(a, old);
    qb_free(a, h);
    return r;
}

int qcow2_encrypt_new_image(const qb_alloc *a, qb_backend *file, const char *filename,
                            qb_encrypt_params *p, const uint8_t *pass, size_t pass_len,
                            qb_rng_fn rng, void *rng_ctx, qb_clock_fn clock, void *clock_ctx,
                            qb_err *err)
{
    if (p->format == QB_ENCRYPT_NONE)
        return QB_OK;
    int r = qb_encrypt_params_check(p, err);
    if (r)
        return qb_err_prefix(err, "%s: ", filename);
    if (!pass)
        return qb_err_set(err, QB_ECRYPT,
                          "%s: an encrypted image needs a passphrase (--passphrase-file)",
                          filename);
    size_t plen = 0;
    while (plen < pass_len && pass[plen])     /* as QEMU: up to a NUL */
        plen++;
    if (p->format == QB_ENCRYPT_AES) {
        uint8_t m[4];
        qb_put_be32(m, QB_ENCRYPT_AES);
        r = qb_backend_write(file, 32, m, 4, err);
        if (!r)
            r = qb_backend_flush(file, err);
        return r ? qb_err_prefix(err, "%s: ", filename) : QB_OK;
    }
    uint8_t *region = NULL;
    size_t len = 0;
    r = qb_luks_create(a, p, pass, plen, rng, rng_ctx, clock, clock_ctx, &region, &len, err);
    if (r)
        return qb_err_prefix(err, "%s: ", filename);
    uint64_t off = 0, cs = 0;
    r = alloc_header_clusters(a, file, filename, len, &off, &cs, err);
    if (!r) {
        /* Whole clusters: the unused slots' areas read as zeros. */
        uint64_t padded = (len + cs - 1) & ~(cs - 1);
        r = qb_backend_write(file, off, region, len, err);
        if (!r && padded > len) {
            uint8_t *zeros = qb_zalloc(a, (size_t)(padded - len));
            r = zeros ? qb_backend_write(file, off + len, zeros, (size_t)(padded - len), err)
                      : qb_err_set(err, QB_ENOMEM, "no memory");
            qb_free(a, zeros);
        }
        if (!r)
            r = qb_backend_flush(file, err);
        if (r)
            qb_err_prefix(err, "%s: writing the LUKS header: ", filename);
    }
    qb_free(a, region);
    if (!r)
        r = add_crypto_extension(a, file, filename, cs, off, len, err);
    return r;
}
