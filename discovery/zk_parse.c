/*
 * A Curator ServiceInstance (one ZooKeeper node's data) -> one member
 * (DESIGN §11). jansson does the JSON; the root is ours (one json_decref at
 * the end) and everything reached from it is borrowed, so strings are copied
 * into the member set before the root goes.
 */
#include "discovery/zk_parse.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ring/member_set.h"

#define ZK_PARSE_MAX_HOST 253 /* the longest DNS name; every IP literal is shorter */

_Static_assert(MEMBER_SET_MAX_WEIGHT == 1000, "update the weight phrase below");
_Static_assert(ZK_PARSE_MAX_ID == 1024 && ZK_PARSE_MAX_URL == 2048, "update the phrases below");

const char zk_parse_enomem[] = "out of memory";

/* Sets *ID to the instance's "id". */
static const char *
zk_parse_id(const json_t *root, const char **id)
{
    const json_t *value = json_object_get(root, "id");
    size_t len;

    if (!json_is_string(value)) {
        return "id is missing or not a string";
    }
    *id = json_string_value(value);
    len = json_string_length(value);
    if (len == 0) {
        return "id is empty";
    }
    if (len > ZK_PARSE_MAX_ID) {
        return "id is longer than 1024 bytes";
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)(*id)[i];

        if (c < 0x20 || c == 0x7f) {
            return "id has a control byte"; /* also a NUL inside: ids are C strings */
        }
    }
    return NULL;
}

/* Letters, digits, '.', '-', '_' (host names), ':' (IPv6) and '%' (an IPv6 zone). */
static bool
zk_parse_is_host_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr(".-_:%", c) != NULL);
}

/* True when the LEN host bytes at HOST are an IPv6 literal with an optional non-empty "%zone". */
static bool
zk_parse_is_ipv6(const char *host, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    const char *zone = memchr(host, '%', len);
    size_t addr_len = zone == NULL ? len : (size_t)(zone - host);
    size_t zone_len = zone == NULL ? 0 : len - addr_len - 1;
    struct in6_addr bin;

    if (addr_len >= sizeof(text)) {
        return false;
    }
    if (zone != NULL && (zone_len == 0 || memchr(zone + 1, '%', zone_len) != NULL ||
                         memchr(zone + 1, ':', zone_len) != NULL)) {
        return false;
    }
    memcpy(text, host, addr_len);
    text[addr_len] = '\0';
    return inet_pton(AF_INET6, text, &bin) == 1;
}

/* Sets *PORT to "port", 1..65535. */
static const char *
zk_parse_port(const json_t *root, unsigned *port)
{
    const json_t *value = json_object_get(root, "port");
    json_int_t n;

    if (value == NULL || json_is_null(value)) {
        return json_is_integer(json_object_get(root, "sslPort"))
                   ? "port is missing (only an sslPort; wsring connects in plain TCP)"
                   : "port is missing";
    }
    n = json_is_integer(value) ? json_integer_value(value) : 0;
    if (n < 1 || n > 65535) {
        return "port is not an integer in 1..65535";
    }
    *port = (unsigned)n;
    return NULL;
}

/* Sets *ADDRESS to a new "host:port", or "[host]:port" when host is an IPv6 literal. */
static const char *
zk_parse_address(const json_t *root, char **address)
{
    const json_t *value = json_object_get(root, "address");
    const char *host, *what;
    size_t len, size;
    unsigned port = 0;
    bool v6;

    if (!json_is_string(value) || json_string_length(value) == 0) {
        return "address is missing, empty or not a string";
    }
    host = json_string_value(value);
    len = json_string_length(value);
    if (len > ZK_PARSE_MAX_HOST) {
        return "address is longer than 253 bytes";
    }
    for (size_t i = 0; i < len; i++) {
        if (!zk_parse_is_host_byte(host[i])) {
            return "address has a byte other than a letter, a digit or one of \".-_:%\"";
        }
    }
    v6 = memchr(host, ':', len) != NULL || memchr(host, '%', len) != NULL;
    if (v6 && !zk_parse_is_ipv6(host, len)) {
        return "address has ':' or '%' but is not an IPv6 literal";
    }
    what = zk_parse_port(root, &port);
    if (what != NULL) {
        return what;
    }
    size = len + sizeof("[]:65535");
    *address = malloc(size);
    if (*address == NULL) {
        return zk_parse_enomem;
    }
    snprintf(*address, size, v6 ? "[%.*s]:%u" : "%.*s:%u", (int)len, host, port);
    return NULL;
}

/* Returns payload.metadata when both are objects, else NULL (no metadata). */
static const json_t *
zk_parse_metadata(const json_t *root, const char **what)
{
    const json_t *payload = json_object_get(root, "payload");
    const json_t *metadata;

    *what = NULL;
    if (!json_is_object(payload)) {
        return NULL; /* Curator's payload is whatever the application serialises */
    }
    metadata = json_object_get(payload, "metadata");
    if (metadata == NULL || json_is_null(metadata)) {
        return NULL;
    }
    if (!json_is_object(metadata)) {
        *what = "payload.metadata is not an object";
        return NULL;
    }
    return metadata;
}

/* Sets *WEIGHT from metadata "weight": an integer or a decimal string (Spring), 1..1000. */
static const char *
zk_parse_weight(const json_t *metadata, uint32_t *weight)
{
    static const char bad[] =
        "payload.metadata.weight is not an integer in 1..1000 (a number or a decimal string)";
    const json_t *value = json_object_get(metadata, "weight");
    json_int_t n = 0;

    *weight = 1;
    if (value == NULL || json_is_null(value)) {
        return NULL;
    }
    if (json_is_integer(value)) {
        n = json_integer_value(value);
    } else if (json_is_string(value)) {
        const char *s = json_string_value(value);
        size_t len = json_string_length(value);

        if (len == 0 || len > 4) {
            return bad;
        }
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return bad;
            }
            n = n * 10 + (s[i] - '0');
        }
    } else {
        return bad;
    }
    if (n < 1 || n > (json_int_t)MEMBER_SET_MAX_WEIGHT) {
        return bad;
    }
    *weight = (uint32_t)n;
    return NULL;
}

/*
 * Sets *URL to metadata "public_url" (borrowed) or NULL. It ends up in a
 * Location header, so only visible ASCII: no byte can split the header.
 */
static const char *
zk_parse_public_url(const json_t *metadata, const char **url)
{
    static const char bad[] = "payload.metadata.public_url is not an http:// or https:// URL of "
                              "visible ASCII (at most 2048 bytes)";
    const json_t *value = json_object_get(metadata, "public_url");
    const char *s;
    size_t len;

    *url = NULL;
    if (value == NULL || json_is_null(value)) {
        return NULL;
    }
    if (!json_is_string(value)) {
        return bad;
    }
    s = json_string_value(value);
    len = json_string_length(value);
    if (len > ZK_PARSE_MAX_URL || !((len > 7 && strncmp(s, "http://", 7) == 0) ||
                                    (len > 8 && strncmp(s, "https://", 8) == 0))) {
        return bad;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return bad;
        }
    }
    *url = s;
    return NULL;
}

/* Adds the parsed instance to SET (see the header for ENOMEM). */
static const char *
zk_parse_add(struct member_set *set, const char *id, const char *address, uint32_t weight,
             const char *url)
{
    if (member_set_add(set, id, address, weight) == -1) {
        /* Every EINVAL cause (empty id or address, weight range) was refused before. */
        assert(errno == EEXIST || errno == ENOMEM);
        return errno == EEXIST ? "duplicate member id (another node has the same JSON id)"
                               : zk_parse_enomem;
    }
    if (url != NULL && member_set_set_public_url(set, id, url) == -1) {
        return zk_parse_enomem;
    }
    return NULL;
}

const char *
zk_parse_member(const char *data, size_t len, struct member_set *set)
{
    json_error_t error;
    json_t *root = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
    const json_t *metadata = NULL;
    const char *what, *id = NULL, *url = NULL;
    char *address = NULL;
    uint32_t weight = 1;

    if (root == NULL) {
        return json_error_code(&error) == json_error_out_of_memory ? zk_parse_enomem
                                                                   : "is not JSON";
    }
    what = json_is_object(root) ? NULL : "is not a JSON object";
    if (what == NULL) {
        what = zk_parse_id(root, &id);
    }
    if (what == NULL) {
        what = zk_parse_address(root, &address);
    }
    if (what == NULL) {
        metadata = zk_parse_metadata(root, &what);
    }
    if (what == NULL && metadata != NULL) {
        what = zk_parse_weight(metadata, &weight);
        if (what == NULL) {
            what = zk_parse_public_url(metadata, &url);
        }
    }
    if (what == NULL) {
        what = zk_parse_add(set, id, address, weight, url);
    }
    free(address);
    json_decref(root);
    return what;
}
