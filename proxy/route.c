/* Routing snapshots: ring + resolved addresses + down marks (DESIGN §1, §3 step 3). */
#include "proxy/route.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/log.h"

/* Splits "host:port" / "[v6]:port" and resolves it; numeric hosts never touch DNS. */
static void
route_resolve(struct route_backend *b, const struct member *m)
{
    char host[256];
    const char *addr = m->address, *colon = strrchr(addr, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    size_t hlen;
    int rc;

    b->addr_len = 0;
    if (colon == NULL) {
        return;
    }
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        return;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        log_msg(LOG_WARN, "event=resolve_failed member=%s address=%s error=\"%s\"", m->id,
                m->address, gai_strerror(rc));
        return;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
}

struct route *
route_create(struct ring *ring, struct settings *settings, const struct route *prev)
{
    const struct member_set *members = ring_members(ring);
    size_t n = member_set_count(members);
    struct route *route = calloc(1, sizeof(*route) + n * sizeof(route->backends[0]));

    if (route == NULL) {
        ring_unref(ring);
        return NULL;
    }
    atomic_init(&route->refs, 1);
    route->ring = ring;
    route->settings = settings_ref(settings);
    route->conf = settings->conf;
    route->nbackends = n;
    ring_fingerprint_format(ring_table_fingerprint(ring), route->fingerprint);
    for (size_t i = 0; i < n; i++) {
        const struct member *m = member_set_at(members, i);
        long j = prev != NULL ? member_set_find(ring_members(prev->ring), m->id) : -1;

        route_resolve(&route->backends[i], m);
        atomic_init(
            &route->backends[i].down_until_ms,
            j >= 0 ? atomic_load_explicit(&prev->backends[j].down_until_ms, memory_order_relaxed)
                   : 0);
    }
    return route;
}

struct route *
route_ref(struct route *route)
{
    atomic_fetch_add_explicit(&route->refs, 1, memory_order_relaxed);
    return route;
}

void
route_unref(struct route *route)
{
    if (route == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&route->refs, 1, memory_order_acq_rel) == 1) {
        ring_unref(route->ring);
        settings_unref(route->settings);
        free(route);
    }
}

size_t
route_candidates(struct route *route, uint64_t hash, bool retry_next, uint64_t now_ms,
                 uint32_t out[ROUTE_MAX_TRIES])
{
    uint32_t all[ROUTE_MAX_TRIES];
    size_t n = ring_successors(route->ring, hash, all, retry_next ? ROUTE_MAX_TRIES : 1);
    size_t nout = 0;

    /* Members up first, in ring order; members marked down last, still in ring order. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            uint64_t until =
                atomic_load_explicit(&route->backends[all[i]].down_until_ms, memory_order_relaxed);
            if ((until > now_ms) == (pass == 1)) {
                out[nout++] = all[i];
            }
        }
    }
    return nout;
}

void
route_mark_down(struct route *route, uint32_t i, uint64_t until_ms)
{
    atomic_store_explicit(&route->backends[i].down_until_ms, until_ms, memory_order_relaxed);
}

uint64_t
route_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
