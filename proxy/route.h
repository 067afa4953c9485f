/*
 * A routing snapshot: a ring plus what connecting needs (resolved backend
 * addresses, the proxy-wide down_hold marks). Built by the main thread,
 * shared read-only by the workers, refcounted (DESIGN §1, §3 step 3).
 */
#ifndef WSRING_PROXY_ROUTE_H
#define WSRING_PROXY_ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/settings.h"
#include "ring/ring.h"

#define ROUTE_MAX_TRIES 3 /* the owner and at most two next distinct members */

struct route_backend {
    struct sockaddr_storage addr;
    socklen_t addr_len;             /* 0 when the address did not resolve */
    _Atomic uint64_t down_until_ms; /* monotonic ms; a failed connect sets it (down_hold) */
};

struct conf;

struct route {
    atomic_uint refs;
    struct ring *ring;                      /* reference */
    struct settings *settings;              /* reference; the conf new connections use */
    const struct conf *conf;                /* == settings->conf */
    char fingerprint[RING_FINGERPRINT_LEN]; /* table fingerprint, as sent in X-Wsring-Ring */
    size_t nbackends;                       /* == member count of ring */
    struct route_backend backends[];        /* indexed like ring_members(ring) */
};

/*
 * Builds a snapshot over RING (takes the caller's reference, also on
 * failure) and SETTINGS (a reference is taken), resolving each member
 * address (may block on DNS: main thread only). Down marks of members with
 * the same id in PREV (may be NULL) carry over. Returns NULL on ENOMEM.
 */
struct route *route_create(struct ring *ring, struct settings *settings, const struct route *prev);
struct route *route_ref(struct route *route);
/* Accepts NULL. */
void route_unref(struct route *route);

/*
 * Writes the members to try for HASH into OUT (at most ROUTE_MAX_TRIES): the
 * owner alone when RETRY_NEXT is false, else the owner and the next distinct
 * members, members marked down at NOW_MS moved behind the others. Returns
 * the count; 0 means the ring is empty. Never allocates.
 */
size_t route_candidates(struct route *route, uint64_t hash, bool retry_next, uint64_t now_ms,
                        uint32_t out[ROUTE_MAX_TRIES]);
/* Marks member I down until UNTIL_MS. Safe from any thread. */
void route_mark_down(struct route *route, uint32_t i, uint64_t until_ms);
/* Monotonic milliseconds. */
uint64_t route_now_ms(void);

#endif /* WSRING_PROXY_ROUTE_H */
