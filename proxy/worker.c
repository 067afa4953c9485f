/* Worker threads: base, SO_REUSEPORT listeners, accept loop, stop (DESIGN §1). */
#include "proxy/worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/conn.h"
#include "proxy/log.h"
#include "proxy/migrate.h"
#include "proxy/route.h"
#include "ring/ring.h"

#define WORKER_SCRATCH_BYTES   (128 * 1024) /* one relay read; big reads make bulk cheap */
#define WORKER_ACCEPT_BATCH    64 /* accepts per wakeup, so a storm cannot starve relays */
#define WORKER_LISTEN_BACKLOG  4096
#define WORKER_EMFILE_PAUSE_MS 100

int
worker_listen_socket(const char *host, uint16_t port, char *err, size_t err_len)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char portstr[8];
    int fd = -1, one = 1, rc;

    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "listen %s:%u: %s", host, port, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        /* Accepted sockets inherit it (Linux copies the listener): no setsockopt per client. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
        /* Clients speak first (HTTP, TLS, PROXY): accept a connection with its first bytes, in
         * one wake-up, not on its bare ACK. A silent one waits about a second in the kernel. */
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one)) == -1 ||
        (res->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
        bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, WORKER_LISTEN_BACKLOG) == -1) {
        snprintf(err, err_len, "listen %s:%u: %s", host, port, strerror(errno));
        if (fd != -1) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void
worker_on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < w->nlisteners; i++) {
        event_add(&w->listeners[i].ev, NULL);
    }
}

/* Out of descriptors: stop accepting for a moment instead of spinning on EMFILE. */
static void
worker_pause_accepting(struct worker *w)
{
    struct timeval tv = { .tv_sec = 0, .tv_usec = WORKER_EMFILE_PAUSE_MS * 1000 };

    for (size_t i = 0; i < w->nlisteners; i++) {
        event_del(&w->listeners[i].ev);
    }
    evtimer_add(&w->accept_pause, &tv);
    log_msg(LOG_WARN, "event=accept_paused worker=%u error=\"%s\" conns=%zu", w->id,
            strerror(errno), w->nconns);
}

static void
worker_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct worker_listener *l = arg;
    struct worker *w = l->worker;

    (void)what;
    for (int i = 0; i < WORKER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                worker_pause_accepting(w);
            }
            break; /* EAGAIN, or a connection that died in the queue */
        }
        conn_start(w, l, fd, (struct sockaddr *)&peer, peer_len);
    }
    /* Their first bytes (a ClientHello, a request) are in already, most often: read them now,
     * in one batch, rather than after a turn of the loop. */
    fdev_loop_run(&w->fdev);
}

/* In the thread that runs W: its io_uring batches take one issuer. */
static void
worker_start_batches(struct worker *w)
{
    fdev_loop_start_batches(&w->fdev);
    if (w->id == 0) {
        log_msg(LOG_INFO, "event=io_uring state=%s", w->fdev.ring_state == 1 ? "on" : "off");
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    worker_start_batches(w);
    event_base_dispatch(w->base);
    return NULL;
}

static void
worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct conn *c;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < w->nlisteners; i++) {
        event_del(&w->listeners[i].ev);
    }
    evtimer_del(&w->accept_pause);
    evtimer_del(&w->migrate_ev);
    pool_fini(&w->pool);
    while ((c = TAILQ_FIRST(&w->conns)) != NULL) {
        if (c->state == CONN_ANSWERING) {
            c->state = CONN_RELAY; /* skip the linger: we are leaving */
        }
        conn_close(c, CLOSE_SHUTDOWN);
    }
    if (!w->on_main) {
        event_base_loopbreak(w->base);
    }
}

static void
worker_on_route(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct route *next;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->route_lock);
    next = w->route_pending;
    w->route_pending = NULL;
    pthread_mutex_unlock(&w->route_lock);
    if (next != NULL) {
        route_unref(w->route);
        w->route = next;
        pool_set_limits(&w->pool, next->conf->pool_idle_timeout_ms, next->conf->pool_max_idle);
        pool_prune(&w->pool, ring_members(next->ring)); /* members that left: drain */
        migrate_plan(w);
    }
}

static void
worker_on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct conn *c, *next;

    (void)fd;
    (void)what;
    w->draining = 1;
    for (size_t i = 0; i < w->nlisteners; i++) {
        event_del(&w->listeners[i].ev);
        close(w->listeners[i].fd);
    }
    w->nlisteners = 0;
    evtimer_del(&w->accept_pause);
    evtimer_del(&w->migrate_ev);
    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->queued) {
            TAILQ_REMOVE(&w->misplaced, c, mlink);
            c->queued = 0;
        }
        if (c->state == CONN_READ_HEAD || c->state == CONN_CONNECTING) {
            conn_close(c, CLOSE_SHUTDOWN); /* nothing relayed yet: nothing to finish */
        } else {
            relay_close_gently(c, 1001, CLOSE_DRAINED); /* RFC 6455 s7.4.1: going away */
        }
    }
}

/* Counts W's relayed connections per backend id into OUT (ids copied: routes may go). */
static void
worker_count_backends(struct worker *w, struct worker_snapshot *out)
{
    struct conn *c;
    size_t cap = 0;

    TAILQ_FOREACH(c, &w->conns, link)
    {
        size_t i;

        if (c->member == NULL || c->state < CONN_RELAY || c->state > CONN_CLOSE_SENT) {
            continue;
        }
        for (i = 0; i < out->nbackends && strcmp(out->backends[i].id, c->member->id) != 0; i++) {
        }
        if (i == out->nbackends) {
            if (out->nbackends == cap) {
                size_t ncap = cap == 0 ? 16 : cap * 2;
                struct metrics_backend *p = realloc(out->backends, ncap * sizeof(*p));

                if (p == NULL) {
                    return; /* a partial count beats none */
                }
                out->backends = p;
                cap = ncap;
            }
            out->backends[i].id = strdup(c->member->id);
            out->backends[i].active = 0;
            if (out->backends[i].id == NULL) {
                return;
            }
            out->nbackends++;
        }
        out->backends[i].active++;
    }
}

static void
worker_on_snapshot(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct worker_snapshot *out;
    struct event *done;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->route_lock);
    out = w->snapshot_out;
    done = w->snapshot_done;
    w->snapshot_out = NULL;
    pthread_mutex_unlock(&w->route_lock);
    if (out == NULL) {
        return;
    }
    out->metrics = w->metrics;
    worker_count_backends(w, out);
    atomic_fetch_sub(out->pending, 1);
    event_active(done, EV_READ, 0);
}

void
worker_request_snapshot(struct worker *w, struct worker_snapshot *out, struct event *done)
{
    pthread_mutex_lock(&w->route_lock);
    w->snapshot_out = out;
    w->snapshot_done = done;
    pthread_mutex_unlock(&w->route_lock);
    event_active(&w->snapshot_ev, EV_READ, 0);
}

void
worker_drain(struct worker *w)
{
    event_active(&w->drain_ev, EV_READ, 0);
}

void
worker_set_route(struct worker *w, struct route *route)
{
    struct route *old;

    pthread_mutex_lock(&w->route_lock);
    old = w->route_pending;
    w->route_pending = route_ref(route);
    pthread_mutex_unlock(&w->route_lock);
    route_unref(old);
    event_active(&w->route_ev, EV_READ, 0);
}

/*
 * A worker's base (and the main thread's) batches epoll changes per loop iteration (libevent's
 * changelist): libcurl and the ZooKeeper client swap events often. Safe here: libevent's hazard
 * is dup()ed descriptors, and neither wsring nor libcurl nor the ZooKeeper client dups.
 * Connections have their own edge-triggered set (fdev.h).
 */
struct event_base *
worker_base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (cfg == NULL) {
        return NULL;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

struct worker *
worker_create(unsigned id, const struct conf *conf, struct route *route,
              struct migrate_pacer *pacer, struct event_base *main_base, char *err, size_t err_len)
{
    struct worker *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    w->id = id;
    pthread_mutex_init(&w->route_lock, NULL);
    TAILQ_INIT(&w->conns);
    TAILQ_INIT(&w->misplaced);
    w->pacer = pacer;
    w->rand_state = id * 2654435761u + (unsigned)time(NULL);
    w->on_main = main_base != NULL;
    w->base = w->on_main ? main_base : worker_base_new();
    if (w->base == NULL ||
        fdev_loop_init(&w->fdev, w->base, relay_send_prep, relay_send_done) == -1) {
        snprintf(err, err_len, "event loop: %s", strerror(errno));
        worker_destroy(w);
        return NULL;
    }
    pool_init(&w->pool, w->base);
    pool_set_limits(&w->pool, route->conf->pool_idle_timeout_ms, route->conf->pool_max_idle);
    w->scratch_len = WORKER_SCRATCH_BYTES;
    w->scratch = malloc(w->scratch_len);
    w->listeners = calloc(conf->nlisten, sizeof(*w->listeners));
    if (w->scratch == NULL || w->listeners == NULL) {
        snprintf(err, err_len, "out of memory");
        worker_destroy(w);
        return NULL;
    }
    w->route = route_ref(route);
    for (size_t i = 0; i < conf->nlisten; i++) {
        struct worker_listener *l = &w->listeners[i];

        l->fd = worker_listen_socket(conf->listen[i].addr.host, conf->listen[i].addr.port, err,
                                     err_len);
        if (l->fd == -1) {
            worker_destroy(w);
            return NULL;
        }
        w->nlisteners++;
        l->tls = conf->listen[i].tls;
        l->proto = l->tls ? "https" : "http";
        l->proxy_protocol = conf->listen[i].proxy_protocol;
        l->worker = w;
        event_assign(&l->ev, w->base, l->fd, EV_READ | EV_PERSIST, worker_on_accept, l);
        event_add(&l->ev, NULL);
    }
    evtimer_assign(&w->accept_pause, w->base, worker_on_accept_resume, w);
    event_assign(&w->stop_ev, w->base, -1, 0, worker_on_stop, w);
    event_assign(&w->route_ev, w->base, -1, 0, worker_on_route, w);
    event_assign(&w->drain_ev, w->base, -1, 0, worker_on_drain, w);
    event_assign(&w->snapshot_ev, w->base, -1, 0, worker_on_snapshot, w);
    evtimer_assign(&w->migrate_ev, w->base, migrate_on_timer, w);
    return w;
}

int
worker_start(struct worker *w)
{
    if (w->on_main) {
        worker_start_batches(w);
        return 0; /* the main loop runs it */
    }
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void
worker_stop(struct worker *w)
{
    if (w->on_main) {
        worker_on_stop(-1, 0, w); /* the main loop has returned: stop here and now */
        return;
    }
    event_active(&w->stop_ev, EV_READ, 0);
    pthread_join(w->thread, NULL);
}

void
worker_destroy(struct worker *w)
{
    if (w == NULL) {
        return;
    }
    for (size_t i = 0; i < w->nlisteners; i++) {
        event_del(&w->listeners[i].ev);
        close(w->listeners[i].fd);
    }
    free(w->listeners);
    route_unref(w->route);
    route_unref(w->route_pending);
    pthread_mutex_destroy(&w->route_lock);
    free(w->scratch);
    if (w->base != NULL) {
        pool_fini(&w->pool);
        fdev_loop_fini(&w->fdev);
        if (!w->on_main) {
            event_base_free(w->base);
        }
    }
    free(w);
}
