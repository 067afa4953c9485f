/*
 * etcd v3 list-then-watch over the JSON gateway (DESIGN §11, DISCOVERY §2,
 * REAL-SERVERS §1). One easy handle does everything in turn: auth (when a
 * user is configured), range, then the watch stream, whose lines are parsed
 * as they arrive. Every step that ends - well or not - goes through the
 * `next` timer, so no request is started from inside curl's callbacks.
 */
#include "discovery/etcd.h"
#include "discovery/source.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "discovery/curl_event.h"
#include "discovery/etcd_parse.h"
#include "proxy/log.h"
#include "ring/member_set.h"

#define ETCD_BODY_MAX             (64u << 20) /* refuse larger answers and watch lines */
#define ETCD_BACKOFF_BASE_MS      100
#define ETCD_BACKOFF_CAP_MS       4000  /* DESIGN §11: a recovered server is followed within 5 s */
#define ETCD_REQUEST_MS           5000L /* range and auth; the watch has no overall limit */
#define ETCD_CONNECT_MS           2000L
#define ETCD_ERROR_LEN            200
#define ETCD_PASSWORD_MAX         1024
#define ETCD_CODE_UNAUTHENTICATED 16 /* gRPC: the token expired or was revoked */
#define ETCD_LOG_EVERY_S          10 /* while retrying, a changed error is logged at most this often */

enum etcd_state {
    ETCD_STARTING = 0, /* no answer yet */
    ETCD_OK,           /* listed, and the watch is in place (or being placed) */
    ETCD_RETRYING,     /* the last request failed; backing off */
    ETCD_STATE_COUNT   /* must stay last */
};

static const char *const etcd_state_names[ETCD_STATE_COUNT] = { "starting", "ok", "retrying" };

enum etcd_step {
    ETCD_STEP_AUTH = 0, /* POST /v3/auth/authenticate */
    ETCD_STEP_LIST,     /* POST /v3/kv/range */
    ETCD_STEP_WATCH     /* POST /v3/watch, a stream of lines */
};

struct etcd_watch {
    const struct conf *conf;    /* borrowed; outlives the watch */
    struct curl_event *ce;      /* borrowed */
    CURL *easy;                 /* owned; reused so a connection is kept alive */
    struct curl_slist *headers; /* owned; Content-Type and the token */
    struct event *next;         /* owned; starts the next step */
    source_emit_fn emit;
    void *emit_arg;
    char *key_b64;       /* owned; the prefix, base64 */
    char *range_end_b64; /* owned; the prefix with its last byte + 1, base64 */
    char *password;      /* owned or NULL; from password_file, wiped on free */
    char *token;         /* owned or NULL */
    enum etcd_step step; /* of the request in flight or next */
    size_t endpoint;     /* index into conf->etcd.endpoints */
    char *body;          /* owned; the answer, or the watch's partial line */
    size_t body_len;
    size_t body_cap;
    char errbuf[CURL_ERROR_SIZE];
    struct member_set *current; /* owned or NULL; etcd's view as last listed or watched */
    struct member_set *emitted; /* owned or NULL; the last set handed to emit */
    int64_t revision;           /* of current */
    bool stream_error;          /* the watch was cut on purpose: the reason is in cut */
    char cut[ETCD_ERROR_LEN];
    bool relist; /* the watch was canceled (compaction): list again at once */
    bool empty_warned;
    unsigned failures; /* consecutive */
    enum etcd_state state;
    time_t state_since;
    time_t logged; /* when a failure was last logged */
    char error[ETCD_ERROR_LEN];
    uint64_t nrequests, nerrors, nempty, ncompactions, nevents;
};

static const char *
etcd_endpoint(const struct etcd_watch *w)
{
    return w->conf->etcd.endpoints[w->endpoint];
}

static void
etcd_set_state(struct etcd_watch *w, enum etcd_state state)
{
    if (w->state != state) {
        w->state = state;
        w->state_since = time(NULL);
    }
}

static void
etcd_schedule(struct etcd_watch *w, uint64_t delay_ms)
{
    struct timeval tv = { .tv_sec = (time_t)(delay_ms / 1000),
                          .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000 };

    evtimer_add(w->next, &tv);
}

/* A failed step: the last good ring stays; logged once per change of error; next endpoint. */
static void
etcd_fail(struct etcd_watch *w, const char *what)
{
    w->nerrors++;
    w->failures++;
    /* Per state change; a new error only every so often (failover alternates endpoints). */
    if (w->state != ETCD_RETRYING ||
        (strcmp(w->error, what) != 0 && time(NULL) - w->logged >= ETCD_LOG_EVERY_S)) {
        w->logged = time(NULL);
        log_msg(LOG_WARN,
                "event=etcd_watch_failed endpoint=%s prefix=%s error=\"%s\" action=\"keeping the "
                "last good ring, retrying\"",
                etcd_endpoint(w), w->conf->etcd.prefix, what);
    }
    snprintf(w->error, sizeof(w->error), "%s", what);
    etcd_set_state(w, ETCD_RETRYING);
    w->endpoint = (w->endpoint + 1) % w->conf->etcd.nendpoints;
    w->step = w->conf->etcd.username != NULL && w->token == NULL ? ETCD_STEP_AUTH : ETCD_STEP_LIST;
    etcd_schedule(w, source_backoff_ms(ETCD_BACKOFF_BASE_MS, ETCD_BACKOFF_CAP_MS, w->failures));
}

static void
etcd_recovered(struct etcd_watch *w)
{
    if (w->state == ETCD_RETRYING) {
        log_msg(LOG_INFO, "event=etcd_watch_recovered endpoint=%s failures=%u revision=%lld",
                etcd_endpoint(w), w->failures, (long long)w->revision);
        w->error[0] = '\0';
    }
    w->failures = 0;
    etcd_set_state(w, ETCD_OK);
}

/* Hands CURRENT to the sink when it is non-empty and differs from what was emitted last. */
static void
etcd_offer(struct etcd_watch *w)
{
    struct member_set *copy;

    if (member_set_count(w->current) == 0) {
        /* No key under the prefix: emptying the ring helps nobody (as with Consul's 200 []). */
        w->nempty++;
        if (!w->empty_warned) {
            log_msg(LOG_WARN,
                    "event=etcd_no_member prefix=%s revision=%lld action=\"keeping the last good "
                    "ring\"",
                    w->conf->etcd.prefix, (long long)w->revision);
            w->empty_warned = true;
        }
        return;
    }
    w->empty_warned = false;
    if (w->emitted != NULL && member_set_equal(w->emitted, w->current)) {
        return; /* a re-list after a compaction or an outage: nothing changed */
    }
    copy = member_set_copy(w->current);
    if (copy == NULL ||
        (member_set_destroy(w->emitted), w->emitted = member_set_copy(copy)) == NULL) {
        member_set_destroy(copy);
        log_msg(LOG_ERROR, "event=etcd_watch_failed error=\"out of memory\"");
        return;
    }
    w->emit(copy, w->emit_arg);
}

/* Returns the answer body's first line, cleaned for a log line. */
static const char *
etcd_body_text(struct etcd_watch *w)
{
    char msg[120];

    if (etcd_parse_error(w->body, w->body_len, msg, sizeof(msg)) >= 0) {
        snprintf(w->body, w->body_cap, "%s", msg);
        return w->body;
    }
    if (w->body_len == 0) {
        return "";
    }
    w->body[w->body_len < 100 ? w->body_len : 100] = '\0';
    for (char *p = w->body; *p != '\0'; p++) {
        if (*p == '"' || (unsigned char)*p < 0x20) {
            *p = '\'';
        }
    }
    return w->body;
}

/* One line of the watch stream. Returns false to cut it (relist, or w->cut says what broke). */
static bool
etcd_on_watch_line(struct etcd_watch *w, const char *line, size_t len)
{
    struct etcd_watch_msg msg;
    const char *why = NULL;

    if (etcd_parse_watch(line, len, w->conf->etcd.prefix, w->current, &msg, &why) == -1) {
        snprintf(w->cut, sizeof(w->cut), "bad watch message from etcd: %.120s", why);
        w->stream_error = true;
        return false;
    }
    switch (msg.kind) {
    case ETCD_WATCH_CREATED:
        etcd_recovered(w);
        break;
    case ETCD_WATCH_PROGRESS:
        break;
    case ETCD_WATCH_CANCELED:
        /* The stream stays open after this: we close it and list again (REAL-SERVERS §1). */
        if (msg.compact_revision > 0) {
            w->ncompactions++;
            log_msg(LOG_INFO,
                    "event=etcd_watch_compacted revision=%lld compact_revision=%lld "
                    "action=\"listing again\"",
                    (long long)w->revision, (long long)msg.compact_revision);
        } else {
            log_msg(LOG_WARN, "event=etcd_watch_canceled revision=%lld action=\"listing again\"",
                    (long long)w->revision);
        }
        w->relist = true;
        return false;
    case ETCD_WATCH_EVENTS:
        w->nevents += msg.nevents;
        member_set_destroy(w->current);
        w->current = msg.members;
        w->revision = msg.revision;
        etcd_offer(w);
        break;
    }
    return true;
}

/* CURLOPT_WRITEFUNCTION: collects the answer; for a 200 watch, parses each complete line. */
static size_t
etcd_on_body(char *data, size_t size, size_t n, void *arg)
{
    struct etcd_watch *w = arg;
    size_t len = size * n, start = 0;
    long code = 0;

    if (len > ETCD_BODY_MAX - w->body_len) {
        snprintf(w->cut, sizeof(w->cut), "answer or watch line larger than 64 MiB");
        w->stream_error = true;
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
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
    if (w->step != ETCD_STEP_WATCH || code != 200) {
        return len;
    }
    /* Each message is one chunk ending in '\n', but reads need not follow chunks. */
    for (;;) {
        char *nl = memchr(w->body + start, '\n', w->body_len - start);

        if (nl == NULL) {
            break;
        }
        if (nl > w->body + start &&
            !etcd_on_watch_line(w, w->body + start, (size_t)(nl - w->body) - start)) {
            return 0;
        }
        start = (size_t)(nl - w->body) + 1;
    }
    memmove(w->body, w->body + start, w->body_len - start);
    w->body_len -= start;
    w->body[w->body_len] = '\0';
    return len;
}

static void etcd_on_done(CURL *easy, CURLcode result, void *arg);

/* Starts the request of the current step on the current endpoint with the JSON BODY. */
static void
etcd_request(struct etcd_watch *w, const char *path, json_t *body, long timeout_ms)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    char url[1024];

    json_decref(body);
    w->body_len = 0;
    w->errbuf[0] = '\0';
    w->stream_error = false;
    w->relist = false;
    w->nrequests++;
    snprintf(url, sizeof(url), "%s%s", etcd_endpoint(w), path);
    if (text == NULL || curl_easy_setopt(w->easy, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_COPYPOSTFIELDS, text) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->headers) != CURLE_OK ||
        curl_event_add(w->ce, w->easy, etcd_on_done, w) == -1) {
        if (text != NULL) {
            memset(text, 0, strlen(text)); /* may hold the password */
        }
        free(text);
        etcd_fail(w, "cannot start a request (out of memory)");
        return;
    }
    memset(text, 0, strlen(text));
    free(text);
}

/* Content-Type, and the token when there is one. Returns 0 or -1 (ENOMEM). */
static int
etcd_set_headers(struct etcd_watch *w)
{
    struct curl_slist *list = curl_slist_append(NULL, "Content-Type: application/json");

    if (list != NULL && w->token != NULL) {
        size_t n = strlen(w->token) + sizeof("Authorization: ");
        char *h = malloc(n);
        struct curl_slist *more = NULL;

        if (h != NULL) {
            snprintf(h, n, "Authorization: %s", w->token);
            more = curl_slist_append(list, h);
            memset(h, 0, n);
            free(h);
        }
        if (more == NULL) {
            curl_slist_free_all(list);
            list = NULL;
        }
    }
    if (list == NULL) {
        return -1;
    }
    curl_slist_free_all(w->headers);
    w->headers = list;
    return 0;
}

static void
etcd_start_step(struct etcd_watch *w)
{
    switch (w->step) {
    case ETCD_STEP_AUTH:
        etcd_request(
            w, "/v3/auth/authenticate",
            json_pack("{s:s, s:s}", "name", w->conf->etcd.username, "password", w->password),
            ETCD_REQUEST_MS);
        break;
    case ETCD_STEP_LIST:
        etcd_request(w, "/v3/kv/range",
                     json_pack("{s:s, s:s}", "key", w->key_b64, "range_end", w->range_end_b64),
                     ETCD_REQUEST_MS);
        break;
    case ETCD_STEP_WATCH: {
        char start[24];

        snprintf(start, sizeof(start), "%lld", (long long)(w->revision + 1));
        etcd_request(w, "/v3/watch",
                     json_pack("{s:{s:s, s:s, s:s, s:b}}", "create_request", "key", w->key_b64,
                               "range_end", w->range_end_b64, "start_revision", start,
                               "progress_notify", 1),
                     0L);
        break;
    }
    }
}

static void
etcd_on_next(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    etcd_start_step(arg);
}

static void
etcd_on_auth(struct etcd_watch *w)
{
    const char *why = NULL;
    char *token = etcd_parse_token(w->body, w->body_len, &why);

    if (token == NULL) {
        char what[ETCD_ERROR_LEN];

        snprintf(what, sizeof(what), "etcd auth: %.120s", why);
        etcd_fail(w, what);
        return;
    }
    free(w->token);
    w->token = token;
    if (etcd_set_headers(w) == -1) {
        etcd_fail(w, "out of memory");
        return;
    }
    w->step = ETCD_STEP_LIST;
    etcd_schedule(w, 0);
}

static void
etcd_on_list(struct etcd_watch *w)
{
    const char *why = NULL;
    int64_t revision = 0;
    struct member_set *set =
        etcd_parse_range(w->body, w->body_len, w->conf->etcd.prefix, &revision, &why);

    if (set == NULL) {
        char what[ETCD_ERROR_LEN];

        snprintf(what, sizeof(what), "invalid range answer from etcd: %.120s", why);
        etcd_fail(w, what);
        return;
    }
    member_set_destroy(w->current);
    w->current = set;
    w->revision = revision;
    etcd_offer(w);
    w->step = ETCD_STEP_WATCH;
    etcd_schedule(w, 0);
}

static void
etcd_on_done(CURL *easy, CURLcode result, void *arg)
{
    struct etcd_watch *w = arg;
    char what[ETCD_ERROR_LEN];
    long code = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (w->step == ETCD_STEP_WATCH && w->relist) {
        w->step = ETCD_STEP_LIST; /* canceled by a compaction: not a failure */
        etcd_schedule(w, 0);
        return;
    }
    if (w->step == ETCD_STEP_WATCH && w->stream_error) {
        etcd_fail(w, w->cut);
        return;
    }
    if (result != CURLE_OK) {
        snprintf(what, sizeof(what), "%s%.60s%s%.100s",
                 w->step == ETCD_STEP_WATCH ? "watch stream broken: " : "",
                 curl_easy_strerror(result), w->errbuf[0] != '\0' ? ": " : "", w->errbuf);
        etcd_fail(w, what);
        return;
    }
    if (code == 401 ||
        (code != 200 && w->token != NULL &&
         etcd_parse_error(w->body, w->body_len, NULL, 0) == ETCD_CODE_UNAUTHENTICATED)) {
        /* Expired, revoked, or a restarted etcd forgot it: authenticate again, without it. */
        memset(w->token, 0, strlen(w->token));
        free(w->token);
        w->token = NULL;
        etcd_set_headers(w); /* on ENOMEM the old list stays: refused again, retried */
    }
    if (code != 200) {
        snprintf(what, sizeof(what), "HTTP %ld from etcd on %s: %s", code,
                 w->step == ETCD_STEP_AUTH   ? "auth/authenticate"
                 : w->step == ETCD_STEP_LIST ? "kv/range"
                                             : "watch",
                 etcd_body_text(w));
        etcd_fail(w, what);
        return;
    }
    switch (w->step) {
    case ETCD_STEP_AUTH:
        etcd_on_auth(w);
        break;
    case ETCD_STEP_LIST:
        etcd_on_list(w);
        break;
    case ETCD_STEP_WATCH:
        etcd_fail(w, "watch stream ended by etcd");
        break;
    }
}

/* Reads the password: the file's bytes less trailing whitespace. Never logged. */
static int
etcd_read_password(struct etcd_watch *w, const char *file, char *err, size_t err_len)
{
    char buf[ETCD_PASSWORD_MAX + 1];
    FILE *f = fopen(file, "r");
    size_t len;

    if (f == NULL) {
        snprintf(err, err_len, "etcd password_file %s: %s", file, strerror(errno));
        return -1;
    }
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (len > ETCD_PASSWORD_MAX) {
        snprintf(err, err_len, "etcd password_file %s: longer than %d bytes", file,
                 ETCD_PASSWORD_MAX);
        memset(buf, 0, sizeof(buf));
        return -1;
    }
    while (len > 0 && isspace((unsigned char)buf[len - 1])) {
        len--;
    }
    buf[len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        snprintf(err, err_len, "etcd password_file %s: empty or holds a NUL byte", file);
        memset(buf, 0, sizeof(buf));
        return -1;
    }
    w->password = strdup(buf);
    memset(buf, 0, sizeof(buf));
    if (w->password == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

/* The prefix and its range end ("/svc/" -> "/svc0"), both base64 (DISCOVERY §2). */
static int
etcd_keys(struct etcd_watch *w)
{
    const char *prefix = w->conf->etcd.prefix;
    size_t len = strlen(prefix);
    unsigned char *end = malloc(len + 1);

    w->key_b64 = malloc(4 * ((len + 2) / 3) + 1);
    w->range_end_b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (end == NULL || w->key_b64 == NULL || w->range_end_b64 == NULL) {
        free(end);
        return -1;
    }
    memcpy(end, prefix, len);
    end[len - 1]++; /* the prefix is visible ASCII (conf): no carry */
    etcd_base64_encode((const unsigned char *)prefix, len, w->key_b64);
    etcd_base64_encode(end, len, w->range_end_b64);
    free(end);
    return 0;
}

struct etcd_watch *
etcd_watch_start(struct event_base *base, struct curl_event *ce, const struct conf *conf,
                 source_emit_fn emit, void *arg, char *err, size_t err_len)
{
    const struct conf_etcd *ec = &conf->etcd;
    struct etcd_watch *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    w->conf = conf;
    w->ce = ce;
    w->emit = emit;
    w->emit_arg = arg;
    w->state_since = time(NULL);
    w->endpoint = (size_t)rand() % ec->nendpoints; /* spread a fleet over the cluster */
    if (ec->password_file != NULL && etcd_read_password(w, ec->password_file, err, err_len) == -1) {
        etcd_watch_stop(w);
        return NULL;
    }
    w->easy = curl_easy_init();
    w->next = evtimer_new(base, etcd_on_next, w);
    if (w->easy == NULL || w->next == NULL || etcd_keys(w) == -1 || etcd_set_headers(w) == -1) {
        snprintf(err, err_len, "out of memory");
        etcd_watch_stop(w);
        return NULL;
    }
    curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_MS);
    curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(w->easy, CURLOPT_USERAGENT, "wsring/" WSRING_VERSION);
    /* A host that vanished (no FIN, no RST) ends the silent watch in about a minute. */
    curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, etcd_on_body);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, w->errbuf);
    if (ec->ca_file != NULL) {
        curl_easy_setopt(w->easy, CURLOPT_CAINFO, ec->ca_file);
    }
    if (ec->cert_file != NULL && ec->key_file != NULL) {
        curl_easy_setopt(w->easy, CURLOPT_SSLCERT, ec->cert_file);
        curl_easy_setopt(w->easy, CURLOPT_SSLKEY, ec->key_file);
    }
    w->step = ec->username != NULL ? ETCD_STEP_AUTH : ETCD_STEP_LIST;
    log_msg(LOG_INFO, "event=etcd_watch_started endpoint=%s endpoints=%zu prefix=%s auth=%s",
            etcd_endpoint(w), ec->nendpoints, ec->prefix, ec->username != NULL ? "on" : "off");
    etcd_start_step(w);
    return w;
}

void
etcd_watch_stop(struct etcd_watch *w)
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
    if (w->password != NULL) {
        memset(w->password, 0, strlen(w->password));
        free(w->password);
    }
    if (w->token != NULL) {
        memset(w->token, 0, strlen(w->token));
        free(w->token);
    }
    curl_slist_free_all(w->headers);
    member_set_destroy(w->current);
    member_set_destroy(w->emitted);
    free(w->key_b64);
    free(w->range_end_b64);
    free(w->body);
    free(w);
}

json_t *
etcd_watch_status(const struct etcd_watch *w)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "state",
                     etcd_state_names[w->state], "since", (json_int_t)w->state_since, "last_error",
                     w->error, "prefix", w->conf->etcd.prefix, "endpoint", etcd_endpoint(w),
                     "revision", (json_int_t)w->revision, "queries", (json_int_t)w->nrequests,
                     "errors", (json_int_t)w->nerrors, "empty_answers", (json_int_t)w->nempty,
                     "compactions", (json_int_t)w->ncompactions, "events", (json_int_t)w->nevents);
}

void
etcd_watch_counts(const struct etcd_watch *w, int *up, uint64_t *queries, uint64_t *errors,
                  uint64_t *empty)
{
    *up = w->state != ETCD_RETRYING;
    *queries = w->nrequests;
    *errors = w->nerrors;
    *empty = w->nempty;
}
