/*
 * Routing key extraction (DESIGN §3 step 2): query:, header:, cookie: and
 * path:N rules over a parsed head, first match wins.
 *
 * Names are compared as raw bytes: a query parameter or cookie name must be
 * spelled in the request exactly as in the rule (no decoding of the name, case
 * kept); header names ignore ASCII case. For every rule the first occurrence
 * of the name decides: if its value is empty the rule does not match and the
 * next rule is tried (a later occurrence of the same name is not looked at).
 *
 * jwt:CLAIM takes a token (not a name) from one of three places and yields
 * the verified claim; a bad token ends the search with KEY_UNAUTHORIZED.
 */
#include "proxy/key.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "proxy/head.h"

/* A byte range inside the head. */
struct key_span {
    const char *p; /* borrowed; into the head's buffer */
    size_t len;
};

/* Where a decoded key goes. */
struct key_out {
    char *buf; /* borrowed; the caller's OUT */
    size_t cap;
    size_t len;
};

enum key_decode {
    KEY_DECODE_NONE = 0, /* verbatim */
    KEY_DECODE_PATH,     /* %XX */
    KEY_DECODE_QUERY     /* %XX and '+' for a space */
};

static int
key_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Appends byte C; refuses controls (DESIGN §3: no header injection) and overflow. */
static enum key_result
key_put(struct key_out *out, unsigned char c)
{
    if (c < 0x20 || c == 0x7f || out->len == out->cap) {
        return KEY_BAD;
    }
    out->buf[out->len++] = (char)c;
    return KEY_FOUND;
}

/* Writes VALUE, decoded as HOW says, to OUT. An empty VALUE is KEY_MISSING. */
static enum key_result
key_emit(struct key_span value, enum key_decode how, struct key_out *out)
{
    out->len = 0;
    if (value.len == 0) {
        return KEY_MISSING;
    }
    for (size_t i = 0; i < value.len; i++) {
        unsigned char c = (unsigned char)value.p[i];

        if (c == '%' && how != KEY_DECODE_NONE) {
            int hi = i + 2 < value.len ? key_hex((unsigned char)value.p[i + 1]) : -1;
            int lo = hi >= 0 ? key_hex((unsigned char)value.p[i + 2]) : -1;

            if (lo < 0) {
                return KEY_BAD;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && how == KEY_DECODE_QUERY) {
            c = ' ';
        }
        if (key_put(out, c) != KEY_FOUND) {
            return KEY_BAD;
        }
    }
    return KEY_FOUND;
}

static bool
key_span_is(struct key_span s, const char *name, size_t name_len)
{
    return s.len == name_len && (name_len == 0 || memcmp(s.p, name, name_len) == 0);
}

/* Returns the index of the first of the bytes in STOPS within S, or S.len. */
static size_t
key_span_find(struct key_span s, const char *stops)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] != '\0' && strchr(stops, s.p[i]) != NULL) {
            return i;
        }
    }
    return s.len;
}

/* Cuts the part of *REST before the first SEP (or all of it) off *REST. */
static struct key_span
key_span_next(struct key_span *rest, char sep)
{
    struct key_span part = { rest->p, 0 };
    const char *at = memchr(rest->p, sep, rest->len);

    part.len = at != NULL ? (size_t)(at - rest->p) : rest->len;
    rest->p += part.len;
    rest->len -= part.len;
    if (rest->len > 0) {
        rest->p++;
        rest->len--;
    }
    return part;
}

static struct key_span
key_span_trim(struct key_span s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) {
        s.len--;
    }
    return s;
}

/* The query of the request-target: after the first '?', up to a '#' (a fragment). */
static struct key_span
key_target_query(const struct head *head)
{
    struct key_span t = { head->target, head->target_len };
    size_t q;

    t.len = key_span_find(t, "#");
    q = key_span_find(t, "?");
    if (q == t.len) {
        t.len = 0;
        return t;
    }
    t.p += q + 1;
    t.len -= q + 1;
    return t;
}

/* The path of an origin-form or absolute-form target ("" for the others). */
static struct key_span
key_target_path(const struct head *head)
{
    struct key_span t = { head->target, head->target_len };
    size_t colon = key_span_find(t, ":/?#");

    /* absolute-form: skip "scheme://authority" */
    if (colon < t.len && t.p[colon] == ':' && t.len - colon >= 3 && t.p[colon + 1] == '/' &&
        t.p[colon + 2] == '/') {
        t.p += colon + 3;
        t.len -= colon + 3;
        size_t path = key_span_find(t, "/?#");
        t.p += path;
        t.len -= path;
    } else if (t.len == 0 || t.p[0] != '/') {
        t.len = 0;
    }
    t.len = key_span_find(t, "?#");
    return t;
}

/* query:NAME, the first NAME=value pair of the query. */
static enum key_result
key_from_query(const struct head *head, const struct conf_key_rule *rule, struct key_out *out)
{
    struct key_span rest = key_target_query(head);

    while (rest.len > 0) {
        struct key_span pair = key_span_next(&rest, '&');
        struct key_span name = key_span_next(&pair, '=');

        if (key_span_is(name, rule->name, rule->name_len)) {
            return key_emit(pair, KEY_DECODE_QUERY, out);
        }
    }
    return KEY_MISSING;
}

/* header:NAME, the first field named NAME, as parsed (OWS trimmed). */
static enum key_result
key_from_header(const struct head *head, const struct conf_key_rule *rule, struct key_out *out)
{
    const struct head_header *h = head_find(head, rule->name, rule->name_len);
    struct key_span value = { NULL, 0 };

    if (h == NULL) {
        return KEY_MISSING;
    }
    value.p = h->value;
    value.len = h->value_len;
    return key_emit(value, KEY_DECODE_NONE, out);
}

/* Looks for cookie NAME in one Cookie field value (RFC 6265 s5.4: "a=1; b=2"). */
static bool
key_cookie_in(struct key_span rest, const struct conf_key_rule *rule, struct key_span *value)
{
    while (rest.len > 0) {
        struct key_span pair = key_span_next(&rest, ';');
        bool has_eq = memchr(pair.p, '=', pair.len) != NULL;
        struct key_span name = key_span_trim(key_span_next(&pair, '='));

        if (has_eq && key_span_is(name, rule->name, rule->name_len)) {
            *value = key_span_trim(pair);
            if (value->len >= 2 && value->p[0] == '"' && value->p[value->len - 1] == '"') {
                value->p++;
                value->len -= 2;
            }
            return true;
        }
    }
    return false;
}

/* True for a field named Cookie, in any ASCII case. */
static bool
key_is_cookie_field(const struct head_header *h)
{
    static const char cookie[] = "cookie";

    if (h->name_len != sizeof(cookie) - 1) {
        return false;
    }
    for (size_t i = 0; i < h->name_len; i++) {
        if ((h->name[i] | 0x20) != cookie[i]) {
            return false;
        }
    }
    return true;
}

/* cookie:NAME, the first cookie NAME over every Cookie field, value verbatim. */
static enum key_result
key_from_cookie(const struct head *head, const struct conf_key_rule *rule, struct key_out *out)
{
    for (size_t i = 0; i < head->nheaders; i++) {
        const struct head_header *h = &head->headers[i];
        struct key_span field = { h->value, h->value_len }, value;

        if (key_is_cookie_field(h) && key_cookie_in(field, rule, &value)) {
            return key_emit(value, KEY_DECODE_NONE, out);
        }
    }
    return KEY_MISSING;
}

/* The credentials of "Authorization: Bearer TOKEN" (RFC 6750 s2.1; the scheme ignores case). */
static bool
key_bearer(const struct head *head, struct key_span *token)
{
    const struct head_header *h = head_find(head, "Authorization", 13);
    struct key_span v;

    if (h == NULL || h->value_len < 6 || strncasecmp(h->value, "Bearer", 6) != 0 ||
        (h->value_len > 6 && h->value[6] != ' ')) {
        return false; /* another scheme (Basic ...): not a token of ours */
    }
    v.p = h->value + 6; /* "Bearer" alone (OWS trimmed) is an empty, hence bad, token */
    v.len = h->value_len - 6;
    *token = key_span_trim(v);
    return true;
}

/* ?access_token=TOKEN (RFC 6750 s2.3), the first one, verbatim. */
static bool
key_query_token(const struct head *head, struct key_span *token)
{
    struct key_span rest = key_target_query(head);

    while (rest.len > 0) {
        struct key_span pair = key_span_next(&rest, '&');
        struct key_span name = key_span_next(&pair, '=');

        if (key_span_is(name, "access_token", 12)) {
            *token = pair;
            return true;
        }
    }
    return false;
}

/* A Sec-WebSocket-Protocol entry "access_token.TOKEN" (browsers cannot set Authorization). */
static bool
key_subprotocol_token(const struct head *head, struct key_span *token)
{
    static const char swp[] = "sec-websocket-protocol";

    for (size_t i = 0; i < head->nheaders; i++) {
        const struct head_header *h = &head->headers[i];
        struct key_span rest = { h->value, h->value_len };

        if (h->name_len != sizeof(swp) - 1 || strncasecmp(h->name, swp, sizeof(swp) - 1) != 0) {
            continue;
        }
        while (rest.len > 0) {
            struct key_span entry = key_span_trim(key_span_next(&rest, ','));

            if (entry.len > 13 && memcmp(entry.p, "access_token.", 13) == 0) {
                token->p = entry.p + 13;
                token->len = entry.len - 13;
                return true;
            }
        }
    }
    return false;
}

/* jwt:CLAIM (DESIGN §12): a present token must verify; no token lets the next rule try. */
static enum key_result
key_from_jwt(const struct head *head, const struct conf_key_rule *rule, struct key_jwt *jwt,
             struct key_out *out)
{
    struct key_span token = { NULL, 0 };
    size_t len = 0;

    if (!key_bearer(head, &token) && !key_query_token(head, &token) &&
        !key_subprotocol_token(head, &token)) {
        return KEY_MISSING;
    }
    if (jwt == NULL) {
        return KEY_UNAUTHORIZED;
    }
    jwt->result = jwt->key == NULL ? JWT_BAD_SIGNATURE
                                   : jwt_verify(jwt->key, &jwt->policy, token.p, token.len,
                                                rule->name, out->buf, out->cap, &len);
    if (jwt->result == JWT_CLAIM_TOO_LONG) {
        return KEY_BAD; /* like any key over max_key_bytes */
    }
    if (jwt->result != JWT_OK) {
        return KEY_UNAUTHORIZED;
    }
    out->len = 0;
    for (size_t i = 0; i < len; i++) {
        if (key_put(out, (unsigned char)out->buf[i]) != KEY_FOUND) {
            return KEY_BAD; /* a control byte: it could inject a header */
        }
    }
    return KEY_FOUND;
}

/* path:N, the N-th segment of the path ("/a/b" has "a" as 1), percent-decoded. */
static enum key_result
key_from_path(const struct head *head, const struct conf_key_rule *rule, struct key_out *out)
{
    struct key_span rest = key_target_path(head), segment = { rest.p, 0 };

    if (rest.len == 0 || rule->segment == 0) {
        return KEY_MISSING;
    }
    rest.p++; /* the leading '/' */
    rest.len--;
    for (unsigned n = 1; n <= rule->segment; n++) {
        if (n > 1 && rest.len == 0) {
            return KEY_MISSING; /* segment N is empty ("/a/") or absent ("/a") */
        }
        segment = key_span_next(&rest, '/');
    }
    return key_emit(segment, KEY_DECODE_PATH, out);
}

enum key_result
key_extract(const struct head *head, const struct conf_key_rule *rules, size_t nrules, char *out,
            size_t out_cap, size_t *out_len)
{
    return key_extract_with(head, rules, nrules, NULL, out, out_cap, out_len);
}

enum key_result
key_extract_with(const struct head *head, const struct conf_key_rule *rules, size_t nrules,
                 struct key_jwt *jwt, char *out, size_t out_cap, size_t *out_len)
{
    struct key_out o = { out, out_cap, 0 };

    for (size_t i = 0; i < nrules; i++) {
        enum key_result r = KEY_MISSING;

        switch (rules[i].source) {
        case CONF_KEY_QUERY:
            r = key_from_query(head, &rules[i], &o);
            break;
        case CONF_KEY_HEADER:
            r = key_from_header(head, &rules[i], &o);
            break;
        case CONF_KEY_COOKIE:
            r = key_from_cookie(head, &rules[i], &o);
            break;
        case CONF_KEY_PATH:
            r = key_from_path(head, &rules[i], &o);
            break;
        case CONF_KEY_JWT:
            r = key_from_jwt(head, &rules[i], jwt, &o);
            break;
        case CONF_KEY_SOURCE_COUNT:
            break;
        }
        if (r != KEY_MISSING) {
            *out_len = r == KEY_FOUND ? o.len : 0;
            return r;
        }
    }
    *out_len = 0;
    return KEY_MISSING;
}
