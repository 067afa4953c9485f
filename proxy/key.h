/*
 * Routing key extraction (DESIGN §3 step 2): the configured rules, first match
 * wins. Pure: no I/O, no allocation.
 */
#ifndef WSRING_PROXY_KEY_H
#define WSRING_PROXY_KEY_H

#include <stddef.h>

struct conf_key_rule;
struct head;

enum key_result {
    KEY_FOUND = 0, /* OUT holds the key */
    KEY_MISSING,   /* no rule matched: apply key_missing */
    KEY_BAD        /* a matching value is too long, holds a control byte or bad %-escape: 400 */
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

#endif /* WSRING_PROXY_KEY_H */
