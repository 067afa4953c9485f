/*
 * Counters and the Prometheus text exposition (DESIGN §6). Each worker
 * writes its own struct metrics_worker and nothing else touches it while the
 * worker runs; a scrape asks every worker for a copy on its own thread, so
 * the relay path has no atomics and no locks.
 */
#ifndef WSRING_PROXY_METRICS_H
#define WSRING_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/close.h"

#define METRICS_LATENCY_BUCKETS 13 /* handshake latency buckets, +Inf not counted here */

struct evbuffer;

struct metrics_worker {
    uint64_t accepted;   /* client connections accepted */
    uint64_t routed;     /* relayed to the ring owner */
    uint64_t retried;    /* relayed to a next distinct member (owner down) */
    uint64_t redirected; /* answered 307 to the owner's public_url (route ... redirect) */
    uint64_t closes[CLOSE_REASON_COUNT];
    uint64_t bytes_in;                         /* read from clients, relayed to backends */
    uint64_t bytes_out;                        /* read from backends, relayed to clients */
    uint64_t latency[METRICS_LATENCY_BUCKETS]; /* accept -> backend connected, cumulative later */
    uint64_t latency_count;
    uint64_t latency_sum_us;
    uint64_t migrations_started;
};

/* One backend's live connections, summed over workers at scrape time. */
struct metrics_backend {
    char *id; /* owned */
    uint64_t active;
};

/* What the main thread knows at scrape time. */
struct metrics_main {
    const char *source;      /* "static", "consul" */
    const char *fingerprint; /* table fingerprint */
    const char *membership;  /* membership fingerprint */
    const char *hash;        /* "ring", "rendezvous" */
    size_t members;
    uint64_t ring_changes;
    const char *watch_source; /* the source being watched ("consul", "etcd"), even while the
                                 ring in force came from its state_file */
    int watch_up;             /* 1 ok, 0 failing, -1 no watch */
    uint64_t watch_queries;
    uint64_t watch_errors;
    uint64_t watch_empty;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    size_t workers;
};

/* Records a handshake that took US microseconds from accept to a connected backend. */
void metrics_latency_add(struct metrics_worker *m, uint64_t us);
/* Adds FROM into INTO. */
void metrics_sum(struct metrics_worker *into, const struct metrics_worker *from);
/* Writes the exposition text for SUM, the per-backend list and MAIN into OUT. */
void metrics_write(struct evbuffer *out, const struct metrics_worker *sum,
                   const struct metrics_backend *backends, size_t nbackends,
                   const struct metrics_main *main);

#endif /* WSRING_PROXY_METRICS_H */
