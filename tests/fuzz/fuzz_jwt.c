/*
 * fuzz_jwt.c: libFuzzer target for proxy/jwt.c. The input is used three
 * ways: as a key file (jwt_key_parse must accept or give a reason), as a raw
 * token (it must never verify: the fuzzer cannot forge an HMAC), and split at
 * its first NUL into a JOSE header and claims that this target encodes and
 * signs with the HS256 test secret, so the claims checks behind the signature
 * are reached. Properties: a verified claim fits the buffer; a token whose
 * header does not say exactly HS256 never verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proxy/jwt.h"

#define FUZZ_SECRET "fuzz-only-secret-0123456789abcdef"
#define FUZZ_CAP    (2 * JWT_MAX_TOKEN)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
fuzz_b64url(const uint8_t *in, size_t len, char *out)
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
        acc &= 0xff;
    }
    if (bits > 0) {
        out[n++] = abc[(acc << (6 - bits)) & 63];
    }
    return n;
}

static void
fuzz_check(const struct jwt_key *key, const char *tok, size_t len, enum jwt_result *r)
{
    static const struct jwt_policy policy = { .audience = "chat",
                                              .leeway_sec = 60,
                                              .now_sec = 1700000000 };
    char out[32];
    size_t out_len = 0;

    *r = jwt_verify(key, &policy, tok, len, "sub", out, sizeof(out), &out_len);
    if ((*r == JWT_OK) != (out_len > 0) || out_len > sizeof(out)) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct jwt_key *key;
    static char *tok;
    const char *why = NULL;
    struct jwt_key *parsed = jwt_key_parse(data, size, &why);
    const uint8_t *nul = memchr(data, '\0', size);
    enum jwt_result r;
    size_t n, hlen;
    unsigned mac_len = 0;
    uint8_t mac[EVP_MAX_MD_SIZE];

    if (parsed == NULL && why == NULL) {
        abort(); /* a refusal always says why */
    }
    jwt_key_destroy(parsed);
    if (key == NULL) {
        key = jwt_key_parse((const uint8_t *)FUZZ_SECRET, strlen(FUZZ_SECRET), &why);
        tok = malloc(FUZZ_CAP);
        if (key == NULL || tok == NULL) {
            abort();
        }
    }
    fuzz_check(key, (const char *)data, size, &r);
    if (r == JWT_OK) {
        abort(); /* raw bytes verified: the HMAC is broken */
    }
    if (nul == NULL || size > JWT_MAX_TOKEN) {
        return 0;
    }
    hlen = (size_t)(nul - data);
    n = fuzz_b64url(data, hlen, tok);
    tok[n++] = '.';
    n += fuzz_b64url(nul + 1, size - hlen - 1, tok + n);
    HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (const uint8_t *)tok, n, mac,
         &mac_len);
    tok[n++] = '.';
    n += fuzz_b64url(mac, mac_len, tok + n);
    fuzz_check(key, tok, n, &r);
    if (r == JWT_OK && memmem(data, hlen, "\"HS256\"", 7) == NULL) {
        abort(); /* verified without the header naming HS256 */
    }
    return 0;
}
