/*
 * A loaded proxy.conf shared between threads: each route (and so each
 * connection) holds a reference, so a SIGHUP reload can swap in a new conf
 * while live connections keep reading the one they started with.
 */
#ifndef WSRING_PROXY_SETTINGS_H
#define WSRING_PROXY_SETTINGS_H

#include <stdatomic.h>

struct conf;
struct ssl_ctx_st;

struct settings {
    atomic_uint refs;
    struct conf *conf;              /* owned; immutable */
    struct ssl_ctx_st *tls_server;  /* owned reference or NULL: listeners flagged tls (tls.h) */
    struct ssl_ctx_st *tls_backend; /* owned reference or NULL: backend_tls on */
};

/*
 * Takes ownership of CONF, also on failure. Returns NULL on ENOMEM. The TLS
 * contexts start NULL; whoever builds them stores them (and settings_unref
 * frees them): each SSL holds its own reference, so live TLS connections
 * outlive the settings they started with.
 */
struct settings *settings_create(struct conf *conf);
struct settings *settings_ref(struct settings *s);
/* Accepts NULL; frees the conf with the last reference. */
void settings_unref(struct settings *s);

#endif /* WSRING_PROXY_SETTINGS_H */
