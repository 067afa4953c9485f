/*
 * test_jwt.c: verified JWT keys (DESIGN §12, proxy/jwt.h) and the jwt:CLAIM
 * key rule (proxy/key.h). Keys are generated in-process (RSA 2048, EC P-256,
 * P-384, Ed25519) and tokens are signed here, so every bad kind is built on
 * purpose: bad signature, expired, not yet valid, wrong audience or issuer,
 * alg none, HS256 signed with the RSA public key, truncated, bad base64,
 * missing and non-string claims.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "conf/conf.h"
#include "proxy/head.h"
#include "proxy/jwt.h"
#include "proxy/key.h"

#define NOW     1700000000
#define SECRET  "0123456789abcdef0123456789abcdef-test-only"
#define TOK_CAP 4096

/* The keys every test uses: private halves sign, jwt_key_parse() of the public PEM verifies. */
struct keys {
    EVP_PKEY *rsa, *ec, *rsa_other;
    char rsa_pub[2048], ec_pub[512];
    struct jwt_key *rs256, *es256, *hs256;
};

static struct keys K;

static const struct jwt_policy policy = {
    .audience = "chat", .issuer = "https://id.example.com/", .leeway_sec = 60, .now_sec = NOW
};

/* ---- building tokens ---------------------------------------------------- */

static size_t
b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[n++] = abc[(acc << (6 - bits)) & 63];
    }
    out[n] = '\0';
    return n;
}

static void
pem_of(EVP_PKEY *pkey, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;

    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    n = BIO_get_mem_data(bio, &data);
    assert_true(n > 0 && (size_t)n < cap);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
}

static size_t
sign_evp(EVP_PKEY *pkey, const char *msg, uint8_t *sig, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = cap;

    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const uint8_t *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    return len;
}

/* ECDSA's DER signature as JOSE's raw r||s (RFC 7518 s3.4). */
static size_t
der_to_raw(const uint8_t *der, size_t len, uint8_t raw[64])
{
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *s;

    assert_non_null(sig);
    ECDSA_SIG_get0(sig, &r, &s);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(sig);
    return 64;
}

enum signer {
    SIGN_HS256 = 0, /* with SECRET */
    SIGN_RS256,     /* with K.rsa */
    SIGN_ES256,     /* with K.ec */
    SIGN_RS_OTHER,  /* RS256 with another RSA key: a bad signature */
    SIGN_HS_RSAPUB, /* HS256 with the RSA public key's PEM as the secret: algorithm confusion */
    SIGN_NONE       /* no signature at all */
};

/* base64url(HEADER) "." base64url(PAYLOAD) "." signature, into OUT (TOK_CAP). */
static const char *
token(const char *header, const char *payload, enum signer how, char *out)
{
    uint8_t sig[1024], der[256];
    size_t n = b64url((const uint8_t *)header, strlen(header), out), sig_len = 0;
    unsigned mac_len = 0;

    out[n++] = '.';
    n += b64url((const uint8_t *)payload, strlen(payload), out + n);
    switch (how) {
    case SIGN_HS256:
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const uint8_t *)out, n, sig, &mac_len);
        sig_len = mac_len;
        break;
    case SIGN_HS_RSAPUB:
        HMAC(EVP_sha256(), K.rsa_pub, (int)strlen(K.rsa_pub), (const uint8_t *)out, n, sig,
             &mac_len);
        sig_len = mac_len;
        break;
    case SIGN_RS256:
    case SIGN_RS_OTHER:
        out[n] = '\0';
        sig_len = sign_evp(how == SIGN_RS256 ? K.rsa : K.rsa_other, out, sig, sizeof(sig));
        break;
    case SIGN_ES256:
        out[n] = '\0';
        sig_len = der_to_raw(der, sign_evp(K.ec, out, der, sizeof(der)), sig);
        break;
    case SIGN_NONE:
        break;
    }
    out[n++] = '.';
    n += b64url(sig, sig_len, out + n);
    assert_true(n < TOK_CAP);
    return out;
}

/* Verifies TOK with KEY under the shared policy, claim "sub", into a 16-byte key buffer. */
static enum jwt_result
verify_with(const struct jwt_key *key, const char *tok, const struct jwt_policy *pol, char *sub)
{
    char out[16];
    size_t out_len = 99;
    enum jwt_result r = jwt_verify(key, pol, tok, strlen(tok), "sub", out, sizeof(out), &out_len);

    if (sub != NULL) {
        memcpy(sub, out, r == JWT_OK ? out_len : 0);
        sub[r == JWT_OK ? out_len : 0] = '\0';
    }
    if (r != JWT_OK) {
        assert_int_equal(out_len, 0);
    }
    return r;
}

static enum jwt_result
verify(const struct jwt_key *key, const char *tok)
{
    return verify_with(key, tok, &policy, NULL);
}

static int
setup(void **state)
{
    const char *why = NULL;

    (void)state;
    K.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    K.rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    K.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (K.rsa == NULL || K.rsa_other == NULL || K.ec == NULL) {
        return -1;
    }
    pem_of(K.rsa, K.rsa_pub, sizeof(K.rsa_pub));
    pem_of(K.ec, K.ec_pub, sizeof(K.ec_pub));
    K.rs256 = jwt_key_parse((const uint8_t *)K.rsa_pub, strlen(K.rsa_pub), &why);
    K.es256 = jwt_key_parse((const uint8_t *)K.ec_pub, strlen(K.ec_pub), &why);
    K.hs256 = jwt_key_parse((const uint8_t *)SECRET "\n", strlen(SECRET) + 1, &why);
    return K.rs256 != NULL && K.es256 != NULL && K.hs256 != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    jwt_key_destroy(K.rs256);
    jwt_key_destroy(K.es256);
    jwt_key_destroy(K.hs256);
    EVP_PKEY_free(K.rsa);
    EVP_PKEY_free(K.rsa_other);
    EVP_PKEY_free(K.ec);
    return 0;
}

#define GOOD_CLAIMS                                                                                \
    "{\"sub\":\"alice\",\"iss\":\"https://id.example.com/\",\"aud\":\"chat\",\"exp\":1700000600,"  \
    "\"nbf\":1699999000}"

/* ---- keys ---------------------------------------------------------------- */

static void
test_key_type_fixes_the_algorithm(void **state)
{
    (void)state;
    assert_int_equal(jwt_key_alg(K.rs256), JWT_RS256);
    assert_int_equal(jwt_key_alg(K.es256), JWT_ES256);
    assert_int_equal(jwt_key_alg(K.hs256), JWT_HS256);
}

static void
expect_key_refused(const char *bytes, size_t len, const char *want)
{
    const char *why = NULL;

    assert_null(jwt_key_parse((const uint8_t *)bytes, len, &why));
    assert_string_equal(why, want);
}

static void
expect_pkey_refused(EVP_PKEY *pkey, const char *want)
{
    char pem[2048];

    assert_non_null(pkey);
    pem_of(pkey, pem, sizeof(pem));
    expect_key_refused(pem, strlen(pem), want);
    EVP_PKEY_free(pkey);
}

static void
test_bad_key_files_are_refused(void **state)
{
    static const char garbage[] =
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;

    (void)state;
    expect_key_refused("", 0, "is empty");
    expect_key_refused("short secret\n", 13,
                       "holds an HS256 secret shorter than 32 bytes (RFC 7518 s3.2)");
    /* 31 bytes and a newline: the newline does not count */
    expect_key_refused("0123456789012345678901234567890\n", 32,
                       "holds an HS256 secret shorter than 32 bytes (RFC 7518 s3.2)");
    expect_key_refused(garbage, sizeof(garbage) - 1,
                       "is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
    expect_pkey_refused(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"),
                        "holds an EC key on a curve other than P-256 (ES256 needs P-256)");
    expect_pkey_refused(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
                        "holds an unsupported key type (use an RSA key for RS256, an EC P-256 key "
                        "for ES256, or an HS256 secret)");
    expect_pkey_refused(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
                        "holds an RSA key shorter than 2048 bits (RFC 7518 s3.3)");
    /* a private key: the proxy needs only the public half */
    assert_int_equal(PEM_write_bio_PrivateKey(bio, K.ec, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &data);
    expect_key_refused(data, (size_t)n,
                       "is a private key (give the public key: openssl pkey -pubout)");
    BIO_free(bio);
}

static void
test_key_load_reads_the_file(void **state)
{
    char path[] = "/tmp/wsring-test-jwt-XXXXXX", err[256] = "";
    int fd = mkstemp(path);
    struct jwt_key *key;

    (void)state;
    assert_true(fd != -1);
    assert_int_equal(write(fd, K.ec_pub, strlen(K.ec_pub)), (ssize_t)strlen(K.ec_pub));
    close(fd);
    key = jwt_key_load(path, err, sizeof(err));
    assert_non_null(key);
    assert_int_equal(jwt_key_alg(key), JWT_ES256);
    jwt_key_destroy(key);
    unlink(path);
    assert_null(jwt_key_load(path, err, sizeof(err)));
    assert_string_equal(err, "cannot read: No such file or directory");
    assert_null(jwt_key_load("/", err, sizeof(err)));
    assert_string_equal(err, "cannot read: Is a directory");
}

/* ---- tokens -------------------------------------------------------------- */

static void
test_valid_tokens_give_the_claim(void **state)
{
    char tok[TOK_CAP], sub[32];

    (void)state;
    token("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS, SIGN_RS256, tok);
    assert_int_equal(verify_with(K.rs256, tok, &policy, sub), JWT_OK);
    assert_string_equal(sub, "alice");
    token("{\"alg\":\"ES256\"}", GOOD_CLAIMS, SIGN_ES256, tok);
    assert_int_equal(verify_with(K.es256, tok, &policy, sub), JWT_OK);
    assert_string_equal(sub, "alice");
    token("{\"alg\":\"HS256\",\"kid\":\"k1\"}", GOOD_CLAIMS, SIGN_HS256, tok);
    assert_int_equal(verify_with(K.hs256, tok, &policy, sub), JWT_OK);
    assert_string_equal(sub, "alice");
}

/* ES256 many times: r or s with a high bit or leading zero bytes must convert to DER right. */
static void
test_es256_every_signature_shape(void **state)
{
    char tok[TOK_CAP], claims[128];

    (void)state;
    for (int i = 0; i < 200; i++) {
        snprintf(claims, sizeof(claims), "{\"sub\":\"u%d\",\"aud\":\"chat\",\"iss\":\"%s\"}", i,
                 policy.issuer);
        token("{\"alg\":\"ES256\"}", claims, SIGN_ES256, tok);
        assert_int_equal(verify(K.es256, tok), JWT_OK);
    }
}

struct bad_token {
    const char *what;
    const char *header;
    const char *claims;
    enum signer how;
    enum jwt_result want;
};

/* clang-format off */
static const struct bad_token bad_rs256[] = {
    { "bad signature (another key)", "{\"alg\":\"RS256\"}", GOOD_CLAIMS, SIGN_RS_OTHER, JWT_BAD_SIGNATURE },
    { "expired (61 s past exp)", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\",\"exp\":1699999940}", SIGN_RS256, JWT_EXPIRED },
    { "not yet valid (nbf 61 s ahead)", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\",\"nbf\":1700000061}", SIGN_RS256, JWT_NOT_YET_VALID },
    { "wrong audience", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":\"billing\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_BAD_AUDIENCE },
    { "audience array without ours", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":[\"billing\",\"Chat\",7],\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_BAD_AUDIENCE },
    { "no audience", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_BAD_AUDIENCE },
    { "wrong issuer", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":\"chat\",\"iss\":\"https://evil.example.com/\"}", SIGN_RS256, JWT_BAD_ISSUER },
    { "no issuer", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":\"chat\"}", SIGN_RS256, JWT_BAD_ISSUER },
    { "alg none", "{\"alg\":\"none\"}", GOOD_CLAIMS, SIGN_NONE, JWT_BAD_ALG },
    { "alg None", "{\"alg\":\"None\"}", GOOD_CLAIMS, SIGN_NONE, JWT_BAD_ALG },
    { "HS256 signed with the RSA public key", "{\"alg\":\"HS256\"}", GOOD_CLAIMS, SIGN_HS_RSAPUB, JWT_BAD_ALG },
    { "RS384 named", "{\"alg\":\"RS384\"}", GOOD_CLAIMS, SIGN_RS256, JWT_BAD_ALG },
    { "no alg", "{\"typ\":\"JWT\"}", GOOD_CLAIMS, SIGN_RS256, JWT_BAD_ALG },
    { "alg not a string", "{\"alg\":[\"RS256\"]}", GOOD_CLAIMS, SIGN_RS256, JWT_BAD_ALG },
    { "crit header", "{\"alg\":\"RS256\",\"crit\":[\"b64\"],\"b64\":false}", GOOD_CLAIMS, SIGN_RS256, JWT_BAD_ALG },
    { "header not JSON", "{alg:RS256}", GOOD_CLAIMS, SIGN_RS256, JWT_MALFORMED },
    { "header a JSON array", "[\"RS256\"]", GOOD_CLAIMS, SIGN_RS256, JWT_MALFORMED },
    { "duplicate alg", "{\"alg\":\"none\",\"alg\":\"RS256\"}", GOOD_CLAIMS, SIGN_RS256, JWT_MALFORMED },
    { "payload not JSON", "{\"alg\":\"RS256\"}", "sub=alice", SIGN_RS256, JWT_MALFORMED },
    { "duplicate sub", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"sub\":\"b\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_MALFORMED },
    { "exp a string", "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\",\"exp\":\"1800000000\"}", SIGN_RS256, JWT_MALFORMED },
    { "missing claim", "{\"alg\":\"RS256\"}", "{\"uid\":\"a\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_NO_CLAIM },
    { "empty claim", "{\"alg\":\"RS256\"}", "{\"sub\":\"\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_NO_CLAIM },
    { "number claim", "{\"alg\":\"RS256\"}", "{\"sub\":42,\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_CLAIM_NOT_STRING },
    { "object claim", "{\"alg\":\"RS256\"}", "{\"sub\":{\"id\":\"a\"},\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_CLAIM_NOT_STRING },
    { "null claim", "{\"alg\":\"RS256\"}", "{\"sub\":null,\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_CLAIM_NOT_STRING },
    { "claim over the key limit", "{\"alg\":\"RS256\"}", "{\"sub\":\"0123456789abcdefX\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}", SIGN_RS256, JWT_CLAIM_TOO_LONG },
};
/* clang-format on */

static void
test_bad_tokens_are_refused(void **state)
{
    char tok[TOK_CAP];

    (void)state;
    for (size_t i = 0; i < sizeof(bad_rs256) / sizeof(bad_rs256[0]); i++) {
        const struct bad_token *b = &bad_rs256[i];
        enum jwt_result r = verify(K.rs256, token(b->header, b->claims, b->how, tok));

        if (r != b->want) {
            fail_msg("%s: got %s, want %s", b->what, jwt_result_name(r), jwt_result_name(b->want));
        }
    }
}

/* The leeway is on both sides: 59 s late or early passes, as does a matching audience array. */
static void
test_leeway_and_audience_array(void **state)
{
    char tok[TOK_CAP];
    struct jwt_policy none = { .leeway_sec = 0, .now_sec = NOW };

    (void)state;
    token("{\"alg\":\"HS256\"}",
          "{\"sub\":\"a\",\"aud\":[\"x\",\"chat\"],\"iss\":\"https://id.example.com/\","
          "\"exp\":1699999941,\"nbf\":1700000059}",
          SIGN_HS256, tok);
    assert_int_equal(verify(K.hs256, tok), JWT_OK);
    /* without leeway the same token is expired; with no aud/iss configured they are not checked */
    assert_int_equal(verify_with(K.hs256, tok, &none, NULL), JWT_EXPIRED);
    token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1700000000}", SIGN_HS256, tok);
    assert_int_equal(verify_with(K.hs256, tok, &none, NULL), JWT_EXPIRED); /* exp is exclusive */
    token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1700000000.5,\"nbf\":1700000000}",
          SIGN_HS256, tok);
    assert_int_equal(verify_with(K.hs256, tok, &none, NULL), JWT_OK);
}

/* Every key refuses the other algorithms, whatever signed the token. */
static void
test_algorithm_confusion(void **state)
{
    char tok[TOK_CAP];

    (void)state;
    token("{\"alg\":\"RS256\"}", GOOD_CLAIMS, SIGN_RS256, tok);
    assert_int_equal(verify(K.hs256, tok), JWT_BAD_ALG);
    assert_int_equal(verify(K.es256, tok), JWT_BAD_ALG);
    token("{\"alg\":\"ES256\"}", GOOD_CLAIMS, SIGN_ES256, tok);
    assert_int_equal(verify(K.rs256, tok), JWT_BAD_ALG);
    token("{\"alg\":\"HS256\"}", GOOD_CLAIMS, SIGN_HS256, tok);
    assert_int_equal(verify(K.rs256, tok), JWT_BAD_ALG);
    token("{\"alg\":\"none\"}", GOOD_CLAIMS, SIGN_NONE, tok);
    assert_int_equal(verify(K.hs256, tok), JWT_BAD_ALG);
}

static void
expect_malformed(const char *tok, enum jwt_result want)
{
    char *copy = malloc(strlen(tok) + 1); /* heap copy, no NUL read: ASan sees an over-read */
    char out[16];
    size_t out_len;
    enum jwt_result r;

    assert_non_null(copy);
    memcpy(copy, tok, strlen(tok));
    r = jwt_verify(K.hs256, &policy, copy, strlen(tok), "sub", out, sizeof(out), &out_len);
    free(copy);
    if (r != want) {
        fail_msg("\"%.60s\": got %s, want %s", tok, jwt_result_name(r), jwt_result_name(want));
    }
}

static void
expect_refused(const char *tok)
{
    char out[16];
    size_t out_len;

    assert_int_not_equal(
        jwt_verify(K.hs256, &policy, tok, strlen(tok), "sub", out, sizeof(out), &out_len), JWT_OK);
}

static void
test_truncated_and_bad_base64(void **state)
{
    char tok[TOK_CAP], cut[TOK_CAP + 16]; /* room for tok plus two more parts */
    size_t len;

    (void)state;
    token("{\"alg\":\"HS256\"}", GOOD_CLAIMS, SIGN_HS256, tok);
    len = strlen(tok);
    /* truncated: the signature part gone, or some of it, or the token cut mid-payload */
    memcpy(cut, tok, len);
    cut[strrchr(tok, '.') - tok] = '\0';
    expect_malformed(cut, JWT_MALFORMED);
    cut[strrchr(tok, '.') - tok + 1] = '\0';
    expect_malformed(cut, JWT_MALFORMED);
    for (size_t n = 1; n < len; n++) {
        memcpy(cut, tok, len - n);
        cut[len - n] = '\0';
        expect_refused(cut);
    }
    memcpy(cut, tok, 30);
    cut[30] = '\0';
    expect_malformed(cut, JWT_MALFORMED);
    expect_malformed("", JWT_MALFORMED);
    expect_malformed("..", JWT_MALFORMED);
    /* bad base64: standard alphabet, padding, a space, a length of 4n+1, non-zero spare bits */
    expect_malformed("eyJhbGciOiJIUzI1NiJ9+.e30.AAAA", JWT_MALFORMED);
    expect_malformed("eyJhbGciOiJIUzI1NiJ9==.e30.AAAA", JWT_MALFORMED);
    expect_malformed("eyJhbGciOiJIUzI1NiJ9 .e30.AAAA", JWT_MALFORMED);
    expect_malformed("eyJhbGciOiJIUzI1NiJ9A.e30.AAAA", JWT_MALFORMED);
    expect_malformed("eyJhbGciOiJIUzI1NiJ8.e30.AAAA", JWT_MALFORMED);
    memcpy(cut, tok, len + 1);
    cut[len - 1] = '*';
    expect_malformed(cut, JWT_MALFORMED);
    /* five parts: a JWE, which we do not take */
    snprintf(cut, sizeof(cut), "%s.AAAA.AAAA", tok);
    expect_malformed(cut, JWT_MALFORMED);
    /* a flipped payload byte: the signature no longer matches */
    memcpy(cut, tok, len + 1);
    cut[strchr(tok, '.') - tok + 2] ^= 1;
    expect_malformed(cut, JWT_BAD_SIGNATURE);
}

static void
test_oversized_token_is_refused(void **state)
{
    char *tok = malloc(JWT_MAX_TOKEN + 2);

    (void)state;
    assert_non_null(tok);
    memset(tok, 'A', JWT_MAX_TOKEN + 1);
    tok[10] = tok[20] = '.';
    tok[JWT_MAX_TOKEN + 1] = '\0';
    expect_malformed(tok, JWT_MALFORMED);
    free(tok);
}

/* ---- the jwt:CLAIM key rule ------------------------------------------------ */

/* Runs rules "jwt:sub" then "query:user" on a GET of TARGET with FIELDS; the key into KEY. */
static enum key_result
rule_on(const char *target, const char *fields, char *key, enum jwt_result *why)
{
    static struct head head;
    struct conf_key_rule rules[2] = {
        { .source = CONF_KEY_JWT, .name = "sub", .name_len = 3 },
        { .source = CONF_KEY_QUERY, .name = "user", .name_len = 4 },
    };
    struct key_jwt jwt = { .key = K.rs256, .policy = policy, .result = JWT_OK };
    char *text = malloc(TOK_CAP * 2);
    size_t out_len = 0;
    int len;
    enum key_result r;

    assert_non_null(text);
    len = snprintf(text, TOK_CAP * 2, "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n", target, fields);
    assert_int_equal(head_parse(text, (size_t)len, &head, NULL), HEAD_DONE);
    r = key_extract_with(&head, rules, 2, &jwt, key, 16, &out_len);
    key[out_len] = '\0';
    *why = jwt.result;
    free(text);
    return r;
}

static void
test_rule_reads_all_three_places(void **state)
{
    char tok[TOK_CAP], fields[TOK_CAP + 128], target[TOK_CAP + 64], key[32];
    enum jwt_result why;

    (void)state;
    token("{\"alg\":\"RS256\"}", GOOD_CLAIMS, SIGN_RS256, tok);
    snprintf(fields, sizeof(fields), "Authorization: bearer   %s\r\n", tok);
    assert_int_equal(rule_on("/?user=bob", fields, key, &why), KEY_FOUND);
    assert_string_equal(key, "alice");
    snprintf(target, sizeof(target), "/ws?x=1&access_token=%s&user=bob", tok);
    assert_int_equal(rule_on(target, "", key, &why), KEY_FOUND);
    assert_string_equal(key, "alice");
    snprintf(fields, sizeof(fields), "Sec-WebSocket-Protocol: chat.v1, access_token.%s\r\n", tok);
    assert_int_equal(rule_on("/?user=bob", fields, key, &why), KEY_FOUND);
    assert_string_equal(key, "alice");
}

static void
test_rule_no_token_falls_through_bad_token_does_not(void **state)
{
    char tok[TOK_CAP], fields[TOK_CAP + 128], key[32];
    enum jwt_result why;

    (void)state;
    /* no token anywhere (Basic is not a bearer token): the next rule */
    assert_int_equal(rule_on("/?user=bob", "Authorization: Basic Ym9iOnB3\r\n", key, &why),
                     KEY_FOUND);
    assert_string_equal(key, "bob");
    assert_int_equal(rule_on("/?user=bob", "Sec-WebSocket-Protocol: chat\r\n", key, &why),
                     KEY_FOUND);
    assert_string_equal(key, "bob");
    /* a bad token with ?user=bob: 401, never bob's server */
    token("{\"alg\":\"RS256\"}", GOOD_CLAIMS, SIGN_RS_OTHER, tok);
    snprintf(fields, sizeof(fields), "Authorization: Bearer %s\r\n", tok);
    assert_int_equal(rule_on("/?user=bob", fields, key, &why), KEY_UNAUTHORIZED);
    assert_int_equal(why, JWT_BAD_SIGNATURE);
    assert_int_equal(rule_on("/?user=bob", "Authorization: Bearer \r\n", key, &why),
                     KEY_UNAUTHORIZED);
    assert_int_equal(rule_on("/?user=bob&access_token=", "", key, &why), KEY_UNAUTHORIZED);
    /* a claim over max_key_bytes, or with a control byte: 400 like any key */
    token("{\"alg\":\"RS256\"}",
          "{\"sub\":\"0123456789abcdefX\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}",
          SIGN_RS256, tok);
    snprintf(fields, sizeof(fields), "Authorization: Bearer %s\r\n", tok);
    assert_int_equal(rule_on("/", fields, key, &why), KEY_BAD);
    token("{\"alg\":\"RS256\"}",
          "{\"sub\":\"a\\r\\nX-Evil: 1\",\"aud\":\"chat\",\"iss\":\"https://id.example.com/\"}",
          SIGN_RS256, tok);
    snprintf(fields, sizeof(fields), "Authorization: Bearer %s\r\n", tok);
    assert_int_equal(rule_on("/", fields, key, &why), KEY_BAD);
}

/* Without a verifier (key_extract), a jwt: rule that finds a token refuses it. */
static void
test_rule_without_key_refuses(void **state)
{
    static struct head head;
    static const char text[] = "GET /?access_token=a.b.c&user=bob HTTP/1.1\r\nHost: h\r\n\r\n";
    struct conf_key_rule rules[2] = {
        { .source = CONF_KEY_JWT, .name = "sub", .name_len = 3 },
        { .source = CONF_KEY_QUERY, .name = "user", .name_len = 4 },
    };
    char key[16];
    size_t len;

    (void)state;
    assert_int_equal(head_parse(text, sizeof(text) - 1, &head, NULL), HEAD_DONE);
    assert_int_equal(key_extract(&head, rules, 2, key, sizeof(key), &len), KEY_UNAUTHORIZED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_type_fixes_the_algorithm),
        cmocka_unit_test(test_bad_key_files_are_refused),
        cmocka_unit_test(test_key_load_reads_the_file),
        cmocka_unit_test(test_valid_tokens_give_the_claim),
        cmocka_unit_test(test_es256_every_signature_shape),
        cmocka_unit_test(test_bad_tokens_are_refused),
        cmocka_unit_test(test_leeway_and_audience_array),
        cmocka_unit_test(test_algorithm_confusion),
        cmocka_unit_test(test_truncated_and_bad_base64),
        cmocka_unit_test(test_oversized_token_is_refused),
        cmocka_unit_test(test_rule_reads_all_three_places),
        cmocka_unit_test(test_rule_no_token_falls_through_bad_token_does_not),
        cmocka_unit_test(test_rule_without_key_refuses),
    };

    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
