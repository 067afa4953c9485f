/* Paced, jittered migration of misplaced connections (DESIGN §5). */
#include "proxy/migrate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/conn.h"
#include "proxy/log.h"
#include "proxy/worker.h"
#include "ring/ring.h"

#define MIGRATE_CLOSE_CODE 1012 /* RFC 6455 s7.4.1 registry: service restart */

static uint64_t
migrate_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const struct member *
migrate_owner(const struct ring *ring, uint64_t hash)
{
    uint32_t i = ring_owner(ring, hash);

    return i == RING_NONE ? NULL : member_set_at(ring_members(ring), i);
}

/*
 * Misplaced: the key's owner changed since C was routed, and C is not already
 * on the new owner (a retry may have put it there). An empty ring moves no one.
 */
static bool
migrate_is_misplaced(const struct conn *c, const struct ring *now)
{
    const struct member *owner = migrate_owner(now, c->key_hash);
    const struct member *then = migrate_owner(c->route->ring, c->key_hash);

    return owner != NULL && then != NULL && strcmp(owner->id, c->member->id) != 0 &&
           strcmp(owner->id, then->id) != 0;
}

/*
 * Claims the next proxy-wide slot and returns how long to wait for it. Slots
 * are at least 1/(rate-1) s apart, so no 1-second window holds more than
 * RATE of them, and up to 30% longer at random so proxies do not beat in step.
 */
static uint64_t
migrate_claim_us(struct worker *w, unsigned rate)
{
    uint64_t gap = rate >= 2 ? 1000000u / (rate - 1) : 1000001u;
    uint64_t now = migrate_now_us(), cur = atomic_load(&w->pacer->next_us), slot, next;

    gap += (uint64_t)rand_r(&w->rand_state) % (gap * 3 / 10 + 1);
    do {
        slot = cur > now ? cur : now;
        next = slot + gap;
    } while (!atomic_compare_exchange_weak(&w->pacer->next_us, &cur, next));
    return slot - now;
}

static void
migrate_arm(struct worker *w)
{
    unsigned rate = w->route->conf->migrate_rate;
    uint64_t us;
    struct timeval tv;

    if (rate == 0 || TAILQ_EMPTY(&w->misplaced) || evtimer_pending(&w->migrate_ev, NULL)) {
        return;
    }
    us = migrate_claim_us(w, rate);
    tv.tv_sec = (time_t)(us / 1000000u);
    tv.tv_usec = (suseconds_t)(us % 1000000u);
    evtimer_add(&w->migrate_ev, &tv);
}

void
migrate_on_timer(int fd, short what, void *arg)
{
    struct worker *w = arg;
    struct conn *c = TAILQ_FIRST(&w->misplaced);

    (void)fd;
    (void)what;
    if (c != NULL) {
        TAILQ_REMOVE(&w->misplaced, c, mlink);
        c->queued = 0;
        w->metrics.migrations_started++;
        relay_close_gently(c, MIGRATE_CLOSE_CODE, CLOSE_MIGRATED);
    }
    migrate_arm(w);
}

void
migrate_plan(struct worker *w)
{
    const struct ring *now = w->route->ring;
    bool enabled = w->route->conf->migrate_rate > 0 && !w->draining;
    size_t queued = 0, home = 0;
    struct conn *c;

    TAILQ_FOREACH(c, &w->conns, link)
    {
        /* A plain request finishes on its own and the next one is routed afresh. */
        bool movable = !c->http || (c->resp_in_body && c->resp_streaming);
        bool misplaced = enabled && movable && c->state == CONN_RELAY && c->member != NULL &&
                         migrate_is_misplaced(c, now);

        if (misplaced && !c->queued) {
            TAILQ_INSERT_TAIL(&w->misplaced, c, mlink);
            c->queued = 1;
        } else if (!misplaced && c->queued) {
            TAILQ_REMOVE(&w->misplaced, c, mlink);
            c->queued = 0;
            home++;
        }
        queued += c->queued;
    }
    if (queued > 0 || home > 0) {
        log_msg(LOG_INFO, "event=migration_planned worker=%u misplaced=%zu home_again=%zu rate=%u",
                w->id, queued, home, w->route->conf->migrate_rate);
    }
    migrate_arm(w);
}
