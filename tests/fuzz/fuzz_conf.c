/*
 * fuzz_conf.c: libFuzzer target for conf_parse (DESIGN §9). Any input must
 * give a conf or an error that says where ("f.conf:LINE: ..."); a conf that
 * parses must satisfy the invariants the proxy relies on, and conf_destroy
 * must free all of it (LeakSanitizer checks).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless CONF holds what a successful parse promises. */
static void
fuzz_conf_check(const struct conf *conf)
{
    if (conf->nlisten == 0 || conf->nkeys == 0 || conf->ring.vnodes == 0 ||
        conf->connect_timeout_ms == 0 || conf->handshake_timeout_ms == 0 ||
        conf->max_head_bytes < 1024 || conf->max_key_bytes == 0 || strcmp(conf->file, "f.conf")) {
        abort();
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        if (conf->listen[i].addr.host == NULL || conf->listen[i].addr.port == 0) {
            abort();
        }
        /* A tls listener never parses without both certificate files named. */
        if (conf->listen[i].tls &&
            (conf->tls_certificate == NULL || conf->tls_certificate_key == NULL)) {
            abort();
        }
    }
    for (size_t i = 0; i < conf->nbackends; i++) {
        const struct conf_backend *b = &conf->backends[i];

        if (b->id[0] == '\0' || b->weight == 0 || b->address == NULL || b->addr.port == 0) {
            abort();
        }
        /* A public_url is http(s), and never ends in "/" (a Location appends the target). */
        if (b->public_url != NULL && ((strncmp(b->public_url, "http://", 7) != 0 &&
                                       strncmp(b->public_url, "https://", 8) != 0) ||
                                      b->public_url[strlen(b->public_url) - 1] == '/')) {
            abort();
        }
    }
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct conf_route *r = &conf->routes[i];

        if (r->prefix[0] != '/' || strlen(r->prefix) != r->prefix_len ||
            conf_route_mode(conf, r->prefix, r->prefix_len) != r->mode) {
            abort(); /* a route's own path matches itself longest (prefixes are unique) */
        }
    }
    if (conf->pool_idle_timeout_ms == 0) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CONF_ERR_LEN] = "";
    struct conf *conf = conf_parse("f.conf", (const char *)data, size, err);

    if (conf == NULL && strncmp(err, "f.conf:", 7) != 0) {
        abort(); /* every rejection must say where */
    }
    if (conf != NULL) {
        fuzz_conf_check(conf);
    }
    conf_destroy(conf);
    return 0;
}
