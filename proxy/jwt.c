/*
 * JWT verification for `key jwt:CLAIM` (DESIGN §12). RFC 7515 (JWS compact
 * form), RFC 7518 (HS256, RS256, ES256), RFC 7519 (exp, nbf, iss, aud).
 *
 * The algorithm comes from the key, and the token's "alg" must name it: a
 * token cannot choose HS256 to have an RSA public key used as an HMAC secret,
 * nor "none". A "crit" header is refused (we implement no extension). JSON
 * with duplicate names is refused, so no two readers can see different claims.
 */
#include "proxy/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define JWT_MAX_HEADER   1024  /* decoded JOSE header bytes */
#define JWT_MAX_PAYLOAD  6144  /* decoded claims bytes */
#define JWT_MAX_SIG      512   /* RSA-4096 */
#define JWT_ES256_SIG    64    /* RFC 7518 s3.4: r and s, 32 bytes each */
#define JWT_KEY_FILE_MAX 65536 /* a PEM public key or a secret is far smaller */

struct jwt_key {
    enum jwt_alg alg;
    EVP_PKEY *pkey;    /* owned; RS256 and ES256 */
    size_t secret_len; /* HS256 */
    uint8_t secret[];  /* HS256: the file's bytes less one trailing newline */
};

static const char *const jwt_alg_names[JWT_ALG_COUNT] = {
    [JWT_HS256] = "HS256",
    [JWT_RS256] = "RS256",
    [JWT_ES256] = "ES256",
};

/* ---- keys ---------------------------------------------------------------- */

static bool
jwt_contains(const uint8_t *bytes, size_t len, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(bytes + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

static struct jwt_key *
jwt_key_new(enum jwt_alg alg, EVP_PKEY *pkey, const uint8_t *secret, size_t secret_len)
{
    struct jwt_key *key = malloc(sizeof(*key) + secret_len);

    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key->alg = alg;
    key->pkey = pkey;
    key->secret_len = secret_len;
    if (secret_len > 0) {
        memcpy(key->secret, secret, secret_len);
    }
    return key;
}

/* The algorithm PKEY verifies, or -1 with *WHY. */
static int
jwt_pkey_alg(EVP_PKEY *pkey, const char **why)
{
    char group[64] = "";
    size_t group_len = 0;

    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        if (EVP_PKEY_get_bits(pkey) < JWT_MIN_RSA_BITS) {
            *why = "holds an RSA key shorter than 2048 bits (RFC 7518 s3.3)";
            return -1;
        }
        return JWT_RS256;
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &group_len) != 1 ||
            strcmp(group, "prime256v1") != 0) {
            *why = "holds an EC key on a curve other than P-256 (ES256 needs P-256)";
            return -1;
        }
        return JWT_ES256;
    default:
        *why = "holds an unsupported key type (use an RSA key for RS256, an EC P-256 key for "
               "ES256, or an HS256 secret)";
        return -1;
    }
}

static struct jwt_key *
jwt_key_parse_pem(const uint8_t *bytes, size_t len, const char **why)
{
    BIO *bio;
    EVP_PKEY *pkey;
    int alg;

    if (jwt_contains(bytes, len, "PRIVATE KEY-----")) {
        *why = "is a private key (give the public key: openssl pkey -pubout)";
        return NULL;
    }
    bio = BIO_new_mem_buf(bytes, (int)len);
    pkey = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (pkey == NULL) {
        *why = "is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)";
        return NULL;
    }
    alg = jwt_pkey_alg(pkey, why);
    if (alg < 0) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    *why = "cannot allocate memory";
    return jwt_key_new((enum jwt_alg)alg, pkey, NULL, 0);
}

struct jwt_key *
jwt_key_parse(const uint8_t *bytes, size_t len, const char **why)
{
    if (len == 0) {
        *why = "is empty";
        return NULL;
    }
    if (jwt_contains(bytes, len, "-----BEGIN")) {
        return jwt_key_parse_pem(bytes, len, why);
    }
    if (bytes[len - 1] == '\n') {
        len--; /* `echo secret > file` adds one */
    }
    if (len < JWT_MIN_SECRET) {
        *why = "holds an HS256 secret shorter than 32 bytes (RFC 7518 s3.2)";
        return NULL;
    }
    *why = "cannot allocate memory";
    return jwt_key_new(JWT_HS256, NULL, bytes, len);
}

struct jwt_key *
jwt_key_load(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t *buf = malloc(JWT_KEY_FILE_MAX + 1);
    size_t len = 0;
    ssize_t n = 0;
    const char *why = NULL;
    struct jwt_key *key = NULL;

    while (fd != -1 && buf != NULL && len <= JWT_KEY_FILE_MAX &&
           (n = read(fd, buf + len, JWT_KEY_FILE_MAX + 1 - len)) != 0) {
        if (n == -1 && errno != EINTR) {
            break;
        }
        len += n > 0 ? (size_t)n : 0;
    }
    if (fd == -1 || buf == NULL || n == -1) {
        char e[128];

        snprintf(err, err_len, "cannot read: %s", strerror_r(errno, e, sizeof(e)));
    } else if (len > JWT_KEY_FILE_MAX) {
        snprintf(err, err_len, "is larger than 64 KiB (not a key file)");
    } else if ((key = jwt_key_parse(buf, len, &why)) == NULL) {
        snprintf(err, err_len, "%s", why);
    }
    if (buf != NULL) {
        OPENSSL_cleanse(buf, JWT_KEY_FILE_MAX + 1); /* it may hold a secret */
    }
    free(buf);
    if (fd != -1) {
        close(fd);
    }
    return key;
}

void
jwt_key_destroy(struct jwt_key *key)
{
    if (key == NULL) {
        return;
    }
    EVP_PKEY_free(key->pkey);
    OPENSSL_cleanse(key->secret, key->secret_len);
    free(key);
}

enum jwt_alg
jwt_key_alg(const struct jwt_key *key)
{
    return key->alg;
}

/* ---- base64url, signatures ----------------------------------------------- */

static int
jwt_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    return c == '_' ? 63 : -1;
}

/*
 * RFC 7515 s2: base64url without padding. Decodes LEN characters at IN into
 * OUT (CAP bytes). Returns the byte count, or -1: a character outside the
 * alphabet, an impossible length, unused bits not zero (one token, one
 * spelling), or more than CAP bytes.
 */
static long
jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    if (len % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        int v = jwt_b64_value((unsigned char)in[i]);

        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) {
                return -1;
            }
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc != 0 ? -1 : (long)n;
}

static bool
jwt_evp_verify(EVP_PKEY *pkey, const uint8_t *msg, size_t msg_len, const uint8_t *sig,
               size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new(); /* one per verify: the shared key is only read */
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;

    EVP_MD_CTX_free(ctx);
    ERR_clear_error(); /* a failed verify queues errors; this thread's TLS must not see them */
    return ok;
}

/* The 32-byte big-endian V as a DER INTEGER at OUT (at most 35 bytes). Returns its length. */
static size_t
jwt_der_integer(const uint8_t *v, uint8_t *out)
{
    size_t skip = 0, n, o = 2;

    while (skip < 31 && v[skip] == 0) {
        skip++;
    }
    n = 32 - skip;
    out[0] = 0x02;
    out[1] = (uint8_t)(n + (v[skip] >> 7)); /* a high bit would read as negative: pad 0x00 */
    if (v[skip] & 0x80) {
        out[o++] = 0x00;
    }
    memcpy(out + o, v + skip, n);
    return o + n;
}

static bool
jwt_signature_ok(const struct jwt_key *key, const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                 size_t sig_len)
{
    uint8_t mac[EVP_MAX_MD_SIZE], der[2 + 2 * 35];
    unsigned mac_len = 0;
    size_t der_len;

    switch (key->alg) {
    case JWT_HS256:
        if (HMAC(EVP_sha256(), key->secret, (int)key->secret_len, msg, msg_len, mac, &mac_len) ==
            NULL) {
            ERR_clear_error();
            return false;
        }
        return sig_len == mac_len && CRYPTO_memcmp(sig, mac, mac_len) == 0; /* constant time */
    case JWT_RS256:
        return jwt_evp_verify(key->pkey, msg, msg_len, sig, sig_len);
    case JWT_ES256:
        /* RFC 7518 s3.4: JOSE sends r||s; EVP wants an ASN.1 SEQUENCE of two INTEGERs */
        if (sig_len != JWT_ES256_SIG) {
            return false;
        }
        der_len = 2 + jwt_der_integer(sig, der + 2);
        der_len += jwt_der_integer(sig + 32, der + der_len);
        der[0] = 0x30;
        der[1] = (uint8_t)(der_len - 2);
        return jwt_evp_verify(key->pkey, msg, msg_len, der, der_len);
    case JWT_ALG_COUNT:
        break;
    }
    return false;
}

/* ---- claims -------------------------------------------------------------- */

/* Decodes the base64url PART as a JSON object into *OUT (a new reference). */
static enum jwt_result
jwt_json_part(const char *part, size_t len, uint8_t *buf, size_t cap, json_t **out)
{
    long n = len > 0 ? jwt_b64url_decode(part, len, buf, cap) : -1;
    json_error_t jerr;

    *out = n > 0 ? json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return JWT_MALFORMED;
    }
    return JWT_OK;
}

/* The header: "alg" must be the key's own algorithm; "crit" means an extension we lack. */
static enum jwt_result
jwt_check_header(const struct jwt_key *key, const char *part, size_t len)
{
    uint8_t buf[JWT_MAX_HEADER];
    json_t *header;
    const char *alg;
    enum jwt_result r = jwt_json_part(part, len, buf, sizeof(buf), &header);

    if (r != JWT_OK) {
        return r;
    }
    alg = json_string_value(json_object_get(header, "alg"));
    if (alg == NULL || strcmp(alg, jwt_alg_names[key->alg]) != 0 ||
        json_object_get(header, "crit") != NULL) {
        r = JWT_BAD_ALG;
    }
    json_decref(header);
    return r;
}

/* RFC 7519 s4.1.4, s4.1.5: exp and nbf are NumericDates; absent means no limit. */
static enum jwt_result
jwt_check_time(json_t *claims, const struct jwt_policy *policy)
{
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    double now = (double)policy->now_sec, leeway = (double)policy->leeway_sec;

    if ((exp != NULL && !json_is_number(exp)) || (nbf != NULL && !json_is_number(nbf))) {
        return JWT_MALFORMED;
    }
    if (exp != NULL && now >= json_number_value(exp) + leeway) {
        return JWT_EXPIRED;
    }
    if (nbf != NULL && now + leeway < json_number_value(nbf)) {
        return JWT_NOT_YET_VALID;
    }
    return JWT_OK;
}

/* RFC 7519 s4.1.3: aud is a string or an array of strings; one must be AUDIENCE. */
static bool
jwt_audience_has(json_t *aud, const char *audience)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), audience) == 0;
    }
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), audience) == 0) {
            return true;
        }
    }
    return false;
}

static enum jwt_result
jwt_check_claims(json_t *claims, const struct jwt_policy *policy, const char *claim, char *out,
                 size_t out_cap, size_t *out_len)
{
    enum jwt_result r = jwt_check_time(claims, policy);
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    json_t *value;

    if (r != JWT_OK) {
        return r;
    }
    if (policy->issuer != NULL && (iss == NULL || strcmp(iss, policy->issuer) != 0)) {
        return JWT_BAD_ISSUER;
    }
    if (policy->audience != NULL &&
        !jwt_audience_has(json_object_get(claims, "aud"), policy->audience)) {
        return JWT_BAD_AUDIENCE;
    }
    value = json_object_get(claims, claim);
    if (value == NULL || (json_is_string(value) && json_string_length(value) == 0)) {
        return JWT_NO_CLAIM;
    }
    if (!json_is_string(value)) {
        return JWT_CLAIM_NOT_STRING;
    }
    if (json_string_length(value) > out_cap) {
        return JWT_CLAIM_TOO_LONG;
    }
    *out_len = json_string_length(value);
    memcpy(out, json_string_value(value), *out_len);
    return JWT_OK;
}

enum jwt_result
jwt_verify(const struct jwt_key *key, const struct jwt_policy *policy, const char *token,
           size_t len, const char *claim, char *out, size_t out_cap, size_t *out_len)
{
    const char *dot1, *dot2;
    uint8_t sig[JWT_MAX_SIG], payload[JWT_MAX_PAYLOAD];
    long sig_len;
    json_t *claims;
    enum jwt_result r;

    *out_len = 0;
    if (len > JWT_MAX_TOKEN || (dot1 = memchr(token, '.', len)) == NULL ||
        (dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        return JWT_MALFORMED; /* RFC 7515 s7.1: exactly three parts (JWE has five) */
    }
    r = jwt_check_header(key, token, (size_t)(dot1 - token));
    if (r != JWT_OK) {
        return r;
    }
    sig_len = jwt_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig));
    if (sig_len <= 0) {
        return JWT_MALFORMED;
    }
    /* RFC 7515 s5.2: the signing input is the first two parts as sent, dot included */
    if (!jwt_signature_ok(key, (const uint8_t *)token, (size_t)(dot2 - token), sig,
                          (size_t)sig_len)) {
        return JWT_BAD_SIGNATURE;
    }
    r = jwt_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload), &claims);
    if (r != JWT_OK) {
        return r;
    }
    r = jwt_check_claims(claims, policy, claim, out, out_cap, out_len);
    json_decref(claims);
    return r;
}

const char *
jwt_result_name(enum jwt_result r)
{
    static const char *const names[JWT_RESULT_COUNT] = {
        [JWT_OK] = "ok",
        [JWT_MALFORMED] = "malformed",
        [JWT_BAD_ALG] = "bad_alg",
        [JWT_BAD_SIGNATURE] = "bad_signature",
        [JWT_EXPIRED] = "expired",
        [JWT_NOT_YET_VALID] = "not_yet_valid",
        [JWT_BAD_ISSUER] = "bad_issuer",
        [JWT_BAD_AUDIENCE] = "bad_audience",
        [JWT_NO_CLAIM] = "no_claim",
        [JWT_CLAIM_NOT_STRING] = "claim_not_string",
        [JWT_CLAIM_TOO_LONG] = "claim_too_long",
    };

    return r < JWT_RESULT_COUNT ? names[r] : "?";
}
