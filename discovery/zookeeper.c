/*
 * ZooKeeper child watch (DESIGN §11, DISCOVERY §3, REAL-SERVERS §2).
 *
 * zookeeper_st has no thread of its own: zookeeper_interest() says which fd,
 * which direction and how long until the client needs to run again (pings,
 * reconnects); one libevent event on that fd and one timer call
 * zookeeper_process(), and after every process or request we ask again (the
 * fd changes on reconnect). Completions and watchers run inside
 * zookeeper_process(), on the main thread.
 *
 * A listing ("round") is: getChildren2 of the path with a child watch, then
 * getData of every child with a data watch (a Curator re-registration
 * rewrites the data), all pipelined. Watches are one-shot: any event on the
 * path or a child starts a new round, which re-arms them; events during a
 * round only mark it dirty, and one more round follows. A round that fails
 * (connection loss, a missing path) changes nothing: the last good set stays,
 * and it is retried with a jittered exponential back-off capped at 4 s. A
 * node whose data is not a valid instance is left out and logged; an empty
 * listing never empties the ring.
 *
 * Sessions: the client reconnects by itself and re-registers its watches; we
 * list again on every CONNECTED. EXPIRED means the handle is dead: close it
 * and start a new session (never from inside a callback: from a timer).
 * A client that never gets EXPIRED (a wiped server refuses its zxid and it
 * loops in CONNECTING, REAL-SERVERS §2) gets a new session after twice the
 * session timeout without a connection.
 */
#include "discovery/zookeeper.h"
#include "discovery/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <xxhash.h>
#include <zookeeper/zookeeper.h>

#include "conf/conf.h"
#include "discovery/zk_parse.h"
#include "proxy/log.h"
#include "ring/member_set.h"

#define ZK_BACKOFF_BASE_MS 100
#define ZK_BACKOFF_CAP_MS  4000 /* DESIGN §11: a recovered server is followed within 5 s */
#define ZK_ERROR_LEN       200
#define ZK_LIB_LOG_GAP_MS  5000 /* the client's own log lines: at most one per 5 s */

enum zk_state {
    ZK_STARTING = 0, /* no listing yet */
    ZK_OK,           /* the last listing succeeded */
    ZK_RETRYING,     /* disconnected, or the last listing failed */
    ZK_STATE_COUNT   /* must stay last */
};

static const char *const zk_state_names[ZK_STATE_COUNT] = { "starting", "ok", "retrying" };

struct zk_round;

/* One child of the round: its name, and why its data was refused (or NULL). */
struct zk_kid {
    struct zk_round *round;
    char *name; /* owned */
    const char *why;
};

/* One listing in flight. Freed when its last completion has come back. */
struct zk_round {
    struct zk_watch *w;
    zhandle_t *zh;          /* the handle it was issued on; another one means stale */
    struct member_set *set; /* owned until emitted */
    struct zk_kid *kids;    /* owned array of nkids */
    size_t nkids;
    size_t pending;     /* completions still to come */
    const char *failed; /* why the round is void, or NULL */
    char failed_buf[ZK_ERROR_LEN];
};

struct zk_watch {
    struct event_base *base;
    char *hosts;         /* owned copy of the conf's, for logs and zk_watch_same */
    char *connect;       /* owned; HOSTS as the C client parses it (zk_connect_string) */
    char *path;          /* owned copy of the conf's */
    int session_timeout; /* ms, as asked */
    source_emit_fn emit;
    void *emit_arg;
    zhandle_t *zh;    /* owned or NULL (between sessions) */
    struct event *io; /* owned or NULL; on the client's fd */
    int io_fd;
    short io_what;
    struct event *tick;     /* owned; zookeeper_interest's timeout */
    struct event *retry;    /* owned; back-off, and new sessions outside callbacks */
    struct zk_round *round; /* in flight, or NULL */
    bool dirty;             /* an event came during the round: list again after it */
    bool connected;
    bool renew;               /* the retry timer starts a new session */
    uint64_t disconnected_ms; /* since when not connected (0: connected) */
    unsigned failures;        /* consecutive failed rounds or session starts */
    enum zk_state state;
    time_t state_since;
    char error[ZK_ERROR_LEN]; /* the last failure */
    bool empty_warned;        /* the current run of empty listings was logged */
    uint64_t refused_digest;  /* of the last round's refused nodes: log only changes */
    int64_t session_id;
    uint64_t nlists, nerrors, nempty, nrefused, nsessions;
};

static uint64_t
zk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * The conf's "h1:p1,[v6]:p2" in the C client's syntax: it splits each entry at
 * its last ':' and hands the rest to getaddrinfo, so an IPv6 literal goes
 * without brackets ("[::1]:2181" fails with ENOENT, "::1:2181" works).
 */
static char *
zk_connect_string(const char *hosts)
{
    char *out = malloc(strlen(hosts) + 1), *o = out;

    if (out == NULL) {
        return NULL;
    }
    for (const char *c = hosts; *c != '\0'; c++) {
        if (*c != '[' && *c != ']') {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

/* The client library's own lines (reconnect attempts run every few ms): rate-limited. */
static void
zk_on_lib_log(const char *message)
{
    static uint64_t last_ms;
    static unsigned long dropped;
    char quoted[512], line[512];
    size_t len = strlen(message);
    uint64_t now = zk_now_ms();

    if (last_ms != 0 && now - last_ms < ZK_LIB_LOG_GAP_MS) {
        dropped++;
        return;
    }
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--; /* the library ends its lines with a newline */
    }
    snprintf(line, sizeof(line), "%.*s", (int)len, message);
    log_msg(LOG_WARN, "event=zk_client msg=\"%s\" dropped=%lu",
            log_escape(line, quoted, sizeof(quoted)), dropped);
    last_ms = now;
    dropped = 0;
}

static void
zk_set_state(struct zk_watch *w, enum zk_state state)
{
    if (w->state != state) {
        w->state = state;
        w->state_since = time(NULL);
    }
}

static void
zk_schedule(struct zk_watch *w, uint64_t delay_ms)
{
    struct timeval tv = { .tv_sec = (time_t)(delay_ms / 1000),
                          .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000 };

    evtimer_add(w->retry, &tv);
}

/* Something failed: the last good ring stays; logged once per change of error. */
static void
zk_fail(struct zk_watch *w, const char *what)
{
    char quoted[2 * ZK_ERROR_LEN];

    w->nerrors++;
    w->failures++;
    if (w->state != ZK_RETRYING || strcmp(w->error, what) != 0) {
        log_msg(LOG_WARN,
                "event=zk_watch_failed path=%s error=\"%s\" action=\"keeping the last good ring, "
                "retrying\"",
                w->path, log_escape(what, quoted, sizeof(quoted)));
    }
    snprintf(w->error, sizeof(w->error), "%s", what);
    zk_set_state(w, ZK_RETRYING);
    /* Disconnected: the client reconnects by itself and CONNECTED lists again. */
    if (w->connected || w->renew) {
        zk_schedule(w, source_backoff_ms(ZK_BACKOFF_BASE_MS, ZK_BACKOFF_CAP_MS, w->failures));
    }
}

static void zk_list(struct zk_watch *w);
static void zk_pump(struct zk_watch *w);

static void
zk_round_free(struct zk_round *r)
{
    for (size_t i = 0; i < r->nkids; i++) {
        free(r->kids[i].name);
    }
    free(r->kids);
    member_set_destroy(r->set);
    if (r->w->round == r) {
        r->w->round = NULL;
    }
    free(r);
}

static bool
zk_round_stale(const struct zk_round *r)
{
    return r->zh != r->w->zh;
}

static void
zk_round_fail(struct zk_round *r, const char *what, int rc)
{
    if (r->failed == NULL) {
        snprintf(r->failed_buf, sizeof(r->failed_buf), "%s: %s", what, zerror(rc));
        r->failed = r->failed_buf;
    }
}

/* Logs the refused nodes when they differ from the last round's. */
static void
zk_round_log_refused(struct zk_round *r)
{
    struct zk_watch *w = r->w;
    uint64_t digest = 0;
    size_t n = 0;

    for (size_t i = 0; i < r->nkids; i++) {
        const struct zk_kid *k = &r->kids[i];

        if (k->why != NULL) {
            /* Order-free: the server lists children in no particular order. */
            digest += XXH3_64bits(k->name, strlen(k->name)) ^ XXH3_64bits(k->why, strlen(k->why));
            n++;
        }
    }
    w->nrefused += n;
    if (digest == w->refused_digest) {
        return;
    }
    w->refused_digest = digest;
    for (size_t i = 0; i < r->nkids; i++) {
        const struct zk_kid *k = &r->kids[i];
        char quoted[300];

        if (k->why != NULL) {
            log_msg(LOG_WARN,
                    "event=zk_member_refused path=%s node=\"%s\" error=\"%s\" action=\"left out of "
                    "the ring\"",
                    w->path, log_escape(k->name, quoted, sizeof(quoted)), k->why);
        }
    }
}

/* The round's last completion came back: apply it, then list again if something changed meanwhile.
 */
static void
zk_round_finish(struct zk_round *r)
{
    struct zk_watch *w = r->w;

    w->round = NULL;
    if (r->failed != NULL) {
        zk_fail(w, r->failed);
        zk_round_free(r);
        return;
    }
    zk_round_log_refused(r);
    if (w->state == ZK_RETRYING) {
        log_msg(LOG_INFO, "event=zk_watch_recovered path=%s failures=%u", w->path, w->failures);
    }
    w->error[0] = '\0';
    w->failures = 0;
    zk_set_state(w, ZK_OK);
    if (member_set_count(r->set) == 0) {
        /* No instance at all: an outage of every backend or a wrong path; emptying helps neither.
         */
        w->nempty++;
        if (!w->empty_warned) {
            log_msg(
                LOG_WARN,
                "event=zk_no_members path=%s children=%zu action=\"keeping the last good ring\" "
                "hint=\"no backend registered, or the path is wrong\"",
                w->path, r->nkids);
            w->empty_warned = true;
        }
    } else {
        w->empty_warned = false;
        w->emit(r->set, w->emit_arg);
        r->set = NULL;
    }
    zk_round_free(r);
    if (w->dirty) {
        w->dirty = false;
        zk_list(w);
    }
}

/* One completion of round R is in: finishes the round after the last one. */
static void
zk_round_done_one(struct zk_round *r)
{
    r->pending--;
    if (r->pending > 0) {
        return;
    }
    if (zk_round_stale(r)) {
        zk_round_free(r); /* its session is gone: nothing to apply */
        return;
    }
    zk_round_finish(r);
}

static void zk_on_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx);

static void
zk_on_data(int rc, const char *value, int value_len, const struct Stat *stat, const void *data)
{
    struct zk_kid *k = (struct zk_kid *)data;
    struct zk_round *r = k->round;

    (void)stat;
    if (!zk_round_stale(r)) {
        if (rc == ZOK) {
            const char *why = value == NULL || value_len <= 0
                                  ? "has no data (not a Curator service instance)"
                                  : zk_parse_member(value, (size_t)value_len, r->set);

            if (why == zk_parse_enomem) {
                zk_round_fail(r, "reading a member", ZSYSTEMERROR);
            }
            k->why = why;
        } else if (rc == ZNOAUTH) {
            /* One node's ACL must not freeze every update: leave it out, like a bad one. */
            k->why = "is not readable (its ACL gives wsring no read permission)";
        } else if (rc != ZNONODE) { /* deleted since the listing: its child event follows */
            zk_round_fail(r, "reading a member", rc);
        }
    }
    zk_round_done_one(r);
}

static void
zk_on_children(int rc, const struct String_vector *strings, const struct Stat *stat,
               const void *data)
{
    struct zk_round *r = (struct zk_round *)data;
    struct zk_watch *w = r->w;
    size_t plen = strlen(w->path);

    (void)stat;
    if (zk_round_stale(r)) {
        zk_round_done_one(r);
        return;
    }
    if (rc != ZOK) {
        zk_round_fail(
            r, rc == ZNONODE ? "listing the path (it does not exist)" : "listing the path", rc);
        zk_round_done_one(r);
        return;
    }
    r->kids = calloc(strings->count > 0 ? (size_t)strings->count : 1, sizeof(*r->kids));
    if (r->kids == NULL) {
        zk_round_fail(r, "listing the path", ZSYSTEMERROR);
        zk_round_done_one(r);
        return;
    }
    for (int32_t i = 0; i < strings->count && r->failed == NULL; i++) {
        struct zk_kid *k = &r->kids[r->nkids];
        size_t nlen = strlen(strings->data[i]);
        char *full = malloc(plen + 1 + nlen + 1);
        int zrc;

        k->round = r;
        k->name = strdup(strings->data[i]);
        if (full == NULL || k->name == NULL) {
            free(full);
            free(k->name);
            zk_round_fail(r, "listing the path", ZSYSTEMERROR);
            break;
        }
        r->nkids++;
        snprintf(full, plen + 1 + nlen + 1, "%s/%s", w->path, strings->data[i]);
        zrc = zoo_awget(w->zh, full, zk_on_watch, w, zk_on_data, k);
        free(full);
        if (zrc != ZOK) {
            zk_round_fail(r, "reading a member", zrc);
            break;
        }
        r->pending++;
    }
    zk_round_done_one(r);
}

/* Starts a round, or marks the one in flight dirty. */
static void
zk_list(struct zk_watch *w)
{
    struct zk_round *r;
    int rc;

    if (w->round != NULL) {
        w->dirty = true;
        return;
    }
    if (w->zh == NULL || !w->connected) {
        return; /* CONNECTED lists */
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->set = member_set_create()) == NULL) {
        free(r);
        zk_fail(w, "out of memory");
        return;
    }
    r->w = w;
    r->zh = w->zh;
    r->pending = 1;
    w->round = r;
    w->nlists++;
    rc = zoo_awget_children2(w->zh, w->path, zk_on_watch, w, zk_on_children, r);
    if (rc != ZOK) {
        char what[ZK_ERROR_LEN];

        snprintf(what, sizeof(what), "listing the path: %s", zerror(rc));
        zk_round_free(r);
        zk_fail(w, what);
    }
}

static void
zk_on_connected(struct zk_watch *w)
{
    const clientid_t *id = zoo_client_id(w->zh);

    w->connected = true;
    w->disconnected_ms = 0;
    if (id->client_id != w->session_id) {
        w->session_id = id->client_id;
        w->nsessions++;
        log_msg(LOG_INFO,
                "event=zk_session_started hosts=%s session=0x%llx negotiated_timeout_ms=%d",
                w->hosts, (unsigned long long)id->client_id, zoo_recv_timeout(w->zh));
    } else if (w->state == ZK_RETRYING) {
        log_msg(LOG_INFO, "event=zk_reconnected session=0x%llx", (unsigned long long)id->client_id);
    }
    zk_list(w); /* changes while away may have fired no watch we saw */
}

/* The global watcher and every child/data watch: CTX is the watch. */
static void
zk_on_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zk_watch *w = ctx;

    (void)path;
    if (zh != w->zh) {
        return; /* a handle being closed */
    }
    if (type != ZOO_SESSION_EVENT) {
        zk_list(w); /* child or data event: one-shot, the round re-arms it */
        return;
    }
    if (state == ZOO_CONNECTED_STATE) {
        zk_on_connected(w);
    } else if (state == ZOO_CONNECTING_STATE) {
        w->connected = false;
        w->disconnected_ms = zk_now_ms();
        zk_fail(w, "connection to ZooKeeper lost; reconnecting");
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
        w->connected = false;
        w->renew = true;
        log_msg(LOG_WARN, "event=zk_session_expired session=0x%llx action=\"new session, re-list\"",
                (unsigned long long)w->session_id);
        zk_fail(w,
                state == ZOO_EXPIRED_SESSION_STATE ? "session expired" : "authentication failed");
    }
}

/* Closes the session, if any. Pending completions run now with ZCLOSING and see a stale round. */
static void
zk_close_session(struct zk_watch *w)
{
    zhandle_t *zh = w->zh;

    if (w->io != NULL) {
        event_free(w->io);
        w->io = NULL;
    }
    evtimer_del(w->tick);
    w->zh = NULL;
    w->connected = false;
    if (zh != NULL) {
        zookeeper_close(zh);
    }
    if (w->round != NULL) {
        zk_round_free(w->round); /* completions the closed handle never called */
    }
    w->dirty = false;
}

/* A new handle; the client connects in the background (zookeeper_interest). */
static int
zk_open_session(struct zk_watch *w)
{
    w->zh = zookeeper_init2(w->connect, zk_on_watch, w->session_timeout, NULL, w, 0, zk_on_lib_log);
    if (w->zh == NULL) {
        char what[ZK_ERROR_LEN], why[100];

        /* ENOENT: zookeeper_init resolves every host at once (getaddrinfo). */
        snprintf(what, sizeof(what), "cannot start a session: %s",
                 errno == ENOENT ? "a host in \"hosts\" does not resolve"
                                 : strerror_r(errno, why, sizeof(why)));
        w->renew = true;
        zk_fail(w, what);
        return -1;
    }
    w->renew = false;
    w->disconnected_ms = zk_now_ms();
    zk_pump(w);
    return 0;
}

static void
zk_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct zk_watch *w = arg;
    int events =
        ((what & EV_READ) ? ZOOKEEPER_READ : 0) | ((what & EV_WRITE) ? ZOOKEEPER_WRITE : 0);

    (void)fd;
    if (w->zh == NULL) {
        return;
    }
    /* Its return code is no connection monitor (ZOOKEEPER-2432): the session watcher is. */
    (void)zookeeper_process(w->zh, events);
    if (w->zh != NULL) {
        zk_pump(w);
    }
}

/* Asks the client what it waits for, and waits for exactly that. */
static void
zk_pump(struct zk_watch *w)
{
    int fd = -1, interest = 0;
    struct timeval tv = { 1, 0 };
    short what;
    uint64_t now = zk_now_ms();

    if (!w->connected && !w->renew && w->disconnected_ms != 0 &&
        now - w->disconnected_ms > 2 * (uint64_t)w->session_timeout) {
        /* Stuck in CONNECTING (e.g. a wiped server refuses our zxid): start afresh. */
        log_msg(LOG_WARN,
                "event=zk_session_renew reason=\"not connected for %llu ms\" action=\"new session, "
                "re-list\"",
                (unsigned long long)(now - w->disconnected_ms));
        w->renew = true;
        zk_schedule(w, 0);
    }
    (void)zookeeper_interest(w->zh, &fd, &interest, &tv);
    what = (short)(((interest & ZOOKEEPER_READ) ? EV_READ : 0) |
                   ((interest & ZOOKEEPER_WRITE) ? EV_WRITE : 0));
    if (w->io != NULL && (fd != w->io_fd || what != w->io_what || fd < 0)) {
        event_free(w->io);
        w->io = NULL;
    }
    if (w->io == NULL && fd >= 0 && what != 0) {
        w->io = event_new(w->base, fd, what, zk_on_io, w);
        w->io_fd = fd;
        w->io_what = what;
    }
    if (w->io != NULL) {
        event_add(w->io, NULL);
    }
    evtimer_add(w->tick, &tv);
}

static void
zk_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    zk_on_io(fd, 0, arg);
}

/* Back-off over, or a new session due: never inside a ZooKeeper callback. */
static void
zk_on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct zk_watch *w = arg;

    (void)fd;
    (void)what;
    if (w->renew) {
        zk_close_session(w);
        zk_open_session(w);
        return;
    }
    zk_list(w);
    if (w->zh != NULL) {
        zk_pump(w); /* a request went out: the interest may have changed */
    }
}

struct zk_watch *
zk_watch_start(struct event_base *base, const struct conf_zookeeper *zc, source_emit_fn emit,
               void *arg, char *err, size_t err_len)
{
    struct zk_watch *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    w->base = base;
    w->emit = emit;
    w->emit_arg = arg;
    w->io_fd = -1;
    w->session_timeout = (int)zc->session_timeout_ms;
    w->state_since = time(NULL);
    w->hosts = strdup(zc->hosts);
    w->path = strdup(zc->path);
    w->connect = zk_connect_string(zc->hosts);
    w->tick = evtimer_new(base, zk_on_tick, w);
    w->retry = evtimer_new(base, zk_on_retry, w);
    if (w->hosts == NULL || w->path == NULL || w->connect == NULL || w->tick == NULL ||
        w->retry == NULL) {
        snprintf(err, err_len, "out of memory");
        zk_watch_stop(w);
        return NULL;
    }
    /* The library logs to stderr by default, unformatted; ours go through zk_on_lib_log. */
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    log_msg(LOG_INFO, "event=zk_watch_started hosts=%s path=%s session_timeout_ms=%d", w->hosts,
            w->path, w->session_timeout);
    zk_open_session(w); /* a failure retries on its own */
    return w;
}

void
zk_watch_stop(struct zk_watch *w)
{
    if (w == NULL) {
        return;
    }
    if (w->tick != NULL) {
        zk_close_session(w);
        event_free(w->tick);
    }
    if (w->retry != NULL) {
        event_free(w->retry);
    }
    free(w->hosts);
    free(w->connect);
    free(w->path);
    free(w);
}

bool
zk_watch_same(const struct zk_watch *w, const struct conf_zookeeper *zc)
{
    return strcmp(w->hosts, zc->hosts) == 0 && strcmp(w->path, zc->path) == 0 &&
           (uint64_t)w->session_timeout == zc->session_timeout_ms;
}

void
zk_watch_counts(const struct zk_watch *w, int *up, uint64_t *lists, uint64_t *errors,
                uint64_t *empty)
{
    *up = w->state != ZK_RETRYING;
    *lists = w->nlists;
    *errors = w->nerrors;
    *empty = w->nempty;
}

json_t *
zk_watch_status(const struct zk_watch *w)
{
    char session[32];

    snprintf(session, sizeof(session), "0x%llx", (unsigned long long)w->session_id);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b, s:i, s:I, s:I, s:I, s:I, s:I}", "state",
                     zk_state_names[w->state], "since", (json_int_t)w->state_since, "last_error",
                     w->error, "hosts", w->hosts, "path", w->path, "session", session, "connected",
                     w->connected, "negotiated_timeout_ms",
                     w->zh != NULL && w->connected ? zoo_recv_timeout(w->zh) : 0, "lists",
                     (json_int_t)w->nlists, "errors", (json_int_t)w->nerrors, "empty_answers",
                     (json_int_t)w->nempty, "refused_nodes", (json_int_t)w->nrefused, "sessions",
                     (json_int_t)w->nsessions);
}
