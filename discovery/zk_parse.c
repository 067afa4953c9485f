/*
 * A Curator ServiceInstance (one ZooKeeper node's data) -> one member
 * (DESIGN §11). jansson does the JSON; the root is ours (one json_decref at
 * the end) and everything reached from it is borrowed, so strings are copied
 * into the member set before the root goes.
 */
#include "discovery/zk_parse.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "discovery/source.h"
#include "ring/member_set.h"

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
    size_t len;
    unsigned port = 0;

    if (!json_is_string(value) || json_string_length(value) == 0) {
        return "address is missing, empty or not a string";
    }
    host = json_string_value(value);
    len = json_string_length(value);
    what = zk_parse_port(root, &port);
    return what != NULL ? what : source_address_make(host, len, port, address);
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
