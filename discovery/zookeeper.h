/*
 * The ZooKeeper member source (DESIGN §11; DISCOVERY §3): the children of
 * one node, each an ephemeral node holding a Curator ServiceInstance, watched
 * with Debian's single-threaded C client (zookeeper_st) driven by the main
 * thread's libevent loop. Async API only.
 */
#ifndef WSRING_DISCOVERY_ZOOKEEPER_H
#define WSRING_DISCOVERY_ZOOKEEPER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "discovery/source.h"

struct conf_zookeeper;
struct event_base;
struct zk_watch;

/*
 * Starts a session with ZC's ensemble and watches ZC's path (ZC is copied:
 * the watch outlives a reload's conf). Each complete, non-empty listing that
 * may differ from the last one goes to EMIT(members, ARG). Connection loss
 * keeps the last good set; an expired session is replaced by a new one.
 * Returns NULL with a message in ERR (ERR_LEN bytes).
 */
struct zk_watch *zk_watch_start(struct event_base *base, const struct conf_zookeeper *zc,
                                source_emit_fn emit, void *arg, char *err, size_t err_len);
/* Closes the session and frees. Accepts NULL. Never from inside a ZooKeeper callback. */
void zk_watch_stop(struct zk_watch *w);
/* True when W watches exactly what ZC asks for (a reload may keep it). */
bool zk_watch_same(const struct zk_watch *w, const struct conf_zookeeper *zc);
/* The watch's counters for /metrics: UP is 1 unless the last listing failed. */
void zk_watch_counts(const struct zk_watch *w, int *up, uint64_t *lists, uint64_t *errors,
                     uint64_t *empty);
/* A new JSON object describing the watch: state, since, last error, session, counts. */
json_t *zk_watch_status(const struct zk_watch *w);

#endif /* WSRING_DISCOVERY_ZOOKEEPER_H */
