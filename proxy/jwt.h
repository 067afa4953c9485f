/*
 * Verified JWTs for `key jwt:CLAIM` (DESIGN §12, RFC 7519 / 7515 / 7518):
 * compact JWS only, HS256, RS256 or ES256, the algorithm fixed by the key
 * (never by the token). Verification is pure (the clock comes in the policy)
 * and allocates only inside jansson and OpenSSL; a loaded key is immutable and
 * shared read-only by every worker thread.
 */
#ifndef WSRING_PROXY_JWT_H
#define WSRING_PROXY_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN    8192 /* bytes of a compact token we look at; longer ones are refused */
#define JWT_MIN_SECRET   32   /* RFC 7518 s3.2: an HS256 key at least as long as the hash */
#define JWT_MIN_RSA_BITS 2048 /* RFC 7518 s3.3 */

struct jwt_key;

enum jwt_alg {
    JWT_HS256 = 0, /* HMAC SHA-256 with a shared secret */
    JWT_RS256,     /* RSASSA-PKCS1-v1_5 SHA-256 with an RSA public key */
    JWT_ES256,     /* ECDSA P-256 SHA-256, JOSE raw r||s signature */
    JWT_ALG_COUNT  /* must stay last */
};

enum jwt_result {
    JWT_OK = 0,           /* verified; the claim is in OUT */
    JWT_MALFORMED,        /* not three base64url parts, bad JSON, exp/nbf not numbers, too long */
    JWT_BAD_ALG,          /* alg none, unknown, or not the key's algorithm; or a crit header */
    JWT_BAD_SIGNATURE,    /* the signature does not verify */
    JWT_EXPIRED,          /* now >= exp + leeway */
    JWT_NOT_YET_VALID,    /* now + leeway < nbf */
    JWT_BAD_ISSUER,       /* jwt_issuer set and iss is missing or different */
    JWT_BAD_AUDIENCE,     /* jwt_audience set and aud is missing or does not hold it */
    JWT_NO_CLAIM,         /* the claim is absent or the empty string */
    JWT_CLAIM_NOT_STRING, /* the claim is a number, object, ...: DESIGN §12 takes strings only */
    JWT_CLAIM_TOO_LONG,   /* longer than OUT_CAP (max_key_bytes): a 400 like any long key */
    JWT_RESULT_COUNT      /* must stay last */
};

/* What a token must satisfy besides its signature. */
struct jwt_policy {
    const char *audience; /* borrowed or NULL */
    const char *issuer;   /* borrowed or NULL */
    int64_t leeway_sec;   /* allowed clock skew on exp and nbf */
    int64_t now_sec;      /* the time to check against (Unix seconds) */
};

/*
 * Builds a key from the LEN bytes of a key file: a PEM public key ("BEGIN
 * PUBLIC KEY": RSA of at least JWT_MIN_RSA_BITS -> RS256, EC P-256 -> ES256),
 * or else an HS256 secret, the bytes less one trailing newline (at least
 * JWT_MIN_SECRET). Returns NULL with a phrase in *WHY ("holds an unsupported
 * key type ...") that the caller prefixes with the file. No I/O.
 */
struct jwt_key *jwt_key_parse(const uint8_t *bytes, size_t len, const char **why);
/* Reads PATH and parses it. Returns NULL with "cannot read: ..." or jwt_key_parse's phrase in ERR.
 */
struct jwt_key *jwt_key_load(const char *path, char *err, size_t err_len);
/* Accepts NULL. */
void jwt_key_destroy(struct jwt_key *key);
enum jwt_alg jwt_key_alg(const struct jwt_key *key);

/*
 * Verifies the LEN-byte compact TOKEN with KEY under POLICY, then writes the
 * string claim CLAIM (UTF-8, not NUL-terminated) to OUT (at most OUT_CAP
 * bytes) and its length to *OUT_LEN. Safe from any thread on a shared KEY.
 */
enum jwt_result jwt_verify(const struct jwt_key *key, const struct jwt_policy *policy,
                           const char *token, size_t len, const char *claim, char *out,
                           size_t out_cap, size_t *out_len);
/* A short name for R, for logs ("expired"). */
const char *jwt_result_name(enum jwt_result r);

#endif /* WSRING_PROXY_JWT_H */
