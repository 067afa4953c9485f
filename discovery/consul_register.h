/*
 * wsring's own registration with its local Consul agent (DESIGN §6, issue
 * `register on`): service "wsring" with an HTTP check on the admin /healthz,
 * registered at start (retried until the agent takes it) and deregistered on
 * a clean exit.
 */
#ifndef WSRING_DISCOVERY_CONSUL_REGISTER_H
#define WSRING_DISCOVERY_CONSUL_REGISTER_H

#include <stddef.h>

struct conf;
struct curl_event;
struct event_base;
struct consul_register;

/* Starts registering. Returns NULL with ERR (e.g. `register on` without an admin address). */
struct consul_register *consul_register_start(struct event_base *base, struct curl_event *ce,
                                              const struct conf *conf, char *err, size_t err_len);
/* Deregisters (blocking, at most ~2 s: we are exiting) and frees. Accepts NULL. */
void consul_register_stop(struct consul_register *r);

#endif /* WSRING_DISCOVERY_CONSUL_REGISTER_H */
