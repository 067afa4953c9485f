/* /metrics: per-worker snapshots summed on scrape (DESIGN §6). */
#include "proxy/scrape.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "proxy/metrics.h"
#include "proxy/worker.h"

#define SCRAPE_MAX_WAITING 64 /* more concurrent scrapers than this get a 503 */

struct scrape {
    struct worker *const *workers; /* borrowed */
    unsigned nworkers;
    scrape_main_fn fill;
    void *fill_arg;
    struct event *done;            /* owned; activated by the workers */
    struct worker_snapshot *snaps; /* owned array of nworkers; in use while pending */
    _Atomic unsigned pending;      /* workers yet to report */
    struct evhttp_request *waiting[SCRAPE_MAX_WAITING];
    size_t nwaiting;
};

static void
scrape_free_snaps(struct scrape *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        for (size_t j = 0; j < s->snaps[i].nbackends; j++) {
            free(s->snaps[i].backends[j].id);
        }
        free(s->snaps[i].backends);
        memset(&s->snaps[i], 0, sizeof(s->snaps[i]));
    }
}

/* Merges the workers' per-backend counts by id into one list (owned ids moved, not copied). */
static struct metrics_backend *
scrape_merge(struct scrape *s, size_t *n)
{
    size_t total = 0, k = 0;
    struct metrics_backend *all;

    for (unsigned i = 0; i < s->nworkers; i++) {
        total += s->snaps[i].nbackends;
    }
    all = calloc(total + 1, sizeof(*all));
    if (all == NULL) {
        *n = 0;
        return NULL;
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        for (size_t j = 0; j < s->snaps[i].nbackends; j++) {
            struct metrics_backend *b = &s->snaps[i].backends[j];
            size_t x;

            for (x = 0; x < k && strcmp(all[x].id, b->id) != 0; x++) {
            }
            if (x == k) {
                all[k].id = b->id;
                b->id = NULL;
                k++;
            }
            all[x].active += b->active;
        }
    }
    *n = k;
    return all;
}

static void
scrape_on_done(evutil_socket_t fd, short what, void *arg)
{
    struct scrape *s = arg;
    struct metrics_worker sum;
    struct metrics_main m;
    struct metrics_backend *backends;
    size_t nbackends;
    struct evbuffer *text;

    (void)fd;
    (void)what;
    if (atomic_load(&s->pending) != 0 || s->nwaiting == 0) {
        return; /* activations coalesce: the last worker's wakes us again */
    }
    text = evbuffer_new();
    memset(&sum, 0, sizeof(sum));
    memset(&m, 0, sizeof(m));
    for (unsigned i = 0; i < s->nworkers; i++) {
        metrics_sum(&sum, &s->snaps[i].metrics);
    }
    backends = scrape_merge(s, &nbackends);
    s->fill(&m, s->fill_arg);
    m.workers = s->nworkers;
    if (text != NULL) {
        metrics_write(text, &sum, backends, nbackends, &m);
    }
    for (size_t i = 0; i < s->nwaiting; i++) {
        struct evhttp_request *req = s->waiting[i];

        if (text == NULL) {
            evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
            continue;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evbuffer_add(evhttp_request_get_output_buffer(req), evbuffer_pullup(text, -1),
                     evbuffer_get_length(text));
        evhttp_send_reply(req, 200, "OK", NULL);
    }
    s->nwaiting = 0;
    for (size_t i = 0; i < nbackends; i++) {
        free(backends[i].id);
    }
    free(backends);
    scrape_free_snaps(s);
    if (text != NULL) {
        evbuffer_free(text);
    }
}

void
scrape_request(struct evhttp_request *req, void *arg)
{
    struct scrape *s = arg;

    if (s->nwaiting == SCRAPE_MAX_WAITING) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, "too many scrapes at once");
        return;
    }
    s->waiting[s->nwaiting++] = req;
    if (s->nwaiting > 1) {
        return; /* joins the scrape in flight */
    }
    atomic_store(&s->pending, s->nworkers);
    for (unsigned i = 0; i < s->nworkers; i++) {
        s->snaps[i].pending = &s->pending;
        worker_request_snapshot(s->workers[i], &s->snaps[i], s->done);
    }
    if (s->nworkers == 0) {
        event_active(s->done, EV_READ, 0);
    }
}

struct scrape *
scrape_create(struct event_base *base, struct worker *const *workers, unsigned nworkers,
              scrape_main_fn fill, void *arg)
{
    struct scrape *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->workers = workers;
    s->nworkers = nworkers;
    s->fill = fill;
    s->fill_arg = arg;
    s->snaps = calloc(nworkers + 1, sizeof(*s->snaps));
    s->done = event_new(base, -1, 0, scrape_on_done, s);
    if (s->snaps == NULL || s->done == NULL) {
        scrape_destroy(s);
        return NULL;
    }
    return s;
}

void
scrape_destroy(struct scrape *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nwaiting; i++) {
        evhttp_send_error(s->waiting[i], HTTP_SERVUNAVAIL, NULL);
    }
    if (s->snaps != NULL) {
        scrape_free_snaps(s);
        free(s->snaps);
    }
    if (s->done != NULL) {
        event_free(s->done);
    }
    free(s);
}
