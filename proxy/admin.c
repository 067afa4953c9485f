/* Admin HTTP: /healthz and /lookup?key=K (DESIGN §6, §10.2). */
#include "proxy/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "conf/conf.h"
#include "proxy/head.h"
#include "proxy/key.h"
#include "proxy/route.h"
#include "proxy/status_page.h"

#define ADMIN_BATCH_MAX 10000      /* keys per POST /lookup */
#define ADMIN_BODY_MAX  (4u << 20) /* 10000 keys of max_key_bytes, JSON-escaped */

struct admin {
    struct evhttp *http;          /* owned */
    struct route *const *current; /* borrowed; the main thread's current route */
    admin_ring_fn ring;           /* answers /ring */
    void *ring_arg;
};

/* Sends JSON (consumed) with STATUS. */
static void
admin_reply_json(struct evhttp_request *req, int status, json_t *json)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    char *text = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;

    json_decref(json);
    if (text == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add_printf(out, "%s\n", text);
    free(text);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
}

static void
admin_reply_error(struct evhttp_request *req, int status, const char *what)
{
    admin_reply_json(req, status, json_pack("{s:s}", "error", what));
}

static void
admin_on_healthz(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evbuffer_add_printf(out, "ok\n");
    evhttp_send_reply(req, 200, "OK", out);
}

/* The key of ?key=K, decoded exactly like a client's query:NAME rule would be. */
/* Adds M's public_url to OBJ when it has one (redirect mode, DESIGN §10). Returns OBJ. */
static json_t *
admin_with_public_url(json_t *obj, const struct member *m)
{
    if (obj != NULL && m->public_url != NULL) {
        json_object_set_new(obj, "public_url", json_string(m->public_url));
    }
    return obj;
}

/* One entry of a POST /lookup answer: owner and address, or why KEY has none. */
static json_t *
admin_lookup_one(const struct route *route, json_t *key)
{
    const char *k = json_string_value(key);
    size_t len = json_string_length(key);
    const struct member *m;

    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f) {
            return json_pack("{s:O, s:s}", "key", key, "error", "key holds a control byte");
        }
    }
    if (len == 0 || len > route->conf->max_key_bytes) {
        return json_pack("{s:O, s:s}", "key", key, "error",
                         "key is empty or longer than max_key_bytes");
    }
    m = ring_lookup(route->ring, k, len);
    return admin_with_public_url(
        json_pack("{s:O, s:s, s:s}", "key", key, "owner", m->id, "address", m->address), m);
}

/* POST /lookup: a JSON array of up to ADMIN_BATCH_MAX keys -> owners, in request order. */
static void
admin_on_lookup_batch(struct evhttp_request *req, struct admin *admin)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const struct route *route = *admin->current;
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    json_t *keys = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr), *out;
    size_t i;
    json_t *key;

    if (keys == NULL || !json_is_array(keys) || json_array_size(keys) > ADMIN_BATCH_MAX) {
        json_decref(keys);
        admin_reply_error(req, 400, "the body must be a JSON array of at most 10000 key strings");
        return;
    }
    if (member_set_count(ring_members(route->ring)) == 0) {
        json_decref(keys);
        admin_reply_error(req, 503, "the ring is empty");
        return;
    }
    out = json_array();
    json_array_foreach(keys, i, key)
    {
        if (!json_is_string(key)) {
            json_decref(keys);
            json_decref(out);
            admin_reply_error(req, 400, "every key must be a JSON string");
            return;
        }
        json_array_append_new(out, admin_lookup_one(route, key));
    }
    json_decref(keys);
    admin_reply_json(req, 200, out);
}

static void
admin_on_lookup(struct evhttp_request *req, void *arg)
{
    struct admin *admin = arg;
    const char *uri = evhttp_request_get_uri(req);
    const struct conf_key_rule rule = { .source = CONF_KEY_QUERY, .name = "key", .name_len = 3 };
    struct head head = { .target = uri, .target_len = strlen(uri) };
    struct route *route = *admin->current;
    char key[4096];
    size_t key_len = 0;
    const struct member *m;
    json_t *jkey;

    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        admin_on_lookup_batch(req, admin);
        return;
    }
    switch (key_extract(&head, &rule, 1, key, route->conf->max_key_bytes, &key_len)) {
    case KEY_MISSING:
        admin_reply_error(req, 400, "missing ?key=");
        return;
    case KEY_BAD:
    case KEY_UNAUTHORIZED: /* the rule here is query:key, never jwt: */
        admin_reply_error(req, 400, "key too long, or holds a control byte or a bad %-escape");
        return;
    case KEY_FOUND:
        break;
    }
    jkey = json_stringn(key, key_len);
    if (jkey == NULL) {
        admin_reply_error(req, 400, "key is not valid UTF-8");
        return;
    }
    m = ring_lookup(route->ring, key, key_len);
    if (m == NULL) {
        json_decref(jkey);
        admin_reply_error(req, 503, "the ring is empty");
        return;
    }
    admin_reply_json(
        req, 200,
        admin_with_public_url(json_pack("{s:o, s:s, s:s, s:s}", "key", jkey, "owner", m->id,
                                        "address", m->address, "fingerprint", route->fingerprint),
                              m));
}

static void
admin_on_ring(struct evhttp_request *req, void *arg)
{
    struct admin *admin = arg;

    admin_reply_json(req, 200, admin->ring(admin->ring_arg));
}

/* The status page (proxy/status_page.c): exactly "/", anything else is admin_on_other's. */
static void
admin_on_page(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/html; charset=utf-8");
    evbuffer_add_reference(out, status_page_html, strlen(status_page_html), NULL, NULL);
    evhttp_send_reply(req, 200, "OK", out);
}

static void
admin_on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    admin_reply_error(req, 404, "not found; try /healthz, /ring, /metrics or /lookup?key=K");
}

struct admin *
admin_start(struct event_base *base, const struct conf *conf, struct route *const *current,
            admin_ring_fn ring, void *ring_arg, char *err, size_t err_len)
{
    struct admin *admin = calloc(1, sizeof(*admin));

    if (admin == NULL || (admin->http = evhttp_new(base)) == NULL) {
        snprintf(err, err_len, "admin: out of memory");
        free(admin);
        return NULL;
    }
    admin->current = current;
    admin->ring = ring;
    admin->ring_arg = ring_arg;
    evhttp_set_allowed_methods(admin->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(admin->http, ADMIN_BODY_MAX);
    evhttp_set_cb(admin->http, "/healthz", admin_on_healthz, admin);
    evhttp_set_cb(admin->http, "/lookup", admin_on_lookup, admin);
    evhttp_set_cb(admin->http, "/ring", admin_on_ring, admin);
    evhttp_set_cb(admin->http, "/", admin_on_page, admin);
    evhttp_set_gencb(admin->http, admin_on_other, admin);
    if (evhttp_bind_socket_with_handle(admin->http, conf->admin.host, conf->admin.port) == NULL) {
        snprintf(err, err_len, "admin %s:%u: cannot listen (address in use?)", conf->admin.host,
                 conf->admin.port);
        admin_stop(admin);
        return NULL;
    }
    return admin;
}

void
admin_stop(struct admin *admin)
{
    if (admin == NULL) {
        return;
    }
    evhttp_free(admin->http);
    free(admin);
}

void
admin_set_metrics(struct admin *admin, void (*handler)(struct evhttp_request *, void *), void *arg)
{
    evhttp_set_cb(admin->http, "/metrics", handler, arg);
}
