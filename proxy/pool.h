/*
 * Idle keep-alive backend connections of one worker, per member (DESIGN
 * §10.1), so per-request routing does not pay a connect per request. An idle
 * connection is closed when the backend closes it or sends anything, after
 * `pool_idle_timeout`, or when its member leaves the ring; at most
 * `pool_max_idle` are kept per member. Worker thread only.
 */
#ifndef WSRING_PROXY_POOL_H
#define WSRING_PROXY_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct fdev;
struct member;
struct member_set;
struct pool_conn;
struct pool_member;

struct pool {
    struct event_base *base;       /* borrowed */
    struct pool_member **members;  /* owned open-addressing table by id hash; NULL = free slot */
    size_t members_cap;            /* a power of two, or 0 */
    size_t nmembers;               /* at most half of members_cap */
    TAILQ_HEAD(, pool_conn) spare; /* entries of taken connections, for reuse */
    size_t nidle;
    uint64_t idle_ms;  /* pool_idle_timeout of the conf in force */
    unsigned max_idle; /* pool_max_idle of the conf in force; 0 keeps none */
};

void pool_init(struct pool *p, struct event_base *base);
/*
 * Sets the idle timeout and the per-member cap for connections put from now
 * on (a reload changes them; idle connections keep their timer).
 */
void pool_set_limits(struct pool *p, uint64_t idle_ms, unsigned max_idle);
/* Closes every idle connection. */
void pool_fini(struct pool *p);
/*
 * Returns an idle connection to M, or -1. The caller owns its descriptor now,
 * opened in INTO (fdev_move: no syscall), with no callback set.
 */
int pool_take(struct pool *p, const struct member *m, struct fdev *into);
/*
 * Keeps FROM's descriptor as idle for M (the pool owns it now, and FROM is
 * closed) and returns 0, or returns -1 when the pool is full or out of memory
 * (FROM untouched).
 */
int pool_put(struct pool *p, const struct member *m, struct fdev *from);
/*
 * Closes the idle connections of members not in MEMBERS (they left the ring)
 * or at another address there (re-registered elsewhere under the same id).
 */
void pool_prune(struct pool *p, const struct member_set *members);

#endif /* WSRING_PROXY_POOL_H */
