/*
 * Redirect mode (DESIGN §10). The answer goes out through the client's pend
 * buffer (kept for the connection's life, so no allocation per request once
 * it has grown). A request without a body on a kept-alive plain HTTP
 * connection keeps the connection: the client's next request is read as
 * usual. A WebSocket upgrade, a request with a body (its bytes would
 * otherwise have to be read and dropped) or a client that asked for close
 * gets "Connection: close".
 */
#include "proxy/redirect.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/conn.h"
#include "proxy/head.h"
#include "proxy/worker.h"
#include "ring/member_set.h"

static const char redirect_head[] = "HTTP/1.1 307 Temporary Redirect\r\nLocation: ";
static const char redirect_tail[] = "\r\nContent-Length: 0\r\n";
static const char redirect_close[] = "Connection: close\r\n";

/* The origin-form part of TARGET: "/path?query" of an absolute-form target, else TARGET. */
static const char *
redirect_origin_form(const char *target, size_t *len)
{
    const char *scheme_end;

    if (*len == 0 || target[0] == '/') {
        return target;
    }
    scheme_end = memmem(target, *len, "://", 3);
    if (scheme_end != NULL) {
        const char *start = scheme_end + 3, *end = target + *len;
        const char *path = memchr(start, '/', (size_t)(end - start));
        const char *query = memchr(start, '?', (size_t)(end - start));

        if (path == NULL || (query != NULL && query < path)) {
            path = query != NULL ? query : end; /* "http://h" or "http://h?q": empty path */
        }
        *len = (size_t)(end - path);
        return path;
    }
    return target;
}

/* The path of an origin-form target: up to "?" (LEN bytes). */
static size_t
redirect_path_len(const char *target, size_t len)
{
    const char *q = memchr(target, '?', len);

    return q != NULL ? (size_t)(q - target) : len;
}

size_t
redirect_format(char *out, size_t cap, const char *public_url, const char *target,
                size_t target_len, bool close)
{
    size_t url_len = strlen(public_url), len;
    const char *origin = redirect_origin_form(target, &target_len);
    bool slash = target_len == 0 || origin[0] != '/'; /* "/" for "http://h" or "http://h?q" */
    size_t need = sizeof(redirect_head) - 1 + url_len + (slash ? 1 : 0) + target_len +
                  sizeof(redirect_tail) - 1 + (close ? sizeof(redirect_close) - 1 : 0) + 2;

    if (need > cap) {
        return 0;
    }
    len = 0;
    memcpy(out + len, redirect_head, sizeof(redirect_head) - 1);
    len += sizeof(redirect_head) - 1;
    memcpy(out + len, public_url, url_len);
    len += url_len;
    if (slash) {
        out[len++] = '/';
    }
    memcpy(out + len, origin, target_len);
    len += target_len;
    memcpy(out + len, redirect_tail, sizeof(redirect_tail) - 1);
    len += sizeof(redirect_tail) - 1;
    if (close) {
        memcpy(out + len, redirect_close, sizeof(redirect_close) - 1);
        len += sizeof(redirect_close) - 1;
    }
    memcpy(out + len, "\r\n", 2);
    return len + 2;
}

/* The answer is out: read the next request (pipelined bytes wait in c->head). */
static void
redirect_on_sent(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    assert(c->state == CONN_READ_HEAD);
    conn_read_next_head(c);
}

/* The client's socket was full: sends the rest of the answer as it drains. */
static void
redirect_on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_end *e = &c->end[SIDE_CLIENT];
    ssize_t n;

    (void)what;
    assert(c->state == CONN_READ_HEAD);
    (void)fd;
    n = fdev_send(&e->io, e->pend + e->pend_off, e->pend_len - e->pend_off,
                  MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(c, CLOSE_CLIENT_ERROR);
        }
        return;
    }
    e->pend_off += (size_t)n;
    if (e->pend_off == e->pend_len) {
        e->pend_off = e->pend_len = 0;
        conn_read_next_head(c);
    }
}

/* Makes room for LEN bytes in the client's pend buffer. Returns 0 or -1 (ENOMEM). */
static int
redirect_reserve(struct conn_end *e, size_t len)
{
    uint8_t *p;

    if (e->pend_cap >= len) {
        return 0;
    }
    p = realloc(e->pend, len);
    if (p == NULL) {
        return -1;
    }
    e->pend = p;
    e->pend_cap = len;
    return 0;
}

bool
redirect_answer(struct conn *c, const struct head *head)
{
    const struct conf *conf = c->route->conf;
    const struct member *m = member_set_at(ring_members(c->route->ring), c->cand[0]);
    struct conn_end *e = &c->end[SIDE_CLIENT];
    size_t target_len = head->target_len, len, rest;
    const char *origin = redirect_origin_form(head->target, &target_len);
    bool keep;
    ssize_t n;

    if (m->public_url == NULL || (origin[0] != '/' && origin[0] != '?') ||
        conf_route_mode(conf, origin, redirect_path_len(origin, target_len)) !=
            CONF_ROUTE_REDIRECT) {
        return false;
    }
    keep = c->http && !c->client_close && head->content_length <= 0 && !head->chunked;
    len = strlen(m->public_url) + head->target_len + 128;
    if (redirect_reserve(e, len) == -1) {
        conn_close(c, CLOSE_NO_MEMORY);
        return true;
    }
    len = redirect_format((char *)e->pend, e->pend_cap, m->public_url, head->target,
                          head->target_len, !keep);
    assert(len > 0);
    c->worker->metrics.redirected++;
    if (!keep) {
        conn_answer_last(c, e->pend, len);
        return true;
    }
    /* Keep what follows the head (a pipelined request) at the start of the head buffer. */
    rest = c->head_len - head->len;
    memmove(c->head, c->head + head->len, rest);
    c->head_len = rest;
    c->head_scanned = 0;
    fdev_read_stop(&e->io);
    n = fdev_send(&e->io, e->pend, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1 && errno != EAGAIN && errno != EINTR) {
        conn_close(c, CLOSE_CLIENT_ERROR);
        return true;
    }
    if (n == (ssize_t)len) {
        if (c->head_len == 0) {
            conn_read_next_head(c);
            return true;
        }
        /* A pipelined request: parse it from the loop, not from this stack frame. */
        evtimer_del(&c->timer);
        evtimer_assign(&c->timer, c->worker->base, redirect_on_sent, c);
        event_active(&c->timer, EV_TIMEOUT, 1);
        return true;
    }
    e->pend_off = n > 0 ? (size_t)n : 0;
    e->pend_len = len;
    fdev_write(&e->io, redirect_on_writable, c);
    return true;
}
