/*
 * A loaded proxy.conf shared between threads: each route (and so each
 * connection) holds a reference, so a SIGHUP reload can swap in a new conf
 * while live connections keep reading the one they started with.
 */
#ifndef WSRING_PROXY_SETTINGS_H
#define WSRING_PROXY_SETTINGS_H

#include <stdatomic.h>

struct conf;

struct settings {
    atomic_uint refs;
    struct conf *conf; /* owned; immutable */
};

/* Takes ownership of CONF, also on failure. Returns NULL on ENOMEM. */
struct settings *settings_create(struct conf *conf);
struct settings *settings_ref(struct settings *s);
/* Accepts NULL; frees the conf with the last reference. */
void settings_unref(struct settings *s);

#endif /* WSRING_PROXY_SETTINGS_H */
