/* libcurl multi <-> libevent glue (curl's multi_socket API, DESIGN §1). */
#include "discovery/curl_event.h"

#include <stdlib.h>

#include <event2/event.h>

struct curl_event {
    CURLM *multi;            /* owned */
    struct event_base *base; /* borrowed */
    struct event *timer;     /* owned; curl's single timeout */
};

/* What we remember per transfer (CURLOPT_PRIVATE). */
struct curl_event_job {
    curl_event_done_fn done;
    void *arg;
};

static void
curl_event_check_done(struct curl_event *ce)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(ce->multi, &left)) != NULL) {
        CURL *easy;
        CURLcode result;
        struct curl_event_job *job = NULL;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        /* Copy out first: msg is invalid once the handle leaves the multi. */
        easy = msg->easy_handle;
        result = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
        curl_multi_remove_handle(ce->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        if (job != NULL) {
            curl_event_done_fn done = job->done;
            void *arg = job->arg;

            free(job);
            done(easy, result, arg);
        }
    }
}

static void
curl_event_on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct curl_event *ce = arg;
    int flags =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;

    curl_multi_socket_action(ce->multi, fd, flags, &running);
    curl_event_check_done(ce);
}

static void
curl_event_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct curl_event *ce = arg;
    int running;

    (void)fd;
    (void)what;
    curl_multi_socket_action(ce->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    curl_event_check_done(ce);
}

/* CURLMOPT_SOCKETFUNCTION: watch S for WHAT; SOCKP is our event for it, if any. */
static int
curl_event_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
    struct curl_event *ce = userp;
    struct event *ev = sockp;
    short kind = EV_PERSIST;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL) {
            event_free(ev);
            curl_multi_assign(ce->multi, s, NULL);
        }
        return 0;
    }
    kind |= (what & CURL_POLL_IN) ? EV_READ : 0;
    kind |= (what & CURL_POLL_OUT) ? EV_WRITE : 0;
    if (ev != NULL) {
        event_del(ev);
        event_assign(ev, ce->base, s, kind, curl_event_on_socket, ce);
    } else {
        ev = event_new(ce->base, s, kind, curl_event_on_socket, ce);
        if (ev == NULL) {
            return -1;
        }
        curl_multi_assign(ce->multi, s, ev);
    }
    return event_add(ev, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: -1 deletes the timer; 0 means "as soon as possible" (not from here). */
static int
curl_event_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_event *ce = userp;
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(ce->timer);
        return 0;
    }
    return evtimer_add(ce->timer, &tv) == 0 ? 0 : -1;
}

struct curl_event *
curl_event_create(struct event_base *base)
{
    struct curl_event *ce = calloc(1, sizeof(*ce));

    if (ce == NULL) {
        return NULL;
    }
    ce->base = base;
    ce->multi = curl_multi_init();
    ce->timer = evtimer_new(base, curl_event_on_timer, ce);
    if (ce->multi == NULL || ce->timer == NULL) {
        curl_event_destroy(ce);
        return NULL;
    }
    curl_multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, curl_event_socket_cb);
    curl_multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
    curl_multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, curl_event_timer_cb);
    curl_multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
    return ce;
}

int
curl_event_add(struct curl_event *ce, CURL *easy, curl_event_done_fn done, void *arg)
{
    struct curl_event_job *job = malloc(sizeof(*job));

    if (job == NULL) {
        return -1;
    }
    job->done = done;
    job->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
    if (curl_multi_add_handle(ce->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(job);
        return -1;
    }
    return 0;
}

void
curl_event_remove(struct curl_event *ce, CURL *easy)
{
    struct curl_event_job *job = NULL;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
    if (job == NULL) {
        return; /* not running */
    }
    curl_multi_remove_handle(ce->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(job);
}

void
curl_event_destroy(struct curl_event *ce)
{
    if (ce == NULL) {
        return;
    }
    /* The easy handles belong to their owners, who remove them before this. */
    if (ce->multi != NULL) {
        curl_multi_cleanup(ce->multi);
    }
    if (ce->timer != NULL) {
        event_free(ce->timer);
    }
    free(ce);
}
