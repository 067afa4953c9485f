/*
 * echo_backend: the benchmark's WebSocket backend (bench/README.md). A small
 * epoll server with no dependencies beyond libc: it answers an upgrade
 * request with 101 (Sec-WebSocket-Accept computed here, SHA-1 included) and
 * the header "X-Backend: NAME", so the load generator can check where each
 * user landed, then echoes every frame back unmasked. Ping gets a pong,
 * Close gets a Close and the connection ends. A request that is not an
 * upgrade gets a 200 with "X-Backend: NAME" whose body is the request's body
 * (Content-Length) echoed, or "NAME\n" when it has none; the connection is
 * kept alive (HTTP/1.1) for the next request unless the request said
 * "Connection: close" or was HTTP/1.0. Pipelined requests are answered in
 * order.
 *
 *   echo_backend --port P --name NAME [--addr 127.0.0.1] [--threads N]
 *
 * Each thread has its own SO_REUSEPORT listener and epoll set; a connection
 * stays on the thread that accepted it. The process must never be the
 * bottleneck: it reads into a per-thread scratch area and keeps per
 * connection only what a read left incomplete and what a write left unsent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ECHO_MAX_HEAD    16384        /* a larger request head is dropped */
#define ECHO_MAX_PAYLOAD (16u << 20)  /* a larger frame ends the connection */
#define ECHO_SCRATCH     (256u << 10) /* per-thread read area */
#define ECHO_EVENTS      256          /* epoll events per wakeup */
#define ECHO_WS_GUID     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define ECHO_LISTEN_FLAG ((void *)1) /* epoll data of the listener */

enum echo_state {
    ECHO_HEAD,    /* reading the request head */
    ECHO_WS,      /* upgraded: echoing frames */
    ECHO_CLOSING, /* flushing the last bytes, then close */
};

struct echo_conn {
    int fd;
    enum echo_state state;
    uint8_t *in; /* owned; bytes read but not yet a whole head or frame */
    size_t in_len;
    size_t in_cap;
    uint8_t *out; /* owned; bytes the socket could not take yet */
    size_t out_off;
    size_t out_len;
    size_t out_cap;
};

struct echo_thread {
    int ep;
    int lfd;
    uint8_t *scratch; /* owned; ECHO_SCRATCH bytes */
    uint8_t *obuf;    /* owned; echo output under construction */
    size_t obuf_cap;
};

static int echo_obuf_reserve(struct echo_thread *t, size_t need);

static const char *echo_name = "backend";
static const char *echo_addr = "127.0.0.1";
static unsigned echo_port;

/* ---- SHA-1 (FIPS 180-4), enough for Sec-WebSocket-Accept ---- */

static uint32_t
sha1_rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void
sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 80; i++) {
        w[i] = sha1_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    }
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;

        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        t = sha1_rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = sha1_rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* MD[20] = SHA-1 of MSG[0..LEN); LEN is at most 119 bytes here (key + GUID). */
static void
sha1(const uint8_t *msg, size_t len, uint8_t md[20])
{
    uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
    uint8_t buf[128] = { 0 };
    size_t nblocks = (len + 8) / 64 + 1;
    uint64_t bits = (uint64_t)len * 8;

    memcpy(buf, msg, len);
    buf[len] = 0x80;
    for (int i = 0; i < 8; i++) {
        buf[nblocks * 64 - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
    }
    for (size_t i = 0; i < nblocks; i++) {
        sha1_block(h, buf + 64 * i);
    }
    for (int i = 0; i < 20; i++) {
        md[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
    }
}

/* OUT gets the NUL-terminated base64 of IN[0..LEN); OUT holds 4 * ceil(LEN / 3) + 1. */
static void
base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* ACCEPT (29 bytes with NUL) = base64(SHA-1(KEY + GUID)) (RFC 6455 §4.2.2). */
static int
ws_accept(const char *key, size_t key_len, char accept[29])
{
    uint8_t buf[128];
    uint8_t md[20];

    if (key_len == 0 || key_len + sizeof(ECHO_WS_GUID) > sizeof(buf)) {
        return -1;
    }
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ECHO_WS_GUID, sizeof(ECHO_WS_GUID) - 1);
    sha1(buf, key_len + sizeof(ECHO_WS_GUID) - 1, md);
    base64(md, sizeof(md), accept);
    return 0;
}

/* ---- connections ---- */

static void
echo_close(struct echo_thread *t, struct echo_conn *c)
{
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static int
echo_want(struct echo_thread *t, struct echo_conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    return epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends BUF[0..LEN); what the socket will not take now goes to C's out buffer. */
static int
echo_send(struct echo_thread *t, struct echo_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);

        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    if (off == len) {
        return 0;
    }
    if (c->out_cap < len - off) {
        uint8_t *p = realloc(c->out, len - off);

        if (p == NULL) {
            return -1;
        }
        c->out = p;
        c->out_cap = len - off;
    }
    memcpy(c->out, buf + off, len - off);
    c->out_off = 0;
    c->out_len = len - off;
    return echo_want(t, c, EPOLLOUT); /* stop reading until this is out */
}

/* Keeps IN[0..LEN) as C's unprocessed input (it may already point into c->in). */
static int
echo_keep(struct echo_conn *c, const uint8_t *in, size_t len)
{
    if (len == 0) {
        c->in_len = 0;
        if (c->in_cap > 65536) { /* do not pin a bulk-sized buffer on an idle conn */
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        return 0;
    }
    if (c->in_cap < len) {
        uint8_t *p = malloc(len < 4096 ? 4096 : len);

        if (p == NULL) {
            return -1;
        }
        memcpy(p, in, len);
        free(c->in);
        c->in = p;
        c->in_cap = len < 4096 ? 4096 : len;
    } else {
        memmove(c->in, in, len);
    }
    c->in_len = len;
    return 0;
}

/* Finds NAME's value in the head HEAD[0..LEN); returns its length, 0 if absent. */
static size_t
head_field(const char *head, size_t len, const char *name, const char **value)
{
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len);

    while (p != NULL && (size_t)(p + 1 - head) < len) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', len - (size_t)(line - head));

        if (eol == NULL) {
            break;
        }
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *e = eol;

            while (v < e && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            *value = v;
            return (size_t)(e - v);
        }
        p = eol;
    }
    return 0;
}

/* Answers the WebSocket upgrade head IN[0..HEAD_LEN). Returns 0, or -1 to close now. */
static int
echo_answer_upgrade(struct echo_thread *t, struct echo_conn *c, const char *key, size_t key_len)
{
    char accept[29];
    char resp[512];
    int n;

    if (ws_accept(key, key_len, accept) != 0) {
        return -1;
    }
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n",
                 accept, echo_name);
    if (n < 0 || (size_t)n >= sizeof(resp)) {
        return -1;
    }
    c->state = ECHO_WS;
    return echo_send(t, c, (const uint8_t *)resp, (size_t)n);
}

/*
 * Answers a plain HTTP request: head IN[0..HEAD_LEN) and BODY_LEN body bytes
 * after it (all in IN), echoing the body. Returns 0, or -1 to close now.
 */
static int
echo_answer_http(struct echo_thread *t, struct echo_conn *c, const char *in, size_t head_len,
                 size_t body_len)
{
    const char *conn = NULL;
    size_t conn_len = head_field(in, head_len, "Connection", &conn);
    int close_it = (conn_len == 5 && strncasecmp(conn, "close", 5) == 0) ||
                   memmem(in, head_len < 64 ? head_len : 64, " HTTP/1.0\r\n", 11) != NULL;
    const char *body = body_len > 0 ? in + head_len : echo_name;
    size_t blen = body_len > 0 ? body_len : strlen(echo_name) + 1;
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "X-Backend: %s\r\n%s\r\n",
                     body_len > 0 ? "application/octet-stream" : "text/plain", blen, echo_name,
                     close_it ? "Connection: close\r\n" : "");

    if (n < 0 || (size_t)n >= sizeof(head) || echo_obuf_reserve(t, (size_t)n + blen) == -1) {
        return -1;
    }
    memcpy(t->obuf, head, (size_t)n);
    if (body_len > 0) {
        memcpy(t->obuf + n, body, blen);
    } else {
        memcpy(t->obuf + n, echo_name, blen - 1);
        t->obuf[(size_t)n + blen - 1] = '\n';
    }
    if (close_it) {
        c->state = ECHO_CLOSING;
    }
    if (echo_send(t, c, t->obuf, (size_t)n + blen) == -1) {
        return -1;
    }
    return c->state == ECHO_CLOSING && c->out_len == 0 ? -1 : 0;
}

static int
echo_obuf_reserve(struct echo_thread *t, size_t need)
{
    if (t->obuf_cap < need) {
        uint8_t *p = realloc(t->obuf, need);

        if (p == NULL) {
            return -1;
        }
        t->obuf = p;
        t->obuf_cap = need;
    }
    return 0;
}

/*
 * Echoes the whole frames in IN[0..LEN) and keeps the tail. Returns 0, or -1
 * to close now (protocol error, Close answered, send failure).
 */
static int
echo_frames(struct echo_thread *t, struct echo_conn *c, const uint8_t *in, size_t len)
{
    size_t off = 0, olen = 0;
    int closing = 0;

    if (c->out_len > 0) { /* still flushing: answer these once the socket drains */
        return echo_keep(c, in, len);
    }
    while (len - off >= 2 && !closing) {
        const uint8_t *f = in + off;
        uint8_t op = f[0] & 0x0f;
        size_t hlen = 2;
        uint64_t plen = f[1] & 0x7f;
        uint8_t mask[4] = { 0, 0, 0, 0 };
        uint8_t *o;

        if (plen == 126) {
            if (len - off < 4) {
                break;
            }
            plen = (uint64_t)f[2] << 8 | f[3];
            hlen = 4;
        } else if (plen == 127) {
            if (len - off < 10) {
                break;
            }
            plen = 0;
            for (int i = 0; i < 8; i++) {
                plen = plen << 8 | f[2 + i];
            }
            hlen = 10;
        }
        if (plen > ECHO_MAX_PAYLOAD) {
            return -1;
        }
        if (f[1] & 0x80) {
            if (len - off < hlen + 4) {
                break;
            }
            memcpy(mask, f + hlen, 4);
            hlen += 4;
        }
        if (len - off < hlen + plen) {
            break;
        }
        if (op == 0xa) { /* pong: nothing to answer */
            off += hlen + (size_t)plen;
            continue;
        }
        if (echo_obuf_reserve(t, olen + 10 + (size_t)plen) == -1) {
            return -1;
        }
        o = t->obuf + olen;
        o[0] = op == 0x9 ? (uint8_t)((f[0] & 0xf0) | 0xa) : f[0];
        if (plen < 126) {
            o[1] = (uint8_t)plen;
            o += 2;
        } else if (plen < 65536) {
            o[1] = 126;
            o[2] = (uint8_t)(plen >> 8);
            o[3] = (uint8_t)plen;
            o += 4;
        } else {
            o[1] = 127;
            for (int i = 0; i < 8; i++) {
                o[2 + i] = (uint8_t)(plen >> (56 - 8 * i));
            }
            o += 10;
        }
        {
            const uint8_t *p = f + hlen;
            size_t n = (size_t)plen, i = 0;
            uint64_t m8;

            memcpy(&m8, mask, 4);
            memcpy((uint8_t *)&m8 + 4, mask, 4);
            for (; i + 8 <= n; i += 8) {
                uint64_t v;

                memcpy(&v, p + i, 8);
                v ^= m8;
                memcpy(o + i, &v, 8);
            }
            for (; i < n; i++) {
                o[i] = p[i] ^ mask[i & 3];
            }
            o += n;
        }
        olen = (size_t)(o - t->obuf);
        off += hlen + (size_t)plen;
        if (op == 0x8) {
            closing = 1;
        }
    }
    if (olen > 0 && echo_send(t, c, t->obuf, olen) == -1) {
        return -1;
    }
    if (closing) {
        c->state = ECHO_CLOSING;
        return c->out_len == 0 ? -1 : 0;
    }
    return echo_keep(c, in + off, len - off);
}

/* Feeds the bytes now available (C's kept input followed by NEW[0..N)). */
static int
echo_input(struct echo_thread *t, struct echo_conn *c, const uint8_t *new_bytes, size_t n)
{
    const uint8_t *in = new_bytes;
    size_t len = n;

    if (c->in_len > 0 && n > 0) {
        if (c->in_cap < c->in_len + n) {
            size_t cap = c->in_len + n;
            uint8_t *p = realloc(c->in, cap);

            if (p == NULL) {
                return -1;
            }
            c->in = p;
            c->in_cap = cap;
        }
        memcpy(c->in + c->in_len, new_bytes, n);
        c->in_len += n;
    }
    if (c->in_len > 0) {
        in = c->in;
        len = c->in_len;
    }
    while (c->state == ECHO_HEAD) {
        const uint8_t *end = NULL;
        const char *key = NULL, *cl = NULL;
        size_t head_len, key_len, cl_len, body_len = 0;

        if (c->out_len > 0) { /* still flushing: answer the rest once the socket drains */
            return echo_keep(c, in, len);
        }
        for (size_t i = 3; i < len; i++) {
            if (in[i] == '\n' && in[i - 1] == '\r' && in[i - 2] == '\n' && in[i - 3] == '\r') {
                end = in + i + 1;
                break;
            }
        }
        if (end == NULL) {
            return len > ECHO_MAX_HEAD ? -1 : echo_keep(c, in, len);
        }
        head_len = (size_t)(end - in);
        key_len = head_field((const char *)in, head_len, "Sec-WebSocket-Key", &key);
        if (key_len > 0) {
            if (echo_answer_upgrade(t, c, key, key_len) == -1) {
                return -1;
            }
            len -= head_len;
            in = end;
            break;
        }
        cl_len = head_field((const char *)in, head_len, "Content-Length", &cl);
        for (size_t i = 0; i < cl_len; i++) {
            if (cl[i] < '0' || cl[i] > '9' || body_len > ECHO_MAX_PAYLOAD) {
                return -1;
            }
            body_len = body_len * 10 + (size_t)(cl[i] - '0');
        }
        if (body_len > ECHO_MAX_PAYLOAD) {
            return -1;
        }
        if (len - head_len < body_len) {
            return echo_keep(c, in, len); /* the body is still coming */
        }
        if (echo_answer_http(t, c, (const char *)in, head_len, body_len) == -1) {
            return -1;
        }
        len -= head_len + body_len;
        in += head_len + body_len;
        if (c->state == ECHO_CLOSING) {
            return 0;
        }
        if (len == 0) {
            return echo_keep(c, in, 0);
        }
    }
    if (c->state == ECHO_WS) {
        return echo_frames(t, c, in, len);
    }
    return 0; /* closing: input is dropped */
}

static void
echo_on_readable(struct echo_thread *t, struct echo_conn *c)
{
    for (int rounds = 0; rounds < 4 && c->out_len == 0; rounds++) {
        ssize_t n = recv(c->fd, t->scratch, ECHO_SCRATCH, 0);

        if (n > 0) {
            if (echo_input(t, c, t->scratch, (size_t)n) == -1) {
                echo_close(t, c);
                return;
            }
            if ((size_t)n < ECHO_SCRATCH) {
                return;
            }
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            echo_close(t, c); /* EOF or error */
            return;
        }
    }
}

static void
echo_on_writable(struct echo_thread *t, struct echo_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            echo_close(t, c);
            return;
        }
    }
    c->out_off = c->out_len = 0;
    if (c->state == ECHO_CLOSING) {
        echo_close(t, c);
        return;
    }
    if (echo_want(t, c, EPOLLIN) == -1) {
        echo_close(t, c);
        return;
    }
    if (c->in_len > 0 && echo_input(t, c, NULL, 0) == -1) { /* frames that waited */
        echo_close(t, c);
    }
}

static void
echo_accept(struct echo_thread *t)
{
    for (;;) {
        int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct echo_conn *c;
        struct epoll_event ev;
        int one = 1;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            return; /* EAGAIN, or EMFILE: try again on the next wakeup */
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = ECHO_HEAD;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
            close(fd);
            free(c);
        }
    }
}

static int
echo_listen(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)echo_port) };
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0 || inet_pton(AF_INET, echo_addr, &sa.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 4096) == -1) {
        fprintf(stderr, "echo_backend %s: listen %s:%u: %s\n", echo_name, echo_addr, echo_port,
                strerror(errno));
        exit(1);
    }
    return fd;
}

static void *
echo_thread_run(void *arg)
{
    struct echo_thread *t = arg;
    struct epoll_event evs[ECHO_EVENTS];

    for (;;) {
        int n = epoll_wait(t->ep, evs, ECHO_EVENTS, -1);

        for (int i = 0; i < n; i++) {
            struct echo_conn *c = evs[i].data.ptr;

            if (evs[i].data.ptr == ECHO_LISTEN_FLAG) {
                echo_accept(t);
            } else if (c->out_len > 0) {
                echo_on_writable(t, c);
            } else {
                echo_on_readable(t, c);
            }
        }
    }
    return NULL;
}

static struct echo_thread *
echo_thread_new(void)
{
    struct echo_thread *t = calloc(1, sizeof(*t));
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ECHO_LISTEN_FLAG };

    if (t == NULL || (t->scratch = malloc(ECHO_SCRATCH)) == NULL) {
        fprintf(stderr, "echo_backend: out of memory\n");
        exit(1);
    }
    t->lfd = echo_listen();
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->ep < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, t->lfd, &ev) == -1) {
        fprintf(stderr, "echo_backend: epoll: %s\n", strerror(errno));
        exit(1);
    }
    return t;
}

static void
usage(void)
{
    fprintf(stderr, "usage: echo_backend --port P --name NAME [--addr 127.0.0.1] [--threads N]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    unsigned nthreads = 1;
    struct rlimit rl;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            usage();
        }
        if (strcmp(argv[i], "--port") == 0) {
            echo_port = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--name") == 0) {
            echo_name = argv[++i];
        } else if (strcmp(argv[i], "--addr") == 0) {
            echo_addr = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0) {
            nthreads = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            usage();
        }
    }
    if (echo_port == 0 || echo_port > 65535 || nthreads == 0 || nthreads > 64 ||
        strlen(echo_name) > 200) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (unsigned i = 1; i < nthreads; i++) {
        pthread_t tid;

        if (pthread_create(&tid, NULL, echo_thread_run, echo_thread_new()) != 0) {
            fprintf(stderr, "echo_backend: pthread_create failed\n");
            return 1;
        }
    }
    echo_thread_run(echo_thread_new());
    return 0;
}
