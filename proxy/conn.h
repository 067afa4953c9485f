/*
 * A proxied connection and its state machine (DESIGN §3):
 * READ_HEAD -> CONNECTING -> RELAY -> CLOSED, or -> ANSWERING -> CLOSED when
 * wsring answers itself (400, 431, 502, 503). Touched by its worker's thread
 * only. conn_close() is the only way out.
 */
#ifndef WSRING_PROXY_CONN_H
#define WSRING_PROXY_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/event_struct.h>

#include "proxy/close.h"
#include "proxy/fdev.h"
#include "proxy/http1.h"
#include "proxy/route.h"
#include "proxy/wsframe.h"

struct conn_io_out;
struct ssl_st;
struct worker;
struct worker_listener;

enum conn_state {
    CONN_READ_HEAD = 0, /* reading the client's request head (handshake_timeout) */
    CONN_CONNECTING,    /* connecting to a candidate backend (connect_timeout) */
    CONN_RELAY,         /* head forwarded (or being forwarded); bytes relayed both ways */
    CONN_MIGRATING,     /* a Close is due: relaying on until a server->client message boundary */
    CONN_CLOSE_SENT,    /* our Close is out, the backend closed: waiting for the client's Close */
    CONN_ANSWERING,     /* wsring's own answer sent; draining the client until EOF or linger */
    CONN_CLOSED,        /* freed right after */
    CONN_STATE_COUNT    /* must stay last */
};

enum conn_side {
    SIDE_CLIENT = 0,
    SIDE_BACKEND = 1
};

struct conn_end {
    int fd;                      /* owned; -1 when not open */
    struct fdev io;              /* its events: read (by state), write (pending bytes, connect) */
    uint8_t *pend;               /* owned; bytes waiting to be written to fd, kept for reuse */
    size_t pend_off;             /* first unwritten byte */
    size_t pend_len;             /* end of the pending bytes */
    size_t pend_cap;             /* allocated size of pend */
    struct ssl_st *ssl;          /* owned or NULL: this end speaks TLS (conn_io.c) */
    struct conn_io_out *tls_out; /* owned or NULL: TLS records not sent yet (conn_io.c) */
    unsigned side : 1;           /* enum conn_side, so a callback finds its conn */
    unsigned tls_broken : 1;     /* a TLS error happened: no close_notify may follow */
    unsigned tls_plain_http : 1; /* the "TLS" handshake was a plain HTTP request */
    unsigned tls_deferred : 1;   /* an EOF or error read behind data: the next read returns it */
    unsigned tls_owed : 1;       /* the last byte sent is in tls_out: reported once that is out */
    unsigned tls_held : 1;       /* tls_out is the TLS 1.3 ticket: it waits for our next record */
    unsigned eof : 1;            /* read EOF from fd */
    unsigned blocked : 1;        /* reading stopped: the peer has pending bytes */
};

struct conn {
    struct worker *worker; /* borrowed; owns this conn */
    TAILQ_ENTRY(conn) link;
    enum conn_state state;
    struct conn_end end[2]; /* SIDE_CLIENT, SIDE_BACKEND */
    struct event timer;     /* the current phase's deadline */
    struct route *route;    /* reference, taken at accept */
    const char *proto;      /* borrowed from the listener: X-Forwarded-Proto */
    char *head;             /* owned; the request head being read (READ_HEAD only) */
    size_t head_len;
    size_t head_cap;
    size_t head_scanned; /* head_find_end progress */
    uint64_t key_hash;
    uint64_t accepted_us;           /* monotonic; for the handshake latency histogram */
    uint32_t cand[ROUTE_MAX_TRIES]; /* backends to try, in order */
    uint8_t ncand;
    uint8_t icand;               /* the one being tried */
    unsigned upgrade : 1;        /* the request asked for a WebSocket upgrade */
    unsigned http : 1;           /* plain HTTP: each request routed on its own (DESIGN §10.1) */
    unsigned client_close : 1;   /* http: close the client after this response */
    unsigned req_done : 1;       /* http: the request body has been forwarded whole */
    unsigned head_req : 1;       /* http: the request is HEAD (its response has no body) */
    unsigned resp_in_body : 1;   /* http: the response head has gone by */
    unsigned resp_reusable : 1;  /* http: the backend may take another request */
    unsigned next_on_flush : 1;  /* http: the response is complete once the client has it */
    unsigned resp_streaming : 1; /* http: an open-ended response (SSE): migration ends it */
    unsigned idempotent : 1;     /* http: the method may be sent twice (RFC 9110 s9.2.2) */
    unsigned reused : 1;         /* http: the backend connection came from the pool */
    unsigned replayed : 1;       /* http: the request went again on a fresh connection */
    unsigned head_early : 1;     /* the head went with the connect: EAGAIN means not up yet */
    size_t replay_len;           /* http: >0 when the whole request is in the backend's pend */
    struct http1_body req_body;  /* http: where the request ends */
    struct http1_body resp_body; /* http: where the response ends */
    uint8_t *resp_head;          /* owned; http: response head bytes until it is complete */
    size_t resp_head_len;
    unsigned resp_done : 1;      /* the backend's response head has passed */
    unsigned ws : 1;             /* the backend answered 101: scan frames from here */
    uint8_t resp_match;          /* CR LF CR LF bytes matched so far in the response */
    uint16_t resp_status;        /* parsed from the response line */
    uint8_t resp_line_len;       /* bytes of "HTTP/1.1 NNN" seen */
    struct wsframe frames;       /* server->client frame boundaries (ws only) */
    struct wsframe frames_in;    /* client->server frames: finds the client's Close reply */
    const struct member *member; /* borrowed from route: the backend we relay to */
    TAILQ_ENTRY(conn) mlink;     /* in worker->misplaced while queued */
    uint16_t close_code;         /* CONN_MIGRATING: the code to send (1012, 1001) */
    uint8_t close_reason;        /* enum close_reason to count once the Close is done */
    unsigned queued : 1;         /* in worker->misplaced */
    unsigned grace_over : 1;     /* close_grace passed: a frame boundary will do */
    unsigned client_closed : 1;  /* the client's Close reply has arrived */
    struct sockaddr_storage peer;
    socklen_t peer_len;

    /* edge (DESIGN §12): PEER above is the PROXY header's source when the listener takes one */
    struct sockaddr_storage local; /* what the client connected to (send_proxy); once known */
    socklen_t local_len;           /* 0 until known */
    uint8_t *pp;                   /* owned; PROXY header bytes read so far, or NULL */
    size_t pp_len;
    unsigned await_proxy : 1; /* a proxy_protocol listener's header is still to come */
};

/* Takes over FD, accepted on LISTENER, and starts reading its head. Closes FD on failure. */
void conn_start(struct worker *w, const struct worker_listener *listener, int fd,
                const struct sockaddr *peer, socklen_t peer_len);
/*
 * The only way a conn ends: counts REASON, answers with its HTTP status if
 * the client still waits for one, then frees. The caller must return at once.
 */
void conn_close(struct conn *c, enum close_reason reason);

/* Closes E's descriptor and drops its pending bytes; the conn lives on. */
void conn_end_close(struct conn_end *e);
/*
 * Ends C gently: a WebSocket gets a Close CODE at the next server->client
 * message boundary (within close_grace), then the backend is closed and the
 * client's Close reply awaited; any other conn is closed at once. REASON is
 * what the close is counted as. C may be freed before this returns.
 */
void relay_close_gently(struct conn *c, uint16_t code, enum close_reason reason);

/* Starts relaying (relay.c); the backend's pending bytes already hold the forwarded head. */
void relay_start(struct conn *c);
/* The relay's read callback; ARG is the conn_end that became readable. */
void relay_on_read(evutil_socket_t fd, short what, void *arg);
/* A fresh plain backend connection sent N bytes of the head (-1: errno), which also says
 * whether its connect worked: relay, or try the next candidate. */
void conn_head_sent(struct conn *c, ssize_t n);
/* The worker's fdev send batch (fdev_send_later): a relay end's pending bytes, and how many went.
 */
void relay_send_prep(struct fdev *f, const void **buf, size_t *len);
void relay_send_done(struct fdev *f, ssize_t n);
/* http: the exchange is over; reads the client's next request (conn.c). */
void conn_next_request(struct conn *c);
/*
 * http: the pooled backend connection died before answering; sends the request (all of it
 * still in the backend's pend buffer, c->replay_len bytes) once more on a fresh connection.
 */
void conn_replay(struct conn *c);
/*
 * Back to READ_HEAD for the client's next request on a kept-alive connection
 * (any bytes already in c->head are its start); C may be freed before this
 * returns.
 */
void conn_read_next_head(struct conn *c);
/*
 * Sends LEN bytes at BUF as the last answer on C, half-closes and lingers for
 * the client's EOF (CONN_ANSWERING). The caller must return at once.
 */
void conn_answer_last(struct conn *c, const void *buf, size_t len);

#endif /* WSRING_PROXY_CONN_H */
