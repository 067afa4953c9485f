/* Admin HTTP on the main thread: /healthz and /lookup (DESIGN §6). */
#ifndef WSRING_PROXY_ADMIN_H
#define WSRING_PROXY_ADMIN_H

#include <stddef.h>

struct conf;
struct event_base;
struct evhttp_request;
struct route;
struct admin;

/* Returns a new JSON object for GET /ring (members, fingerprints, source, watch state). */
typedef struct json_t *(*admin_ring_fn)(void *arg);

/*
 * Serves CONF's admin address on BASE. *CURRENT is read on every request, so
 * the caller may swap the route it points to; RING(RING_ARG) answers /ring.
 * Returns NULL with ERR on failure.
 */
struct admin *admin_start(struct event_base *base, const struct conf *conf,
                          struct route *const *current, admin_ring_fn ring, void *ring_arg,
                          char *err, size_t err_len);
/* Serves GET /metrics with HANDLER(req, ARG), which must answer REQ, maybe later. */
void admin_set_metrics(struct admin *admin, void (*handler)(struct evhttp_request *, void *),
                       void *arg);
/* Accepts NULL. */
void admin_stop(struct admin *admin);

#endif /* WSRING_PROXY_ADMIN_H */
