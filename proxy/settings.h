/*
 * A loaded proxy.conf shared between threads: each route (and so each
 * connection) holds a reference, so a SIGHUP reload can swap in a new conf
 * while live connections keep reading the one they started with.
 */
#ifndef WSRING_PROXY_SETTINGS_H
#define WSRING_PROXY_SETTINGS_H

#include <stdatomic.h>

#include "conf/conf.h"

struct jwt_key;
struct ssl_ctx_st;

struct settings {
    atomic_uint refs;
    struct conf *conf;              /* owned; immutable */
    struct jwt_key *jwt_key;        /* owned or NULL; jwt_key_file's key, shared read-only */
    struct ssl_ctx_st *tls_server;  /* owned reference or NULL: listeners flagged tls (tls.h) */
    struct ssl_ctx_st *tls_backend; /* owned reference or NULL: backend_tls on */
};

/*
 * Takes ownership of CONF, also on failure. Returns NULL on ENOMEM. No
 * jwt_key; the TLS contexts start NULL: whoever builds them stores them (and
 * settings_unref frees them): each SSL holds its own reference, so live TLS
 * connections outlive the settings they started with.
 */
struct settings *settings_create(struct conf *conf);
/*
 * conf_load(FILE), then the files the conf names that must be good before it
 * is used (jwt_key_file, DESIGN §12). Returns NULL with "FILE:LINE: what" in
 * ERR, e.g. 'proxy.conf:9: "jwt_key_file /k.pem" is a private key (...)'.
 * Used at start, by `wsring -t` and on SIGHUP, so all three agree.
 */
struct settings *settings_load(const char *file, char err[CONF_ERR_LEN]);
struct settings *settings_ref(struct settings *s);
/* Accepts NULL; frees the conf with the last reference. */
void settings_unref(struct settings *s);

#endif /* WSRING_PROXY_SETTINGS_H */
