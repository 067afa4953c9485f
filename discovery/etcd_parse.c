/*
 * etcd v3 JSON gateway answers -> member sets (DESIGN §11, DISCOVERY §2).
 * jansson does the JSON; references: json_loadb's root is ours (one
 * json_decref at the end), everything reached from it is borrowed, so
 * strings are copied into the member set before the root goes.
 */
#include "discovery/etcd_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ring/member_set.h"

#define ETCD_PARSE_MAX_HOST 253  /* the longest DNS name; every IP literal is shorter */
#define ETCD_PARSE_MAX_URL  2048 /* public_url */
#define ETCD_PARSE_MAX_VAL  (1u << 20)

_Static_assert(MEMBER_SET_MAX_WEIGHT == 1000, "update the weight phrase below");

static const char etcd_parse_enomem[] = "out of memory";

static const char etcd_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
etcd_base64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;

        v |= i + 1 < len ? (unsigned)in[i + 1] << 8 : 0;
        v |= i + 2 < len ? in[i + 2] : 0;
        out[o++] = etcd_b64[(v >> 18) & 63];
        out[o++] = etcd_b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? etcd_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? etcd_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int
etcd_b64_value(char c)
{
    const char *p = c != '\0' ? strchr(etcd_b64, c) : NULL;

    return p != NULL ? (int)(p - etcd_b64) : -1;
}

long
etcd_base64_decode(const char *in, size_t len, unsigned char *out)
{
    size_t o = 0;

    if (len % 4 != 0) {
        return -1; /* Go's StdEncoding wants the padding */
    }
    for (size_t i = 0; i < len; i += 4) {
        int a = etcd_b64_value(in[i]), b = etcd_b64_value(in[i + 1]);
        bool last = i + 4 == len;
        int c = last && in[i + 2] == '=' && in[i + 3] == '=' ? -2 : etcd_b64_value(in[i + 2]);
        int d = last && in[i + 3] == '=' ? -2 : etcd_b64_value(in[i + 3]);

        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2)) {
            return -1;
        }
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        if (c >= 0) {
            out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
        } else if ((b & 15) != 0) {
            return -1; /* non-canonical trailing bits (Go's Strict would refuse them too) */
        }
        if (d >= 0) {
            out[o++] = (unsigned char)((c & 3) << 6 | d);
        } else if (c >= 0 && (c & 3) != 0) {
            return -1;
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* Decodes the base64 string VALUE into a new NUL-terminated buffer; *LEN gets its length. */
static const char *
etcd_parse_b64(const json_t *value, unsigned char **out, size_t *len, const char *bad)
{
    size_t n;
    long got;

    if (!json_is_string(value)) {
        return bad;
    }
    n = json_string_length(value);
    if (n > ETCD_PARSE_MAX_VAL) {
        return bad;
    }
    *out = malloc(3 * n / 4 + 1);
    if (*out == NULL) {
        return etcd_parse_enomem;
    }
    got = etcd_base64_decode(json_string_value(value), n, *out);
    if (got < 0) {
        free(*out);
        *out = NULL;
        return bad;
    }
    *len = (size_t)got;
    return NULL;
}

/* An int64 the gateway writes as a decimal string ("4"); a bare integer is accepted too. */
static bool
etcd_parse_int64(const json_t *value, int64_t *out)
{
    const char *s;
    int64_t v = 0;

    if (json_is_integer(value)) {
        *out = (int64_t)json_integer_value(value);
        return *out >= 0;
    }
    if (!json_is_string(value) || json_string_length(value) == 0 ||
        json_string_length(value) > 19) {
        return false;
    }
    s = json_string_value(value);
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* header.revision of ROOT (a range answer or a watch result) into *REVISION; 0 when absent. */
static const char *
etcd_parse_header(const json_t *obj, int64_t *revision, bool required)
{
    const json_t *header = json_object_get(obj, "header"), *rev;

    *revision = 0;
    if (header == NULL && !required) {
        return NULL;
    }
    if (!json_is_object(header)) {
        return "no header object";
    }
    rev = json_object_get(header, "revision");
    if (rev == NULL && !required) {
        return NULL;
    }
    if (!etcd_parse_int64(rev, revision) || *revision <= 0) {
        return "header.revision is not a positive int64";
    }
    return NULL;
}

/* Sets *ID to a new copy of KEY (base64) after PREFIX. */
static const char *
etcd_parse_id(const json_t *key, const char *prefix, char **id)
{
    size_t plen = strlen(prefix), len = 0;
    unsigned char *raw = NULL;
    const char *what = etcd_parse_b64(key, &raw, &len, "kv.key is not base64 text");

    if (what != NULL) {
        return what;
    }
    if (len < plen || memcmp(raw, prefix, plen) != 0) {
        what = "kv.key is outside the prefix";
    } else if (len == plen) {
        what = "kv.key is the prefix itself (no member id after it)";
    } else if (len - plen > ETCD_PARSE_MAX_ID) {
        what = "member id (the key after the prefix) is longer than 512 bytes";
    }
    for (size_t i = plen; what == NULL && i < len; i++) {
        if (raw[i] < 0x20 || raw[i] == 0x7f) {
            what = "member id (the key after the prefix) has a control byte";
        }
    }
    if (what != NULL) {
        free(raw);
        return what;
    }
    memmove(raw, raw + plen, len - plen + 1);
    *id = (char *)raw;
    return NULL;
}

static bool
etcd_parse_is_host_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* Addr: "host:port" or "[v6]:port", port 1..65535, host 1..253 host bytes or an IPv6 literal. */
static const char *
etcd_parse_addr(const json_t *value, const char **addr)
{
    static const char bad[] = "Addr is not \"host:port\" with a port in 1..65535";
    const char *s, *colon, *host;
    size_t len, host_len, digits;
    long port;

    if (!json_is_string(value)) {
        return "Addr is missing or not a string";
    }
    s = json_string_value(value);
    len = json_string_length(value);
    colon = strrchr(s, ':');
    if (strlen(s) != len || colon == NULL || colon == s) {
        return bad;
    }
    digits = strspn(colon + 1, "0123456789");
    if (digits == 0 || digits > 5 || colon[1 + digits] != '\0' || colon[1] == '0') {
        return bad;
    }
    port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535) {
        return bad;
    }
    host = s;
    host_len = (size_t)(colon - s);
    if (host[0] == '[') {
        char text[INET6_ADDRSTRLEN];
        struct in6_addr bin;

        if (host_len < 4 || host[host_len - 1] != ']' || host_len - 2 >= sizeof(text)) {
            return "Addr has a bad [IPv6] host";
        }
        memcpy(text, host + 1, host_len - 2);
        text[host_len - 2] = '\0';
        if (inet_pton(AF_INET6, text, &bin) != 1) {
            return "Addr has a bad [IPv6] host";
        }
    } else {
        if (host_len > ETCD_PARSE_MAX_HOST) {
            return "Addr's host is longer than 253 bytes";
        }
        for (size_t i = 0; i < host_len; i++) {
            if (!etcd_parse_is_host_byte(host[i])) {
                return "Addr's host has a byte other than a letter, a digit or one of \".-_\" "
                       "(write IPv6 as [addr]:port)";
            }
        }
    }
    *addr = s;
    return NULL;
}

/* Metadata.weight: a JSON integer or a decimal string (Spring writes "2"); absent or null: 1. */
static const char *
etcd_parse_weight(const json_t *meta, uint32_t *weight)
{
    static const char bad[] = "Metadata.weight is not an integer in 1..1000";
    const json_t *w = json_is_object(meta) ? json_object_get(meta, "weight") : NULL;
    int64_t n = 0;

    *weight = 1;
    if (w == NULL || json_is_null(w)) {
        return NULL;
    }
    if (!etcd_parse_int64(w, &n) || n < 1 || n > (int64_t)MEMBER_SET_MAX_WEIGHT) {
        return bad;
    }
    *weight = (uint32_t)n;
    return NULL;
}

static const char *
etcd_parse_public_url(const json_t *meta, const char **url)
{
    const json_t *u = json_is_object(meta) ? json_object_get(meta, "public_url") : NULL;
    const char *s;

    *url = NULL;
    if (u == NULL || json_is_null(u)) {
        return NULL;
    }
    if (!json_is_string(u)) {
        return "Metadata.public_url is not a string";
    }
    s = json_string_value(u);
    if (json_string_length(u) == 0 || json_string_length(u) > ETCD_PARSE_MAX_URL) {
        return "Metadata.public_url is empty or longer than 2048 bytes";
    }
    for (size_t i = 0; i < json_string_length(u); i++) {
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
            return "Metadata.public_url has a space or a control byte";
        }
    }
    *url = s;
    return NULL;
}

/* Adds the member written as VALUE_B64 under ID to SET (which must not hold ID). */
static const char *
etcd_parse_member(struct member_set *set, const char *id, const json_t *value_b64)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    const char *what = etcd_parse_b64(value_b64, &raw, &len, "kv.value is not base64 text");
    json_error_t error;
    json_t *root = NULL;
    const json_t *op, *meta;
    const char *addr = NULL, *url = NULL;
    uint32_t weight = 1;

    if (what != NULL) {
        return what;
    }
    root = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &error);
    free(raw);
    if (!json_is_object(root)) {
        json_decref(root);
        return "kv.value is not a JSON object (want {\"Op\":0,\"Addr\":\"host:port\",...})";
    }
    op = json_object_get(root, "Op");
    meta = json_object_get(root, "Metadata");
    if (op != NULL && !(json_is_integer(op) && json_integer_value(op) == 0)) {
        what = "kv.value has an Op other than 0 (Add)";
    } else if (meta != NULL && !json_is_null(meta) && !json_is_object(meta)) {
        what = "kv.value's Metadata is not an object";
    }
    if (what == NULL) {
        what = etcd_parse_addr(json_object_get(root, "Addr"), &addr);
    }
    if (what == NULL) {
        what = etcd_parse_weight(meta, &weight);
    }
    if (what == NULL) {
        what = etcd_parse_public_url(meta, &url);
    }
    if (what == NULL && member_set_add(set, id, addr, weight) == -1) {
        what = errno == EEXIST ? "duplicate key" : etcd_parse_enomem;
    }
    if (what == NULL && url != NULL && member_set_set_public_url(set, id, url) == -1) {
        what = etcd_parse_enomem;
    }
    json_decref(root);
    return what;
}

/* A kv object of a range answer or a PUT event: adds it to SET. */
static const char *
etcd_parse_kv(struct member_set *set, const json_t *kv, const char *prefix)
{
    char *id = NULL;
    const char *what;

    if (!json_is_object(kv)) {
        return "kv is not an object";
    }
    what = etcd_parse_id(json_object_get(kv, "key"), prefix, &id);
    if (what == NULL) {
        what = etcd_parse_member(set, id, json_object_get(kv, "value"));
    }
    free(id);
    return what;
}

struct member_set *
etcd_parse_range(const char *body, size_t len, const char *prefix, int64_t *revision,
                 const char **why)
{
    json_error_t error;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &error);
    const json_t *kvs, *more;
    struct member_set *set = NULL;
    const char *what = NULL;

    *revision = 0;
    if (!json_is_object(root)) {
        *why = root == NULL && json_error_code(&error) == json_error_out_of_memory
                   ? etcd_parse_enomem
                   : "is not a JSON object";
        json_decref(root);
        return NULL;
    }
    kvs = json_object_get(root, "kvs");
    more = json_object_get(root, "more");
    what = etcd_parse_header(root, revision, true);
    if (what == NULL && json_is_true(more)) {
        what = "is partial (\"more\":true)";
    } else if (what == NULL && kvs != NULL && !json_is_array(kvs)) {
        what = "kvs is not an array";
    } else if (what == NULL && (set = member_set_create()) == NULL) {
        what = etcd_parse_enomem;
    }
    for (size_t i = 0; what == NULL && i < json_array_size(kvs); i++) {
        what = etcd_parse_kv(set, json_array_get(kvs, i), prefix);
    }
    json_decref(root);
    if (what != NULL) {
        member_set_destroy(set);
        set = NULL;
        *revision = 0;
    }
    *why = what;
    return set;
}

/* A copy of SET without ID (which may be absent), or NULL on ENOMEM. */
static struct member_set *
etcd_parse_without(const struct member_set *set, const char *id)
{
    struct member_set *out = member_set_create();

    for (size_t i = 0; out != NULL && i < member_set_count(set); i++) {
        const struct member *m = member_set_at(set, i);

        if (strcmp(m->id, id) == 0) {
            continue;
        }
        if (member_set_add(out, m->id, m->address, m->weight) == -1 ||
            (m->public_url != NULL && member_set_set_public_url(out, m->id, m->public_url) == -1)) {
            member_set_destroy(out);
            out = NULL;
        }
    }
    return out;
}

/* Applies one watch event to *SET (replaced by a new set). */
static const char *
etcd_parse_event(struct member_set **set, const json_t *event, const char *prefix)
{
    const json_t *type = json_object_get(event, "type"), *kv = json_object_get(event, "kv");
    bool put;
    char *id = NULL;
    struct member_set *next;
    const char *what;

    if (!json_is_object(event)) {
        return "event is not an object";
    }
    if (type == NULL || (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0)) {
        put = true; /* proto3 JSON omits the default enum value: no type means PUT */
    } else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0) {
        put = false;
    } else {
        return "event.type is not PUT or DELETE";
    }
    if (!json_is_object(kv)) {
        return "event has no kv object";
    }
    what = etcd_parse_id(json_object_get(kv, "key"), prefix, &id);
    if (what != NULL) {
        return what;
    }
    next = etcd_parse_without(*set, id);
    if (next == NULL) {
        free(id);
        return etcd_parse_enomem;
    }
    if (put) {
        what = etcd_parse_member(next, id, json_object_get(kv, "value"));
    }
    free(id);
    if (what != NULL) {
        member_set_destroy(next);
        return what;
    }
    member_set_destroy(*set);
    *set = next;
    return NULL;
}

static const char *
etcd_parse_result(const json_t *result, const char *prefix, const struct member_set *current,
                  struct etcd_watch_msg *msg)
{
    const json_t *events = json_object_get(result, "events");
    const char *what = etcd_parse_header(result, &msg->revision, false);

    if (what != NULL) {
        return what;
    }
    if (json_is_true(json_object_get(result, "canceled"))) {
        const json_t *compact = json_object_get(result, "compact_revision");

        msg->kind = ETCD_WATCH_CANCELED;
        if (compact != NULL && !etcd_parse_int64(compact, &msg->compact_revision)) {
            return "compact_revision is not an int64";
        }
        return NULL;
    }
    if (events != NULL && !json_is_array(events)) {
        return "events is not an array";
    }
    if (json_array_size(events) == 0) {
        msg->kind = json_is_true(json_object_get(result, "created")) ? ETCD_WATCH_CREATED
                                                                     : ETCD_WATCH_PROGRESS;
        return NULL;
    }
    if (msg->revision == 0) {
        return "events without header.revision";
    }
    msg->kind = ETCD_WATCH_EVENTS;
    msg->members = member_set_copy(current);
    if (msg->members == NULL) {
        return etcd_parse_enomem;
    }
    for (size_t i = 0; i < json_array_size(events); i++) {
        what = etcd_parse_event(&msg->members, json_array_get(events, i), prefix);
        if (what != NULL) {
            return what;
        }
        msg->nevents++;
    }
    return NULL;
}

int
etcd_parse_watch(const char *line, size_t len, const char *prefix, const struct member_set *current,
                 struct etcd_watch_msg *msg, const char **why)
{
    json_error_t error;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &error);
    const json_t *result;
    const char *what = NULL;

    memset(msg, 0, sizeof(*msg));
    if (!json_is_object(root)) {
        what = root == NULL && json_error_code(&error) == json_error_out_of_memory
                   ? etcd_parse_enomem
                   : "is not a JSON object";
    } else if (json_object_get(root, "error") != NULL) {
        what = "is an error from the gateway";
    } else if (!json_is_object(result = json_object_get(root, "result"))) {
        what = "has no result object";
    } else {
        what = etcd_parse_result(result, prefix, current, msg);
    }
    json_decref(root);
    if (what != NULL) {
        member_set_destroy(msg->members);
        memset(msg, 0, sizeof(*msg));
        *why = what;
        return -1;
    }
    *why = NULL;
    return 0;
}

int
etcd_parse_error(const char *body, size_t len, char *msg, size_t msg_len)
{
    json_error_t error;
    json_t *root = json_loadb(body, len, 0, &error);
    const json_t *code, *text;
    int rc = -1;

    if (msg_len > 0) {
        msg[0] = '\0';
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    code = json_object_get(root, "code");
    text = json_object_get(root, "message");
    if (!json_is_string(text)) {
        text = json_object_get(root, "error");
    }
    if (json_is_integer(code) && json_integer_value(code) >= 0 &&
        json_integer_value(code) <= 1000) {
        rc = (int)json_integer_value(code);
        if (json_is_string(text) && msg_len > 0) {
            snprintf(msg, msg_len, "%s", json_string_value(text));
            for (char *p = msg; *p != '\0'; p++) {
                if ((unsigned char)*p < 0x20 || *p == '"' || *p == 0x7f) {
                    *p = '\'';
                }
            }
        }
    }
    json_decref(root);
    return rc;
}

char *
etcd_parse_token(const char *body, size_t len, const char **why)
{
    json_error_t error;
    json_t *root = json_loadb(body, len, 0, &error);
    const json_t *token = json_object_get(root, "token");
    char *copy = NULL;

    *why = NULL;
    if (!json_is_string(token) || json_string_length(token) == 0 ||
        json_string_length(token) > 4096) {
        *why = "no token in the answer";
    } else {
        const char *s = json_string_value(token);

        for (size_t i = 0; i < json_string_length(token); i++) {
            if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
                *why = "the token has a space or a control byte";
            }
        }
        if (*why == NULL && (copy = strdup(s)) == NULL) {
            *why = etcd_parse_enomem;
        }
    }
    json_decref(root);
    return copy;
}
