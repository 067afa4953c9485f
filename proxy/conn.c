/* The connection state machine up to the relay, and its single exit (DESIGN §3, §7). */
#include "proxy/conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/conn_io.h"
#include "proxy/forward.h"
#include "proxy/head.h"
#include "proxy/key.h"
#include "proxy/log.h"
#include "proxy/proxy_proto.h"
#include "proxy/redirect.h"
#include "proxy/settings.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

#define CONN_HEAD_FIRST_ALLOC 2048
#define CONN_LINGER_MS        2000 /* how long an answered client may keep sending */
#define CONN_IP_LEN           INET6_ADDRSTRLEN
#define CONN_KEEPALIVE_MS                                                                          \
    60000 /* an idle keep-alive client gets this long for its next request                         \
           */

static void conn_on_head_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_client_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_proxy_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_handshake_timeout(evutil_socket_t fd, short what, void *arg);
static void conn_connect_next(struct conn *c);
static void conn_connected(struct conn *c, const struct member *m);
static void conn_head_done(struct conn *c);
static void conn_linger(struct conn *c);
static void conn_linger_wait(struct conn *c);

static uint64_t
conn_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timeval
conn_tv(uint64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
                          .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

    return tv;
}

/* The client address as text: no port, no brackets (DESIGN §12 key_missing client_ip). */
static void
conn_client_ip(const struct conn *c, char out[CONN_IP_LEN])
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;

    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, CONN_IP_LEN);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, CONN_IP_LEN);
    }
}

void
conn_start(struct worker *w, const struct worker_listener *listener, int fd,
           const struct sockaddr *peer, socklen_t peer_len)
{
    struct conn *c = calloc(1, sizeof(*c));
    struct timeval tv = conn_tv(w->route->conf->handshake_timeout_ms);

    if (c == NULL || fdev_open(&w->fdev, &c->end[SIDE_CLIENT].io, fd, true) == -1) {
        free(c);
        close(fd);
        return;
    }
    c->worker = w;
    c->proto = listener->proto;
    c->route = route_ref(w->route);
    c->end[SIDE_CLIENT].fd = fd;
    c->end[SIDE_CLIENT].io.ahead = 1; /* TLS reads through fdev too (conn_io_bio_new) */
    c->end[SIDE_CLIENT].side = SIDE_CLIENT;
    c->end[SIDE_BACKEND].fd = -1;
    c->end[SIDE_BACKEND].side = SIDE_BACKEND;
    memcpy(&c->peer, peer, peer_len);
    c->peer_len = peer_len;
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    w->metrics.accepted++;
    c->accepted_us = conn_now_us();
    c->state = CONN_READ_HEAD;
    c->await_proxy = listener->proxy_protocol;
    evtimer_assign(&c->timer, w->base, conn_on_handshake_timeout, c);
    if (listener->tls) {
        /* The certificate in force now (SIGHUP swaps it for later connections only). */
        SSL_CTX *ctx = c->route->settings->tls_server;

        c->end[SIDE_CLIENT].ssl =
            ctx != NULL ? tls_server_new(ctx, conn_io_bio_new(&c->end[SIDE_CLIENT])) : NULL;
        if (c->end[SIDE_CLIENT].ssl == NULL) {
            conn_close(c, CLOSE_TLS_HANDSHAKE); /* no answer: it would be plaintext */
            return;
        }
    }
    fdev_read(&c->end[SIDE_CLIENT].io, conn_on_client_read, c);
    /* One deadline for the whole head, so a client dripping bytes cannot extend it. */
    evtimer_add(&c->timer, &tv);
}

static void
conn_on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    assert(c->state == CONN_READ_HEAD);
    conn_close(c, CLOSE_HANDSHAKE_TIMEOUT);
}

/* The PROXY header is in: the client's own stream (the head) comes next, same deadline. */
static void
conn_proxy_done(struct conn *c, const struct proxy_proto_header *h)
{
    if (h->has_addr) { /* LOCAL and UNKNOWN keep the socket's own peer (spec 2.1, 2.2) */
        memcpy(&c->peer, &h->src, h->addr_len);
        c->peer_len = h->addr_len;
        memcpy(&c->local, &h->dst, h->addr_len);
        c->local_len = h->addr_len;
    }
    free(c->pp);
    c->pp = NULL;
    c->pp_len = 0;
    c->await_proxy = 0; /* conn_on_client_read now reads the head */
}

/*
 * READ_HEAD on a proxy_protocol listener, before anything else (DESIGN §12):
 * the PROXY header is peeked at and only its own bytes are consumed, so what
 * follows stays in the socket for the next reader (the head, or a TLS
 * ClientHello). A missing or malformed header closes without an answer.
 */
static void
conn_on_proxy_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct proxy_proto_header h;
    enum proxy_proto_result r;
    size_t take;
    ssize_t n;

    (void)fd;
    (void)what;
    assert(c->state == CONN_READ_HEAD);
    if (c->pp == NULL && (c->pp = malloc(PROXY_PROTO_MAX_LEN)) == NULL) {
        conn_close(c, CLOSE_NO_MEMORY);
        return;
    }
    n = fdev_recv(&c->end[SIDE_CLIENT].io, c->pp + c->pp_len, PROXY_PROTO_MAX_LEN - c->pp_len,
                  MSG_PEEK);
    if (n == 0) {
        conn_close(c, CLOSE_CLIENT_EOF);
        return;
    }
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(c, CLOSE_CLIENT_ERROR);
        }
        return;
    }
    r = proxy_proto_parse(c->pp, c->pp_len + (size_t)n, &h);
    if (r == PROXY_PROTO_BAD) {
        log_msg(LOG_DEBUG, "event=bad_proxy_header bytes=%zu", c->pp_len + (size_t)n);
        conn_close(c, CLOSE_BAD_PROXY);
        return;
    }
    /* PARTIAL: every byte peeked is a header byte; DONE: take the header, not one byte more. */
    take = r == PROXY_PROTO_DONE ? h.len - c->pp_len : (size_t)n;
    if (fdev_recv(&c->end[SIDE_CLIENT].io, c->pp + c->pp_len, take, 0) != (ssize_t)take) {
        conn_close(c, CLOSE_CLIENT_ERROR);
        return;
    }
    c->pp_len += take;
    if (r == PROXY_PROTO_DONE) {
        conn_proxy_done(c, &h);
    }
}

/* Grows the head buffer up to max_head_bytes + 1 (one more byte tells "too large"). */
static int
conn_head_reserve(struct conn *c)
{
    size_t limit = c->route->conf->max_head_bytes + 1, cap;
    char *p;

    if (c->head_len < c->head_cap) {
        return 0;
    }
    cap = c->head_cap == 0 ? CONN_HEAD_FIRST_ALLOC : c->head_cap * 2;
    if (cap > limit) {
        cap = limit;
    }
    p = realloc(c->head, cap);
    if (p == NULL) {
        return -1;
    }
    c->head = p;
    c->head_cap = cap;
    return 0;
}

/* Finds the key and the backends to try. Returns the close reason, or CLOSE_DONE to go on. */
static enum close_reason
conn_route(struct conn *c, const struct head *head, char *key, size_t *key_len)
{
    const struct conf *conf;
    enum key_result kr;
    struct key_jwt jwt;

    if (c->route != c->worker->route) {
        /* Route with the ring and rules in force now, not those at accept. */
        route_unref(c->route);
        c->route = route_ref(c->worker->route);
    }
    conf = c->route->conf;
    jwt = (struct key_jwt){
        .key = c->route->settings->jwt_key,
        .policy = { .audience = conf->jwt_audience,
                    .issuer = conf->jwt_issuer,
                    .leeway_sec = (int64_t)(conf->jwt_leeway_ms / 1000),
                    .now_sec = (int64_t)time(NULL) },
    };
    kr = key_extract_with(head, conf->keys, conf->nkeys, &jwt, key, conf->max_key_bytes, key_len);

    if (kr == KEY_BAD) {
        return CLOSE_BAD_KEY;
    }
    if (kr == KEY_UNAUTHORIZED) {
        log_msg(LOG_DEBUG, "event=bad_token why=%s", jwt_result_name(jwt.result));
        return CLOSE_BAD_TOKEN; /* never the next rule: a forged token must not pick a server */
    }
    if (kr == KEY_MISSING) {
        if (conf->key_missing != CONF_KEY_MISSING_CLIENT_IP) {
            return CLOSE_NO_KEY;
        }
        conn_client_ip(c, key);
        *key_len = strlen(key);
    }
    c->key_hash = ring_key_hash(key, *key_len);
    c->ncand =
        (uint8_t)route_candidates(c->route, c->key_hash, conf->retry_next, route_now_ms(), c->cand);
    return c->ncand == 0 ? CLOSE_RING_EMPTY : CLOSE_DONE;
}

/*
 * send_proxy: the PROXY header for this client into OUT (PROXY_PROTO_WRITE_MAX
 * bytes), first on the backend connection. Returns its length (0 when off).
 * Backend connections are then never pooled (relay.c), so one always serves
 * the client its header names.
 */
static size_t
conn_send_proxy(struct conn *c, uint8_t *out)
{
    enum conf_send_proxy v = c->route->conf->send_proxy;

    if (v == CONF_SEND_PROXY_OFF) {
        return 0;
    }
    if (c->local_len == 0) {
        socklen_t len = sizeof(c->local);

        if (getsockname(c->end[SIDE_CLIENT].fd, (struct sockaddr *)&c->local, &len) == -1) {
            c->local.ss_family = AF_UNSPEC; /* written as UNKNOWN / LOCAL */
        }
        c->local_len = len;
    }
    return proxy_proto_write(v == CONF_SEND_PROXY_V1 ? PROXY_PROTO_SEND_V1 : PROXY_PROTO_SEND_V2,
                             (const struct sockaddr *)&c->peer, (const struct sockaddr *)&c->local,
                             out);
}

/* Puts the forwarded head, then any early client bytes, into the backend's pending output. */
static int
conn_prepare_forward(struct conn *c, const struct head *head, const char *key, size_t key_len)
{
    char ip[CONN_IP_LEN];
    struct forward_info info = {
        .client_ip = ip,
        .proto = c->proto,
        .key = key,
        .key_len = key_len,
        .fingerprint = c->route->fingerprint,
        .connection_close = false,
        .hop_by_hop = c->http,
    };
    struct conn_end *b = &c->end[SIDE_BACKEND];
    size_t early = c->head_len - head->len, used = early, need;

    if (c->http) {
        /* Only this request's body goes along; what follows is the next request. */
        enum http1_result r =
            http1_body_scan(&c->req_body, (const uint8_t *)c->head + head->len, early, &used);

        if (r == HTTP1_BAD) {
            return -2;
        }
        c->req_done = r == HTTP1_DONE;
    }
    c->replay_len = 0;
    conn_client_ip(c, ip);
    need = PROXY_PROTO_WRITE_MAX + forward_size(head, &info) + used;
    if (b->pend_cap < need) {
        uint8_t *p = realloc(b->pend, need);

        if (p == NULL) {
            return -1;
        }
        b->pend = p;
        b->pend_cap = need;
    }
    b->pend_len = conn_send_proxy(c, b->pend);
    b->pend_len += forward_write(c->head, head, &info, (char *)b->pend + b->pend_len);
    memcpy(b->pend + b->pend_len, c->head + head->len, used);
    b->pend_len += used;
    b->pend_off = 0;
    if (c->http && c->req_done) {
        c->replay_len = b->pend_len; /* nothing else goes to the backend: it stays there */
    }
    /* Keep the rest (a pipelined request) at the start of the head buffer. */
    memmove(c->head, c->head + head->len + used, early - used);
    c->head_len = early - used;
    c->head_scanned = 0;
    return 0;
}

/* RFC 9110 s9.2.2: PUT, DELETE and the safe methods. */
static bool
conn_method_is_idempotent(const struct head *head)
{
    static const char *const methods[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (head->method_len == strlen(methods[i]) &&
            memcmp(head->method, methods[i], head->method_len) == 0) {
            return true;
        }
    }
    return false;
}

/* http: what the client's request says about the exchange (RFC 9112 §9.3). */
static void
conn_http_begin(struct conn *c, const struct head *head)
{
    const struct head_header *conn_hdr = head_find(head, "Connection", 10);
    bool close_token = conn_hdr != NULL && head_list_has(conn_hdr, "close");
    bool keep_token = conn_hdr != NULL && head_list_has(conn_hdr, "keep-alive");

    c->http = 1;
    c->head_req = head->method_len == 4 && memcmp(head->method, "HEAD", 4) == 0;
    c->idempotent = conn_method_is_idempotent(head);
    c->reused = 0;
    c->replayed = 0;
    c->client_close = close_token || (head->minor_version == 0 && !keep_token);
    c->req_done = 0;
    c->resp_in_body = 0;
    c->resp_head_len = 0;
    if (head->chunked) {
        http1_body_init(&c->req_body, HTTP1_BODY_CHUNKED, 0);
    } else if (head->content_length > 0) {
        http1_body_init(&c->req_body, HTTP1_BODY_LENGTH, (uint64_t)head->content_length);
    } else {
        http1_body_init(&c->req_body, HTTP1_BODY_NONE, 0);
    }
}

static void
conn_head_done(struct conn *c)
{
    struct head head;
    char key[4096 + CONN_IP_LEN];
    size_t key_len = 0;
    const char *why = NULL;
    enum close_reason reason;

    if (head_parse(c->head, c->head_len, &head, &why) != HEAD_DONE) {
        log_msg(LOG_DEBUG, "event=bad_head why=\"%s\"", why != NULL ? why : "?");
        conn_close(c, CLOSE_BAD_HEAD);
        return;
    }
    reason = conn_route(c, &head, key, &key_len);
    if (reason != CLOSE_DONE) {
        conn_close(c, reason);
        return;
    }
    c->upgrade = head.upgrade_ws;
    if (c->upgrade) {
        c->http = 0;
        wsframe_init(&c->frames_in);
        wsframe_scan(&c->frames_in, (const uint8_t *)c->head + head.len, c->head_len - head.len,
                     WSFRAME_STOP_NONE);
    } else {
        conn_http_begin(c, &head);
    }
    if (c->route->conf->nroutes > 0 && redirect_answer(c, &head)) {
        return; /* answered by wsring itself: 307 to the owner's public_url */
    }
    switch (conn_prepare_forward(c, &head, key, key_len)) {
    case -1:
        conn_close(c, CLOSE_NO_MEMORY);
        return;
    case -2:
        conn_close(c, CLOSE_BAD_HEAD); /* a body we cannot frame: never guess (smuggling) */
        return;
    default:
        break;
    }
    if (!c->http) {
        free(c->head); /* a WebSocket has no next request */
        c->head = NULL;
        c->head_cap = c->head_len = 0;
    }
    /* Early client bytes (a pipelined request, a frame sent before the 101) wait in the socket
     * until the relay starts. */
    fdev_read_stop(&c->end[SIDE_CLIENT].io);
    evtimer_del(&c->timer);
    c->state = CONN_CONNECTING;
    c->icand = 0;
    conn_connect_next(c);
}

/* The client's one read callback, from accept to close: the state says who reads. */
static void
conn_on_client_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    switch (c->state) {
    case CONN_READ_HEAD:
        if (c->await_proxy) {
            conn_on_proxy_read(fd, what, c);
        } else {
            conn_on_head_read(fd, what, c);
        }
        break;
    case CONN_CONNECTING:
        fdev_read_stop(&c->end[SIDE_CLIENT].io); /* relay_start resumes it */
        break;
    default:
        relay_on_read(fd, what, &c->end[SIDE_CLIENT]);
        break;
    }
}

/* True when the last N bytes read hold an LF not preceded by CR. */
static bool
conn_has_bare_lf(const struct conn *c, size_t n)
{
    for (size_t i = c->head_len - n; i < c->head_len; i++) {
        if (c->head[i] == '\n' && (i == 0 || c->head[i - 1] != '\r')) {
            return true;
        }
    }
    return false;
}

/*
 * Reads what the client has (through TLS when the listener says so: the
 * first reads also run the handshake). Returns 1 to read again (TLS holds
 * more), 0 to wait for the socket, -1 when C is gone or the head is done.
 */
static int
conn_head_read_some(struct conn *c)
{
    struct conn_end *e = &c->end[SIDE_CLIENT];
    size_t end;
    ssize_t n;

    if (conn_head_reserve(c) == -1) {
        conn_close(c, CLOSE_NO_MEMORY);
        return -1;
    }
    n = conn_io_recv(e, c->head + c->head_len, c->head_cap - c->head_len);
    if (n == 0) {
        conn_close(c, CLOSE_CLIENT_EOF);
        return -1;
    }
    if (n == -1) {
        if (errno == EAGAIN || errno == EINTR) {
            return 0;
        }
        if (e->tls_plain_http) {
            /* http:// to a TLS port: say so in plain HTTP (the client could not read TLS). */
            conn_io_tls_free(e);
            conn_close(c, CLOSE_PLAIN_HTTP);
            return -1;
        }
        conn_close(c, conn_io_in_handshake(e) ? CLOSE_TLS_HANDSHAKE : CLOSE_CLIENT_ERROR);
        return -1;
    }
    c->head_len += (size_t)n;
    end = head_find_end(c->head, c->head_len, &c->head_scanned);
    if (end == 0 && conn_has_bare_lf(c, (size_t)n)) {
        conn_close(c, CLOSE_BAD_HEAD); /* a bare-LF head would never end: say 400 now */
        return -1;
    }
    if (end == 0 || end > c->route->conf->max_head_bytes) {
        if (c->head_len > c->route->conf->max_head_bytes) {
            conn_close(c, CLOSE_HEAD_TOO_LARGE);
            return -1;
        }
        return conn_io_has_pending(e) ? 1 : 0;
    }
    conn_head_done(c);
    return -1;
}

static void
conn_on_head_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    assert(c->state == CONN_READ_HEAD);
    while (conn_head_read_some(c) == 1) {
    }
}

static void conn_on_connected(evutil_socket_t fd, short what, void *arg);

static void
conn_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    conn_on_connected(c->end[SIDE_BACKEND].fd, what, c);
}

/* Tries the next candidate backend; 502 when none is left. */
static void
conn_connect_next(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND];
    struct timeval tv = conn_tv(c->route->conf->connect_timeout_ms);
    int one = 1;

    assert(c->state == CONN_CONNECTING);
    b->eof = b->blocked = 0; /* a new backend for this request */
    for (; c->icand < c->ncand; c->icand++) {
        const struct route_backend *rb = &c->route->backends[c->cand[c->icand]];
        int fd;

        if (rb->addr_len == 0) {
            continue; /* never resolved: as good as down */
        }
        c->reused = 0;
        /* TLS ends are not pooled; nor, with send_proxy, connections naming one client */
        if (c->http && !c->replayed && c->route->conf->send_proxy == CONF_SEND_PROXY_OFF &&
            c->route->settings->tls_backend == NULL) {
            const struct member *m = member_set_at(ring_members(c->route->ring), c->cand[c->icand]);

            b->fd = pool_take(&c->worker->pool, m, &b->io);
            if (b->fd != -1) {
                c->reused = 1;
                conn_connected(c, m);
                return;
            }
        }
        fd = socket(rb->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            break; /* EMFILE and friends: no other member would fare better */
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (const struct sockaddr *)&rb->addr, rb->addr_len) == -1 &&
            errno != EINPROGRESS) {
            close(fd);
            route_mark_down(c->route, c->cand[c->icand],
                            route_now_ms() + c->route->conf->down_hold_ms);
            continue;
        }
        if (fdev_open(&c->worker->fdev, &b->io, fd, false) == -1) {
            close(fd);
            break; /* out of memory: no other member would fare better */
        }
        b->fd = fd;
        b->io.ahead = 1; /* TLS reads through fdev too (conn_io_bio_new) */
        evtimer_del(&c->timer);
        evtimer_assign(&c->timer, c->worker->base, conn_on_connect_timeout, c);
        evtimer_add(&c->timer, &tv);
        /*
         * A loopback or LAN connect is often up when connect() returns: the head goes in this
         * round's batch, without waiting a round for epoll to say so. Sent, it proves the
         * connection; EAGAIN (still SYN_SENT) means wait for writability as below.
         */
        if (c->route->settings->tls_backend == NULL && fdev_can_send_later(&b->io)) {
            c->head_early = 1;
            fdev_send_later(&b->io);
            return;
        }
        fdev_write(&b->io, conn_on_connected, c);
        return;
    }
    conn_close(c, CLOSE_NO_BACKEND);
}

/* The backend connection to M is up (new or from the pool): count it and relay. */
static void
conn_connected(struct conn *c, const struct member *m)
{
    c->member = m;
    if (c->replayed) {
        relay_start(c); /* the request was counted when it first went */
        return;
    }
    if (c->cand[c->icand] == ring_owner(c->route->ring, c->key_hash)) {
        c->worker->metrics.routed++;
    } else {
        c->worker->metrics.retried++;
    }
    metrics_latency_add(&c->worker->metrics, conn_now_us() - c->accepted_us);
    relay_start(c);
}

/* The connect or TLS handshake to the current candidate failed (WHY): mark it down, try the next.
 */
static void
conn_backend_failed(struct conn *c, const char *event, const char *why)
{
    struct conn_end *b = &c->end[SIDE_BACKEND];
    const struct member *m = member_set_at(ring_members(c->route->ring), c->cand[c->icand]);

    log_msg(LOG_WARN, "event=%s member=%s address=%s error=\"%s\" down_hold_ms=%llu", event, m->id,
            m->address, why, (unsigned long long)c->route->conf->down_hold_ms);
    route_mark_down(c->route, c->cand[c->icand], route_now_ms() + c->route->conf->down_hold_ms);
    /* Not conn_end_close(): the pending bytes (the forwarded head) go to the next candidate. */
    evtimer_del(&c->timer);
    conn_io_tls_free(b);
    fdev_close_fd(&b->io, b->fd);
    b->fd = -1;
    c->icand++;
    conn_connect_next(c);
}

static void conn_on_backend_tls(evutil_socket_t fd, short what, void *arg);

static void
conn_on_backend_tls_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    conn_on_backend_tls(c->end[SIDE_BACKEND].fd, what, c);
}

/* backend_tls: one more step of the handshake; relays once it is done. */
static void
conn_backend_tls_step(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND];
    struct timeval tv = conn_tv(c->route->conf->connect_timeout_ms);
    char why[256];
    int want = conn_io_handshake(b, why, sizeof(why));

    if (want == 0) {
        conn_connected(c, member_set_at(ring_members(c->route->ring), c->cand[c->icand]));
        return;
    }
    if (want == -1) {
        conn_backend_failed(c, "backend_tls_failed", why);
        return;
    }
    if (want == EV_READ) {
        fdev_write_stop(&b->io);
        fdev_read(&b->io, conn_on_backend_tls, c);
    } else {
        fdev_read_stop(&b->io);
        fdev_write(&b->io, conn_on_backend_tls, c);
    }
    evtimer_del(&c->timer);
    evtimer_assign(&c->timer, c->worker->base, conn_on_backend_tls_timeout, c);
    evtimer_add(&c->timer, &tv);
}

static void
conn_on_backend_tls(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    assert(c->state == CONN_CONNECTING);
    if (what & EV_TIMEOUT) {
        conn_backend_failed(c, "backend_tls_failed", "handshake timed out (connect_timeout)");
        return;
    }
    conn_backend_tls_step(c);
}

void
conn_head_sent(struct conn *c, ssize_t n)
{
    struct conn_end *b = &c->end[SIDE_BACKEND];

    assert(c->state == CONN_CONNECTING);
    if (c->head_early) {
        c->head_early = 0;
        if (n <= 0 && (n == 0 || errno == EAGAIN || errno == EINTR)) {
            fdev_write(&b->io, conn_on_connected, c); /* connecting still, or never tried */
            return;
        }
    }
    if (n >= 0 || errno == EAGAIN || errno == EINTR) {
        b->pend_off = n > 0 ? (size_t)n : 0;
        conn_connected(c, member_set_at(ring_members(c->route->ring), c->cand[c->icand]));
        return;
    }
    conn_backend_failed(c, "backend_down", strerror(errno));
}

static void
conn_on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_end *b = &c->end[SIDE_BACKEND];
    const struct member *m = member_set_at(ring_members(c->route->ring), c->cand[c->icand]);
    int err = ETIMEDOUT;
    socklen_t len = sizeof(err);

    assert(c->state == CONN_CONNECTING);
    if ((what & EV_WRITE) && c->route->settings->tls_backend == NULL) {
        /* Sending the head tells whether the connect worked (a failed one fails the send with its
         * error), one syscall fewer than asking SO_ERROR first; in the round's batch if it can. */
        if (fdev_can_send_later(&b->io)) {
            fdev_write_stop(&b->io);
            fdev_send_later(&b->io); /* conn_head_sent() hears how it went */
            return;
        }
        conn_head_sent(c, fdev_send(&b->io, b->pend, b->pend_len, MSG_NOSIGNAL | MSG_DONTWAIT));
        return;
    }
    if ((what & EV_WRITE) && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }
    if (err != 0) {
        conn_backend_failed(c, "backend_down", strerror(err));
        return;
    }
    b->ssl =
        tls_backend_new(c->route->settings->tls_backend, c->route->conf, m, conn_io_bio_new(b));
    if (b->ssl == NULL) {
        conn_close(c, CLOSE_NO_MEMORY);
        return;
    }
    conn_backend_tls_step(c);
}

void
conn_next_request(struct conn *c)
{
    struct conn_end *client = &c->end[SIDE_CLIENT];

    assert(c->state == CONN_RELAY && c->http);
    c->member = NULL;
    free(c->resp_head);
    c->resp_head = NULL;
    c->resp_head_len = 0;
    if (c->client_close && !c->req_done && !client->eof) {
        conn_linger(c); /* answered before the whole body: the client may still be sending */
        return;
    }
    if (c->client_close || client->eof) {
        conn_close(c, CLOSE_DONE);
        return;
    }
    conn_read_next_head(c);
}

void
conn_read_next_head(struct conn *c)
{
    struct conn_end *client = &c->end[SIDE_CLIENT];
    struct timeval tv =
        conn_tv(c->head_len > 0 ? c->route->conf->handshake_timeout_ms : CONN_KEEPALIVE_MS);

    c->state = CONN_READ_HEAD;
    c->accepted_us = conn_now_us();
    fdev_write_stop(&client->io);
    client->blocked = 0;
    /* The read callback (conn_on_client_read) serves every request. */
    evtimer_del(&c->timer);
    evtimer_assign(&c->timer, c->worker->base, conn_on_handshake_timeout, c);
    evtimer_add(&c->timer, &tv);
    /* A pipelined request may be here already. */
    if (c->head_len > 0) {
        size_t end = head_find_end(c->head, c->head_len, &c->head_scanned);
        size_t max = c->route->conf->max_head_bytes;

        /*
         * The bytes after a body were kept whole (relay_http_stash), so they may exceed the
         * head limit, which conn_head_reserve would then shrink the buffer below: 431 now.
         */
        if (end > max || (end == 0 && c->head_len > max)) {
            conn_close(c, CLOSE_HEAD_TOO_LARGE);
            return;
        }
        if (end != 0) {
            conn_head_done(c);
            return;
        }
    }
    conn_io_resume_read(client); /* TLS may hold the next request already */
}

void
conn_replay(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND];

    assert(c->http && c->replay_len > 0 && !c->replayed);
    log_msg(LOG_DEBUG, "event=backend_replay member=%s bytes=%zu", c->member->id, c->replay_len);
    fdev_close_fd(&b->io, b->fd);
    b->fd = -1;
    b->pend_off = 0;
    b->pend_len = c->replay_len;
    c->replayed = 1;
    c->member = NULL;
    c->state = CONN_CONNECTING;
    conn_connect_next(c);
}

/* ANSWERING: wait for the client's EOF so that closing cannot reset away our answer. */
static void
conn_on_linger_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    char sink[4096];
    ssize_t n;

    assert(c->state == CONN_ANSWERING);
    if (what & EV_TIMEOUT) {
        conn_close(c, CLOSE_DONE);
        return;
    }
    (void)fd;
    n = fdev_recv(&c->end[SIDE_CLIENT].io, sink, sizeof(sink), 0);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c, CLOSE_DONE);
    }
}

static void
conn_on_linger_timeout(evutil_socket_t fd, short what, void *arg)
{
    conn_on_linger_read(fd, what, arg);
}

/* ANSWERING, our FIN sent: drains the client until its EOF or CONN_LINGER_MS. */
static void
conn_linger_wait(struct conn *c)
{
    struct timeval tv = conn_tv(CONN_LINGER_MS);

    fdev_read(&c->end[SIDE_CLIENT].io, conn_on_linger_read, c);
    evtimer_assign(&c->timer, c->worker->base, conn_on_linger_timeout, c);
    evtimer_add(&c->timer, &tv);
}

/*
 * http: the answer is out but the client may still be sending a body nobody will read.
 * Closing now would reset the connection under it, and a client still writing (Python's
 * requests, for one) reports the reset instead of the answer; so send our FIN and drain the
 * client until its EOF or CONN_LINGER_MS (RFC 9112 s9.6), as after wsring's own answers.
 */
static void
conn_linger(struct conn *c)
{
    struct conn_end *e = &c->end[SIDE_CLIENT];

    c->worker->metrics.closes[CLOSE_DONE]++; /* conn_close does not count in ANSWERING */
    c->state = CONN_ANSWERING;
    fdev_read_stop(&e->io);
    fdev_write_stop(&e->io);
    evtimer_del(&c->timer);
    if (shutdown(e->fd, SHUT_WR) == -1) {
        conn_close(c, CLOSE_DONE);
        return;
    }
    conn_linger_wait(c);
}

/* Sends STATUS with a one-line body naming REASON, then lingers (RFC 9112 s9.6). */
static void
conn_answer(struct conn *c, int status, const char *phrase, enum close_reason reason)
{
    const char *label = close_reason_label(reason);
    char buf[256];
    /* RFC 6750 s3: a 401 says which scheme, and that the token was the trouble */
    const char *challenge =
        status == 401 ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n" : "";
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n%s\n",
                     status, phrase, strlen(label) + 1, challenge, label);

    conn_answer_last(c, buf, (size_t)n);
}

void
conn_answer_last(struct conn *c, const void *buf, size_t len)
{
    struct conn_end *e = &c->end[SIDE_CLIENT];

    c->state = CONN_ANSWERING;
    fdev_read_stop(&e->io);
    fdev_write_stop(&e->io);
    evtimer_del(&c->timer);
    /* A few hundred bytes always fit an empty socket buffer; a short write only cuts the answer. */
    if (conn_io_send(e, buf, len) == -1 || conn_io_shutdown(e) == -1) {
        conn_close(c, CLOSE_DONE);
        return;
    }
    conn_linger_wait(c);
}

void
conn_end_close(struct conn_end *e)
{
    if (e->fd != -1) {
        conn_io_tls_free(e); /* its close_notify goes through the fdev */
        fdev_close_fd(&e->io, e->fd);
        e->fd = -1;
    }
    free(e->pend);
    e->pend = NULL;
    e->pend_cap = e->pend_off = e->pend_len = 0;
}

void
conn_close(struct conn *c, enum close_reason reason)
{
    const char *phrase;
    int status = close_reason_status(reason, &phrase);
    struct worker *w = c->worker;

    assert(c->state != CONN_CLOSED);
    if (c->state != CONN_ANSWERING) {
        w->metrics.closes[reason]++;
    }
    if (status != 0 && c->state < CONN_RELAY) {
        conn_end_close(&c->end[SIDE_BACKEND]);
        conn_answer(c, status, phrase, reason);
        return;
    }
    c->state = CONN_CLOSED;
    if (c->queued) {
        TAILQ_REMOVE(&w->misplaced, c, mlink);
        c->queued = 0;
    }
    evtimer_del(&c->timer);
    conn_end_close(&c->end[SIDE_CLIENT]);
    conn_end_close(&c->end[SIDE_BACKEND]);
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    route_unref(c->route);
    c->route = NULL;
    free(c->head);
    free(c->resp_head);
    free(c->pp);
    free(c);
}
