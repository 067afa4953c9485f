/*
 * Consul health watch with blocking queries (DESIGN §5, DISCOVERY §1; Consul
 * docs: api-docs/features/blocking.mdx, api-docs/health.mdx).
 */
#include "discovery/consul.h"
#include "discovery/source.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "discovery/consul_http.h"
#include "discovery/consul_parse.h"
#include "discovery/curl_event.h"
#include "proxy/log.h"
#include "ring/member_set.h"

#define CONSUL_BODY_MAX        (64u << 20) /* refuse larger answers */
#define CONSUL_MIN_INTERVAL_MS 100         /* between query starts: a busy service cannot spin us */
#define CONSUL_BACKOFF_BASE_MS 100
#define CONSUL_SLACK_MS        10000 /* agent->server forwarding (rpc_hold_timeout 7 s) + network */
#define CONSUL_URL_MAX         16384 /* 16 escaped tags of 255 bytes fit */
#define CONSUL_ERROR_LEN       200

enum consul_state {
    CONSUL_STARTING = 0, /* no answer yet */
    CONSUL_OK,           /* the last query succeeded */
    CONSUL_RETRYING,     /* the last query failed; backing off */
    CONSUL_STATE_COUNT   /* must stay last */
};

static const char *const consul_state_names[CONSUL_STATE_COUNT] = { "starting", "ok", "retrying" };

struct consul_watch {
    const struct conf *conf; /* borrowed; outlives the watch */
    struct curl_event *ce;   /* borrowed */
    struct consul_http http; /* owned */
    CURL *easy;              /* owned; reused so the agent connection is kept alive */
    struct event *next;      /* owned; starts the next query */
    source_emit_fn emit;
    void *emit_arg;
    char *body; /* owned; the answer being received */
    size_t body_len;
    size_t body_cap;
    char errbuf[CURL_ERROR_SIZE];
    uint64_t index;      /* X-Consul-Index to block on; 0 = don't block */
    uint64_t resp_index; /* X-Consul-Index of the answer being received */
    bool resp_has_index;
    bool emitted;        /* a member set was emitted at least once */
    bool empty_warned;   /* the current run of empty answers was logged */
    uint64_t started_ms; /* when the query in flight started */
    unsigned failures;   /* consecutive */
    enum consul_state state;
    time_t state_since;
    char error[CONSUL_ERROR_LEN]; /* the last failure */
    uint64_t nqueries, nerrors, nempty;
};

static uint64_t
consul_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t
consul_on_body(char *data, size_t size, size_t n, void *arg)
{
    struct consul_watch *w = arg;
    size_t len = size * n;

    if (len > CONSUL_BODY_MAX - w->body_len) {
        return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
    }
    if (w->body_len + len + 1 > w->body_cap) {
        size_t cap = (w->body_len + len + 1) * 2;
        char *p = realloc(w->body, cap);

        if (p == NULL) {
            return 0;
        }
        w->body = p;
        w->body_cap = cap;
    }
    memcpy(w->body + w->body_len, data, len);
    w->body_len += len;
    w->body[w->body_len] = '\0';
    return len;
}

/* Picks X-Consul-Index out of the headers: a uint64 in decimal (DISCOVERY §1.2). */
static size_t
consul_on_header(char *data, size_t size, size_t n, void *arg)
{
    static const char name[] = "X-Consul-Index:";
    struct consul_watch *w = arg;
    size_t len = size * n, i = sizeof(name) - 1;
    uint64_t v = 0;
    bool digits = false;

    if (len < i || strncasecmp(data, name, i) != 0) {
        return len;
    }
    while (i < len && (data[i] == ' ' || data[i] == '\t')) {
        i++;
    }
    for (; i < len && data[i] >= '0' && data[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return len; /* overflows: not a valid index */
        }
        v = v * 10 + (uint64_t)(data[i] - '0');
        digits = true;
    }
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) {
        i++;
    }
    w->resp_has_index = digits && i == len;
    w->resp_index = v;
    return len;
}

/* Appends "&NAME=VALUE" (VALUE url-escaped) to URL. */
static void
consul_url_param(CURL *easy, char *url, size_t cap, const char *name, const char *value)
{
    char *esc = curl_easy_escape(easy, value, 0);
    size_t len = strlen(url);

    if (esc != NULL) {
        snprintf(url + len, cap - len, "&%s=%s", name, esc);
        curl_free(esc);
    }
}

/*
 * The health query: passing instances, our filters, and the blocking
 * parameters. Returns -1 if it did not fit: a query cut before "&index="
 * would never block and spin.
 */
static int
consul_query_path(struct consul_watch *w, char *url, size_t cap)
{
    const struct conf_consul *cc = &w->conf->consul;
    char *svc = curl_easy_escape(w->easy, cc->service, 0);
    size_t len;

    snprintf(url, cap, "/v1/health/service/%s?passing=1", svc != NULL ? svc : "");
    curl_free(svc);
    for (size_t i = 0; i < cc->ntags; i++) {
        consul_url_param(w->easy, url, cap, "tag", cc->tags[i]);
    }
    if (cc->datacenter != NULL) {
        consul_url_param(w->easy, url, cap, "dc", cc->datacenter);
    }
    len = strlen(url);
    if (cc->stale) {
        snprintf(url + len, cap - len, "&stale");
        len = strlen(url);
    }
    /* Blocking-queries doc: index=0 never blocks; the Go client sends wait in ms. */
    if (w->index > 0) {
        snprintf(url + len, cap - len, "&index=%llu&wait=%llums", (unsigned long long)w->index,
                 (unsigned long long)cc->wait_ms);
    }
    return strlen(url) + 1 < cap ? 0 : -1;
}

static void consul_on_done(CURL *easy, CURLcode result, void *arg);

static void
consul_query(struct consul_watch *w)
{
    const struct conf_consul *cc = &w->conf->consul;
    char path[CONSUL_URL_MAX];
    /* Blocking-queries doc: the server adds up to wait/16 of jitter; allow for it and the hop. */
    long timeout_ms = (long)(cc->wait_ms + cc->wait_ms / 16 + CONSUL_SLACK_MS);

    w->body_len = 0;
    w->resp_has_index = false;
    w->resp_index = 0;
    w->errbuf[0] = '\0';
    w->started_ms = consul_now_ms();
    w->nqueries++;
    if (consul_query_path(w, path, sizeof(path)) == -1 ||
        consul_http_set_path(&w->http, w->easy, path) == -1 ||
        curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
        curl_event_add(w->ce, w->easy, consul_on_done, w) == -1) {
        log_msg(LOG_ERROR, "event=consul_query_failed error=\"cannot start a request\"");
        consul_on_done(w->easy, CURLE_OUT_OF_MEMORY, w);
    }
}

static void
consul_on_next(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    consul_query(arg);
}

static void
consul_schedule(struct consul_watch *w, uint64_t delay_ms)
{
    struct timeval tv = { .tv_sec = (time_t)(delay_ms / 1000),
                          .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000 };

    evtimer_add(w->next, &tv);
}

static void
consul_set_state(struct consul_watch *w, enum consul_state state)
{
    if (w->state != state) {
        w->state = state;
        w->state_since = time(NULL);
    }
}

/* A failed query: the last good ring stays; logged once per change of error. */
static void
consul_fail(struct consul_watch *w, const char *what)
{
    w->nerrors++;
    w->failures++;
    if (w->state != CONSUL_RETRYING || strcmp(w->error, what) != 0) {
        log_msg(LOG_WARN,
                "event=consul_watch_failed service=%s error=\"%s\" action=\"keeping the last "
                "good ring, retrying\"",
                w->conf->consul.service, what);
    }
    snprintf(w->error, sizeof(w->error), "%s", what);
    consul_set_state(w, CONSUL_RETRYING);
    consul_schedule(
        w, source_backoff_ms(CONSUL_BACKOFF_BASE_MS, w->conf->consul.retry_max_ms, w->failures));
}

/* Returns the first line of the answer body, for messages (Consul's errors are plain text). */
static const char *
consul_body_line(struct consul_watch *w)
{
    char *nl;

    if (w->body == NULL || w->body_len == 0) {
        return "";
    }
    nl = strchr(w->body, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    if (strlen(w->body) > 100) {
        w->body[100] = '\0';
    }
    for (char *p = w->body; *p != '\0'; p++) {
        if (*p == '"' || (unsigned char)*p < 0x20) {
            *p = '\'';
        }
    }
    return w->body;
}

/* Applies the index rules of the blocking-queries doc to a good answer's index. */
static void
consul_take_index(struct consul_watch *w)
{
    uint64_t idx = w->resp_index;

    if (idx < w->index) {
        /* Gone backwards (snapshot restore, another server with ?stale): start over. */
        log_msg(LOG_INFO, "event=consul_index_reset from=%llu to=%llu",
                (unsigned long long)w->index, (unsigned long long)idx);
        w->index = 0;
        return;
    }
    /* Never block on 0 (it never blocks): a busy loop otherwise (hashicorp/consul#4437). */
    w->index = idx == 0 ? 1 : idx;
}

static void
consul_on_answer(struct consul_watch *w)
{
    const char *why = NULL;
    uint64_t prev = w->index;
    struct member_set *set = consul_parse_health(w->body, w->body_len, &why);
    uint64_t elapsed;

    if (set == NULL) {
        char what[CONSUL_ERROR_LEN];

        snprintf(what, sizeof(what), "invalid answer from Consul: %.120s", why);
        consul_fail(w, what);
        return;
    }
    if (w->state == CONSUL_RETRYING) {
        log_msg(LOG_INFO, "event=consul_watch_recovered service=%s failures=%u",
                w->conf->consul.service, w->failures);
        w->error[0] = '\0';
    }
    w->failures = 0;
    consul_set_state(w, CONSUL_OK);
    consul_take_index(w);
    if (member_set_count(set) == 0) {
        /* 200 [] means "all down" or "token may not read": emptying the ring helps neither. */
        w->nempty++;
        if (!w->empty_warned) {
            log_msg(LOG_WARN,
                    "event=consul_no_passing_instance service=%s action=\"keeping the last good "
                    "ring\" hint=\"all instances failing, or the ACL token lacks service:read\"",
                    w->conf->consul.service);
            w->empty_warned = true;
        }
        member_set_destroy(set);
    } else if (w->emitted && w->resp_index == prev && !w->empty_warned) {
        member_set_destroy(set); /* same index: nothing changed (api/watch) */
    } else {
        w->empty_warned = false;
        w->emitted = true;
        w->emit(set, w->emit_arg);
    }
    elapsed = consul_now_ms() - w->started_ms;
    consul_schedule(w, elapsed >= CONSUL_MIN_INTERVAL_MS ? 0 : CONSUL_MIN_INTERVAL_MS - elapsed);
}

static void
consul_on_done(CURL *easy, CURLcode result, void *arg)
{
    struct consul_watch *w = arg;
    char what[CONSUL_ERROR_LEN];
    long code = 0;

    if (result != CURLE_OK) {
        snprintf(what, sizeof(what), "%.60s%s%.120s", curl_easy_strerror(result),
                 w->errbuf[0] != '\0' ? ": " : "", w->errbuf);
        consul_fail(w, what);
        return;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (code == 403) {
        snprintf(what, sizeof(what), "HTTP 403 from Consul: ACL token refused: %s",
                 consul_body_line(w));
        consul_fail(w, what);
        return;
    }
    if (code != 200) {
        snprintf(what, sizeof(what), "HTTP %ld from Consul: %s", code, consul_body_line(w));
        consul_fail(w, what);
        return;
    }
    if (!w->resp_has_index) {
        consul_fail(w, "HTTP 200 from Consul without a valid X-Consul-Index");
        return;
    }
    consul_on_answer(w);
}

struct consul_watch *
consul_watch_start(struct event_base *base, struct curl_event *ce, const struct conf *conf,
                   source_emit_fn emit, void *arg, char *err, size_t err_len)
{
    struct consul_watch *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    w->conf = conf;
    w->ce = ce;
    w->emit = emit;
    w->emit_arg = arg;
    w->state_since = time(NULL);
    if (consul_http_init(&w->http, &conf->consul, err, err_len) == -1) {
        free(w);
        return NULL;
    }
    w->easy = consul_http_easy(&w->http, "/", 0);
    w->next = evtimer_new(base, consul_on_next, w);
    if (w->easy == NULL || w->next == NULL) {
        snprintf(err, err_len, "out of memory");
        consul_watch_stop(w);
        return NULL;
    }
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, consul_on_body);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->easy, CURLOPT_HEADERFUNCTION, consul_on_header);
    curl_easy_setopt(w->easy, CURLOPT_HEADERDATA, w);
    curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, w->errbuf);
    curl_easy_setopt(w->easy, CURLOPT_ACCEPT_ENCODING, "");
    log_msg(LOG_INFO, "event=consul_watch_started agent=%s service=%s wait_ms=%llu stale=%s",
            w->http.base_url, conf->consul.service, (unsigned long long)conf->consul.wait_ms,
            conf->consul.stale ? "on" : "off");
    consul_query(w);
    return w;
}

void
consul_watch_stop(struct consul_watch *w)
{
    if (w == NULL) {
        return;
    }
    if (w->easy != NULL) {
        curl_event_remove(w->ce, w->easy);
        curl_easy_cleanup(w->easy);
    }
    if (w->next != NULL) {
        event_free(w->next);
    }
    consul_http_fini(&w->http);
    free(w->body);
    free(w);
}

json_t *
consul_watch_status(const struct consul_watch *w)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "state",
                     consul_state_names[w->state], "since", (json_int_t)w->state_since,
                     "last_error", w->error, "service", w->conf->consul.service, "index",
                     (json_int_t)w->index, "queries", (json_int_t)w->nqueries, "errors",
                     (json_int_t)w->nerrors, "empty_answers", (json_int_t)w->nempty, "agent",
                     w->http.base_url);
}

void
consul_watch_counts(const struct consul_watch *w, int *up, uint64_t *queries, uint64_t *errors,
                    uint64_t *empty)
{
    *up = w->state != CONSUL_RETRYING;
    *queries = w->nqueries;
    *errors = w->nerrors;
    *empty = w->nempty;
}
