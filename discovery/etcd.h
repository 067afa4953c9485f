/*
 * The etcd v3 member source (DESIGN §11, DISCOVERY §2): list the prefix at
 * revision R, then a streaming watch from R+1, over etcd's JSON gateway on
 * the main thread's libevent base through libcurl's multi interface (the
 * same one Consul uses). A compaction or a broken stream means a fresh list;
 * failures back off (jittered, exponential, capped at 4 s) and move on to
 * the next endpoint.
 */
#ifndef WSRING_DISCOVERY_ETCD_H
#define WSRING_DISCOVERY_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "discovery/source.h"

struct conf;
struct curl_event;
struct event_base;
struct etcd_watch;

/*
 * Starts watching CONF's etcd prefix. Each non-empty member set that differs
 * from the last one emitted goes to EMIT(members, ARG). Returns NULL with a
 * message in ERR (ERR_LEN bytes), e.g. an unreadable password file (the
 * password itself never appears in a message).
 */
struct etcd_watch *etcd_watch_start(struct event_base *base, struct curl_event *ce,
                                    const struct conf *conf, source_emit_fn emit, void *arg,
                                    char *err, size_t err_len);
/* Stops the request in flight and frees. Accepts NULL. */
void etcd_watch_stop(struct etcd_watch *w);
/* The watch's counters for /metrics: UP is 1 unless the last request failed. */
void etcd_watch_counts(const struct etcd_watch *w, int *up, uint64_t *queries, uint64_t *errors,
                       uint64_t *empty);
/* A new JSON object describing the watch: state, since, last error, revision, counts. */
json_t *etcd_watch_status(const struct etcd_watch *w);

#endif /* WSRING_DISCOVERY_ETCD_H */
