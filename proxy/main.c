/*
 * wsring: argv, config, the ring, the workers, admin HTTP and signals on the
 * main thread (DESIGN §1, §6).
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "conf/conf.h"
#include "discovery/consul.h"
#include "discovery/consul_register.h"
#include "discovery/curl_event.h"
#include "discovery/etcd.h"
#include "discovery/zookeeper.h"
#include "proxy/admin.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/migrate.h"
#include "proxy/notify.h"
#include "proxy/publisher.h"
#include "proxy/route.h"
#include "proxy/scrape.h"
#include "proxy/settings.h"
#include "proxy/tls.h"
#include "proxy/tls_mem.h"
#include "proxy/worker.h"
#include "ring/ring.h"

#define MAIN_DEFAULT_CONF   "/etc/wsring/proxy.conf"
#define MAIN_MAX_WORKERS    64
#define MAIN_STATE_GRACE_MS 1000 /* a source silent this long at start: route on the saved set */

struct main_state {
    struct event_base *base;
    const char *conf_path;      /* borrowed; argv */
    struct settings *settings;  /* reference; the conf in force */
    struct settings *boot;      /* reference; the conf the sockets and threads came from */
    const struct conf *conf;    /* == settings->conf */
    struct migrate_pacer pacer; /* shared by the workers */
    struct event *drain_check;  /* owned; SIGTERM: polls for the last connection */
    uint64_t drain_deadline_ms; /* 0 while not draining */
    struct scrape *scrape;      /* owned or NULL; /metrics */
    struct admin *admin;        /* owned or NULL */
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    struct publisher *publisher; /* owned; holds the current route */
    struct curl_event *curl;     /* owned or NULL; the Consul watch's transport */
    struct consul_watch *watch;  /* owned or NULL */
    struct etcd_watch *etcd;     /* owned or NULL */
    struct consul_register *reg; /* owned or NULL; `register on` */
    struct zk_watch *zk;         /* owned or NULL; `discovery zookeeper` */
    struct worker *workers[MAIN_MAX_WORKERS];
    unsigned nworkers; /* created */
    unsigned nstarted; /* threads running */
};

static void
main_usage(FILE *out)
{
    fprintf(out, "usage: wsring [-t] [-c FILE]\n"
                 "  -c FILE    configuration (default " MAIN_DEFAULT_CONF ")\n"
                 "  -t         check the configuration and exit (0: good, 1: bad)\n"
                 "  -h         this help\n"
                 "  --version  print the version and exit\n");
}

/* Each proxied connection costs two descriptors: take all the kernel allows. */
static void
main_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The name of CONF's member source, as /ring, the log and the metrics show it. */
static const char *
main_source_name(const struct conf *conf)
{
    static const char *const names[CONF_DISCOVERY_COUNT] = {
        [CONF_DISCOVERY_STATIC] = "static",
        [CONF_DISCOVERY_CONSUL] = "consul",
        [CONF_DISCOVERY_ETCD] = "etcd",
        [CONF_DISCOVERY_ZOOKEEPER] = "zookeeper",
    };

    return names[conf->discovery];
}

/* The route wsring starts with: the static members, or an empty ring until the source answers. */
static struct route *
main_first_route(struct settings *settings)
{
    const struct conf *conf = settings->conf;
    struct member_set *members =
        conf->discovery == CONF_DISCOVERY_STATIC ? conf_static_members(conf) : member_set_create();
    struct ring *ring;

    if (members == NULL) {
        return NULL;
    }
    ring = ring_build(members, &conf->ring);
    return ring != NULL ? route_create(ring, settings, NULL) : NULL;
}

static void
main_publish(struct route *route, void *arg)
{
    struct main_state *st = arg;

    for (unsigned i = 0; i < st->nworkers; i++) {
        worker_set_route(st->workers[i], route);
    }
}

static json_t *
main_watch_status(void *arg)
{
    return consul_watch_status(arg);
}

static json_t *
main_etcd_status(void *arg)
{
    return etcd_watch_status(arg);
}

static json_t *
main_zk_status(void *arg)
{
    return zk_watch_status(arg);
}

/* Starts the watch of the configured source (consul, etcd or zookeeper) on the conf in force. */
static int
main_start_watch(struct main_state *st)
{
    char err[256];

    if (st->conf->discovery == CONF_DISCOVERY_ZOOKEEPER) {
        st->zk = zk_watch_start(st->base, &st->conf->zookeeper, publisher_offer, st->publisher, err,
                                sizeof(err));
        if (st->zk == NULL) {
            log_msg(LOG_ERROR, "event=zk_watch_failed error=\"%s\"", err);
            return -1;
        }
        publisher_set_status(st->publisher, main_zk_status, st->zk);
        return 0;
    }
    if (st->conf->discovery == CONF_DISCOVERY_ETCD) {
        st->etcd = etcd_watch_start(st->base, st->curl, st->conf, publisher_offer, st->publisher,
                                    err, sizeof(err));
        if (st->etcd == NULL) {
            log_msg(LOG_ERROR, "event=etcd_watch_failed error=\"%s\"", err);
            return -1;
        }
        publisher_set_status(st->publisher, main_etcd_status, st->etcd);
        return 0;
    }
    st->watch = consul_watch_start(st->base, st->curl, st->conf, publisher_offer, st->publisher,
                                   err, sizeof(err));
    if (st->watch == NULL) {
        log_msg(LOG_ERROR, "event=consul_watch_failed error=\"%s\"", err);
        return -1;
    }
    publisher_set_status(st->publisher, main_watch_status, st->watch);
    return 0;
}

static void
main_stop_watch(struct main_state *st)
{
    publisher_set_status(st->publisher, NULL, NULL);
    consul_watch_stop(st->watch);
    st->watch = NULL;
    etcd_watch_stop(st->etcd);
    st->etcd = NULL;
    zk_watch_stop(st->zk);
    st->zk = NULL;
}

/* Starts the member source; static members are already in the first route. */
static int
main_start_source(struct main_state *st)
{
    char err[256];

    if (st->conf->discovery == CONF_DISCOVERY_STATIC) {
        return 0;
    }
    /* Before the source starts: its first answer cancels the saved set's grace timer. */
    if (st->conf->state_file != NULL &&
        publisher_set_state_file(st->publisher, st->base, st->conf->state_file,
                                 MAIN_STATE_GRACE_MS) == -1) {
        log_msg(LOG_ERROR, "event=start_failed error=\"out of memory\"");
        return -1;
    }
    st->curl = curl_event_create(st->base);
    if (st->curl == NULL) {
        log_msg(LOG_ERROR, "event=start_failed error=\"libcurl: out of memory\"");
        return -1;
    }
    if (main_start_watch(st) == -1) {
        return -1;
    }
    if (st->conf->discovery == CONF_DISCOVERY_CONSUL && st->conf->consul.register_self) {
        st->reg = consul_register_start(st->base, st->curl, st->conf, err, sizeof(err));
        if (st->reg == NULL) {
            log_msg(LOG_ERROR, "event=start_failed error=\"%s\"", err);
            return -1;
        }
    }
    return 0;
}

static unsigned
main_worker_count(const struct conf *conf)
{
    long n = conf->workers != 0 ? (long)conf->workers : sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1) {
        n = 1;
    }
    return n > MAIN_MAX_WORKERS ? MAIN_MAX_WORKERS : (unsigned)n;
}

static int
main_start_workers(struct main_state *st)
{
    struct route *route = *publisher_current(st->publisher);
    char err[256];
    unsigned n = main_worker_count(st->conf);

    for (unsigned i = 0; i < n; i++) {
        /* A lone worker shares the main thread (worker_create says why). */
        st->workers[i] = worker_create(i, st->conf, route, &st->pacer, n == 1 ? st->base : NULL,
                                       err, sizeof(err));
        if (st->workers[i] == NULL) {
            log_msg(LOG_ERROR, "event=start_failed error=\"%s\"", err);
            return -1;
        }
        st->nworkers++;
    }
    for (unsigned i = 0; i < n; i++) {
        if (worker_start(st->workers[i]) == -1) {
            log_msg(LOG_ERROR, "event=start_failed error=\"cannot start worker thread\"");
            return -1;
        }
        st->nstarted++;
    }
    return 0;
}

static void
main_stop(struct main_state *st)
{
    consul_register_stop(st->reg); /* first: stop being sent new clients */
    consul_watch_stop(st->watch);
    etcd_watch_stop(st->etcd);
    zk_watch_stop(st->zk);
    curl_event_destroy(st->curl);
    for (unsigned i = 0; i < st->nworkers; i++) {
        if (i < st->nstarted) {
            worker_stop(st->workers[i]);
        }
        worker_destroy(st->workers[i]);
    }
    scrape_destroy(st->scrape); /* after the workers (none fills a snapshot now), */
    admin_stop(st->admin);      /* before admin (it answers the scrapes waiting) */
    publisher_destroy(st->publisher);
    settings_unref(st->settings);
    settings_unref(st->boot);
    if (st->base != NULL) {
        event_base_free(st->base);
    }
}

/* libevent's own warnings, in our log format. */
static void
main_on_libevent_log(int severity, const char *msg)
{
    log_msg(severity >= EVENT_LOG_ERR ? LOG_ERROR : LOG_WARN, "event=libevent msg=\"%s\"", msg);
}

static bool
main_same_addr(const struct conf_addr *a, const struct conf_addr *b)
{
    if (a->host == NULL || b->host == NULL) {
        return a->host == b->host;
    }
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* True when A and B ask for the same listeners, admin address and worker count. */
static bool
main_same_sockets(const struct conf *a, const struct conf *b)
{
    if (a->nlisten != b->nlisten || a->workers != b->workers ||
        !main_same_addr(&a->admin, &b->admin)) {
        return false;
    }
    for (size_t i = 0; i < a->nlisten; i++) {
        if (!main_same_addr(&a->listen[i].addr, &b->listen[i].addr) ||
            a->listen[i].tls != b->listen[i].tls ||
            a->listen[i].proxy_protocol != b->listen[i].proxy_protocol) {
            return false;
        }
    }
    return true;
}

/* Polls the workers' live connections while draining; ends the loop when none is left. */
static void
main_on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct main_state *st = arg;
    struct timeval tv = { .tv_sec = 0, .tv_usec = 50 * 1000 };
    size_t live = 0;

    (void)fd;
    (void)what;
    for (unsigned i = 0; i < st->nworkers; i++) {
        live += atomic_load_explicit(&st->workers[i]->nconns, memory_order_relaxed);
    }
    if (live == 0 || route_now_ms() >= st->drain_deadline_ms) {
        log_msg(live == 0 ? LOG_INFO : LOG_WARN, "event=drained remaining=%zu", live);
        event_base_loopbreak(st->base);
        return;
    }
    evtimer_add(st->drain_check, &tv);
}

/* SIGTERM: stop taking clients, tell WebSockets to go (1001), wait up to drain_timeout. */
static void
main_drain(struct main_state *st)
{
    if (st->drain_deadline_ms != 0) {
        log_msg(LOG_WARN, "event=stopping_now reason=\"second signal while draining\"");
        event_base_loopbreak(st->base);
        return;
    }
    st->drain_deadline_ms = route_now_ms() + st->conf->drain_timeout_ms;
    log_msg(LOG_INFO, "event=draining timeout_ms=%llu",
            (unsigned long long)st->conf->drain_timeout_ms);
    consul_register_stop(st->reg); /* first: the fleet stops sending us clients */
    st->reg = NULL;
    for (unsigned i = 0; i < st->nworkers; i++) {
        worker_drain(st->workers[i]);
    }
    main_on_drain_check(-1, 0, st);
}

/*
 * SIGHUP: a good file applies to new connections (key rules, timeouts,
 * members, migration settings); a bad one changes nothing. What needs new
 * sockets or threads is reported and keeps its old value.
 */
static void
main_reload(struct main_state *st)
{
    char err[CONF_ERR_LEN];
    struct settings *settings = settings_load(st->conf_path, err);
    struct conf *conf = settings != NULL ? settings->conf : NULL;
    struct member_set *members = NULL;

    if (settings == NULL) {
        char quoted[2 * CONF_ERR_LEN];

        log_msg(LOG_ERROR,
                "event=reload_failed error=\"%s\" action=\"keeping the running configuration\"",
                log_escape(err, quoted, sizeof(quoted)));
        st->reloads_failed++;
        return;
    }
    if (conf->discovery != st->conf->discovery) {
        log_msg(LOG_ERROR,
                "event=reload_failed error=\"%s: discovery changed; that needs a restart\" "
                "action=\"keeping the running configuration\"",
                st->conf_path);
        settings_unref(settings);
        st->reloads_failed++;
        return;
    }
    if (!main_same_sockets(st->boot->conf, conf)) {
        log_msg(LOG_WARN, "event=reload_partial what=\"listen, admin and workers need a restart; "
                          "keeping the running ones\"");
    }
    if ((conf->discovery == CONF_DISCOVERY_STATIC &&
         (members = conf_static_members(conf)) == NULL) ||
        publisher_reload(st->publisher, settings, members) == -1) {
        log_msg(LOG_ERROR, "event=reload_failed error=\"out of memory\"");
        settings_unref(settings);
        st->reloads_failed++;
        return;
    }
    st->reloads_ok++;
    settings_unref(st->settings);
    st->settings = settings;
    st->conf = conf;
    if (conf->discovery == CONF_DISCOVERY_ZOOKEEPER ? !zk_watch_same(st->zk, &conf->zookeeper)
                                                    : conf->discovery != CONF_DISCOVERY_STATIC) {
        /* The watch reads the conf it was started with: start over on the new one (ZooKeeper
         * keeps its session, and its set, when hosts, path and timeout are unchanged). */
        main_stop_watch(st);
        main_start_watch(st);
    }
    if (conf->discovery != CONF_DISCOVERY_STATIC) {
        publisher_set_state_file(st->publisher, NULL, conf->state_file, 0);
    }
    log_msg(LOG_INFO, "event=reloaded conf=%s ring=%s", st->conf_path,
            (*publisher_current(st->publisher))->fingerprint);
}

static void
main_fill_metrics(struct metrics_main *m, void *arg)
{
    struct main_state *st = arg;
    const struct route *route = *publisher_current(st->publisher);
    static char membership[RING_FINGERPRINT_LEN];

    ring_fingerprint_format(ring_membership_fingerprint(route->ring), membership);
    m->source = publisher_source(st->publisher);
    m->fingerprint = route->fingerprint;
    m->membership = membership;
    m->hash = ring_algo_name(ring_params(route->ring)->algo);
    m->members = route->nbackends;
    m->ring_changes = publisher_changes(st->publisher);
    m->watch_up = -1;
    m->watch_source = main_source_name(st->conf);
    if (st->watch != NULL) {
        consul_watch_counts(st->watch, &m->watch_up, &m->watch_queries, &m->watch_errors,
                            &m->watch_empty);
    }
    if (st->etcd != NULL) {
        etcd_watch_counts(st->etcd, &m->watch_up, &m->watch_queries, &m->watch_errors,
                          &m->watch_empty);
    }
    if (st->zk != NULL) {
        zk_watch_counts(st->zk, &m->watch_up, &m->watch_queries, &m->watch_errors, &m->watch_empty);
    }
    m->reloads_ok = st->reloads_ok;
    m->reloads_failed = st->reloads_failed;
}

static void
main_on_metrics(struct evhttp_request *req, void *arg)
{
    scrape_request(req, ((struct main_state *)arg)->scrape);
}

static void
main_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct main_state *st = arg;

    (void)what;
    if (sig == SIGHUP) {
        log_msg(LOG_INFO, "event=reloading signal=SIGHUP");
        notify_send("RELOADING=1");
        main_reload(st);
        notify_send("READY=1");
        return;
    }
    log_msg(LOG_INFO, "event=stopping signal=%s", strsignal((int)sig));
    notify_send("STOPPING=1");
    if (sig == SIGTERM && st->nstarted > 0) {
        main_drain(st);
        return;
    }
    event_base_loopbreak(st->base);
}

static int
main_run(struct settings *settings, const char *conf_path)
{
    struct main_state st = { .conf_path = conf_path,
                             .settings = settings,
                             .boot = settings_ref(settings),
                             .conf = settings->conf };
    const struct conf *conf = st.conf;
    struct event *sigs[3] = { NULL, NULL, NULL };
    struct route *first = main_first_route(settings);
    const char *source = main_source_name(conf);
    char err[256];
    int rc = 1;

    st.base = worker_base_new(); /* with `workers 1` the worker runs on it */
    if (first == NULL || st.base == NULL ||
        (st.publisher = publisher_create(st.base, first, source, main_publish, &st)) == NULL ||
        (st.drain_check = evtimer_new(st.base, main_on_drain_check, &st)) == NULL) {
        log_msg(LOG_ERROR, "event=start_failed error=\"out of memory\"");
        goto fail;
    }
    first = NULL;
    if (conf->admin.host != NULL) {
        st.admin = admin_start(st.base, conf, publisher_current(st.publisher), publisher_ring_json,
                               st.publisher, err, sizeof(err));
        if (st.admin == NULL) {
            log_msg(LOG_ERROR, "event=start_failed error=\"%s\"", err);
            goto fail;
        }
    }
    /* Listen at once: until the source answers, an empty ring answers 503. */
    if (main_start_workers(&st) == -1 || main_start_source(&st) == -1) {
        goto fail;
    }
    st.scrape = scrape_create(st.base, st.workers, st.nworkers, main_fill_metrics, &st);
    if (st.scrape == NULL) {
        log_msg(LOG_ERROR, "event=start_failed error=\"out of memory\"");
        goto fail;
    }
    if (st.admin != NULL) {
        admin_set_metrics(st.admin, main_on_metrics, &st);
    }
    sigs[0] = evsignal_new(st.base, SIGTERM, main_on_signal, &st);
    sigs[1] = evsignal_new(st.base, SIGINT, main_on_signal, &st);
    sigs[2] = evsignal_new(st.base, SIGHUP, main_on_signal, &st);
    for (int i = 0; i < 3; i++) {
        evsignal_add(sigs[i], NULL);
    }
    log_msg(LOG_INFO,
            "event=ready conf=%s workers=%u listen=%s:%u source=%s members=%zu hash=%s ring=%s",
            conf->file, st.nworkers, conf->listen[0].addr.host, conf->listen[0].addr.port, source,
            (*publisher_current(st.publisher))->nbackends, ring_algo_name(conf->ring.algo),
            (*publisher_current(st.publisher))->fingerprint);
    notify_send("READY=1");
    event_base_dispatch(st.base);
    rc = 0;
fail:
    for (int i = 0; i < 3; i++) {
        if (sigs[i] != NULL) {
            event_free(sigs[i]);
        }
    }
    if (st.drain_check != NULL) {
        event_free(st.drain_check);
    }
    route_unref(first);
    main_stop(&st);
    if (rc == 0) {
        log_msg(LOG_INFO, "event=stopped");
    }
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *file = MAIN_DEFAULT_CONF;
    char err[CONF_ERR_LEN];
    struct settings *settings;
    int check_only = 0, opt, rc;

    /* Before OpenSSL allocates anything; a sanitizer build leaves it out. */
    (void)tls_mem_install();
    while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'h':
            main_usage(stdout);
            return 0;
        case 'V':
            printf("wsring %s\n", WSRING_VERSION);
            return 0;
        default:
            main_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        main_usage(stderr);
        return 2;
    }
    if (ring_selftest() == -1) {
        fprintf(stderr, "wsring: this libxxhash gives a wrong XXH3_64bits(\"\"): "
                        "routing would differ from other proxies; refusing to run\n");
        return 1;
    }
    settings = settings_load(file, err);
    if (settings == NULL) {
        fprintf(stderr, "wsring: %s\n", err);
        return 1;
    }
    if (check_only) {
        printf("wsring: %s: configuration is good\n", file);
        settings_unref(settings);
        return 0;
    }
    /* Back-off jitter and the first etcd endpoint: proxies of a fleet must not move in step. */
    srand((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
    signal(SIGPIPE, SIG_IGN);
    event_set_log_callback(main_on_libevent_log);
    main_raise_nofile();
    if (evthread_use_pthreads() == -1) {
        fprintf(stderr, "wsring: libevent has no pthreads support\n");
        settings_unref(settings);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = main_run(settings, file); /* takes the settings */
    curl_global_cleanup();
    return rc;
}
