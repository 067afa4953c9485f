/* Prometheus text exposition format 0.0.4 (DESIGN §6). */
#include "proxy/metrics.h"

#include <stdio.h>

#include <event2/buffer.h>

/* Upper bounds in microseconds; the last bucket, +Inf, is the count. */
static const uint64_t metrics_bounds_us[METRICS_LATENCY_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
};

void
metrics_latency_add(struct metrics_worker *m, uint64_t us)
{
    for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
        if (us <= metrics_bounds_us[i]) {
            m->latency[i]++;
            break;
        }
    }
    m->latency_count++;
    m->latency_sum_us += us;
}

void
metrics_sum(struct metrics_worker *into, const struct metrics_worker *from)
{
    into->accepted += from->accepted;
    into->routed += from->routed;
    into->retried += from->retried;
    into->redirected += from->redirected;
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++) {
        into->closes[i] += from->closes[i];
    }
    into->bytes_in += from->bytes_in;
    into->bytes_out += from->bytes_out;
    for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
        into->latency[i] += from->latency[i];
    }
    into->latency_count += from->latency_count;
    into->latency_sum_us += from->latency_sum_us;
    into->migrations_started += from->migrations_started;
}

static void
metrics_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values are ids and fingerprints: escape \, " and newline as the format asks. */
static void
metrics_label(struct evbuffer *out, const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            evbuffer_add_printf(out, "\\%c", *p);
        } else if (*p == '\n') {
            evbuffer_add(out, "\\n", 2);
        } else {
            evbuffer_add(out, p, 1);
        }
    }
}

static void
metrics_handshakes(struct evbuffer *out, const struct metrics_worker *s)
{
    uint64_t rejected = 0;

    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++) {
        const char *phrase;
        int status = close_reason_status((enum close_reason)i, &phrase);

        if (status == 400 || status == 431) {
            rejected += s->closes[i];
        }
    }
    metrics_head(out, "wsring_handshakes_total", "counter",
                 "Requests by outcome: routed to the owner, retried to a next member, redirected "
                 "(307), rejected (400/431), or answered 502/503.");
    evbuffer_add_printf(out, "wsring_handshakes_total{result=\"routed\"} %llu\n",
                        (unsigned long long)s->routed);
    evbuffer_add_printf(out, "wsring_handshakes_total{result=\"retried\"} %llu\n",
                        (unsigned long long)s->retried);
    evbuffer_add_printf(out, "wsring_handshakes_total{result=\"redirected\"} %llu\n",
                        (unsigned long long)s->redirected);
    evbuffer_add_printf(out, "wsring_handshakes_total{result=\"rejected\"} %llu\n",
                        (unsigned long long)rejected);
    evbuffer_add_printf(out, "wsring_handshakes_total{result=\"502\"} %llu\n",
                        (unsigned long long)s->closes[CLOSE_NO_BACKEND]);
    evbuffer_add_printf(
        out, "wsring_handshakes_total{result=\"503\"} %llu\n",
        (unsigned long long)(s->closes[CLOSE_RING_EMPTY] + s->closes[CLOSE_NO_MEMORY]));
    metrics_head(out, "wsring_rejected_total", "counter",
                 "Requests answered 400 or 431, by reason.");
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++) {
        const char *phrase;
        int status = close_reason_status((enum close_reason)i, &phrase);

        if (status == 400 || status == 431) {
            evbuffer_add_printf(out, "wsring_rejected_total{reason=\"%s\"} %llu\n",
                                close_reason_label((enum close_reason)i),
                                (unsigned long long)s->closes[i]);
        }
    }
    metrics_head(out, "wsring_closes_total", "counter", "Connections ended, by reason.");
    for (size_t i = 0; i < CLOSE_REASON_COUNT; i++) {
        evbuffer_add_printf(out, "wsring_closes_total{reason=\"%s\"} %llu\n",
                            close_reason_label((enum close_reason)i),
                            (unsigned long long)s->closes[i]);
    }
}

static void
metrics_latency(struct evbuffer *out, const struct metrics_worker *s)
{
    uint64_t cumulative = 0;

    metrics_head(out, "wsring_handshake_seconds", "histogram",
                 "Time from accepting a client to a connected backend.");
    for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
        cumulative += s->latency[i];
        evbuffer_add_printf(out, "wsring_handshake_seconds_bucket{le=\"%g\"} %llu\n",
                            (double)metrics_bounds_us[i] / 1e6, (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "wsring_handshake_seconds_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)s->latency_count);
    evbuffer_add_printf(out, "wsring_handshake_seconds_sum %.6f\n",
                        (double)s->latency_sum_us / 1e6);
    evbuffer_add_printf(out, "wsring_handshake_seconds_count %llu\n",
                        (unsigned long long)s->latency_count);
}

static void
metrics_ring(struct evbuffer *out, const struct metrics_main *m)
{
    metrics_head(
        out, "wsring_ring_info", "gauge",
        "The ring in force: fingerprints (compare them across the fleet), algorithm, source.");
    evbuffer_add_printf(out, "wsring_ring_info{fingerprint=\"");
    metrics_label(out, m->fingerprint);
    evbuffer_add_printf(out, "\",membership=\"");
    metrics_label(out, m->membership);
    evbuffer_add_printf(out, "\",hash=\"%s\",source=\"%s\"} 1\n", m->hash, m->source);
    metrics_head(out, "wsring_ring_members", "gauge", "Members of the ring in force.");
    evbuffer_add_printf(out, "wsring_ring_members %zu\n", m->members);
    metrics_head(out, "wsring_ring_changes_total", "counter", "Membership changes applied.");
    evbuffer_add_printf(out, "wsring_ring_changes_total %llu\n",
                        (unsigned long long)m->ring_changes);
    if (m->watch_up >= 0) {
        metrics_head(out, "wsring_discovery_up", "gauge",
                     "1 when the last discovery query succeeded, 0 while retrying.");
        evbuffer_add_printf(out, "wsring_discovery_up{source=\"%s\"} %d\n", m->watch_source,
                            m->watch_up);
        metrics_head(out, "wsring_discovery_queries_total", "counter", "Discovery queries sent.");
        evbuffer_add_printf(out, "wsring_discovery_queries_total{source=\"%s\"} %llu\n",
                            m->watch_source, (unsigned long long)m->watch_queries);
        metrics_head(out, "wsring_discovery_errors_total", "counter",
                     "Discovery queries that failed (the last good ring was kept).");
        evbuffer_add_printf(out, "wsring_discovery_errors_total{source=\"%s\"} %llu\n",
                            m->watch_source, (unsigned long long)m->watch_errors);
        metrics_head(out, "wsring_discovery_empty_answers_total", "counter",
                     "Answers with no passing instance (ignored: the last good ring was kept).");
        evbuffer_add_printf(out, "wsring_discovery_empty_answers_total{source=\"%s\"} %llu\n",
                            m->watch_source, (unsigned long long)m->watch_empty);
    }
    metrics_head(out, "wsring_config_reloads_total", "counter", "SIGHUP reloads, by result.");
    evbuffer_add_printf(out, "wsring_config_reloads_total{result=\"ok\"} %llu\n",
                        (unsigned long long)m->reloads_ok);
    evbuffer_add_printf(out, "wsring_config_reloads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)m->reloads_failed);
}

void
metrics_write(struct evbuffer *out, const struct metrics_worker *s,
              const struct metrics_backend *backends, size_t nbackends,
              const struct metrics_main *m)
{
    metrics_head(out, "wsring_connections_active", "gauge",
                 "Relayed connections, by backend member id.");
    for (size_t i = 0; i < nbackends; i++) {
        evbuffer_add_printf(out, "wsring_connections_active{backend=\"");
        metrics_label(out, backends[i].id);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)backends[i].active);
    }
    metrics_head(out, "wsring_connections_accepted_total", "counter",
                 "Client connections accepted.");
    evbuffer_add_printf(out, "wsring_connections_accepted_total %llu\n",
                        (unsigned long long)s->accepted);
    metrics_handshakes(out, s);
    metrics_latency(out, s);
    metrics_head(out, "wsring_bytes_total", "counter", "Bytes relayed, by direction.");
    evbuffer_add_printf(out, "wsring_bytes_total{direction=\"client_to_backend\"} %llu\n",
                        (unsigned long long)s->bytes_in);
    evbuffer_add_printf(out, "wsring_bytes_total{direction=\"backend_to_client\"} %llu\n",
                        (unsigned long long)s->bytes_out);
    metrics_head(out, "wsring_migrations_started_total", "counter",
                 "Misplaced connections told to reconnect after a ring change.");
    evbuffer_add_printf(out, "wsring_migrations_started_total %llu\n",
                        (unsigned long long)s->migrations_started);
    metrics_head(out, "wsring_migrations_finished_total", "counter",
                 "Migrated connections that have ended.");
    evbuffer_add_printf(out, "wsring_migrations_finished_total %llu\n",
                        (unsigned long long)s->closes[CLOSE_MIGRATED]);
    metrics_head(out, "wsring_connections_drained_total", "counter",
                 "Connections ended by a SIGTERM drain.");
    evbuffer_add_printf(out, "wsring_connections_drained_total %llu\n",
                        (unsigned long long)s->closes[CLOSE_DRAINED]);
    metrics_ring(out, m);
    metrics_head(out, "wsring_workers", "gauge", "Worker threads.");
    evbuffer_add_printf(out, "wsring_workers %zu\n", m->workers);
}
