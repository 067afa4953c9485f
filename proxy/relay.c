/*
 * The two-way relay (DESIGN §3 steps 4-5). Each read goes straight from the
 * worker's scratch buffer to the peer socket; only what the peer cannot take
 * at once is kept (in the peer's pend buffer), and while it is kept the side
 * that produced it is not read: backpressure without per-message allocation.
 * With io_uring, a small read is kept there too, for the round's send batch
 * (fdev_send_later): one syscall sends it with every other.
 */
#include "proxy/conn.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/conn_io.h"
#include "proxy/pool.h"
#include "proxy/worker.h"

#define RELAY_HEAD_IOV 2 /* a response head: its compacted lines, then its end */

#define RELAY_READS_PER_WAKEUP 4 /* fairness between connections of one worker */

/* Up to this many bytes go in the round's send batch: a copy costs less than a syscall. */
#define RELAY_SEND_LATER_MAX (16 * 1024)

static void relay_inject_close(struct conn *c);
static void relay_on_write(evutil_socket_t fd, short what, void *arg);
static int relay_keep(struct conn_end *e, const uint8_t *buf, size_t len);
static int relay_keep_iov(struct conn_end *e, const struct iovec *iov, int niov, size_t skip);

static struct conn *
relay_conn_of(struct conn_end *e)
{
    struct conn_end *first = e - e->side;

    return (struct conn *)((char *)first - offsetof(struct conn, end));
}

static struct conn_end *
relay_end_of(struct fdev *f)
{
    return (struct conn_end *)((char *)f - offsetof(struct conn_end, io));
}

/*
 * Keeps the NIOV pieces at IOV (TOTAL bytes) for TO's socket when they are small enough for
 * the round's send batch. Returns 1 if kept, 0 if they must go now, -1 after conn_close.
 */
static int
relay_send_later(struct conn *c, struct conn_end *to, const struct iovec *iov, int niov,
                 size_t total)
{
    if (total > RELAY_SEND_LATER_MAX || to->ssl != NULL || !fdev_can_send_later(&to->io)) {
        return 0;
    }
    if (relay_keep_iov(to, iov, niov, 0) == -1) {
        conn_close(c, CLOSE_NO_MEMORY);
        return -1;
    }
    fdev_send_later(&to->io);
    return 1;
}

/*
 * http: may the request go again, on a fresh connection, now that its backend connection
 * failed? Only once; only when that connection came from the pool (the backend may have
 * closed it while idle, our request crossing its FIN; a fresh one failing is the member's
 * fault: 502); only before any byte of an answer; only when the whole request is still held;
 * and only when a second copy can do no harm: the method is idempotent (RFC 9110 s9.2.2,
 * RFC 9112 s9.3.1), or NOTHING_SENT (not a byte of it left, so the backend never saw it).
 */
static bool
relay_can_replay(const struct conn *c, bool nothing_sent)
{
    return c->http && c->reused && !c->replayed && c->replay_len > 0 && !c->resp_in_body &&
           c->resp_head_len == 0 && (nothing_sent || c->idempotent);
}

static void
relay_flush_head(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND], *client = &c->end[SIDE_CLIENT];

    /* A fresh connection sent (part of) the head already (conn_on_connected). */
    if (b->pend_off < b->pend_len) {
        ssize_t n = conn_io_send(b, b->pend + b->pend_off, b->pend_len - b->pend_off);

        if (n == -1 && errno != EAGAIN && errno != EINTR) {
            if (relay_can_replay(c, true)) {
                conn_replay(c);
                return;
            }
            conn_close(c, CLOSE_BACKEND_ERROR);
            return;
        }
        b->pend_off += n > 0 ? (size_t)n : 0;
    }
    if (b->pend_off < b->pend_len) {
        client->blocked = 1;
        fdev_read_stop(&client->io); /* relay_on_write resumes it */
        fdev_write(&b->io, relay_on_write, b);
        return;
    }
    b->pend_off = b->pend_len = 0;
    if (!(c->http && c->req_done)) {
        conn_io_resume_read(client);
    }
}

void
relay_start(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND];

    assert(c->state == CONN_CONNECTING);
    c->state = CONN_RELAY;
    evtimer_del(&c->timer); /* the connect deadline */
    fdev_write_stop(&c->end[SIDE_CLIENT].io);
    fdev_write_stop(&b->io);
    /* The client's read callback is conn_on_client_read from the head on. */
    fdev_read(&b->io, relay_on_read, b);
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

/* relay_keep() of the NIOV pieces at IOV but their first SKIP bytes (those went). */
static int
relay_keep_iov(struct conn_end *e, const struct iovec *iov, int niov, size_t skip)
{
    for (int i = 0; i < niov; i++) {
        size_t gone = skip < iov[i].iov_len ? skip : iov[i].iov_len;

        skip -= gone;
        if (relay_keep(e, (const uint8_t *)iov[i].iov_base + gone, iov[i].iov_len - gone) == -1) {
            return -1;
        }
    }
    return 0;
}

static enum close_reason
relay_error_of(const struct conn_end *e)
{
    return e->side == SIDE_CLIENT ? CLOSE_CLIENT_ERROR : CLOSE_BACKEND_ERROR;
}

/*
 * A WebSocket's FROM side has finished and all it sent has been delivered.
 * The other half is of no use (RFC 6455 s7.1.1: a WebSocket ends with its TCP
 * connection, normally closed by the server after the closing handshake), so
 * both are closed now, as NGINX does, instead of passing the FIN on with
 * shutdown() and waiting for the other side's: two syscalls fewer per
 * connection.
 */
static void
relay_finish(struct conn *c, const struct conn_end *from)
{
    conn_close(c, from->side == SIDE_BACKEND ? CLOSE_DONE : CLOSE_CLIENT_EOF);
}

/*
 * Sends the NIOV pieces at IOV to TO in one call; keeps what does not go and
 * blocks FROM. Returns 0, or -1 after conn_close.
 */
static int
relay_sendv(struct conn *c, struct conn_end *from, struct conn_end *to, const struct iovec *iov,
            int niov)
{
    size_t total = 0;
    ssize_t n = 0;

    for (int i = 0; i < niov; i++) {
        total += iov[i].iov_len;
    }
    /* Bytes already waiting go first (an HTTP response may arrive in two sends per read). */
    if (to->pend_off == to->pend_len) {
        int later = relay_send_later(c, to, iov, niov, total);

        if (later != 0) {
            return later == 1 ? 0 : -1;
        }
        n = conn_io_sendv(to, iov, niov);
    }
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(c, relay_error_of(to));
            return -1;
        }
        n = 0;
    }
    if ((size_t)n == total) {
        return 0;
    }
    if (relay_keep_iov(to, iov, niov, (size_t)n) == -1) {
        conn_close(c, CLOSE_NO_MEMORY);
        return -1;
    }
    from->blocked = 1;
    fdev_read_stop(&from->io);
    fdev_write(&to->io, relay_on_write, to);
    return 0;
}

/* Sends BUF to TO; keeps what does not go and blocks FROM. Returns 0, or -1 after conn_close. */
static int
relay_send(struct conn *c, struct conn_end *from, struct conn_end *to, const uint8_t *buf,
           size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return relay_sendv(c, from, to, &iov, 1);
}

/* True when TEXT (case-insensitive) occurs in BUF[0..LEN). */
static bool
relay_has_text(const uint8_t *buf, size_t len, const char *text)
{
    size_t n = strlen(text);
    int first = tolower((unsigned char)text[0]);

    for (size_t i = 0; i + n <= len; i++) {
        /* the first byte alone rules out nearly every position: no call for those */
        if (tolower(buf[i]) == first && strncasecmp((const char *)buf + i, text, n) == 0) {
            return true;
        }
    }
    return false;
}

/* http: appends LEN bytes of the client's next request to the head buffer. Returns 0 or -1. */
static int
relay_http_stash(struct conn *c, const uint8_t *buf, size_t len)
{
    if (c->head_len + len > c->head_cap) {
        char *p = realloc(c->head, c->head_len + len);

        if (p == NULL) {
            return -1;
        }
        c->head = p;
        c->head_cap = c->head_len + len;
    }
    memcpy(c->head + c->head_len, buf, len);
    c->head_len += len;
    return 0;
}

/*
 * http: the response is complete. The backend goes back to the pool if both
 * sides kept to the protocol; the client reads its next request once it has
 * every byte of this response.
 */
static void
relay_http_done(struct conn *c)
{
    struct conn_end *b = &c->end[SIDE_BACKEND], *client = &c->end[SIDE_CLIENT];

    if (client->pend_off < client->pend_len) {
        c->next_on_flush = 1;
        fdev_read_stop(&b->io);
        return;
    }
    c->next_on_flush = 0;
    if (!c->req_done) {
        c->client_close = 1; /* the rest of that body would read as a request: never */
    }
    /* send_proxy: a connection's PROXY header names one client, so it never serves another;
     * TLS backend connections are not pooled */
    if (c->resp_reusable && c->req_done && !b->eof && b->pend_off == b->pend_len &&
        c->route->conf->send_proxy == CONF_SEND_PROXY_OFF && b->ssl == NULL &&
        pool_put(&c->worker->pool, c->member, &b->io) == 0) {
        b->fd = -1; /* the pool's now, events and all */
    } else {
        conn_end_close(b);
    }
    c->resp_in_body = 0;
    conn_next_request(c);
}

/* http: LEN response body bytes at BUF. Returns 0, or -1 when C is gone or finished. */
static int
relay_http_body(struct conn *c, const struct iovec *head, int nhead, const uint8_t *buf, size_t len)
{
    struct iovec iov[RELAY_HEAD_IOV + 1];
    size_t used = 0;
    enum http1_result r = http1_body_scan(&c->resp_body, buf, len, &used);

    if (r == HTTP1_BAD) {
        conn_close(c, CLOSE_BACKEND_ERROR);
        return -1;
    }
    /* The head and the first body bytes go in one send. */
    if (nhead > 0) {
        memcpy(iov, head, (size_t)nhead * sizeof(*iov));
    }
    iov[nhead] = (struct iovec){ .iov_base = (void *)buf, .iov_len = used };
    if ((nhead > 0 || used > 0) &&
        relay_sendv(c, &c->end[SIDE_BACKEND], &c->end[SIDE_CLIENT], iov, nhead + 1) == -1) {
        return -1;
    }
    if (r == HTTP1_DONE) {
        if (used < len) {
            c->resp_reusable = 0; /* bytes after the response: this backend is out of step */
        }
        relay_http_done(c);
        return -1;
    }
    return 0;
}

static bool
relay_is_hop_header(const uint8_t *line, size_t len)
{
    static const char *const names[] = { "Connection:", "Keep-Alive:" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);

        if (len >= n && strncasecmp((const char *)line, names[i], n) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * http: makes the response head at HEAD (LEN bytes) ready to send, in place
 * and without a copy: the backend's Connection and Keep-Alive lines are
 * dropped (they speak of the backend hop) by moving the other lines down, and
 * IOV gets the compacted lines plus the head's end: a FINAL head tells the
 * client "Connection: close" when this connection ends after it. Returns the
 * number of IOV entries used (RELAY_HEAD_IOV).
 */
static int
relay_http_head_iov(const struct conn *c, uint8_t *head, size_t len, bool final,
                    struct iovec iov[RELAY_HEAD_IOV])
{
    static const char closing[] = "Connection: close\r\n\r\n";
    uint8_t *end = head + len - 2; /* before the final CRLF */
    size_t n = 0;

    for (uint8_t *line = head; line < end;) {
        uint8_t *eol = memchr(line, '\n', (size_t)(end - line));
        size_t l = eol != NULL ? (size_t)(eol - line) + 1 : (size_t)(end - line);

        if (line == head || !relay_is_hop_header(line, l)) {
            memmove(head + n, line, l); /* n <= line - head: never ahead of the reader */
            n += l;
        }
        line += l;
    }
    iov[0] = (struct iovec){ .iov_base = head, .iov_len = n };
    if (final && c->client_close) {
        iov[1] = (struct iovec){ .iov_base = (void *)closing, .iov_len = sizeof(closing) - 1 };
    } else {
        iov[1] = (struct iovec){ .iov_base = (void *)"\r\n", .iov_len = 2 };
    }
    return RELAY_HEAD_IOV;
}

/*
 * http: backend bytes: the response head (interim 1xx heads too), then its
 * framed body. A head that arrives whole (the usual case) is parsed and sent
 * from the read buffer itself; only a head split across reads is gathered in
 * c->resp_head.
 */
static void
relay_http_response_bytes(struct conn *c, uint8_t *buf, size_t len)
{
    struct http1_response resp;
    struct iovec iov[RELAY_HEAD_IOV];
    uint8_t *data = buf, *stash = NULL;
    size_t dlen = len;
    bool gathered = c->resp_head_len > 0;
    int niov;

    if (c->resp_in_body) {
        relay_http_body(c, NULL, 0, buf, len);
        return;
    }
    if (gathered) {
        uint8_t *p = realloc(c->resp_head, c->resp_head_len + len);

        if (p == NULL) {
            conn_close(c, CLOSE_NO_MEMORY);
            return;
        }
        memcpy(p + c->resp_head_len, buf, len);
        data = c->resp_head = p;
        dlen = c->resp_head_len += len;
    }
    for (;;) {
        enum http1_result r = http1_response_parse(data, dlen, c->head_req, &resp);

        if (r == HTTP1_MORE) {
            if (gathered) {
                memmove(c->resp_head, data, dlen); /* after a relayed 1xx head */
            } else if (dlen > 0) {                 /* keep the start for the next read */
                uint8_t *p = malloc(dlen);

                if (p == NULL) {
                    conn_close(c, CLOSE_NO_MEMORY);
                    return;
                }
                memcpy(p, data, dlen);
                free(c->resp_head);
                c->resp_head = p;
            }
            c->resp_head_len = dlen;
            return;
        }
        if (r == HTTP1_BAD) {
            conn_close(c, CLOSE_BACKEND_ERROR);
            return;
        }
        /* An event stream never ends by itself: migration must be able to end it. */
        c->resp_streaming = relay_has_text(data, resp.head_len, "text/event-stream");
        if (resp.status >= 200 && resp.body == HTTP1_BODY_UNTIL_CLOSE) {
            c->client_close = 1; /* the client knows the end only by our close */
        }
        if (resp.status >= 200 && !c->req_done) {
            /* An answer before the whole request (417 to Expect, an early 413): the rest of
             * that body could not be told from a next request, so the client is told now
             * that this connection ends (RFC 9110 s10.1.1). */
            c->client_close = 1;
        }
        niov = relay_http_head_iov(c, data, resp.head_len, resp.status >= 200, iov);
        data += resp.head_len;
        dlen -= resp.head_len;
        if (resp.status >= 200 || resp.status == 101) {
            break;
        }
        /* 1xx (100 Continue): relayed; the real answer follows. */
        if (relay_sendv(c, &c->end[SIDE_BACKEND], &c->end[SIDE_CLIENT], iov, niov) == -1) {
            return;
        }
    }
    c->resp_in_body = 1;
    c->resp_reusable = resp.keep_alive;
    http1_body_init(&c->resp_body, resp.body, resp.content_length);
    /* The gathered head is freed after the send (its bytes are in IOV); C may be gone by then. */
    stash = c->resp_head;
    c->resp_head = NULL;
    c->resp_head_len = 0;
    relay_http_body(c, iov, niov, data, dlen); /* may end the exchange, or C */
    free(stash);
}

/* http: the client's bytes: only this request's body goes on; the rest waits in c->head. */
static int
relay_http_request_bytes(struct conn *c, const uint8_t *buf, size_t n, size_t *used)
{
    enum http1_result r = HTTP1_DONE;

    *used = 0;
    if (!c->req_done) {
        r = http1_body_scan(&c->req_body, buf, n, used);
    }
    if (r == HTTP1_BAD) {
        if (!c->resp_in_body) {
            /* No final answer has begun: the client still waits for one, so it gets its 400
             * (conn_close answers before the relay state), as a bad body in the head's read
             * does. */
            c->state = CONN_CONNECTING;
        }
        conn_close(c, CLOSE_BAD_HEAD);
        return -1;
    }
    if (r == HTTP1_DONE) {
        c->req_done = 1;
        fdev_read_stop(&c->end[SIDE_CLIENT].io); /* the next request waits for this response */
        if (relay_http_stash(c, buf + *used, n - *used) == -1) {
            conn_close(c, CLOSE_NO_MEMORY);
            return -1;
        }
    }
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
    /* A Close the client sent while we waited for a boundary went to the backend: it will not
     * send another, so ours is the reply and we close once it is out (else a 5 s stall). */
    c->client_closed = c->frames_in.saw_close;
    evtimer_del(&c->timer);
    evtimer_assign(&c->timer, c->worker->base, relay_on_close_timeout, c);
    evtimer_add(&c->timer, &tv);
    client->blocked = 0;
    conn_io_resume_read(client);
    if (client->pend_off < client->pend_len) {
        if (relay_keep(client, frame, len) == -1) {
            conn_close(c, CLOSE_NO_MEMORY);
        }
        return; /* relay_on_write sends it after what is already pending */
    }
    if (relay_send(c, &c->end[SIDE_BACKEND], client, frame, len) == 0 && c->client_closed &&
        client->pend_off == client->pend_len) {
        conn_close(c, (enum close_reason)c->close_reason); /* RFC 6455 s7.1.1 */
    }
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
    n = conn_io_recv(from, c->worker->scratch, c->worker->scratch_len);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c, (enum close_reason)c->close_reason);
        return;
    }
    if (conn_io_has_pending(from)) {
        fdev_kick(&from->io); /* TLS read ahead: epoll will not tell */
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

/* http: an EOF. A close-delimited response ends with it; anything else cut short is an error. */
static void
relay_http_eof(struct conn *c, struct conn_end *from)
{
    if (from->side == SIDE_CLIENT) {
        if (!c->req_done) {
            conn_close(c, CLOSE_CLIENT_EOF); /* a request cut short: nothing to answer */
        }
        return; /* half-closed after a whole request: answer it, then close */
    }
    if (c->resp_in_body && c->resp_body.kind == HTTP1_BODY_UNTIL_CLOSE) {
        c->resp_reusable = 0;
        c->client_close = 1; /* the client knows the end only by our close */
        relay_http_done(c);
        return;
    }
    if (relay_can_replay(c, false)) {
        conn_replay(c); /* a stale pooled connection: the request goes again */
        return;
    }
    if (!c->resp_in_body && c->resp_head_len == 0) {
        /* Not a byte of an answer yet: the client still waits for one, say 502 (not a silent
         * close). */
        c->state = CONN_CONNECTING;
        conn_close(c, CLOSE_NO_BACKEND);
        return;
    }
    conn_close(c, CLOSE_BACKEND_ERROR);
}

void
relay_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn_end *from = arg;
    struct conn *c = relay_conn_of(from);
    struct conn_end *to = &c->end[!from->side];
    struct worker *w = c->worker;

    (void)fd;
    (void)what;
    assert(c->state == CONN_RELAY || c->state == CONN_MIGRATING || c->state == CONN_CLOSE_SENT);
    if (c->state == CONN_CLOSE_SENT) {
        relay_await_close(c, from);
        return;
    }
    for (int i = 0; i < RELAY_READS_PER_WAKEUP && !from->blocked; i++) {
        ssize_t n = conn_io_recv(from, w->scratch, w->scratch_len);

        if (n == 0) {
            from->eof = 1;
            fdev_read_stop(&from->io);
            if (c->http) {
                relay_http_eof(c, from);
            } else if (to->pend_off == to->pend_len) {
                relay_finish(c, from);
            }
            return;
        }
        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                if (from->side == SIDE_BACKEND && relay_can_replay(c, false)) {
                    conn_replay(c); /* reset by a backend that had closed while idle */
                    return;
                }
                conn_close(c, relay_error_of(from));
            }
            return;
        }
        if (from->side == SIDE_CLIENT) {
            w->metrics.bytes_in += (uint64_t)n;
            if (c->upgrade) {
                wsframe_scan(&c->frames_in, w->scratch, (size_t)n, WSFRAME_STOP_NONE);
            } else if (c->http) {
                size_t used;

                if (relay_http_request_bytes(c, w->scratch, (size_t)n, &used) == -1 ||
                    (used > 0 && relay_send(c, from, to, w->scratch, used) == -1) || c->req_done) {
                    return;
                }
                continue;
            }
        } else {
            w->metrics.bytes_out += (uint64_t)n;
            if (c->state == CONN_MIGRATING) {
                relay_migrating_bytes(c, (size_t)n);
                return;
            }
            if (c->http) {
                relay_http_response_bytes(c, w->scratch, (size_t)n);
                return;
            }
            relay_inspect_backend_bytes(c, w->scratch, (size_t)n);
        }
        if (relay_send(c, from, to, w->scratch, (size_t)n) == -1) {
            return;
        }
        if ((size_t)n < w->scratch_len && !conn_io_has_pending(from)) {
            return; /* the socket is drained; don't pay for an EAGAIN */
        }
    }
    if (!from->blocked && conn_io_has_pending(from)) {
        fdev_kick(&from->io); /* fairness cut us short; TLS holds the rest */
    }
}

/* N of TO's pending bytes went (-1: errno says why none did). */
static void
relay_sent(struct conn_end *to, ssize_t n)
{
    struct conn *c = relay_conn_of(to);
    struct conn_end *from = &c->end[!to->side];

    assert(c->state == CONN_RELAY || c->state == CONN_MIGRATING || c->state == CONN_CLOSE_SENT);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            if (to->side == SIDE_BACKEND && relay_can_replay(c, false)) {
                conn_replay(c);
                return;
            }
            conn_close(c, relay_error_of(to));
            return;
        }
        n = 0;
    }
    to->pend_off += (size_t)n;
    if (to->pend_off < to->pend_len) {
        fdev_write(&to->io, relay_on_write, to); /* the rest when there is room */
        return;
    }
    to->pend_off = to->pend_len = 0;
    fdev_write_stop(&to->io);
    if (c->state == CONN_CLOSE_SENT) {
        if (c->client_closed) {
            conn_close(c, (enum close_reason)c->close_reason); /* RFC 6455 s7.1.1 */
        }
        return; /* the backend is gone: nothing to resume */
    }
    if (c->http) {
        if (to->side == SIDE_CLIENT && c->next_on_flush) {
            relay_http_done(c);
            return;
        }
        from->blocked = 0;
        if (!from->eof && !(from->side == SIDE_CLIENT && c->req_done) && from->fd != -1) {
            conn_io_resume_read(from);
        }
        return;
    }
    if (from->eof) {
        relay_finish(c, from);
        return;
    }
    from->blocked = 0;
    conn_io_resume_read(from);
}

static void
relay_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn_end *to = arg;

    (void)fd;
    (void)what;
    relay_sent(to, conn_io_send(to, to->pend + to->pend_off, to->pend_len - to->pend_off));
}

void
relay_send_prep(struct fdev *f, const void **buf, size_t *len)
{
    struct conn_end *e = relay_end_of(f);

    *buf = e->pend + e->pend_off;
    *len = e->pend_len - e->pend_off;
}

void
relay_send_done(struct fdev *f, ssize_t n)
{
    struct conn_end *e = relay_end_of(f);

    if (n < 0) {
        errno = (int)-n;
        n = -1;
    }
    if (relay_conn_of(e)->state == CONN_CONNECTING) {
        conn_head_sent(relay_conn_of(e), n); /* conn_on_connected put it off */
        return;
    }
    relay_sent(e, n);
}
