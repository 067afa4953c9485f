/*
 * Per-worker pool of idle keep-alive backend connections (DESIGN §10.1).
 * Taking and putting happen once per proxied HTTP request, so both are O(1)
 * in the number of members and of idle connections: one list per member,
 * found through a small hash table by member id. The entries of taken
 * connections are kept on a spare list and reused by the next put instead of
 * a free() and a malloc() per request; the spare list never holds more
 * entries than the pool held idle connections at its fullest.
 */
#include "proxy/pool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "proxy/fdev.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ring/member_set.h"

#define POOL_MEMBERS_MIN 16 /* first table size; it doubles at half full */

/*
 * The idle connections to one member at one address: a member re-registered
 * elsewhere under the same id is another entry, so no request follows an old
 * connection to the old address. Kept while in the ring, even with none idle.
 */
struct pool_member {
    uint64_t hash;                              /* pool_hash(id, address) */
    TAILQ_HEAD(pool_idle_head, pool_conn) idle; /* most recently used last */
    size_t nidle;
    const char *address; /* in id[], after the id's NUL */
    char id[];           /* NUL-terminated, then the address, NUL-terminated */
};

struct pool_conn {
    struct pool_member *member;  /* borrowed; the list it is idle in */
    struct pool *pool;           /* borrowed; the owner */
    struct fdev io;              /* owned descriptor; readable: EOF or stray bytes */
    struct event timer;          /* pool_idle_timeout */
    uint64_t put_round;          /* the fdev round it was put in */
    TAILQ_ENTRY(pool_conn) link; /* in its member's idle list, or in spare */
};

void
pool_init(struct pool *p, struct event_base *base)
{
    memset(p, 0, sizeof(*p));
    p->base = base;
    TAILQ_INIT(&p->spare);
    p->idle_ms = 4000;
    p->max_idle = 64;
}

void
pool_set_limits(struct pool *p, uint64_t idle_ms, unsigned max_idle)
{
    p->idle_ms = idle_ms;
    p->max_idle = max_idle;
}

static uint64_t
pool_hash(const struct member *m)
{
    return XXH3_64bits_withSeed(m->address, strlen(m->address), XXH3_64bits(m->id, strlen(m->id)));
}

static bool
pool_member_is(const struct pool_member *pm, const char *id, const char *address, uint64_t hash)
{
    return pm->hash == hash && strcmp(pm->id, id) == 0 && strcmp(pm->address, address) == 0;
}

/* The slot of ID at ADDRESS (HASH) in P's table: its entry's, or the free one it would take. */
static size_t
pool_slot(const struct pool *p, const char *id, const char *address, uint64_t hash)
{
    size_t mask = p->members_cap - 1, i = (size_t)hash & mask;

    while (p->members[i] != NULL && !pool_member_is(p->members[i], id, address, hash)) {
        i = (i + 1) & mask;
    }
    return i;
}

static struct pool_member *
pool_member_find(const struct pool *p, const struct member *m, uint64_t hash)
{
    return p->members_cap == 0 ? NULL : p->members[pool_slot(p, m->id, m->address, hash)];
}

/* Puts every member of P into a fresh table of CAP slots. Returns 0 or -1 (ENOMEM). */
static int
pool_rehash(struct pool *p, size_t cap)
{
    struct pool_member **old = p->members;
    size_t old_cap = p->members_cap;

    p->members = calloc(cap, sizeof(*p->members));
    if (p->members == NULL) {
        p->members = old;
        return -1;
    }
    p->members_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != NULL) {
            p->members[pool_slot(p, old[i]->id, old[i]->address, old[i]->hash)] = old[i];
        }
    }
    free(old);
    return 0;
}

/* M's entry, created on its first put. Returns NULL on ENOMEM. */
static struct pool_member *
pool_member_get(struct pool *p, const struct member *m, uint64_t hash)
{
    struct pool_member *pm = pool_member_find(p, m, hash);
    size_t id_len, addr_len;

    if (pm != NULL) {
        return pm;
    }
    id_len = strlen(m->id);
    addr_len = strlen(m->address);
    if ((p->nmembers + 1) * 2 > p->members_cap &&
        pool_rehash(p, p->members_cap == 0 ? POOL_MEMBERS_MIN : p->members_cap * 2) == -1) {
        return NULL;
    }
    pm = malloc(sizeof(*pm) + id_len + 1 + addr_len + 1);
    if (pm == NULL) {
        return NULL;
    }
    pm->hash = hash;
    TAILQ_INIT(&pm->idle);
    pm->nidle = 0;
    memcpy(pm->id, m->id, id_len + 1);
    memcpy(pm->id + id_len + 1, m->address, addr_len + 1);
    pm->address = pm->id + id_len + 1;
    p->members[pool_slot(p, pm->id, pm->address, hash)] = pm;
    p->nmembers++;
    return pm;
}

static void
pool_close(struct pool *p, struct pool_conn *pc)
{
    TAILQ_REMOVE(&pc->member->idle, pc, link);
    pc->member->nidle--;
    p->nidle--;
    evtimer_del(&pc->timer);
    fdev_close_fd(&pc->io, pc->io.fd);
    free(pc);
}

/*
 * True when nothing is waiting on PC: no EOF, no stray bytes, no error. A FIN that came with
 * the last answer is already here, and a request sent into it would be lost.
 */
static bool
pool_still_open(struct pool_conn *pc)
{
    char byte;

    if (pc->io.stuck != 0) {
        return false; /* epoll said EOF or error already */
    }
    return fdev_recv(&pc->io, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == -1 &&
           (errno == EAGAIN || errno == EWOULDBLOCK);
}

/*
 * An idle backend that speaks or closes is no longer reusable. The socket is
 * asked first: an edge may be stale (its bytes were read just before the put).
 */
static void
pool_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct pool_conn *pc = arg;

    (void)fd;
    (void)what;
    if (!pool_still_open(pc)) {
        pool_close(pc->pool, pc);
    }
}

static void
pool_on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pool_conn *pc = arg;

    (void)fd;
    (void)what;
    pool_close(pc->pool, pc);
}

/* Closes PM's idle connections and frees it (its slot is the caller's to clear). */
static void
pool_member_free(struct pool *p, struct pool_member *pm)
{
    while (!TAILQ_EMPTY(&pm->idle)) {
        pool_close(p, TAILQ_FIRST(&pm->idle));
    }
    free(pm);
}

void
pool_fini(struct pool *p)
{
    for (size_t i = 0; i < p->members_cap; i++) {
        if (p->members[i] != NULL) {
            pool_member_free(p, p->members[i]);
        }
    }
    free(p->members);
    p->members = NULL;
    p->members_cap = p->nmembers = 0;
    while (!TAILQ_EMPTY(&p->spare)) {
        struct pool_conn *pc = TAILQ_FIRST(&p->spare);

        TAILQ_REMOVE(&p->spare, pc, link);
        free(pc);
    }
}

/*
 * Only a connection put in the current round of its fdev loop, or one epoll
 * called readable, needs pool_still_open(): a round notes everything its
 * epoll_wait returned before it runs any callback (fdev.h), so the EOF (or
 * stray bytes) of one put in an earlier round, if it came before this round's
 * epoll_wait, is known here even when its own callback has not run yet. That
 * saves a syscall on nearly every proxied request.
 */
int
pool_take(struct pool *p, const struct member *m, struct fdev *into)
{
    struct pool_member *pm = pool_member_find(p, m, pool_hash(m));
    struct pool_conn *pc, *prev;

    if (pm == NULL || pm->nidle == 0) {
        return -1;
    }
    /*
     * Most recently used first: it is the least likely to have been closed by the server.
     * Pass 0 passes over connections put this round (they would cost a check), pass 1 checks
     * them.
     */
    for (int pass = 0; pass < 2 && pm->nidle > 0; pass++) {
        for (pc = TAILQ_LAST(&pm->idle, pool_idle_head); pc != NULL; pc = prev) {
            bool fresh = pc->put_round == pc->io.loop->round;

            prev = TAILQ_PREV(pc, pool_idle_head, link);
            if (pass == 0 && fresh) {
                continue;
            }
            if ((fresh || (pc->io.ready & FDEV_IN)) && !pool_still_open(pc)) {
                pool_close(p, pc);
                continue;
            }
            TAILQ_REMOVE(&pm->idle, pc, link);
            pm->nidle--;
            p->nidle--;
            evtimer_del(&pc->timer);
            fdev_move(into, &pc->io);
            TAILQ_INSERT_HEAD(&p->spare, pc, link); /* the next put reuses it */
            return into->fd;
        }
    }
    return -1;
}

int
pool_put(struct pool *p, const struct member *m, struct fdev *from)
{
    struct timeval tv = { .tv_sec = (time_t)(p->idle_ms / 1000),
                          .tv_usec = (suseconds_t)(p->idle_ms % 1000) * 1000 };
    struct pool_member *pm;
    struct pool_conn *pc;

    if (p->max_idle == 0 || (pm = pool_member_get(p, m, pool_hash(m))) == NULL ||
        pm->nidle >= p->max_idle) {
        return -1; /* full, or out of memory */
    }
    pc = TAILQ_FIRST(&p->spare);
    if (pc != NULL) {
        TAILQ_REMOVE(&p->spare, pc, link);
    } else if ((pc = malloc(sizeof(*pc))) == NULL) {
        return -1;
    }
    pc->member = pm;
    pc->pool = p;
    pc->put_round = from->loop->round;
    fdev_move(&pc->io, from);
    fdev_read(&pc->io, pool_on_readable, pc);
    evtimer_assign(&pc->timer, p->base, pool_on_idle_timeout, pc);
    evtimer_add(&pc->timer, &tv);
    TAILQ_INSERT_TAIL(&pm->idle, pc, link);
    pm->nidle++;
    p->nidle++;
    return 0;
}

/* Empties slot I of P's table, moving later entries of its probe chain back (no tombstones). */
static void
pool_slot_clear(struct pool *p, size_t i)
{
    size_t mask = p->members_cap - 1, j = i;

    p->members[i] = NULL;
    for (;;) {
        size_t home;

        j = (j + 1) & mask;
        if (p->members[j] == NULL) {
            return;
        }
        home = (size_t)p->members[j]->hash & mask;
        /* The entry at J stays when its home slot lies cyclically in (I, J]. */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
            continue;
        }
        p->members[i] = p->members[j];
        p->members[j] = NULL;
        i = j;
    }
}

/* True when PM's member left MEMBERS or moved to another address. */
static bool
pool_member_gone(const struct pool_member *pm, const struct member_set *members)
{
    long at = member_set_find(members, pm->id);

    return at < 0 || strcmp(member_set_at(members, (size_t)at)->address, pm->address) != 0;
}

void
pool_prune(struct pool *p, const struct member_set *members)
{
    /*
     * One pass is enough: clearing slot I moves entries back only from later in I's chain, into
     * slots not yet scanned or into I itself (scanned again here); an entry moved into a slot
     * already scanned comes from the wrapped part of the chain, scanned too. The table is at most
     * half full, so no chain wraps all the way round.
     */
    for (size_t i = 0; i < p->members_cap; i++) {
        while (p->members[i] != NULL && pool_member_gone(p->members[i], members)) {
            pool_member_free(p, p->members[i]);
            pool_slot_clear(p, i);
            p->nmembers--;
        }
    }
}
