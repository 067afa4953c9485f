/*
 * The two-way relay (DESIGN §3 steps 4-5). Each read goes straight from the
 * worker's scratch buffer to the peer socket; only what the peer cannot take
 * at once is kept (in the peer's pend buffer), and while it is kept the side
 * that produced it is not read: backpressure without per-message allocation.
 */
#include "proxy/conn.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/worker.h"

#define RELAY_READS_PER_WAKEUP 4 /* fairness between connections of one worker */

static void relay_on_read(evutil_socket_t fd, short what, void *arg);
static void relay_inject_close(struct conn *c);
static void relay_on_write(evutil_socket_t fd, short what, void *arg);

static struct conn *
relay_conn_of(struct conn_end *e)
{
    struct conn_end *first = e - e->side;

    return (struct conn *)((char *)first - offsetof(struct conn, end));
}

static void
relay_flush_head(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND], *client = &c->end[SIDE_CLIENT];
    ssize_t n = send(b->fd, b->pend, b->pend_len, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n == -1 && errno != EAGAIN && errno != EINTR) {
        conn_close(c, CLOSE_BACKEND_ERROR);
        return;
    }
    b->pend_off = n > 0 ? (size_t)n : 0;
    if (b->pend_off < b->pend_len) {
        client->blocked = 1;
        event_add(&b->wr, NULL);
        return;
    }
    b->pend_off = b->pend_len = 0;
    event_add(&client->rd, NULL);
}

void
relay_start(struct conn *c)
{
    struct event_base *base = c->worker->base;

    assert(c->state == CONN_CONNECTING);
    c->state = CONN_RELAY;
    for (int s = SIDE_CLIENT; s <= SIDE_BACKEND; s++) {
        struct conn_end *e = &c->end[s];

        conn_event_del(&e->wr);
        event_assign(&e->rd, base, e->fd, EV_READ | EV_PERSIST, relay_on_read, e);
        event_assign(&e->wr, base, e->fd, EV_WRITE | EV_PERSIST, relay_on_write, e);
    }
    event_add(&c->end[SIDE_BACKEND].rd, NULL);
    /*
     * The connect just completed, so the socket is writable: send the head
     * now instead of after another trip through epoll. The client is read
     * only once the head is out.
     */
    relay_flush_head(c);
}

/*
 * Watches the backend's response head go by: "HTTP/1.1 101" starts frame
 * scanning after the head's CRLF CRLF. Returns where the head ends in BUF
 * (LEN if it does not end there).
 */
static size_t
relay_response_head(struct conn *c, const uint8_t *buf, size_t len)
{
    static const char crlfcrlf[] = "\r\n\r\n";
    size_t i;

    for (i = 0; i < len && c->resp_match < 4; i++) {
        if (c->resp_line_len < 12) {
            if (c->resp_line_len >= 9) {
                c->resp_status = (uint16_t)(c->resp_status * 10 + (uint16_t)(buf[i] - '0'));
            }
            c->resp_line_len++;
        }
        if (buf[i] == (uint8_t)crlfcrlf[c->resp_match]) {
            c->resp_match++;
        } else {
            c->resp_match = buf[i] == '\r' ? 1 : 0;
        }
    }
    if (c->resp_match == 4) {
        c->resp_done = 1;
        if (c->upgrade && c->resp_status == 101) {
            c->ws = 1;
            wsframe_init(&c->frames);
        }
    }
    return i;
}

/* Keeps frame boundaries known on the server->client stream (DESIGN §3 step 5). */
static void
relay_inspect_backend_bytes(struct conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;

    if (!c->resp_done) {
        off = relay_response_head(c, buf, len);
    }
    if (c->ws && off < len) {
        wsframe_scan(&c->frames, buf + off, len - off, WSFRAME_STOP_NONE);
    }
}

/* Keeps BUF[0..LEN) for E's fd, which could not take it now. Returns 0 or -1 (ENOMEM). */
static int
relay_keep(struct conn_end *e, const uint8_t *buf, size_t len)
{
    if (e->pend_off == e->pend_len) {
        e->pend_off = e->pend_len = 0;
    }
    if (e->pend_cap - e->pend_len < len) {
        size_t cap = e->pend_len + len;
        uint8_t *p = realloc(e->pend, cap);

        if (p == NULL) {
            return -1;
        }
        e->pend = p;
        e->pend_cap = cap;
    }
    memcpy(e->pend + e->pend_len, buf, len);
    e->pend_len += len;
    return 0;
}

static enum close_reason
relay_error_of(const struct conn_end *e)
{
    return e->side == SIDE_CLIENT ? CLOSE_CLIENT_ERROR : CLOSE_BACKEND_ERROR;
}

/*
 * TO's input side has finished and nothing is pending toward TO: pass the
 * FIN on. A plain HTTP exchange ends with the backend's response; a
 * WebSocket ends when both directions have.
 */
static void
relay_pass_eof(struct conn *c, struct conn_end *to)
{
    struct conn_end *from = &c->end[!to->side];

    if (from->side == SIDE_BACKEND && !c->upgrade) {
        conn_close(c, CLOSE_DONE);
        return;
    }
    if (to->eof && from->pend_off == from->pend_len) {
        /* Both directions are done and flushed: no need for a FIN before closing. */
        conn_close(c, to->side == SIDE_CLIENT ? CLOSE_DONE : CLOSE_CLIENT_EOF);
        return;
    }
    if (shutdown(to->fd, SHUT_WR) == -1) {
        conn_close(c, relay_error_of(to));
        return;
    }
    to->shut = 1;
    if (from->shut) {
        conn_close(c, to->side == SIDE_CLIENT ? CLOSE_DONE : CLOSE_CLIENT_EOF);
    }
}

/* Sends BUF to TO; keeps what does not go and blocks FROM. Returns 0, or -1 after conn_close. */
static int
relay_send(struct conn *c, struct conn_end *from, struct conn_end *to, const uint8_t *buf,
           size_t len)
{
    ssize_t n = send(to->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(c, relay_error_of(to));
            return -1;
        }
        n = 0;
    }
    if ((size_t)n == len) {
        return 0;
    }
    if (relay_keep(to, buf + n, len - (size_t)n) == -1) {
        conn_close(c, CLOSE_NO_MEMORY);
        return -1;
    }
    from->blocked = 1;
    event_del(&from->rd);
    event_add(&to->wr, NULL);
    return 0;
}

static void
relay_on_close_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    if (c->state == CONN_MIGRATING) {
        /* No message boundary within close_grace: the next frame boundary will do. */
        c->grace_over = 1;
        if (wsframe_at_frame_boundary(&c->frames)) {
            relay_inject_close(c);
        }
        return;
    }
    assert(c->state == CONN_CLOSE_SENT);
    conn_close(c, (enum close_reason)c->close_reason); /* the client never answered */
}

/*
 * Sends our Close after everything already relayed to the client, closes the
 * backend, and waits (close_grace) for the client's Close reply.
 */
static void
relay_inject_close(struct conn *c)
{
    struct conn_end *client = &c->end[SIDE_CLIENT];
    struct timeval tv = { .tv_sec = (time_t)(c->route->conf->close_grace_ms / 1000),
                          .tv_usec = (suseconds_t)(c->route->conf->close_grace_ms % 1000) * 1000 };
    uint8_t frame[WSFRAME_CLOSE_MAX];
    size_t len = wsframe_close_build(frame, c->close_code,
                                     c->close_code == 1012 ? "ring changed" : "going away");

    conn_end_close(&c->end[SIDE_BACKEND]);
    c->state = CONN_CLOSE_SENT;
    evtimer_del(&c->timer);
    evtimer_assign(&c->timer, c->worker->base, relay_on_close_timeout, c);
    evtimer_add(&c->timer, &tv);
    client->blocked = 0;
    event_add(&client->rd, NULL);
    if (client->pend_off < client->pend_len) {
        if (relay_keep(client, frame, len) == -1) {
            conn_close(c, CLOSE_NO_MEMORY);
        }
        return; /* relay_on_write sends it after what is already pending */
    }
    relay_send(c, &c->end[SIDE_BACKEND], client, frame, len);
}

/* CONN_MIGRATING: relays backend bytes up to the boundary we wait for, then the Close. */
static void
relay_migrating_bytes(struct conn *c, size_t n)
{
    const uint8_t *buf = c->worker->scratch;
    enum wsframe_stop stop = c->grace_over ? WSFRAME_STOP_FRAME : WSFRAME_STOP_MESSAGE;
    size_t cut = wsframe_scan(&c->frames, buf, n, stop);
    bool boundary = cut < n || (c->grace_over ? wsframe_at_frame_boundary(&c->frames)
                                              : wsframe_at_message_boundary(&c->frames));

    if (cut > 0 && relay_send(c, &c->end[SIDE_BACKEND], &c->end[SIDE_CLIENT], buf, cut) == -1) {
        return;
    }
    if (boundary && !c->frames.bad) {
        relay_inject_close(c); /* what followed the boundary is dropped with the backend */
    } else if (c->frames.bad) {
        conn_close(c, (enum close_reason)c->close_reason);
    }
}

/* CONN_CLOSE_SENT: the client's bytes are only read to find its Close. */
static void
relay_await_close(struct conn *c, struct conn_end *from)
{
    ssize_t n;

    assert(from->side == SIDE_CLIENT);
    n = recv(from->fd, c->worker->scratch, c->worker->scratch_len, 0);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c, (enum close_reason)c->close_reason);
        return;
    }
    if (n > 0) {
        wsframe_scan(&c->frames_in, c->worker->scratch, (size_t)n, WSFRAME_STOP_NONE);
    }
    if (c->frames_in.saw_close || c->frames_in.bad) {
        c->client_closed = 1;
        if (from->pend_off == from->pend_len) {
            conn_close(c, (enum close_reason)c->close_reason); /* RFC 6455 s7.1.1 */
        }
    }
}

void
relay_close_gently(struct conn *c, uint16_t code, enum close_reason reason)
{
    struct timeval tv = { .tv_sec = (time_t)(c->route->conf->close_grace_ms / 1000),
                          .tv_usec = (suseconds_t)(c->route->conf->close_grace_ms % 1000) * 1000 };

    if (c->state != CONN_RELAY) {
        return; /* already on its way out, or not relaying yet */
    }
    if (!c->ws || c->frames.bad) {
        conn_close(c, reason); /* SSE, plain HTTP, or a stream we cannot cut cleanly */
        return;
    }
    c->close_code = code;
    c->close_reason = (uint8_t)reason;
    c->state = CONN_MIGRATING;
    if (wsframe_at_message_boundary(&c->frames)) {
        relay_inject_close(c);
        return;
    }
    evtimer_del(&c->timer);
    evtimer_assign(&c->timer, c->worker->base, relay_on_close_timeout, c);
    evtimer_add(&c->timer, &tv);
}

static void
relay_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn_end *from = arg;
    struct conn *c = relay_conn_of(from);
    struct conn_end *to = &c->end[!from->side];
    struct worker *w = c->worker;

    (void)what;
    assert(c->state == CONN_RELAY || c->state == CONN_MIGRATING || c->state == CONN_CLOSE_SENT);
    if (c->state == CONN_CLOSE_SENT) {
        relay_await_close(c, from);
        return;
    }
    for (int i = 0; i < RELAY_READS_PER_WAKEUP && !from->blocked; i++) {
        ssize_t n = recv(fd, w->scratch, w->scratch_len, 0);

        if (n == 0) {
            from->eof = 1;
            event_del(&from->rd);
            if (to->pend_off == to->pend_len) {
                relay_pass_eof(c, to);
            }
            return;
        }
        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c, relay_error_of(from));
            }
            return;
        }
        if (from->side == SIDE_CLIENT) {
            w->metrics.bytes_in += (uint64_t)n;
            if (c->upgrade) {
                wsframe_scan(&c->frames_in, w->scratch, (size_t)n, WSFRAME_STOP_NONE);
            }
        } else {
            w->metrics.bytes_out += (uint64_t)n;
            if (c->state == CONN_MIGRATING) {
                relay_migrating_bytes(c, (size_t)n);
                return;
            }
            relay_inspect_backend_bytes(c, w->scratch, (size_t)n);
        }
        if (relay_send(c, from, to, w->scratch, (size_t)n) == -1) {
            return;
        }
        if ((size_t)n < w->scratch_len) {
            return; /* the socket is drained; don't pay for an EAGAIN */
        }
    }
}

static void
relay_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn_end *to = arg;
    struct conn *c = relay_conn_of(to);
    struct conn_end *from = &c->end[!to->side];
    ssize_t n;

    (void)what;
    assert(c->state == CONN_RELAY || c->state == CONN_MIGRATING || c->state == CONN_CLOSE_SENT);
    n = send(fd, to->pend + to->pend_off, to->pend_len - to->pend_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(c, relay_error_of(to));
        }
        return;
    }
    to->pend_off += (size_t)n;
    if (to->pend_off < to->pend_len) {
        return;
    }
    to->pend_off = to->pend_len = 0;
    event_del(&to->wr);
    if (c->state == CONN_CLOSE_SENT) {
        if (c->client_closed) {
            conn_close(c, (enum close_reason)c->close_reason); /* RFC 6455 s7.1.1 */
        }
        return; /* the backend is gone: nothing to resume */
    }
    if (from->eof) {
        relay_pass_eof(c, to);
        return;
    }
    from->blocked = 0;
    event_add(&from->rd, NULL);
}
