/*
 * Turns the member sets a source emits into published routes (DESIGN §5):
 * debounced by ring_hold, built once (incrementally where the algorithm can),
 * logged with the fingerprint and the members added and removed, handed to
 * every worker. Main thread only.
 */
#ifndef WSRING_PROXY_PUBLISHER_H
#define WSRING_PROXY_PUBLISHER_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

struct conf;
struct event_base;
struct member_set;
struct route;
struct settings;
struct worker;

/* Gives every worker the new ROUTE. */
typedef void (*publisher_publish_fn)(struct route *route, void *arg);
/* Returns a new JSON object describing the source's state, or NULL. */
typedef json_t *(*publisher_status_fn)(void *arg);

struct publisher;

/*
 * Starts from INITIAL (the publisher takes the caller's reference) whose
 * members came from SOURCE ("static", "consul"); routes it builds use
 * INITIAL's settings until publisher_reload(). Returns NULL on ENOMEM.
 */
struct publisher *publisher_create(struct event_base *base, struct route *initial,
                                   const char *source, publisher_publish_fn publish,
                                   void *publish_arg);
/*
 * Publishes at once a route with SETTINGS (a reference is taken) over MEMBERS
 * (taken; NULL keeps the current members), for a reload. Returns 0, or -1 on
 * ENOMEM with nothing changed.
 */
int publisher_reload(struct publisher *p, struct settings *settings, struct member_set *members);
/* Accepts NULL. */
void publisher_destroy(struct publisher *p);
/* Where the current route is kept: admin reads it on each request. */
struct route *const *publisher_current(const struct publisher *p);
/* Sets where /ring's "watch" object comes from. */
void publisher_set_status(struct publisher *p, publisher_status_fn status, void *arg);
/*
 * A source_emit_fn: takes ownership of MEMBERS; applies them after ring_hold
 * (a newer set offered meanwhile replaces it). ARG is the publisher.
 */
void publisher_offer(struct member_set *members, void *arg);
/*
 * state_file (DESIGN §11): every set the source offers and the publisher
 * applies is saved to PATH. With BASE (at start), the saved set is read too
 * and, if the source has offered nothing within GRACE_MS, routed on (source
 * "state_file") until it does; an unreadable file is logged and ignored.
 * Without BASE (a reload) only the path changes. PATH NULL turns saving off.
 * Returns 0, or -1 on ENOMEM.
 */
int publisher_set_state_file(struct publisher *p, struct event_base *base, const char *path,
                             uint64_t grace_ms);
/* Membership changes applied so far. */
unsigned long long publisher_changes(const struct publisher *p);
/* Where the members in force come from: "static", "consul", "etcd", or "state_file". */
const char *publisher_source(const struct publisher *p);
/* An admin_ring_fn: GET /ring as JSON. ARG is the publisher. */
json_t *publisher_ring_json(void *arg);

#endif /* WSRING_PROXY_PUBLISHER_H */
