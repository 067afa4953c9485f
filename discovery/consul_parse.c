/*
 * Consul's /v1/health/service answer -> member set (DESIGN §4, DISCOVERY
 * §1.2). jansson does the JSON; this file picks the few fields the ring needs
 * and checks them. References: json_loadb's root is ours (one json_decref at
 * the end); everything reached through json_object_get/json_array_get is
 * borrowed from it, so strings are copied out (into the member set) before
 * the root goes.
 */
#include "discovery/consul_parse.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/conf_value.h"
#include "discovery/source.h"
#include "ring/member_set.h"

_Static_assert(MEMBER_SET_MAX_WEIGHT == 1000, "update the weight phrase below");

static const char consul_parse_enomem[] = "out of memory";

/* A required name (Node.Node, Service.ID) and what to say when it is wrong. */
struct consul_parse_name {
    const char *key;        /* in its parent object */
    const char *not_string; /* absent, null or not a string */
    const char *empty;
    const char *control; /* holds a byte below 0x20 or 0x7f */
};

static const struct consul_parse_name consul_parse_node_name = {
    "Node",
    "Node.Node is missing or not a string",
    "Node.Node is empty",
    "Node.Node has a control byte",
};

static const struct consul_parse_name consul_parse_service_id = {
    "ID",
    "Service.ID is missing or not a string",
    "Service.ID is empty",
    "Service.ID has a control byte",
};

/* Sets *TEXT and *LEN to NAME's string in PARENT, or says what is wrong with it. */
static const char *
consul_parse_name_get(const json_t *parent, const struct consul_parse_name *name, const char **text,
                      size_t *len)
{
    const json_t *value = json_object_get(parent, name->key);

    if (!json_is_string(value)) {
        return name->not_string;
    }
    *text = json_string_value(value);
    *len = json_string_length(value);
    if (*len == 0) {
        return name->empty;
    }
    for (size_t i = 0; i < *len; i++) {
        unsigned char c = (unsigned char)(*text)[i];

        if (c < 0x20 || c == 0x7f) {
            return name->control;
        }
    }
    return NULL;
}

/* Sets *ID to a new "<Node.Node>/<Service.ID>". */
static const char *
consul_parse_id(const json_t *node, const json_t *service, char **id)
{
    const char *node_name = NULL, *service_id = NULL, *what;
    size_t node_len = 0, service_len = 0;

    what = consul_parse_name_get(node, &consul_parse_node_name, &node_name, &node_len);
    if (what == NULL) {
        what = consul_parse_name_get(service, &consul_parse_service_id, &service_id, &service_len);
    }
    if (what != NULL) {
        return what;
    }
    /* Both lengths count bytes of BODY, which is in memory: the sum cannot wrap. */
    *id = malloc(node_len + 1 + service_len + 1);
    if (*id == NULL) {
        return consul_parse_enomem;
    }
    memcpy(*id, node_name, node_len);
    (*id)[node_len] = '/';
    memcpy(*id + node_len + 1, service_id, service_len);
    (*id)[node_len + 1 + service_len] = '\0';
    return NULL;
}

/* Sets *PORT to Service.Port, 1..65535. */
static const char *
consul_parse_port(const json_t *service, unsigned *port)
{
    const json_t *value = json_object_get(service, "Port");
    json_int_t n;

    if (!json_is_integer(value)) {
        return "Service.Port is not an integer in 1..65535";
    }
    n = json_integer_value(value);
    if (n == 0) {
        return "Service.Port is 0 (the service was registered without a port)";
    }
    if (n < 1 || n > 65535) {
        return "Service.Port is not an integer in 1..65535";
    }
    *port = (unsigned)n;
    return NULL;
}

/*
 * Sets *HOST to Service.Address, or to Node.Address when that is absent or
 * empty (the agent's address, as Consul documents and consul-template does).
 */
static const char *
consul_parse_host_get(const json_t *node, const json_t *service, const char **host, size_t *len)
{
    const json_t *value = json_object_get(service, "Address");

    if (value != NULL && !json_is_string(value)) {
        return "Service.Address is not a string";
    }
    if (value == NULL || json_string_length(value) == 0) {
        value = json_object_get(node, "Address");
        if (value != NULL && !json_is_string(value)) {
            return "Node.Address is not a string";
        }
    }
    if (value == NULL || json_string_length(value) == 0) {
        return "entry has no address (Service.Address and Node.Address are empty)";
    }
    *host = json_string_value(value);
    *len = json_string_length(value);
    return NULL;
}

/* Sets *ADDRESS to a new "host:port", or "[host]:port" when host is an IPv6 literal. */
static const char *
consul_parse_address(const json_t *node, const json_t *service, char **address)
{
    const char *host = NULL, *what;
    size_t len = 0;
    unsigned port = 0;

    what = consul_parse_host_get(node, service, &host, &len);
    if (what == NULL) {
        what = consul_parse_port(service, &port);
    }
    if (what != NULL) {
        return what;
    }
    return source_address_make(host, len, port, address);
}

/* Sets *WEIGHT to Service.Weights.Passing; 1 when Weights (or Passing) is absent. */
static const char *
consul_parse_weight(const json_t *service, uint32_t *weight)
{
    const json_t *weights = json_object_get(service, "Weights"), *passing;
    json_int_t n;

    *weight = 1;
    if (weights == NULL || json_is_null(weights)) {
        return NULL; /* Go writes a nil *Weights as null */
    }
    if (!json_is_object(weights)) {
        return "Service.Weights is not an object";
    }
    passing = json_object_get(weights, "Passing");
    if (passing == NULL) {
        return NULL;
    }
    n = json_is_integer(passing) ? json_integer_value(passing) : 0;
    if (n < 1 || n > (json_int_t)MEMBER_SET_MAX_WEIGHT) {
        return "Service.Weights.Passing is not an integer in 1..1000";
    }
    *weight = (uint32_t)n;
    return NULL;
}

/*
 * Sets *URL to a new copy of Service.Meta.public_url without trailing "/"s,
 * or leaves it NULL when Meta or public_url is absent (or Meta is null).
 */
static const char *
consul_parse_public_url(const json_t *service, char **url)
{
    const json_t *meta = json_object_get(service, "Meta"), *value;
    const char *what;

    if (meta == NULL || json_is_null(meta)) {
        return NULL; /* Go writes a nil map as null */
    }
    if (!json_is_object(meta)) {
        return "Service.Meta is not an object";
    }
    value = json_object_get(meta, "public_url");
    if (value == NULL) {
        return NULL;
    }
    if (!json_is_string(value)) {
        return "Service.Meta.public_url is not a string";
    }
    what = conf_value_public_url(json_string_value(value), json_string_length(value), url);
    if (what == conf_value_enomem) {
        return consul_parse_enomem;
    }
    if (what != NULL) {
        return "Service.Meta.public_url is not an http:// or https:// URL (no query or fragment)";
    }
    return NULL;
}

/* Adds ENTRY, one element of the answer, to SET. */
static const char *
consul_parse_entry(struct member_set *set, const json_t *entry)
{
    const json_t *node = json_object_get(entry, "Node");
    const json_t *service = json_object_get(entry, "Service");
    char *id = NULL, *address = NULL, *public_url = NULL;
    uint32_t weight = 1;
    const char *what;

    if (!json_is_object(entry)) {
        return "entry is not an object";
    }
    if (!json_is_object(node)) {
        return "entry has no Node object";
    }
    if (!json_is_object(service)) {
        return "entry has no Service object";
    }
    what = consul_parse_id(node, service, &id);
    if (what == NULL) {
        what = consul_parse_address(node, service, &address);
    }
    if (what == NULL) {
        what = consul_parse_weight(service, &weight);
    }
    if (what == NULL) {
        what = consul_parse_public_url(service, &public_url);
    }
    if (what == NULL && member_set_add(set, id, address, weight) == -1) {
        /* Every EINVAL cause (empty id or address, weight range) was refused above. */
        assert(errno == EEXIST || errno == ENOMEM);
        what = errno == EEXIST ? "duplicate member id (same Node.Node and Service.ID)"
                               : consul_parse_enomem;
    }
    if (what == NULL && public_url != NULL &&
        member_set_set_public_url(set, id, public_url) == -1) {
        what = consul_parse_enomem;
    }
    free(id);
    free(address);
    free(public_url);
    return what;
}

struct member_set *
consul_parse_health(const char *body, size_t len, const char **why)
{
    json_error_t error;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
    struct member_set *set = NULL;
    const char *what = NULL;

    if (root == NULL) {
        *why = json_error_code(&error) == json_error_out_of_memory ? consul_parse_enomem
                                                                   : "is not JSON";
        return NULL;
    }
    if (!json_is_array(root)) {
        what = "is not a JSON array";
    } else if ((set = member_set_create()) == NULL) {
        what = consul_parse_enomem;
    }
    for (size_t i = 0; what == NULL && i < json_array_size(root); i++) {
        what = consul_parse_entry(set, json_array_get(root, i));
    }
    json_decref(root);
    if (what != NULL) {
        member_set_destroy(set);
        set = NULL;
    }
    *why = what;
    return set;
}
