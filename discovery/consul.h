/*
 * The Consul member source (DESIGN §4, §5; DISCOVERY §1): a watch on
 * GET /v1/health/service/<service>?passing with blocking queries, on the
 * main thread's libevent base through libcurl's multi interface.
 */
#ifndef WSRING_DISCOVERY_CONSUL_H
#define WSRING_DISCOVERY_CONSUL_H

#include <stdint.h>

#include <jansson.h>

#include "discovery/source.h"

struct conf;
struct curl_event;
struct event_base;
struct consul_watch;

/*
 * Starts watching CONF's consul service. Each valid, non-empty answer whose
 * content may differ from the last one goes to EMIT(members, ARG). Returns
 * NULL with a message in ERR (ERR_LEN bytes), e.g. an unreadable token file.
 */
struct consul_watch *consul_watch_start(struct event_base *base, struct curl_event *ce,
                                        const struct conf *conf, source_emit_fn emit, void *arg,
                                        char *err, size_t err_len);
/* Stops the query in flight and frees. Accepts NULL. */
void consul_watch_stop(struct consul_watch *w);
/* The watch's counters for /metrics: UP is 1 unless the last query failed. */
void consul_watch_counts(const struct consul_watch *w, int *up, uint64_t *queries, uint64_t *errors,
                         uint64_t *empty);
/* A new JSON object describing the watch: state, since, last error, index, counts. */
json_t *consul_watch_status(const struct consul_watch *w);

#endif /* WSRING_DISCOVERY_CONSUL_H */
