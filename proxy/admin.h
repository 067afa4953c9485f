/* Admin HTTP on the main thread: /healthz and /lookup (DESIGN §6). */
#ifndef WSRING_PROXY_ADMIN_H
#define WSRING_PROXY_ADMIN_H

#include <stddef.h>

struct conf;
struct event_base;
struct route;
struct admin;

/*
 * Serves CONF's admin address on BASE. *CURRENT is read on every request, so
 * the caller may swap the route it points to. Returns NULL with ERR on failure.
 */
struct admin *admin_start(struct event_base *base, const struct conf *conf,
                          struct route *const *current, char *err, size_t err_len);
/* Accepts NULL. */
void admin_stop(struct admin *admin);

#endif /* WSRING_PROXY_ADMIN_H */
