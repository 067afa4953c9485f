/*
 * Routing key extraction (DESIGN §3 step 2): the configured rules, first match
 * wins. Pure: no I/O, no allocation.
 */
#ifndef WSRING_PROXY_KEY_H
#define WSRING_PROXY_KEY_H

#include <stddef.h>

#include "proxy/jwt.h"

struct conf_key_rule;
struct head;

enum key_result {
    KEY_FOUND = 0,   /* OUT holds the key */
    KEY_MISSING,     /* no rule matched: apply key_missing */
    KEY_BAD,         /* a matching value is too long, holds a control byte or bad %-escape: 400 */
    KEY_UNAUTHORIZED /* a jwt: rule found a token that does not verify: 401, no next rule */
};

/* What jwt: rules verify with, and (out) why the last token failed. */
struct key_jwt {
    const struct jwt_key *key; /* borrowed; NULL: every token is refused */
    struct jwt_policy policy;
    enum jwt_result result; /* out: the verdict on the token a jwt: rule found */
};

/*
 * Tries RULES in order on HEAD. query: and path: values are percent-decoded
 * (query also turns '+' into a space, as form encoding does); header: and
 * cookie: values are taken verbatim. An empty value does not match. The
 * decoded key is written to OUT (at most OUT_CAP bytes, the max_key_bytes
 * limit; not NUL-terminated) and its length to *OUT_LEN. A longer key or one
 * holding a byte < 0x20 or 0x7f is KEY_BAD, so a key can never inject a header.
 */
enum key_result key_extract(const struct head *head, const struct conf_key_rule *rules,
                            size_t nrules, char *out, size_t out_cap, size_t *out_len);
/*
 * key_extract() with jwt:CLAIM rules verified by JWT (may be NULL when RULES
 * hold none). A jwt: rule takes the token from "Authorization: Bearer", else
 * the access_token query parameter (verbatim), else a Sec-WebSocket-Protocol
 * entry "access_token.<JWT>"; no token there means the rule does not match.
 * A token that fails jwt_verify() is KEY_UNAUTHORIZED (why in JWT->result);
 * a claim longer than OUT_CAP or holding a control byte is KEY_BAD.
 */
enum key_result key_extract_with(const struct head *head, const struct conf_key_rule *rules,
                                 size_t nrules, struct key_jwt *jwt, char *out, size_t out_cap,
                                 size_t *out_len);

#endif /* WSRING_PROXY_KEY_H */
