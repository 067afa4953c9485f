/* Member sets -> debounced, built, logged, published routes (DESIGN §5). */
#include "proxy/publisher.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "discovery/state_file.h"
#include "proxy/log.h"
#include "proxy/route.h"
#include "ring/member_set.h"
#include "ring/ring.h"

#define PUBLISHER_LIST_LEN 512 /* bytes of added/removed ids in one log line */

struct publisher {
    const struct conf *conf;     /* borrowed; outlives the publisher */
    struct route *route;         /* reference; the current one */
    const char *source;          /* static string: where members come from */
    const char *source_now;      /* source, or "state_file" while the saved set is in force */
    time_t last_update;          /* when route took effect */
    unsigned long long nchanges; /* membership changes applied */
    struct member_set *pending;  /* owned or NULL; waiting for ring_hold */
    struct event *hold;          /* owned */
    publisher_publish_fn publish;
    void *publish_arg;
    publisher_status_fn status;
    void *status_arg;
    char *state_file;             /* owned or NULL; where accepted sets are saved */
    struct member_set *saved;     /* owned or NULL; what state_file holds */
    struct member_set *fallback;  /* owned or NULL; the saved set, until the source answers */
    struct event *fallback_timer; /* owned or NULL */
    bool offered;                 /* the source has offered a set */
};

/* Appends ID to LIST (comma-separated), marking a cut with "...". */
static void
publisher_list_add(char *list, const char *id)
{
    size_t len = strlen(list);

    if (len + strlen(id) + 5 >= PUBLISHER_LIST_LEN) {
        if (len + 4 < PUBLISHER_LIST_LEN && (len < 3 || strcmp(list + len - 3, "...") != 0)) {
            strcat(list, len > 0 ? ",..." : "...");
        }
        return;
    }
    snprintf(list + len, PUBLISHER_LIST_LEN - len, "%s%s", len > 0 ? "," : "", id);
}

/* Logs the change from OLD to NEW: who joined, who left, the new fingerprints. */
static void
publisher_log_change(const struct publisher *p, const struct member_set *old,
                     const struct route *route)
{
    const struct member_set *new = ring_members(route->ring);
    char added[PUBLISHER_LIST_LEN] = "", removed[PUBLISHER_LIST_LEN] = "";
    char membership[RING_FINGERPRINT_LEN];
    size_t i = 0, j = 0, n = member_set_count(old), m = member_set_count(new);

    /* Both sets are sorted by id: one merge walk finds the differences. */
    while (i < n || j < m) {
        const struct member *a = i < n ? member_set_at(old, i) : NULL;
        const struct member *b = j < m ? member_set_at(new, j) : NULL;
        int cmp = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->id, b->id);

        if (cmp < 0) {
            publisher_list_add(removed, a->id);
            i++;
        } else if (cmp > 0) {
            publisher_list_add(added, b->id);
            j++;
        } else {
            if (strcmp(a->address, b->address) != 0 || a->weight != b->weight ||
                (a->public_url == NULL) != (b->public_url == NULL) ||
                (a->public_url != NULL && strcmp(a->public_url, b->public_url) != 0)) {
                publisher_list_add(added, b->id); /* changed: listed as re-added */
            }
            i++;
            j++;
        }
    }
    ring_fingerprint_format(ring_membership_fingerprint(route->ring), membership);
    log_msg(LOG_INFO,
            "event=ring_changed source=%s members=%zu fingerprint=%s membership=%s added=%s "
            "removed=%s",
            p->source_now, m, route->fingerprint, membership, added[0] ? added : "-",
            removed[0] ? removed : "-");
}

/* Builds and publishes a route over SET (taken) with SETTINGS. Returns 0, or -1 (ENOMEM). */
static int
publisher_switch(struct publisher *p, struct settings *settings, struct member_set *set)
{
    const struct member_set *old = ring_members(p->route->ring);
    const struct ring_params *want = &settings->conf->ring, *have = ring_params(p->route->ring);
    bool same_params =
        want->algo == have->algo && (want->algo != RING_ALGO_RING || want->vnodes == have->vnodes);
    struct ring *ring = same_params ? ring_rebuild(p->route->ring, set) : ring_build(set, want);
    struct route *route = ring != NULL ? route_create(ring, settings, p->route) : NULL;
    bool changed;

    if (route == NULL) {
        log_msg(LOG_ERROR, "event=ring_build_failed error=\"out of memory\" action=\"keeping the "
                           "current ring\"");
        return -1;
    }
    changed = strcmp(route->fingerprint, p->route->fingerprint) != 0;
    if (changed) {
        publisher_log_change(p, old, route);
        p->last_update = time(NULL);
        p->nchanges++;
    }
    p->publish(route, p->publish_arg);
    route_unref(p->route);
    p->route = route;
    return 0;
}

/* Saves the members in force to state_file when they differ from what it holds. */
static void
publisher_save(struct publisher *p)
{
    const struct member_set *set = ring_members(p->route->ring);
    struct member_set *copy;
    char err[512];

    if (p->state_file == NULL || (p->saved != NULL && member_set_equal(p->saved, set))) {
        return;
    }
    if (state_file_write(p->state_file, set, p->source, err, sizeof(err)) == -1) {
        char quoted[1024];

        log_msg(LOG_WARN,
                "event=state_file_write_failed error=\"%s\" action=\"routing goes on; the file "
                "keeps its older set\"",
                log_escape(err, quoted, sizeof(quoted)));
        return;
    }
    copy = member_set_copy(set);
    if (copy != NULL) {
        member_set_destroy(p->saved);
        p->saved = copy;
    }
}

static void
publisher_apply(struct publisher *p)
{
    struct member_set *set = p->pending;

    p->pending = NULL;
    if (set == NULL) {
        return;
    }
    if (p->source_now != p->source) {
        log_msg(LOG_INFO, "event=state_file_superseded source=%s members=%zu", p->source,
                member_set_count(set));
        p->source_now = p->source;
    }
    if (member_set_equal(set, ring_members(p->route->ring))) {
        member_set_destroy(set);
    } else if (publisher_switch(p, p->route->settings, set) == -1) {
        return;
    }
    publisher_save(p);
}

/* The source has not answered within the grace time: route on the saved set meanwhile. */
static void
publisher_on_fallback(evutil_socket_t fd, short what, void *arg)
{
    struct publisher *p = arg;
    struct member_set *set = p->fallback;

    (void)fd;
    (void)what;
    p->fallback = NULL;
    if (set == NULL || p->offered) {
        member_set_destroy(set);
        return;
    }
    p->source_now = "state_file";
    log_msg(LOG_WARN,
            "event=state_file_in_force path=%s members=%zu reason=\"%s has not answered yet\" "
            "action=\"routing on the saved set until it does\"",
            p->state_file, member_set_count(set), p->source);
    if (publisher_switch(p, p->route->settings, set) == -1) {
        p->source_now = p->source;
    }
}

int
publisher_set_state_file(struct publisher *p, struct event_base *base, const char *path,
                         uint64_t grace_ms)
{
    char *copy = path != NULL ? strdup(path) : NULL;
    struct timeval tv = { .tv_sec = (time_t)(grace_ms / 1000),
                          .tv_usec = (suseconds_t)(grace_ms % 1000) * 1000 };
    bool moved = path == NULL || p->state_file == NULL || strcmp(path, p->state_file) != 0;
    char err[512], quoted[1024];
    struct member_set *set;

    if (path != NULL && copy == NULL) {
        return -1;
    }
    free(p->state_file);
    p->state_file = copy;
    if (base == NULL || path == NULL) {
        /* A reload: a new path gets the members in force at once, if the source gave them. */
        if (moved) {
            member_set_destroy(p->saved);
            p->saved = NULL;
            if (p->offered && p->source_now == p->source) {
                publisher_save(p);
            }
        }
        return 0;
    }
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        log_msg(LOG_INFO,
                "event=state_file_absent path=%s note=\"written once the source answers\"", path);
        return 0;
    }
    set = state_file_read(path, err, sizeof(err));
    if (set == NULL) {
        log_msg(LOG_ERROR,
                "event=state_file_unusable error=\"%s\" action=\"ignoring it: the ring stays "
                "empty (503) until %s answers\"",
                log_escape(err, quoted, sizeof(quoted)), p->source);
        return 0;
    }
    p->saved = member_set_copy(set);
    p->fallback = set;
    p->fallback_timer = evtimer_new(base, publisher_on_fallback, p);
    if (p->saved == NULL || p->fallback_timer == NULL || evtimer_add(p->fallback_timer, &tv) != 0) {
        return -1;
    }
    log_msg(LOG_INFO, "event=state_file_loaded path=%s members=%zu grace_ms=%llu", path,
            member_set_count(set), (unsigned long long)grace_ms);
    return 0;
}

int
publisher_reload(struct publisher *p, struct settings *settings, struct member_set *members)
{
    if (members == NULL) {
        members = member_set_copy(ring_members(p->route->ring));
        if (members == NULL) {
            return -1;
        }
    }
    return publisher_switch(p, settings, members);
}

static void
publisher_on_hold(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publisher_apply(arg);
}

void
publisher_offer(struct member_set *members, void *arg)
{
    struct publisher *p = arg;
    uint64_t ms = p->route->conf->ring_hold_ms;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
                          .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

    member_set_destroy(p->pending);
    p->pending = members;
    p->offered = true;
    if (p->fallback != NULL) {
        /* The source answered in time: the saved set is not needed. */
        evtimer_del(p->fallback_timer);
        member_set_destroy(p->fallback);
        p->fallback = NULL;
    }
    /* The first set of a burst arms the timer; later ones only replace it, so churn cannot starve.
     */
    if (!evtimer_pending(p->hold, NULL)) {
        evtimer_add(p->hold, &tv);
    }
}

struct publisher *
publisher_create(struct event_base *base, struct route *initial, const char *source,
                 publisher_publish_fn publish, void *publish_arg)
{
    struct publisher *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->hold = evtimer_new(base, publisher_on_hold, p)) == NULL) {
        free(p);
        route_unref(initial);
        return NULL;
    }
    p->route = initial;
    p->source = source;
    p->source_now = source;
    p->last_update = time(NULL);
    p->publish = publish;
    p->publish_arg = publish_arg;
    return p;
}

void
publisher_destroy(struct publisher *p)
{
    if (p == NULL) {
        return;
    }
    event_free(p->hold);
    if (p->fallback_timer != NULL) {
        event_free(p->fallback_timer);
    }
    member_set_destroy(p->fallback);
    member_set_destroy(p->saved);
    free(p->state_file);
    member_set_destroy(p->pending);
    route_unref(p->route);
    free(p);
}

struct route *const *
publisher_current(const struct publisher *p)
{
    return &p->route;
}

void
publisher_set_status(struct publisher *p, publisher_status_fn status, void *arg)
{
    p->status = status;
    p->status_arg = arg;
}

json_t *
publisher_ring_json(void *arg)
{
    const struct publisher *p = arg;
    const struct ring *ring = p->route->ring;
    const struct member_set *set = ring_members(ring);
    char membership[RING_FINGERPRINT_LEN];
    json_t *members = json_array(), *root;

    for (size_t i = 0; i < member_set_count(set); i++) {
        const struct member *m = member_set_at(set, i);

        json_t *entry = json_pack("{s:s, s:s, s:i}", "id", m->id, "address", m->address, "weight",
                                  (int)m->weight);

        if (entry != NULL && m->public_url != NULL) {
            json_object_set_new(entry, "public_url", json_string(m->public_url));
        }
        json_array_append_new(members, entry);
    }
    ring_fingerprint_format(ring_membership_fingerprint(ring), membership);
    root = json_pack("{s:o, s:s, s:s, s:s, s:i, s:s, s:I, s:I}", "members", members, "fingerprint",
                     p->route->fingerprint, "membership_fingerprint", membership, "hash",
                     ring_algo_name(ring_params(ring)->algo), "vnodes",
                     (int)ring_params(ring)->vnodes, "source", p->source_now, "last_update",
                     (json_int_t)p->last_update, "changes", (json_int_t)p->nchanges);
    if (root != NULL) {
        /* Everything a local computation needs (ring/SPEC.md, clients/). */
        json_object_set_new(root, "key_hash", json_string("XXH3_64bits"));
        json_object_set_new(root, "spec", json_string("ring/SPEC.md v1"));
        if (ring_params(ring)->algo == RING_ALGO_RENDEZVOUS) {
            json_object_set_new(root, "slots", json_integer(1 << 20));
        }
    }
    if (root != NULL && p->status != NULL) {
        json_object_set_new(root, "watch", p->status(p->status_arg));
    }
    return root;
}

unsigned long long
publisher_changes(const struct publisher *p)
{
    return p->nchanges;
}

const char *
publisher_source(const struct publisher *p)
{
    return p->source_now;
}
