/*
 * Gradual migration after a ring change (DESIGN §5): each worker finds its
 * connections whose owner changed since they were routed ("misplaced") and
 * ends them gently, at most migrate_rate per second for the whole proxy,
 * spread with jitter. Worker thread only, except the shared pacer.
 */
#ifndef WSRING_PROXY_MIGRATE_H
#define WSRING_PROXY_MIGRATE_H

#include <stdatomic.h>
#include <stdint.h>

struct worker;

/* Hands out migration slots to all workers, so the rate holds for the proxy as a whole. */
struct migrate_pacer {
    _Atomic uint64_t next_us; /* monotonic microseconds of the next free slot */
};

/*
 * Re-plans W's migrations against W's current route: queues the newly
 * misplaced connections, forgets those that are home again, and arms the
 * paced timer. Call after every route change.
 */
void migrate_plan(struct worker *w);
/* The migrate_ev callback (assigned by the worker). */
void migrate_on_timer(int fd, short what, void *arg);

#endif /* WSRING_PROXY_MIGRATE_H */
