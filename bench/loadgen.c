/*
 * loadgen: the benchmark's WebSocket load generator (bench/README.md). One
 * epoll thread, no dependencies beyond libc (and OpenSSL for --tls), 127.0.0.1 only.
 *
 *   loadgen --mode lookup    --port ADMIN [--users N]          > owners
 *   loadgen --mode handshake --port P [--conns 64]   [--seconds T] [--owners F] [--direct]
 *   loadgen --mode small     --port P [--conns 1000] [--size 64] [--ready F] ...
 *   loadgen --mode bulk      --port P [--conns 16]   [--size 65536] ...
 *   loadgen --mode idle      --port P [--conns 9900] [--ready F] [--hold S] ...
 *   loadgen --mode http      --port P [--conns 64]   [--size 1024]  ...
 *
 * lookup asks wsring's admin /lookup?key=uN for every user and prints
 * "uN OWNER PORT" lines. Every other mode sends "GET /ws?user=uN" upgrade
 * requests and reads the 101, whose "X-Backend" header (set by echo_backend)
 * names the backend that got the user: with --owners each one is checked
 * against the file (mismatches are counted as misrouted); without it each
 * user must at least land on the same backend every time (a proxy with a
 * different hash, such as HAProxy or NGINX, is checked that way). --direct
 * connects to each user's owner port from --owners: the physical limit with
 * no proxy in between.
 *
 * handshake: connect, upgrade, close, again, --conns in flight.
 * small/bulk: --conns upgraded connections, each with one masked binary frame
 *   of --size bytes in flight: send, wait for the whole echo, compare it
 *   byte for byte, send the next. At the end each sends Close and waits for
 *   the Close reply.
 *   With --ready F the timed window starts only once every connection is
 *   upgraded (F is written then): the harness's CPU accounting then leaves
 *   the (TLS) handshakes out.
 * idle: opens --conns upgraded connections (each echoes one 16-byte frame
 *   to prove the relay is up), writes --ready, holds them --hold seconds,
 *   then closes them with the Close handshake.
 * http: --conns keep-alive HTTP/1.1 client connections (a client's pool),
 *   each with one request in flight: "POST /echo?user=uN" with a --size byte
 *   body, for the next user in turn (so one connection carries many users),
 *   then the whole 200 answer is read, its X-Backend checked as above and its
 *   body compared with the one sent. With --direct each connection goes to
 *   one backend and carries only that backend's users.
 *
 * --tls (every mode but lookup): wss:// instead of ws://. Each connection
 *   starts with a full TLS handshake (TLS 1.2 or 1.3 as the proxy picks, no
 *   resumption, no certificate check: the proxies are measured, not PKI);
 *   frames then go through SSL_write/SSL_read. "handshake --tls" is the wss
 *   session rate (TCP + TLS + upgrade), "small --tls" the TLS relay.
 *
 * Output: one line of key=value pairs on stdout; errors and misrouted users
 * are counted there (and a few first error details go to stderr).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define LG_MAX_NAMES     64
#define LG_HEAD_MAX      4096
#define LG_SCRATCH       (256u << 10)
#define LG_EVENTS        512
#define LG_DRAIN_SECONDS 5.0   /* how long in-flight work may take to finish after the end */
#define LG_OPEN_SECONDS  120.0 /* idle: limit on opening all connections */
#define LG_OPENING_MAX   256   /* idle: connections being set up at once */
#define LG_IDLE_SIZE     16    /* idle: the payload of the one proving echo */
#define LG_HIST_LINEAR   64
#define LG_HIST_SIZE     (LG_HIST_LINEAR + 40 * 32)
#define LG_WS_KEY        "dGhlIHNhbXBsZSBub25jZQ=="
#define LG_WS_ACCEPT     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 §1.3 */

enum lg_mode {
    LG_HANDSHAKE,
    LG_SMALL,
    LG_BULK,
    LG_IDLE,
    LG_LOOKUP,
    LG_HTTP,
};

enum lg_state {
    LG_FREE,
    LG_CONNECTING,
    LG_TLS_HANDSHAKE,
    LG_SEND_HEAD,
    LG_READ_HEAD,
    LG_SEND_MSG,
    LG_READ_ECHO,
    LG_IDLE_HOLD,
    LG_SEND_CLOSE,
    LG_READ_CLOSE,
    LG_HTTP_SEND, /* http: sending a request (head and body) */
    LG_HTTP_READ, /* http: reading its answer */
};

enum lg_err {
    LG_E_CONNECT, /* connect() failed or was refused */
    LG_E_EOF,     /* the peer closed or reset early */
    LG_E_STATUS,  /* the answer was not a 101 */
    LG_E_ACCEPT,  /* wrong or missing Sec-WebSocket-Accept, or no X-Backend */
    LG_E_ECHO,    /* echoed bytes differ from the frame sent */
    LG_E_TIMEOUT, /* still unfinished when the run's time was up */
    LG_E_COUNT,
};

static const char *const lg_err_names[LG_E_COUNT] = { "connect", "eof",  "status",
                                                      "accept",  "echo", "timeout" };

struct lg_conn {
    int fd;
    SSL *ssl; /* owned with --tls */
    enum lg_state state;
    uint32_t events; /* what epoll watches now */
    uint32_t user;
    uint32_t id;
    char *head; /* owned; LG_HEAD_MAX bytes while reading the 101 */
    size_t head_len;
    uint8_t *msg; /* owned; the masked frame to send */
    size_t msg_len;
    uint8_t *expect; /* owned; the unmasked echo expected */
    size_t expect_len;
    size_t off; /* bytes of msg sent, or of expect received */
    uint8_t mask[4];
    uint64_t seq;
    double t_sent;
    uint16_t port;        /* http --direct: the backend this connection goes to */
    unsigned in_body : 1; /* http: the answer's head is read; comparing its body */
    unsigned closing : 1; /* http: the answer said Connection: close */
};

struct lg_owner {
    int name; /* index in lg.names, -1 if unknown */
    uint16_t port;
};

static struct {
    enum lg_mode mode;
    uint16_t port;
    uint32_t users;
    uint32_t conns;
    size_t size;
    double seconds;
    uint64_t max;
    const char *owners_file;
    const char *ready_file;
    double hold;
    int direct;
    SSL_CTX *tls; /* --tls */

    int ep;
    struct lg_conn *conn;
    uint8_t *scratch;
    uint8_t *pattern;
    struct lg_owner *owners; /* [users], from --owners */
    int *seen;               /* [users], backend each user landed on (-1 none) */
    char *names[LG_MAX_NAMES];
    uint64_t per_backend[LG_MAX_NAMES];
    int nnames;

    double t0, t_end;
    int stopping;
    uint32_t next_user;
    uint64_t started;
    uint32_t live;
    uint32_t opening;
    uint32_t up;
    uint32_t upgraded; /* small/bulk: connections past their 101 */

    uint64_t done;  /* handshakes or messages finished inside [t0, t_end) */
    uint64_t bytes; /* payload bytes echoed inside [t0, t_end) */
    uint64_t checked, misrouted, closes_ok;
    uint64_t reconnects; /* http: connections the server closed after an answer */
    uint64_t err[LG_E_COUNT];
    uint64_t hist[LG_HIST_SIZE];
    uint64_t nhist;
} lg = { .users = 10000, .seconds = 5, .hold = 3 };

static double
lg_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
lg_error(struct lg_conn *c, enum lg_err e, const char *detail)
{
    if (lg.err[e]++ < 3) {
        fprintf(stderr, "loadgen: conn %u user u%u: %s error: %s\n", c->id, c->user,
                lg_err_names[e], detail);
    }
}

/* ---- latency histogram: exact below 64 us, then 32 steps per power of two ---- */

static void
lg_hist_add(double seconds)
{
    uint64_t us = seconds <= 0 ? 0 : (uint64_t)(seconds * 1e6);
    size_t i;

    if (us < LG_HIST_LINEAR) {
        i = (size_t)us;
    } else {
        int e = 63 - __builtin_clzll(us); /* >= 6 */

        i = LG_HIST_LINEAR + (size_t)(e - 6) * 32 + (size_t)((us >> (e - 5)) & 31);
        if (i >= LG_HIST_SIZE) {
            i = LG_HIST_SIZE - 1;
        }
    }
    lg.hist[i]++;
    lg.nhist++;
}

static double
lg_hist_quantile(double q)
{
    uint64_t want = (uint64_t)(q * (double)lg.nhist) + 1, acc = 0;

    for (size_t i = 0; i < LG_HIST_SIZE; i++) {
        acc += lg.hist[i];
        if (acc >= want && acc > 0) {
            if (i < LG_HIST_LINEAR) {
                return (double)i;
            }
            size_t e = (i - LG_HIST_LINEAR) / 32 + 6, m = (i - LG_HIST_LINEAR) % 32;

            return (double)((1ull << e) + ((2 * m + 1) << (e - 6))); /* bucket middle */
        }
    }
    return 0;
}

/* ---- backends and owners ---- */

static int
lg_name_index(const char *name, size_t len)
{
    for (int i = 0; i < lg.nnames; i++) {
        if (strlen(lg.names[i]) == len && memcmp(lg.names[i], name, len) == 0) {
            return i;
        }
    }
    if (lg.nnames == LG_MAX_NAMES) {
        return -1;
    }
    lg.names[lg.nnames] = strndup(name, len);
    return lg.names[lg.nnames] == NULL ? -1 : lg.nnames++;
}

static void
lg_owners_load(void)
{
    FILE *f = fopen(lg.owners_file, "r");
    char line[512];
    size_t n = 0;

    if (f == NULL) {
        fprintf(stderr, "loadgen: %s: %s\n", lg.owners_file, strerror(errno));
        exit(2);
    }
    lg.owners = calloc(lg.users, sizeof(*lg.owners));
    for (uint32_t i = 0; i < lg.users; i++) {
        lg.owners[i].name = -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long u, port;
        char name[256];

        if (sscanf(line, "u%lu %255s %lu", &u, name, &port) == 3 && u < lg.users && port > 0 &&
            port < 65536) {
            lg.owners[u].name = lg_name_index(name, strlen(name));
            lg.owners[u].port = (uint16_t)port;
            n++;
        }
    }
    fclose(f);
    if (n < lg.users) {
        fprintf(stderr, "loadgen: %s names %zu owners for %u users\n", lg.owners_file, n, lg.users);
        exit(2);
    }
}

/* Checks where user U landed (NAME[0..LEN), the 101's X-Backend). */
static void
lg_route_check(uint32_t u, const char *name, size_t len)
{
    int b = lg_name_index(name, len);

    lg.checked++;
    if (b >= 0) {
        lg.per_backend[b]++;
    }
    if (lg.owners != NULL) {
        if (b < 0 || b != lg.owners[u].name) {
            if (lg.misrouted++ < 3) {
                fprintf(stderr, "loadgen: user u%u landed on %.*s, owner is %s\n", u, (int)len,
                        name, lg.owners[u].name >= 0 ? lg.names[lg.owners[u].name] : "?");
            }
        }
    } else if (lg.seen[u] < 0) {
        lg.seen[u] = b;
    } else if (lg.seen[u] != b) {
        if (lg.misrouted++ < 3) {
            fprintf(stderr, "loadgen: user u%u landed on %.*s, earlier on %s\n", u, (int)len, name,
                    lg.names[lg.seen[u]]);
        }
    }
}

/* ---- connections ---- */

static void
lg_watch(struct lg_conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    if (c->events != events) {
        epoll_ctl(lg.ep, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
        c->events = events;
    }
}

static void
lg_conn_free(struct lg_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        lg.live--;
    }
    if (lg.mode == LG_IDLE && c->state >= LG_CONNECTING && c->state <= LG_READ_ECHO) {
        lg.opening--; /* never reached the idle hold */
    }
    c->fd = -1;
    c->events = 0;
    c->state = LG_FREE;
    free(c->head);
    c->head = NULL;
}

static void lg_open(struct lg_conn *c);

/* Builds C's frame (masked, as a client must) and the echo expected for it. */
static int
lg_msg_build(struct lg_conn *c, size_t size)
{
    size_t h = size < 126 ? 2 : size < 65536 ? 4 : 10;

    if (c->msg == NULL) {
        c->msg = malloc(h + 4 + size);
        c->expect = malloc(h + size);
        if (c->msg == NULL || c->expect == NULL) {
            return -1;
        }
        for (int i = 0; i < 4; i++) {
            c->mask[i] = (uint8_t)rand();
        }
        c->msg[0] = c->expect[0] = 0x82; /* FIN, binary */
        if (h == 2) {
            c->msg[1] = (uint8_t)(0x80 | size);
            c->expect[1] = (uint8_t)size;
        } else if (h == 4) {
            c->msg[1] = 0x80 | 126;
            c->expect[1] = 126;
            c->msg[2] = c->expect[2] = (uint8_t)(size >> 8);
            c->msg[3] = c->expect[3] = (uint8_t)size;
        } else {
            c->msg[1] = 0x80 | 127;
            c->expect[1] = 127;
            for (int i = 0; i < 8; i++) {
                c->msg[2 + i] = c->expect[2 + i] = (uint8_t)((uint64_t)size >> (56 - 8 * i));
            }
        }
        memcpy(c->msg + h, c->mask, 4);
        memcpy(c->expect + h, lg.pattern, size);
        for (size_t i = 0; i < size; i++) {
            c->msg[h + 4 + i] = lg.pattern[i] ^ c->mask[i & 3];
        }
        c->msg_len = h + 4 + size;
        c->expect_len = h + size;
    }
    /* A fresh sequence number in the first 8 payload bytes: a stale echo cannot match. */
    c->seq++;
    for (int i = 0; i < 8; i++) {
        uint8_t b = (uint8_t)(c->seq >> (8 * i)) ^ (uint8_t)c->id;

        c->expect[h + (size_t)i] = b;
        c->msg[h + 4 + (size_t)i] = b ^ c->mask[i & 3];
    }
    return 0;
}

/* Sends what is left of BUF[0..LEN) from c->off. Returns 1 when all out, 0 to wait, -1 error. */
/* recv() or SSL_read(): > 0 bytes, 0 EOF, -1 with errno (EAGAIN: wait for epoll). */
static ssize_t
lg_recv(struct lg_conn *c, void *buf, size_t len)
{
    size_t n = 0;
    int rc;

    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, 0);
    }
    rc = SSL_read_ex(c->ssl, buf, len, &n);
    if (rc == 1) {
        return (ssize_t)n;
    }
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        lg_watch(c, EPOLLOUT);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

/* send() or SSL_write() (partial writes on), same contract as send(). */
static ssize_t
lg_send_some(struct lg_conn *c, const void *buf, size_t len)
{
    size_t n = 0;
    int rc;

    if (c->ssl == NULL) {
        return send(c->fd, buf, len, MSG_NOSIGNAL);
    }
    rc = SSL_write_ex(c->ssl, buf, len, &n);
    if (rc == 1) {
        return (ssize_t)n;
    }
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static int
lg_send(struct lg_conn *c, const void *buf, size_t len)
{
    while (c->off < len) {
        ssize_t n = lg_send_some(c, (const char *)buf + c->off, len - c->off);

        if (n > 0) {
            c->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            lg_watch(c, EPOLLOUT);
            return 0;
        } else {
            return -1;
        }
    }
    return 1;
}

static void lg_step(struct lg_conn *c);

/* Starts C's next frame (or its Close once the run is over), then steps. */
static void
lg_next_message(struct lg_conn *c)
{
    if (lg.stopping) {
        c->state = LG_SEND_CLOSE;
    } else {
        if (lg_msg_build(c, lg.mode == LG_IDLE ? LG_IDLE_SIZE : lg.size) == -1) {
            lg_error(c, LG_E_ECHO, "out of memory");
            lg_conn_free(c);
            return;
        }
        c->state = LG_SEND_MSG;
        c->t_sent = lg_now();
    }
    c->off = 0;
    lg_step(c);
}

/* The complete response head is in c->head[0..c->head_len). */
static void
lg_head_done(struct lg_conn *c, size_t head_len)
{
    const char *h = c->head;
    const char *backend = NULL, *accept = NULL;
    size_t backend_len = 0, accept_len = 0;

    if (head_len < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0) {
        char detail[64];

        snprintf(detail, sizeof(detail), "%.40s", h);
        for (char *p = detail; *p; p++) {
            if (*p == '\r' || *p == '\n') {
                *p = ' ';
            }
        }
        lg_error(c, LG_E_STATUS, detail);
        lg_conn_free(c);
        return;
    }
    for (const char *p = memchr(h, '\n', head_len); p != NULL && p + 1 < h + head_len;) {
        const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(h + head_len - line));
        const char *colon;

        if (eol == NULL) {
            break;
        }
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL) {
            const char *v = colon + 1, *e = eol;

            while (v < e && *v == ' ') {
                v++;
            }
            while (e > v && (e[-1] == '\r' || e[-1] == ' ')) {
                e--;
            }
            if (colon - line == 9 && strncasecmp(line, "X-Backend", 9) == 0) {
                backend = v;
                backend_len = (size_t)(e - v);
            } else if (colon - line == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0) {
                accept = v;
                accept_len = (size_t)(e - v);
            }
        }
        p = eol;
    }
    if (accept == NULL || accept_len != strlen(LG_WS_ACCEPT) ||
        memcmp(accept, LG_WS_ACCEPT, accept_len) != 0 || backend == NULL) {
        lg_error(c, LG_E_ACCEPT, accept == NULL ? "no Sec-WebSocket-Accept" : "bad accept/backend");
        lg_conn_free(c);
        return;
    }
    lg_route_check(c->user, backend, backend_len);
    free(c->head);
    c->head = NULL;
    lg.upgraded++;
    if (lg.mode == LG_HANDSHAKE) {
        if (!lg.stopping) {
            lg.done++;
        }
        lg_conn_free(c);
        lg_open(c);
        return;
    }
    lg_next_message(c);
}

/* Reads the response head; once whole, checks it and hands C on. */
static void
lg_read_head(struct lg_conn *c)
{
    for (;;) {
        ssize_t n = lg_recv(c, c->head + c->head_len, LG_HEAD_MAX - 1 - c->head_len);
        char *end;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            lg_error(c, LG_E_EOF, n == 0 ? "EOF before the 101" : strerror(errno));
            lg_conn_free(c);
            return;
        }
        c->head_len += (size_t)n;
        c->head[c->head_len] = '\0';
        end = strstr(c->head, "\r\n\r\n");
        if (end != NULL) {
            size_t head_len = (size_t)(end + 4 - c->head);

            if (head_len != c->head_len) {
                lg_error(c, LG_E_STATUS, "bytes after the 101 head");
                lg_conn_free(c);
                return;
            }
            lg_head_done(c, head_len);
            return;
        }
        if (c->head_len >= LG_HEAD_MAX - 1) {
            lg_error(c, LG_E_STATUS, "response head too large");
            lg_conn_free(c);
            return;
        }
    }
}

/* Reads the echo (or the Close reply) and compares it with what is expected. */
static void
lg_read_echo(struct lg_conn *c)
{
    static const uint8_t close_reply[4] = { 0x88, 0x02, 0x03, 0xe8 };
    int closing = c->state == LG_READ_CLOSE;
    const uint8_t *want = closing ? close_reply : c->expect;
    size_t want_len = closing ? sizeof(close_reply) : c->expect_len;

    for (;;) {
        size_t room = want_len - c->off;
        ssize_t n = lg_recv(c, lg.scratch, room < LG_SCRATCH ? room : LG_SCRATCH);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            lg_error(c, LG_E_EOF, n == 0 ? "EOF before the echo" : strerror(errno));
            lg_conn_free(c);
            return;
        }
        if (memcmp(lg.scratch, want + c->off, (size_t)n) != 0) {
            lg_error(c, LG_E_ECHO, closing ? "bad Close reply" : "echo differs from the frame");
            lg_conn_free(c);
            return;
        }
        c->off += (size_t)n;
        if (c->off < want_len) {
            continue;
        }
        if (closing) {
            lg.closes_ok++;
            lg_conn_free(c);
            return;
        }
        if (lg.mode == LG_IDLE) {
            lg.opening--;
            lg.up++;
            c->state = LG_IDLE_HOLD;
            free(c->msg);
            free(c->expect);
            c->msg = c->expect = NULL;
            lg_watch(c, EPOLLIN);
            return;
        }
        if (!lg.stopping) {
            double now = lg_now();

            lg.done++;
            lg.bytes += lg.size;
            lg_hist_add(now - c->t_sent);
            if (lg.max > 0 && lg.done >= lg.max) {
                lg.stopping = 1;
                lg.t_end = now;
            }
        }
        lg_next_message(c);
        return;
    }
}

/* ---- http mode ---- */

/* http: the next user for C; with --direct only users of C's backend. */
static uint32_t
lg_http_next_user(struct lg_conn *c)
{
    for (uint32_t tries = 0; tries < lg.users; tries++) {
        uint32_t u = lg.next_user++ % lg.users;

        if (!lg.direct || lg.owners[u].port == c->port) {
            return u;
        }
    }
    return c->user;
}

/* http: builds C's next request (a new user, a fresh sequence number in the body). */
static int
lg_http_build(struct lg_conn *c)
{
    char head[256];
    int n;

    if (c->expect == NULL) {
        c->expect = malloc(lg.size);
        c->msg = malloc(sizeof(head) + lg.size);
        if (c->expect == NULL || c->msg == NULL) {
            return -1;
        }
        memcpy(c->expect, lg.pattern, lg.size);
        c->expect_len = lg.size;
    }
    c->user = lg_http_next_user(c);
    c->seq++;
    for (int i = 0; i < 8; i++) {
        c->expect[i] = (uint8_t)(c->seq >> (8 * i)) ^ (uint8_t)c->id;
    }
    n = snprintf(head, sizeof(head),
                 "POST /echo?user=u%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                 c->user, lg.port, lg.size);
    memcpy(c->msg, head, (size_t)n);
    memcpy(c->msg + n, c->expect, lg.size);
    c->msg_len = (size_t)n + lg.size;
    c->state = LG_HTTP_SEND;
    c->off = 0;
    c->in_body = c->closing = 0;
    c->head_len = 0;
    c->t_sent = lg_now();
    return 0;
}

/* http: the answer is whole: count it, then the next request (or close: the run is over). */
static void
lg_http_done(struct lg_conn *c)
{
    if (!lg.stopping) {
        double now = lg_now();

        lg.done++;
        lg.bytes += lg.size;
        lg_hist_add(now - c->t_sent);
        if (lg.max > 0 && lg.done >= lg.max) {
            lg.stopping = 1;
            lg.t_end = now;
        }
    }
    if (lg.stopping || c->closing) {
        if (c->closing) {
            lg.reconnects++;
        } else {
            lg.closes_ok++;
        }
        lg_conn_free(c);
        lg_open(c); /* does nothing once the run is over */
        return;
    }
    if (lg_http_build(c) == -1) {
        lg_error(c, LG_E_ECHO, "out of memory");
        lg_conn_free(c);
        return;
    }
    lg_step(c);
}

/* http: checks the answer head c->head[0..HEAD_LEN). Returns 0, or -1 after freeing C. */
static int
lg_http_head(struct lg_conn *c, size_t head_len)
{
    const char *h = c->head, *backend = NULL;
    size_t backend_len = 0;
    long length = -1;

    if (head_len < 12 || memcmp(h, "HTTP/1.1 200", 12) != 0) {
        char detail[64];

        snprintf(detail, sizeof(detail), "%.40s", h);
        for (char *p = detail; *p; p++) {
            *p = *p == '\r' || *p == '\n' ? ' ' : *p;
        }
        lg_error(c, LG_E_STATUS, detail);
        lg_conn_free(c);
        return -1;
    }
    for (const char *p = memchr(h, '\n', head_len); p != NULL && p + 1 < h + head_len;) {
        const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(h + head_len - line));
        const char *colon, *v, *e;

        if (eol == NULL) {
            break;
        }
        colon = memchr(line, ':', (size_t)(eol - line));
        p = eol;
        if (colon == NULL) {
            continue;
        }
        for (v = colon + 1; v < eol && *v == ' '; v++) {
        }
        for (e = eol; e > v && (e[-1] == '\r' || e[-1] == ' '); e--) {
        }
        if (colon - line == 9 && strncasecmp(line, "X-Backend", 9) == 0) {
            backend = v;
            backend_len = (size_t)(e - v);
        } else if (colon - line == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            length = strtol(v, NULL, 10);
        } else if (colon - line == 10 && strncasecmp(line, "Connection", 10) == 0 && e - v == 5 &&
                   strncasecmp(v, "close", 5) == 0) {
            c->closing = 1;
        }
    }
    if (backend == NULL || length != (long)lg.size) {
        lg_error(c, LG_E_ACCEPT, backend == NULL ? "no X-Backend" : "wrong Content-Length");
        lg_conn_free(c);
        return -1;
    }
    lg_route_check(c->user, backend, backend_len);
    return 0;
}

/* http: compares LEN answer body bytes at BUF. Returns 1 when the body is whole, 0, or -1. */
static int
lg_http_body(struct lg_conn *c, const uint8_t *buf, size_t len)
{
    if (len > c->expect_len - c->off || memcmp(buf, c->expect + c->off, len) != 0) {
        lg_error(c, LG_E_ECHO, "answer body differs from the request body");
        lg_conn_free(c);
        return -1;
    }
    c->off += len;
    return c->off == c->expect_len;
}

/* http: reads the answer: its head into c->head, then its body. */
static void
lg_http_read(struct lg_conn *c)
{
    for (;;) {
        ssize_t n;
        int r;

        if (!c->in_body) {
            char *end;

            n = recv(c->fd, c->head + c->head_len, LG_HEAD_MAX - 1 - c->head_len, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return;
            }
            if (n <= 0) {
                lg_error(c, LG_E_EOF, n == 0 ? "EOF before the answer" : strerror(errno));
                lg_conn_free(c);
                return;
            }
            c->head_len += (size_t)n;
            c->head[c->head_len] = '\0';
            end = strstr(c->head, "\r\n\r\n");
            if (end == NULL) {
                if (c->head_len >= LG_HEAD_MAX - 1) {
                    lg_error(c, LG_E_STATUS, "answer head too large");
                    lg_conn_free(c);
                }
                continue;
            }
            size_t head_len = (size_t)(end + 4 - c->head);

            if (lg_http_head(c, head_len) == -1) {
                return;
            }
            c->in_body = 1;
            c->off = 0;
            r = lg_http_body(c, (const uint8_t *)c->head + head_len, c->head_len - head_len);
        } else {
            size_t room = c->expect_len - c->off;

            n = recv(c->fd, lg.scratch, room < LG_SCRATCH ? room : LG_SCRATCH, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return;
            }
            if (n <= 0) {
                lg_error(c, LG_E_EOF, n == 0 ? "EOF in the answer body" : strerror(errno));
                lg_conn_free(c);
                return;
            }
            r = lg_http_body(c, lg.scratch, (size_t)n);
        }
        if (r == -1) {
            return;
        }
        if (r == 1) {
            lg_http_done(c);
            return;
        }
    }
}

/* Moves C along its state machine as far as the sockets allow. */
static void
lg_step(struct lg_conn *c)
{
    static const uint8_t close_frame[8] = { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8 }; /* 1000 */
    char req[256];
    int n, r;

    switch (c->state) {
    case LG_CONNECTING: {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1 || soerr != 0) {
            lg_error(c, LG_E_CONNECT, strerror(soerr ? soerr : errno));
            lg_conn_free(c);
            return;
        }
        c->state = LG_SEND_HEAD;
        c->off = 0;
        if (lg.tls != NULL) {
            c->ssl = SSL_new(lg.tls);
            if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
                lg_error(c, LG_E_CONNECT, "SSL_new failed");
                lg_conn_free(c);
                return;
            }
            SSL_set_connect_state(c->ssl);
            c->state = LG_TLS_HANDSHAKE;
        } else if (lg.mode == LG_HTTP) {
            if (lg_http_build(c) == -1) {
                lg_error(c, LG_E_ECHO, "out of memory");
                lg_conn_free(c);
                return;
            }
            lg_step(c);
            return;
        }
    }
        /* fall through */
    case LG_TLS_HANDSHAKE:
        if (c->state == LG_TLS_HANDSHAKE) {
            int rc = SSL_do_handshake(c->ssl);

            if (rc != 1) {
                int e = SSL_get_error(c->ssl, rc);

                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    lg_watch(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
                    return;
                }
                lg_error(c, LG_E_CONNECT, "TLS handshake failed");
                lg_conn_free(c);
                return;
            }
            c->state = LG_SEND_HEAD;
        }
        /* fall through */
    case LG_SEND_HEAD:
        n = snprintf(req, sizeof(req),
                     "GET /ws?user=u%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " LG_WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     c->user, lg.port);
        r = lg_send(c, req, (size_t)n);
        if (r <= 0) {
            if (r < 0) {
                lg_error(c, LG_E_EOF, strerror(errno));
                lg_conn_free(c);
            }
            return;
        }
        c->state = LG_READ_HEAD;
        c->head_len = 0;
        lg_watch(c, EPOLLIN);
        return;
    case LG_READ_HEAD:
        lg_read_head(c);
        return;
    case LG_SEND_MSG:
        r = lg_send(c, c->msg, c->msg_len);
        if (r <= 0) {
            if (r < 0) {
                lg_error(c, LG_E_EOF, strerror(errno));
                lg_conn_free(c);
            }
            return;
        }
        c->state = LG_READ_ECHO;
        c->off = 0;
        lg_watch(c, EPOLLIN);
        return;
    case LG_READ_ECHO:
    case LG_READ_CLOSE:
        lg_read_echo(c);
        return;
    case LG_SEND_CLOSE:
        r = lg_send(c, close_frame, sizeof(close_frame));
        if (r <= 0) {
            if (r < 0) {
                lg_error(c, LG_E_EOF, strerror(errno));
                lg_conn_free(c);
            }
            return;
        }
        c->state = LG_READ_CLOSE;
        c->off = 0;
        lg_watch(c, EPOLLIN);
        return;
    case LG_IDLE_HOLD: {
        ssize_t got = lg_recv(c, lg.scratch, 64);

        if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        lg_error(c, got == 0 ? LG_E_EOF : LG_E_ECHO, "idle connection closed or spoke");
        lg_conn_free(c);
        return;
    }
    case LG_HTTP_SEND:
        r = lg_send(c, c->msg, c->msg_len);
        if (r <= 0) {
            if (r < 0) {
                lg_error(c, LG_E_EOF, strerror(errno));
                lg_conn_free(c);
            }
            return;
        }
        c->state = LG_HTTP_READ;
        lg_watch(c, EPOLLIN);
        return;
    case LG_HTTP_READ:
        lg_http_read(c);
        return;
    case LG_FREE:
        return;
    }
}

/* Opens slot C for the next user, unless the run is over. */
static void
lg_open(struct lg_conn *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1;

    if (lg.stopping || (lg.mode == LG_HANDSHAKE && lg.max > 0 && lg.started >= lg.max)) {
        return;
    }
    c->user = lg.mode == LG_HANDSHAKE ? lg.next_user++ % lg.users : c->id % lg.users;
    c->port = lg.direct ? lg.owners[c->user].port : lg.port;
    sa.sin_port = htons(c->port);
    lg.started++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        lg_error(c, LG_E_CONNECT, strerror(errno));
        return;
    }
    lg.live++;
    if (lg.mode == LG_IDLE) {
        lg.opening++;
    }
    c->head = malloc(LG_HEAD_MAX);
    c->state = LG_CONNECTING;
    c->events = 0;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->head == NULL ||
        (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 && errno != EINPROGRESS)) {
        lg_error(c, LG_E_CONNECT, strerror(errno));
        lg_conn_free(c);
        return;
    }
    lg_watch(c, EPOLLOUT);
}

/* One pass of the event loop, waiting at most TIMEOUT_MS. */
static void
lg_poll(int timeout_ms)
{
    struct epoll_event evs[LG_EVENTS];
    int n = epoll_wait(lg.ep, evs, LG_EVENTS, timeout_ms);

    for (int i = 0; i < n; i++) {
        lg_step(evs[i].data.ptr);
    }
}

/* Ends the measured part: in-flight work finishes (uncounted), then Close. */
static void
lg_drain(void)
{
    double limit = lg_now() + LG_DRAIN_SECONDS;

    lg.stopping = 1;
    for (uint32_t i = 0; i < lg.conns; i++) {
        struct lg_conn *c = &lg.conn[i];

        if (c->state == LG_IDLE_HOLD) {
            c->state = LG_SEND_CLOSE;
            c->off = 0;
            lg_step(c);
        }
    }
    while (lg.live > 0 && lg_now() < limit) {
        lg_poll(50);
    }
    for (uint32_t i = 0; i < lg.conns; i++) {
        if (lg.conn[i].state != LG_FREE) {
            lg_error(&lg.conn[i], LG_E_TIMEOUT, "unfinished at the end");
            lg_conn_free(&lg.conn[i]);
        }
    }
}

static void
lg_run_timed(void)
{
    for (uint32_t i = 0; i < lg.conns; i++) {
        lg_open(&lg.conn[i]);
    }
    if (lg.ready_file != NULL && lg.mode != LG_HANDSHAKE) {
        /*
         * The window starts once every connection is upgraded, so that (TLS)
         * handshakes neither eat it nor count as message work; the file tells
         * the harness when to start its CPU accounting.
         */
        double limit = lg_now() + LG_OPEN_SECONDS;
        FILE *f;

        while (lg.upgraded < lg.conns && lg.live > 0 && lg_now() < limit) {
            lg_poll(50);
        }
        lg.done = lg.bytes = lg.nhist = 0;
        memset(lg.hist, 0, sizeof(lg.hist));
        f = fopen(lg.ready_file, "w");
        if (f != NULL) {
            fprintf(f, "upgraded=%u\n", lg.upgraded);
            fclose(f);
        }
    }
    lg.t0 = lg_now();
    lg.t_end = lg.t0 + lg.seconds;
    while (!lg.stopping) {
        double now = lg_now();

        if (now >= lg.t_end) {
            lg.stopping = 1;
            break;
        }
        if (lg.live == 0 && lg.mode != LG_HANDSHAKE) {
            lg.t_end = now;
            break; /* every connection failed */
        }
        lg_poll((int)((lg.t_end - now) * 1000) + 1);
        if (lg.mode == LG_HANDSHAKE) { /* slots whose connection failed start again */
            for (uint32_t i = 0; i < lg.conns; i++) {
                if (lg.conn[i].state == LG_FREE) {
                    lg_open(&lg.conn[i]);
                }
            }
        }
    }
    lg_drain();
}

static void
lg_run_idle(void)
{
    uint32_t next = 0;
    double opened;

    lg.t0 = lg_now();
    while (lg_now() - lg.t0 < LG_OPEN_SECONDS) {
        while (next < lg.conns && lg.opening < LG_OPENING_MAX) {
            lg_open(&lg.conn[next++]);
        }
        if (next == lg.conns && lg.opening == 0) {
            break;
        }
        lg_poll(50);
    }
    opened = lg_now() - lg.t0;
    if (lg.ready_file != NULL) {
        FILE *f = fopen(lg.ready_file, "w");

        if (f != NULL) {
            fprintf(f, "up=%u\n", lg.up);
            fclose(f);
        }
    }
    for (double until = lg_now() + lg.hold; lg_now() < until;) {
        lg_poll(100);
    }
    lg.t_end = lg.t0 + opened;
    lg_drain();
}

static void
lg_lookup(void)
{
    for (uint32_t u = 0; u < lg.users; u++) {
        struct sockaddr_in sa = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                  .sin_port = htons(lg.port) };
        char req[128], resp[2048];
        size_t len = 0;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const char *owner, *addr, *oe, *ae, *colon;
        int n;

        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
            fprintf(stderr, "loadgen: admin 127.0.0.1:%u: %s\n", lg.port, strerror(errno));
            exit(1);
        }
        n = snprintf(req, sizeof(req),
                     "GET /lookup?key=u%u HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     u);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            fprintf(stderr, "loadgen: lookup send: %s\n", strerror(errno));
            exit(1);
        }
        for (ssize_t r;
             len < sizeof(resp) - 1 && (r = recv(fd, resp + len, sizeof(resp) - 1 - len, 0)) > 0;) {
            len += (size_t)r;
        }
        close(fd);
        resp[len] = '\0';
        owner = strstr(resp, "\"owner\":");
        addr = strstr(resp, "\"address\":");
        if (owner == NULL || addr == NULL || (owner = strchr(owner + 8, '"')) == NULL ||
            (oe = strchr(owner + 1, '"')) == NULL || (addr = strchr(addr + 10, '"')) == NULL ||
            (ae = strchr(addr + 1, '"')) == NULL ||
            (colon = memrchr(addr + 1, ':', (size_t)(ae - addr - 1))) == NULL) {
            fprintf(stderr, "loadgen: /lookup?key=u%u: unexpected answer: %.200s\n", u, resp);
            exit(1);
        }
        printf("u%u %.*s %lu\n", u, (int)(oe - owner - 1), owner + 1, strtoul(colon + 1, NULL, 10));
    }
}

static void
lg_report(void)
{
    static const char *const mode_names[] = {
        "handshake", "small", "bulk", "idle", "lookup", "http"
    };
    double secs = lg.t_end - lg.t0;
    uint64_t errors = 0;
    struct rusage ru;

    for (int e = 0; e < LG_E_COUNT; e++) {
        errors += lg.err[e];
    }
    printf("mode=%s tls=%d seconds=%.3f", mode_names[lg.mode], lg.tls != NULL, secs);
    if (lg.mode == LG_HANDSHAKE) {
        printf(" handshakes=%llu rate=%.1f", (unsigned long long)lg.done,
               secs > 0 ? (double)lg.done / secs : 0);
    } else if (lg.mode == LG_IDLE) {
        printf(" conns=%u up=%u", lg.conns, lg.up);
    } else {
        printf(" msgs=%llu rate=%.1f mib_s=%.2f p50_us=%.0f p99_us=%.0f",
               (unsigned long long)lg.done, secs > 0 ? (double)lg.done / secs : 0,
               secs > 0 ? (double)lg.bytes / secs / 1048576.0 : 0, lg_hist_quantile(0.50),
               lg_hist_quantile(0.99));
    }
    getrusage(RUSAGE_SELF, &ru);
    printf(" cpu_s=%.3f", (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    printf(" errors=%llu", (unsigned long long)errors);
    for (int e = 0; e < LG_E_COUNT; e++) {
        printf(" err_%s=%llu", lg_err_names[e], (unsigned long long)lg.err[e]);
    }
    printf(" checked=%llu misrouted=%llu route_check=%s closes_ok=%llu reconnects=%llu backends=",
           (unsigned long long)lg.checked, (unsigned long long)lg.misrouted,
           lg.owners != NULL ? "owner" : "sticky", (unsigned long long)lg.closes_ok,
           (unsigned long long)lg.reconnects);
    for (int i = 0; i < lg.nnames; i++) {
        printf("%s%s:%llu", i ? "," : "", lg.names[i], (unsigned long long)lg.per_backend[i]);
    }
    printf("\n");
}

static void
usage(void)
{
    fprintf(stderr, "usage: loadgen --mode handshake|small|bulk|idle|lookup|http --port P [--tls]\n"
                    "  [--conns C] [--size B] [--seconds T] [--max N] [--users N]\n"
                    "  [--owners FILE [--direct]] [--ready FILE] [--hold S]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct rlimit rl;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    const char *mode = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--direct") == 0) {
            lg.direct = 1;
            continue;
        }
        if (strcmp(a, "--tls") == 0) {
            lg.tls = SSL_CTX_new(TLS_client_method());
            if (lg.tls == NULL) {
                fprintf(stderr, "loadgen: SSL_CTX_new failed\n");
                exit(1);
            }
            SSL_CTX_set_min_proto_version(lg.tls, TLS1_2_VERSION);
            SSL_CTX_set_verify(lg.tls, SSL_VERIFY_NONE, NULL);
            SSL_CTX_set_mode(lg.tls,
                             SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            SSL_CTX_set_session_cache_mode(lg.tls, SSL_SESS_CACHE_OFF); /* full handshakes */
            SSL_CTX_set_alpn_protos(lg.tls, (const unsigned char *)"\x08http/1.1", 9);
            continue;
        }
        if (i + 1 >= argc) {
            usage();
        }
        const char *v = argv[++i];

        if (strcmp(a, "--mode") == 0) {
            mode = v;
        } else if (strcmp(a, "--port") == 0) {
            lg.port = (uint16_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--conns") == 0) {
            lg.conns = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--size") == 0) {
            lg.size = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--seconds") == 0) {
            lg.seconds = strtod(v, NULL);
        } else if (strcmp(a, "--max") == 0) {
            lg.max = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--users") == 0) {
            lg.users = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--owners") == 0) {
            lg.owners_file = v;
        } else if (strcmp(a, "--ready") == 0) {
            lg.ready_file = v;
        } else if (strcmp(a, "--hold") == 0) {
            lg.hold = strtod(v, NULL);
        } else {
            usage();
        }
    }
    if (mode == NULL || lg.port == 0 || lg.users == 0) {
        usage();
    }
    if (strcmp(mode, "handshake") == 0) {
        lg.mode = LG_HANDSHAKE;
        lg.conns = lg.conns ? lg.conns : 64;
    } else if (strcmp(mode, "small") == 0) {
        lg.mode = LG_SMALL;
        lg.conns = lg.conns ? lg.conns : 1000;
        lg.size = lg.size ? lg.size : 64;
    } else if (strcmp(mode, "bulk") == 0) {
        lg.mode = LG_BULK;
        lg.conns = lg.conns ? lg.conns : 16;
        lg.size = lg.size ? lg.size : 65536;
    } else if (strcmp(mode, "idle") == 0) {
        lg.mode = LG_IDLE;
        lg.conns = lg.conns ? lg.conns : 9900;
    } else if (strcmp(mode, "http") == 0) {
        lg.mode = LG_HTTP;
        lg.conns = lg.conns ? lg.conns : 64;
        lg.size = lg.size ? lg.size : 1024;
    } else if (strcmp(mode, "lookup") == 0) {
        lg.mode = LG_LOOKUP;
        lg_lookup();
        return 0;
    } else {
        usage();
    }
    if (lg.size < 8 && (lg.mode == LG_SMALL || lg.mode == LG_BULK || lg.mode == LG_HTTP)) {
        lg.size = 8; /* room for the sequence number */
    }
    if (lg.size > (64u << 20) || lg.conns == 0 || lg.conns > 19000 || lg.seconds <= 0 ||
        (lg.direct && lg.owners_file == NULL)) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (lg.owners_file != NULL) {
        lg_owners_load();
    }
    lg.seen = malloc(lg.users * sizeof(*lg.seen));
    lg.conn = calloc(lg.conns, sizeof(*lg.conn));
    lg.scratch = malloc(LG_SCRATCH);
    lg.pattern = malloc(lg.size > LG_IDLE_SIZE ? lg.size : LG_IDLE_SIZE);
    lg.ep = epoll_create1(EPOLL_CLOEXEC);
    if (lg.seen == NULL || lg.conn == NULL || lg.scratch == NULL || lg.pattern == NULL ||
        lg.ep < 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    for (uint32_t u = 0; u < lg.users; u++) {
        lg.seen[u] = -1;
    }
    for (size_t i = 0; i < (lg.size > LG_IDLE_SIZE ? lg.size : LG_IDLE_SIZE); i++) {
        seed ^= seed << 13; /* xorshift64: the same pattern every run */
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lg.pattern[i] = (uint8_t)seed;
    }
    srand(12345);
    for (uint32_t i = 0; i < lg.conns; i++) {
        lg.conn[i].fd = -1;
        lg.conn[i].id = i;
    }
    if (lg.mode == LG_IDLE) {
        lg_run_idle();
    } else {
        lg_run_timed();
    }
    lg_report();
    return 0;
}
