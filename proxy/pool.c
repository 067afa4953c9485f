/*
 * Per-worker pool of idle keep-alive backend connections (DESIGN §10.1).
 * Taking and putting happen once per proxied HTTP request, so the entries
 * of taken connections are kept on a spare list and reused by the next put
 * instead of a free() and a malloc() per request; the spare list never holds
 * more entries than the pool held idle connections at its fullest.
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

#include "ring/member_set.h"

struct pool_conn {
    struct pool *pool;           /* borrowed; the owner */
    int fd;                      /* owned */
    struct event ev;             /* readable (EOF, stray bytes) or idle timeout */
    TAILQ_ENTRY(pool_conn) link; /* in idle, or in spare */
    size_t id_cap;               /* bytes member_id can hold */
    char member_id[];            /* NUL-terminated */
};

void
pool_init(struct pool *p, struct event_base *base)
{
    p->base = base;
    TAILQ_INIT(&p->idle);
    TAILQ_INIT(&p->spare);
    p->nidle = 0;
    p->idle_ms = 4000;
    p->max_idle = 64;
}

void
pool_set_limits(struct pool *p, uint64_t idle_ms, unsigned max_idle)
{
    p->idle_ms = idle_ms;
    p->max_idle = max_idle;
}

static void
pool_close(struct pool *p, struct pool_conn *pc)
{
    TAILQ_REMOVE(&p->idle, pc, link);
    p->nidle--;
    event_del(&pc->ev);
    close(pc->fd);
    free(pc);
}

/* An idle backend that speaks or closes is no longer reusable; nor one idle too long. */
static void
pool_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct pool_conn *pc = arg;

    (void)fd;
    (void)what;
    pool_close(pc->pool, pc);
}

void
pool_fini(struct pool *p)
{
    while (!TAILQ_EMPTY(&p->idle)) {
        pool_close(p, TAILQ_FIRST(&p->idle));
    }
    while (!TAILQ_EMPTY(&p->spare)) {
        struct pool_conn *pc = TAILQ_FIRST(&p->spare);

        TAILQ_REMOVE(&p->spare, pc, link);
        free(pc);
    }
}

/*
 * True when nothing is waiting on FD: no EOF, no stray bytes, no error. The pool's own read
 * event sees those only on a later loop turn; a FIN that came with the last answer is already
 * here, and a request sent into it would be lost.
 */
static bool
pool_still_open(int fd)
{
    char byte;

    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == -1 &&
           (errno == EAGAIN || errno == EWOULDBLOCK);
}

int
pool_take(struct pool *p, const char *member_id, struct pool_conn **held)
{
    struct pool_conn *pc, *prev;

    /* Most recently used first: it is the least likely to have been closed by the server. */
    for (pc = TAILQ_LAST(&p->idle, pool_idle_head); pc != NULL; pc = prev) {
        prev = TAILQ_PREV(pc, pool_idle_head, link);
        if (strcmp(pc->member_id, member_id) == 0) {
            int fd = pc->fd;

            if (!pool_still_open(fd)) {
                pool_close(p, pc);
                continue;
            }
            TAILQ_REMOVE(&p->idle, pc, link);
            p->nidle--;
            *held = pc;
            return fd;
        }
    }
    return -1;
}

void
pool_release(struct pool *p, struct pool_conn *held)
{
    event_del(&held->ev);
    TAILQ_INSERT_HEAD(&p->spare, held, link); /* the next put reuses it */
}

int
pool_put(struct pool *p, const char *member_id, int fd)
{
    struct timeval tv = { .tv_sec = (time_t)(p->idle_ms / 1000),
                          .tv_usec = (suseconds_t)(p->idle_ms % 1000) * 1000 };
    size_t len = strlen(member_id), same = 0;
    struct pool_conn *pc;

    TAILQ_FOREACH(pc, &p->idle, link)
    {
        same += strcmp(pc->member_id, member_id) == 0;
    }
    if (same >= p->max_idle) {
        return -1;
    }
    pc = TAILQ_FIRST(&p->spare);
    if (pc != NULL) {
        TAILQ_REMOVE(&p->spare, pc, link);
        if (pc->id_cap < len + 1) {
            free(pc);
            pc = NULL;
        }
    }
    if (pc == NULL) {
        pc = malloc(sizeof(*pc) + len + 1);
        if (pc == NULL) {
            return -1;
        }
        pc->id_cap = len + 1;
    }
    pc->pool = p;
    pc->fd = fd;
    memcpy(pc->member_id, member_id, len + 1);
    event_assign(&pc->ev, p->base, fd, EV_READ, pool_on_event, pc);
    event_add(&pc->ev, &tv);
    TAILQ_INSERT_TAIL(&p->idle, pc, link);
    p->nidle++;
    return 0;
}

void
pool_prune(struct pool *p, const struct member_set *members)
{
    struct pool_conn *pc, *next;

    for (pc = TAILQ_FIRST(&p->idle); pc != NULL; pc = next) {
        next = TAILQ_NEXT(pc, link);
        if (member_set_find(members, pc->member_id) < 0) {
            pool_close(p, pc);
        }
    }
}
