/*
 * A worker: one thread, one event_base, its own SO_REUSEPORT listeners, the
 * connections it accepted (DESIGN §1). Nothing here is shared with other
 * threads except the route reference and the stop request. With `workers 1`
 * the only worker runs on the main thread's base instead (worker_create).
 */
#ifndef WSRING_PROXY_WORKER_H
#define WSRING_PROXY_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "proxy/close.h"
#include "proxy/fdev.h"
#include "proxy/metrics.h"
#include "proxy/pool.h"

struct conf;
struct conn;
struct event_base;
struct migrate_pacer;
struct route;

/* A worker's counters and live connections per backend, copied on its own thread. */
struct worker_snapshot {
    struct metrics_worker metrics;
    struct metrics_backend *backends; /* owned array of nbackends */
    size_t nbackends;
    _Atomic unsigned *pending; /* borrowed; decremented once filled */
};

struct worker_listener {
    struct worker *worker; /* borrowed; the owner */
    int fd;                /* owned */
    struct event ev;       /* EV_READ | EV_PERSIST on fd */
    const char *proto;     /* "http" or "https": X-Forwarded-Proto */
    unsigned tls : 1;      /* `listen ... tls`: connections start with a TLS handshake */

    /* `listen ... proxy_protocol`: a PROXY header comes first (DESIGN §12) */
    unsigned proxy_protocol : 1;
};

struct worker {
    unsigned id;
    pthread_t thread;
    struct event_base *base;           /* owned, unless on_main */
    struct fdev_loop fdev;             /* its connections' sockets (edge-triggered) */
    unsigned on_main : 1;              /* runs on the main thread's base: no thread of its own */
    struct route *route;               /* reference; taken by each new conn */
    struct worker_listener *listeners; /* owned array of nlisteners */
    size_t nlisteners;
    struct event accept_pause;   /* re-enables accepting after EMFILE */
    struct event stop_ev;        /* activated from the main thread */
    struct event route_ev;       /* activated from the main thread: take route_pending */
    pthread_mutex_t route_lock;  /* guards route_pending only (control path, not per message) */
    struct route *route_pending; /* reference, or NULL; the next route to use */
    uint8_t *scratch;            /* owned; relay read buffer */
    size_t scratch_len;
    TAILQ_HEAD(, conn) conns;
    struct pool pool;                     /* idle keep-alive backend connections */
    TAILQ_HEAD(, conn) misplaced;         /* conns waiting for their paced migration */
    struct event migrate_ev;              /* the next paced migration */
    struct migrate_pacer *pacer;          /* borrowed; shared by all workers */
    unsigned rand_state;                  /* rand_r() for migration jitter */
    unsigned draining : 1;                /* SIGTERM: listeners closed, WebSockets told 1001 */
    struct event drain_ev;                /* activated from the main thread */
    _Atomic size_t nconns;                /* read by the main thread while draining */
    struct metrics_worker metrics;        /* written by this thread only; copied out by snapshots */
    struct event snapshot_ev;             /* activated from the main thread: fill snapshot_out */
    struct worker_snapshot *snapshot_out; /* guarded by route_lock; borrowed */
    struct event *snapshot_done;          /* guarded by route_lock; borrowed, on the main base */
};

/*
 * Creates worker ID with one SO_REUSEPORT listener per `listen` of CONF,
 * sharing ROUTE (a reference is taken). MAIN_BASE NULL: the worker gets its
 * own base and, at worker_start, its own thread. Otherwise it runs on
 * MAIN_BASE (the caller's thread): a lone worker then leaves the process
 * single-threaded, which the kernel rewards on every socket call (no file
 * reference counting, DESIGN §1). Returns NULL with a message in ERR
 * (ERR_LEN bytes), e.g. a listen address already in use.
 */
struct worker *worker_create(unsigned id, const struct conf *conf, struct route *route,
                             struct migrate_pacer *pacer, struct event_base *main_base, char *err,
                             size_t err_len);
/* Starts the thread (nothing to start on the main base). Returns 0 or -1. */
int worker_start(struct worker *w);
/* Stops the worker, closing every connection, and joins its thread. */
void worker_stop(struct worker *w);
/* A base as the workers use it (epoll changes batched per loop iteration), or NULL. */
struct event_base *worker_base_new(void);
/*
 * Hands the worker ROUTE (a reference is taken) for its new connections; live
 * connections keep theirs. Safe from any thread; the worker picks it up soon.
 */
void worker_set_route(struct worker *w, struct route *route);
/*
 * SIGTERM: the worker closes its listeners, sends Close 1001 to every
 * WebSocket at a message boundary and lets other connections finish. Safe
 * from any thread.
 */
void worker_drain(struct worker *w);
/*
 * Asks the worker to fill OUT on its thread, then to decrement *OUT->pending
 * and activate DONE (an event of the caller's base). Safe from any thread.
 */
void worker_request_snapshot(struct worker *w, struct worker_snapshot *out, struct event *done);
/* Frees a stopped or never-started worker. Accepts NULL. */
void worker_destroy(struct worker *w);
/* Opens a non-blocking SO_REUSEPORT TCP listener on HOST:PORT. Returns the fd, or -1 with ERR. */
int worker_listen_socket(const char *host, uint16_t port, char *err, size_t err_len);

#endif /* WSRING_PROXY_WORKER_H */
