/*
 * proxy.conf -> struct conf (DESIGN §9, STYLE "The config directive-table pattern").
 *
 * Syntax: one directive per line, `name arg...`, words separated by spaces,
 * tabs or CRs (so CRLF files work). `#` starts a comment wherever it appears;
 * there is no quoting, so no word can hold a space or a `#`. A line may not be
 * longer than CONF_LINE_MAX bytes and the file may hold no control byte but
 * tab, CR and LF. A block is `name args... {` (the `{` is the last word), its
 * lines, and `}` alone on a line; blocks do not nest. A block is a row of
 * the top-level table flagged CONF_BLOCK whose offset is that of the block's
 * struct in struct conf; its lines go to the block's own table (conf_sections),
 * whose offsets are relative to that struct. Each section has its own seen[].
 *
 * Parsing runs in two passes over the text. The syntax pass checks bytes,
 * line lengths and braces, so an unterminated block, a stray `}` or a nested
 * block is reported even when its name is unknown. The directive pass then
 * feeds each line to the table; finally every directive not seen is set from
 * the table's default text by the same setter. A missing `listen` is reported
 * on the file's last line (line 1 for an empty file). A block's own defaults
 * are set only when the block is written; its missing required directives and
 * its cross-checks are reported on its "{" line. Last come the checks across
 * directives (conf_check_discovery), each on the line that makes it wrong.
 */
#include "conf/conf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>
#include <unistd.h>

#include "conf/conf_value.h"
#include "ring/member_set.h"

#define ARRAY_LEN(a)          (sizeof(a) / sizeof((a)[0]))
#define CONF_LINE_MAX         4096        /* bytes per line, without its LF */
#define CONF_MAX_ARGS         8           /* words kept per line; the rest are only counted */
#define CONF_FILE_MAX         (16u << 20) /* conf_load refuses larger files */
#define CONF_QUOTE_MAX        100         /* bytes of user text quoted in a message */
#define CONF_WORKERS_MAX      64
#define CONF_SECTION_MAX      48  /* directives per table (seen[] size) */
#define CONF_CONSUL_MAX       255 /* longest service, datacenter or tag */
#define CONF_TAGS_MAX         16
#define CONF_ROUTE_PREFIX_MAX 1024 /* longest route path */
#define CONF_ENDPOINTS_MAX    16
#define CONF_PREFIX_MAX       512  /* bytes of an etcd key prefix */
#define CONF_ZK_HOSTS         16   /* servers in a zookeeper `hosts` list */
#define CONF_ZK_PATH_MAX      1024 /* longest zookeeper `path` */

/* Parses ARGS into FIELD. Returns NULL, or what is wrong ("is not a duration"). */
typedef const char *(*conf_set_fn)(void *field, char **args, int nargs);

enum conf_directive_flag {
    CONF_REPEATABLE = 1 << 0, /* may appear many times; its setter appends (conf_add_*) */
    CONF_REQUIRED = 1 << 1,   /* must appear at least once (no default) */
    CONF_BLOCK = 1 << 2,      /* "name {" ... "}": a section of its own (conf_sections) */
};

struct conf_directive {
    const char *name;
    int min_args, max_args;
    conf_set_fn set;
    size_t offset;        /* of the field in the section's struct; conf_add_* get all of it (0) */
    const char *fallback; /* default, parsed by set() like user input; NULL: none */
    unsigned flags;       /* enum conf_directive_flag */
};

struct conf_words {
    char buf[CONF_LINE_MAX + 1]; /* the line, each word NUL-terminated in place */
    char *args[CONF_MAX_ARGS];   /* borrowed, into buf */
    int nargs;                   /* every word, also those past CONF_MAX_ARGS */
    int open_at;                 /* index of the first "{" word, or -1 */
    int close_at;                /* index of the first "}" word, or -1 */
};

struct conf_cursor {
    const char *text; /* borrowed */
    size_t len;
    size_t pos;    /* start of the next line */
    unsigned line; /* number of the line last returned, 1-based */
};

static const char *conf_add_listen(void *field, char **args, int nargs);
static const char *conf_set_admin(void *field, char **args, int nargs);
static const char *conf_set_workers(void *field, char **args, int nargs);
static const char *conf_add_key(void *field, char **args, int nargs);
static const char *conf_set_key_missing(void *field, char **args, int nargs);
static const char *conf_set_hash(void *field, char **args, int nargs);
static const char *conf_set_vnodes(void *field, char **args, int nargs);
static const char *conf_set_flag(void *field, char **args, int nargs);
static const char *conf_set_msec(void *field, char **args, int nargs);
static const char *conf_set_timeout(void *field, char **args, int nargs);
static const char *conf_set_head_bytes(void *field, char **args, int nargs);
static const char *conf_set_key_bytes(void *field, char **args, int nargs);
static const char *conf_set_ring_hold(void *field, char **args, int nargs);
static const char *conf_set_migrate_rate(void *field, char **args, int nargs);
static const char *conf_set_discovery(void *field, char **args, int nargs);
static const char *conf_add_backend(void *field, char **args, int nargs);
static const char *conf_add_route(void *field, char **args, int nargs);
static const char *conf_set_pool_idle_timeout(void *field, char **args, int nargs);
static const char *conf_set_pool_max_idle(void *field, char **args, int nargs);
static const char *conf_set_consul_address(void *field, char **args, int nargs);
static const char *conf_set_consul_service(void *field, char **args, int nargs);
static const char *conf_add_consul_tag(void *field, char **args, int nargs);
static const char *conf_set_consul_datacenter(void *field, char **args, int nargs);
static const char *conf_set_path(void *field, char **args, int nargs);
static const char *conf_set_consul_wait(void *field, char **args, int nargs);
static const char *conf_set_consul_retry_max(void *field, char **args, int nargs);
static const char *conf_set_send_proxy(void *field, char **args, int nargs);
static const char *conf_set_jwt_word(void *field, char **args, int nargs);
static const char *conf_set_jwt_leeway(void *field, char **args, int nargs);
static const char *conf_add_etcd_endpoint(void *field, char **args, int nargs);
static const char *conf_set_etcd_prefix(void *field, char **args, int nargs);
static const char *conf_set_etcd_username(void *field, char **args, int nargs);
static const char *conf_set_server_name(void *field, char **args, int nargs);
static const char *conf_set_zk_hosts(void *field, char **args, int nargs);
static const char *conf_set_zk_path(void *field, char **args, int nargs);
static const char *conf_set_zk_session_timeout(void *field, char **args, int nargs);

#define FIELD(f) offsetof(struct conf, f)
#define WHOLE    0 /* conf_add_* append to arrays and see their section's whole struct */
#define REP      CONF_REPEATABLE
#define REQ      CONF_REQUIRED
#define BLK      CONF_BLOCK

/* clang-format off */
static const struct conf_directive conf_directives[] = {
    /* name               args  parser                field                         default           flags */
    { "listen",            1, 3, conf_add_listen,       WHOLE,                        NULL,             REP | REQ },
    { "admin",             1, 1, conf_set_admin,        FIELD(admin),                 "127.0.0.1:9090", 0 },
    { "workers",           1, 1, conf_set_workers,      FIELD(workers),               "auto",           0 },
    { "key",               1, 1, conf_add_key,          WHOLE,                        "query:user",     REP },
    { "key_missing",       1, 1, conf_set_key_missing,  FIELD(key_missing),           "reject",         0 },
    { "hash",              1, 1, conf_set_hash,         FIELD(ring.algo),             "ring",           0 },
    { "vnodes",            1, 1, conf_set_vnodes,       FIELD(ring.vnodes),           "1000",           0 },
    { "retry_next",        1, 1, conf_set_flag,         FIELD(retry_next),            "on",             0 },
    { "down_hold",         1, 1, conf_set_msec,         FIELD(down_hold_ms),          "10s",            0 },
    { "connect_timeout",   1, 1, conf_set_timeout,      FIELD(connect_timeout_ms),    "3s",             0 },
    { "handshake_timeout", 1, 1, conf_set_timeout,      FIELD(handshake_timeout_ms),  "10s",            0 },
    { "max_head_bytes",    1, 1, conf_set_head_bytes,   FIELD(max_head_bytes),        "16k",            0 },
    { "max_key_bytes",     1, 1, conf_set_key_bytes,    FIELD(max_key_bytes),         "256",            0 },
    { "ring_hold",         1, 1, conf_set_ring_hold,    FIELD(ring_hold_ms),          "1s",             0 },
    { "migrate_rate",      1, 1, conf_set_migrate_rate, FIELD(migrate_rate),          "200",            0 },
    { "close_grace",       1, 1, conf_set_timeout,      FIELD(close_grace_ms),        "5s",             0 },
    { "drain_timeout",     1, 1, conf_set_timeout,      FIELD(drain_timeout_ms),      "30s",            0 },
    { "tls_certificate",   1, 1, conf_set_path,         FIELD(tls_certificate),       NULL,             0 },
    { "tls_certificate_key", 1, 1, conf_set_path,       FIELD(tls_certificate_key),   NULL,             0 },
    { "backend_tls",       1, 1, conf_set_flag,         FIELD(backend_tls),           "off",            0 },
    { "backend_ca_file",   1, 1, conf_set_path,         FIELD(backend_ca_file),       NULL,             0 },
    { "backend_tls_server_name", 1, 1, conf_set_server_name, FIELD(backend_tls_server_name), NULL,   0 },
    { "discovery",         1, 1, conf_set_discovery,    FIELD(discovery),             "static",         0 },
    { "backend",           2, 6, conf_add_backend,      WHOLE,                        NULL,             REP },
    { "consul",            0, 0, NULL,                  FIELD(consul),                NULL,             BLK },
    { "route",             2, 2, conf_add_route,        WHOLE,                        NULL,             REP },
    { "pool_idle_timeout", 1, 1, conf_set_pool_idle_timeout, FIELD(pool_idle_timeout_ms), "4s",      0 },
    { "pool_max_idle",     1, 1, conf_set_pool_max_idle, FIELD(pool_max_idle),        "64",             0 },
    { "send_proxy",        1, 1, conf_set_send_proxy,   FIELD(send_proxy),            "off",            0 },
    { "jwt_key_file",      1, 1, conf_set_path,         FIELD(jwt_key_file),          NULL,             0 },
    { "jwt_audience",      1, 1, conf_set_jwt_word,     FIELD(jwt_audience),          NULL,             0 },
    { "jwt_issuer",        1, 1, conf_set_jwt_word,     FIELD(jwt_issuer),            NULL,             0 },
    { "jwt_leeway",        1, 1, conf_set_jwt_leeway,   FIELD(jwt_leeway_ms),         "60s",            0 },
    { "etcd",              0, 0, NULL,                  FIELD(etcd),                  NULL,             BLK },
    { "state_file",        1, 1, conf_set_path,         FIELD(state_file),            NULL,             0 },
    { "zookeeper",         0, 0, NULL,                  FIELD(zookeeper),             NULL,             BLK },
};

#define CFIELD(f) offsetof(struct conf_consul, f)

/* The `consul { }` block; offsets are within struct conf_consul. */
static const struct conf_directive conf_consul_directives[] = {
    /* name               args  parser                     field                   default  flags */
    { "address",           1, 1, conf_set_consul_address,    CFIELD(address),        NULL,    0 },
    { "service",           1, 1, conf_set_consul_service,    CFIELD(service),        NULL,    REQ },
    { "tag",               1, 1, conf_add_consul_tag,        WHOLE,                  NULL,    REP },
    { "datacenter",        1, 1, conf_set_consul_datacenter, CFIELD(datacenter),     NULL,    0 },
    { "token_file",        1, 1, conf_set_path,              CFIELD(token_file),     NULL,    0 },
    { "ca_file",           1, 1, conf_set_path,              CFIELD(ca_file),        NULL,    0 },
    { "cert_file",         1, 1, conf_set_path,              CFIELD(cert_file),      NULL,    0 },
    { "key_file",          1, 1, conf_set_path,              CFIELD(key_file),       NULL,    0 },
    { "wait",              1, 1, conf_set_consul_wait,       CFIELD(wait_ms),        "5m",    0 },
    { "retry_max",         1, 1, conf_set_consul_retry_max,  CFIELD(retry_max_ms),   "1s",    0 },
    { "stale",             1, 1, conf_set_flag,              CFIELD(stale),          "on",    0 },
    { "register",          1, 1, conf_set_flag,              CFIELD(register_self),  "off",   0 },
};

#define EFIELD(f) offsetof(struct conf_etcd, f)

/* The `etcd { }` block; offsets are within struct conf_etcd. */
static const struct conf_directive conf_etcd_directives[] = {
    /* name               args  parser                     field                   default                  flags */
    { "endpoints",         1, 1, conf_add_etcd_endpoint,     WHOLE,                  "http://127.0.0.1:2379", REP },
    { "prefix",            1, 1, conf_set_etcd_prefix,       EFIELD(prefix),         NULL,                    REQ },
    { "ca_file",           1, 1, conf_set_path,              EFIELD(ca_file),        NULL,                    0 },
    { "cert_file",         1, 1, conf_set_path,              EFIELD(cert_file),      NULL,                    0 },
    { "key_file",          1, 1, conf_set_path,              EFIELD(key_file),       NULL,                    0 },
    { "username",          1, 1, conf_set_etcd_username,     EFIELD(username),       NULL,                    0 },
    { "password_file",     1, 1, conf_set_path,              EFIELD(password_file),  NULL,                    0 },
};

#define ZFIELD(f) offsetof(struct conf_zookeeper, f)

/* The `zookeeper { }` block; offsets are within struct conf_zookeeper. */
static const struct conf_directive conf_zookeeper_directives[] = {
    /* name               args  parser                      field                       default  flags */
    { "hosts",             1, 1, conf_set_zk_hosts,           ZFIELD(hosts),              NULL,    REQ },
    { "path",              1, 1, conf_set_zk_path,            ZFIELD(path),               NULL,    REQ },
    { "session_timeout",   1, 1, conf_set_zk_session_timeout, ZFIELD(session_timeout_ms), "10s",   0 },
};
/* clang-format on */

enum conf_section_id {
    CONF_SECTION_TOP = 0, /* the lines outside any block */
    CONF_SECTION_CONSUL,
    CONF_SECTION_ETCD,
    CONF_SECTION_ZOOKEEPER,
    CONF_SECTION_COUNT /* must stay last */
};

struct conf_parser;

/* A directive table: the top level, or a block named by a CONF_BLOCK row of the top level. */
struct conf_section {
    const char *name; /* the block's name; NULL for the top level */
    const struct conf_directive *directives;
    size_t ndirectives;
    int (*check)(struct conf_parser *p); /* after the block's defaults, on its line; or NULL */
};

static int conf_check_consul(struct conf_parser *p);
static int conf_check_etcd(struct conf_parser *p);

static const struct conf_section conf_sections[CONF_SECTION_COUNT] = {
    [CONF_SECTION_TOP] = { NULL, conf_directives, ARRAY_LEN(conf_directives), NULL },
    [CONF_SECTION_CONSUL] = { "consul", conf_consul_directives, ARRAY_LEN(conf_consul_directives),
                              conf_check_consul },
    [CONF_SECTION_ETCD] = { "etcd", conf_etcd_directives, ARRAY_LEN(conf_etcd_directives),
                            conf_check_etcd },
    [CONF_SECTION_ZOOKEEPER] = { "zookeeper", conf_zookeeper_directives,
                                 ARRAY_LEN(conf_zookeeper_directives), NULL },
};

_Static_assert(ARRAY_LEN(conf_directives) <= CONF_SECTION_MAX, "raise CONF_SECTION_MAX");
_Static_assert(ARRAY_LEN(conf_consul_directives) <= CONF_SECTION_MAX, "raise CONF_SECTION_MAX");
_Static_assert(ARRAY_LEN(conf_etcd_directives) <= CONF_SECTION_MAX, "raise CONF_SECTION_MAX");
_Static_assert(CONF_ENDPOINTS_MAX == 16 && CONF_PREFIX_MAX == 512, "update the etcd messages");
_Static_assert(ARRAY_LEN(conf_zookeeper_directives) <= CONF_SECTION_MAX, "raise CONF_SECTION_MAX");
_Static_assert(CONF_ZK_HOSTS == 16 && CONF_ZK_PATH_MAX == 1024, "update the zookeeper messages");

/* The range texts in the messages below. */
_Static_assert(RING_MAX_VNODES == 10000, "update the vnodes message");
_Static_assert(MEMBER_SET_MAX_WEIGHT == 1000, "update the backend weight message");
_Static_assert(CONF_CONSUL_MAX == 255 && CONF_TAGS_MAX == 16, "update the consul messages");

struct conf_parser {
    const char *file;        /* borrowed; for messages */
    unsigned line;           /* of the line being read */
    struct conf *conf;       /* owned until conf_parse() returns it */
    char *err;               /* CONF_ERR_LEN bytes */
    enum conf_section_id in; /* the section being read: the top level or an open block */
    size_t base;             /* offset of section IN's struct in struct conf */
    unsigned seen[CONF_SECTION_COUNT][CONF_SECTION_MAX]; /* line of the first use; 0 = not seen */
    unsigned jwt_rule_line;                              /* of the first `key jwt:...`; 0 = none */
};

/* ---- setters ------------------------------------------------------------- */

/* Grows *ARRAY of N elements of SIZE by one zeroed element. Returns it, or NULL on ENOMEM. */
static void *
conf_append(void **array, size_t n, size_t size)
{
    char *grown = realloc(*array, (n + 1) * size);

    if (grown == NULL) {
        return NULL;
    }
    *array = grown;
    memset(grown + n * size, 0, size);
    return grown + n * size;
}

static const char *
conf_add_listen(void *field, char **args, int nargs)
{
    struct conf *conf = field;
    struct conf_listen l = { 0 }, *slot;
    const char *what;

    for (int i = 1; i < nargs; i++) {
        bool *flag = strcmp(args[i], "tls") == 0              ? &l.tls
                     : strcmp(args[i], "proxy_protocol") == 0 ? &l.proxy_protocol
                                                              : NULL;

        if (flag == NULL) {
            return "takes flags tls and proxy_protocol after the address";
        }
        if (*flag) {
            return "repeats a flag";
        }
        *flag = true;
    }
    what = conf_value_addr(args[0], strlen(args[0]), &l.addr);
    if (what != NULL) {
        return what;
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        if (conf_value_addr_equal(&conf->listen[i].addr, &l.addr)) {
            free(l.addr.host);
            return "is a duplicate";
        }
    }
    slot = conf_append((void **)&conf->listen, conf->nlisten, sizeof(*slot));
    if (slot == NULL) {
        free(l.addr.host);
        return conf_value_enomem;
    }
    *slot = l;
    conf->nlisten++;
    return NULL;
}

static const char *
conf_set_admin(void *field, char **args, int nargs)
{
    struct conf_addr *admin = field;

    (void)nargs;
    if (strcmp(args[0], "off") == 0) {
        admin->host = NULL;
        admin->port = 0;
        return NULL;
    }
    return conf_value_addr(args[0], strlen(args[0]), admin);
}

static const char *
conf_set_workers(void *field, char **args, int nargs)
{
    uint64_t n = 0;

    (void)nargs;
    if (strcmp(args[0], "auto") != 0 &&
        conf_value_uint(args[0], strlen(args[0]), 1, CONF_WORKERS_MAX, &n) != NULL) {
        return "is not auto or a number in 1..64";
    }
    *(unsigned *)field = (unsigned)n;
    return NULL;
}

static bool
conf_key_rule_equal(const struct conf_key_rule *a, const struct conf_key_rule *b)
{
    if (a->source != b->source) {
        return false;
    }
    switch (a->source) {
    case CONF_KEY_PATH:
        return a->segment == b->segment;
    case CONF_KEY_HEADER: /* RFC 9110 s5.1: field names are case-insensitive */
        return strcasecmp(a->name, b->name) == 0;
    default:
        return strcmp(a->name, b->name) == 0;
    }
}

static const char *
conf_add_key(void *field, char **args, int nargs)
{
    struct conf *conf = field;
    struct conf_key_rule rule, *slot;
    const char *what = conf_value_key_rule(args[0], strlen(args[0]), &rule);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    for (size_t i = 0; i < conf->nkeys; i++) {
        if (conf_key_rule_equal(&conf->keys[i], &rule)) {
            free(rule.name);
            return "is a duplicate";
        }
    }
    slot = conf_append((void **)&conf->keys, conf->nkeys, sizeof(*slot));
    if (slot == NULL) {
        free(rule.name);
        return conf_value_enomem;
    }
    *slot = rule;
    conf->nkeys++;
    return NULL;
}

/* Returns the index of WORD in NAMES (N of them), or -1. */
static int
conf_pick(const char *word, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(word, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static const char *
conf_set_key_missing(void *field, char **args, int nargs)
{
    static const char *const names[] = {
        [CONF_KEY_MISSING_REJECT] = "reject",
        [CONF_KEY_MISSING_CLIENT_IP] = "client_ip",
    };
    int i = conf_pick(args[0], names, (int)ARRAY_LEN(names));

    (void)nargs;
    if (i < 0) {
        return "is not reject or client_ip";
    }
    *(enum conf_key_missing *)field = (enum conf_key_missing)i;
    return NULL;
}

static const char *
conf_set_hash(void *field, char **args, int nargs)
{
    static const char *const names[RING_ALGO_COUNT] = {
        [RING_ALGO_RING] = "ring",
        [RING_ALGO_RENDEZVOUS] = "rendezvous",
    };
    int i = conf_pick(args[0], names, RING_ALGO_COUNT);

    (void)nargs;
    if (i < 0) {
        return "is not ring or rendezvous";
    }
    *(enum ring_algo *)field = (enum ring_algo)i;
    return NULL;
}

static const char *
conf_set_vnodes(void *field, char **args, int nargs)
{
    uint64_t n;

    (void)nargs;
    if (conf_value_uint(args[0], strlen(args[0]), 1, RING_MAX_VNODES, &n) != NULL) {
        return "is not a number in 1..10000";
    }
    *(uint32_t *)field = (uint32_t)n;
    return NULL;
}

static const char *
conf_set_flag(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_value_flag(args[0], strlen(args[0]), field);
}

static const char *
conf_set_msec(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_value_msec(args[0], strlen(args[0]), field);
}

/* A duration that must not be 0: an expired-at-once timer is never what is meant. */
static const char *
conf_set_timeout(void *field, char **args, int nargs)
{
    uint64_t ms;
    const char *what = conf_value_msec(args[0], strlen(args[0]), &ms);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    if (ms == 0) {
        return "must be longer than 0";
    }
    *(uint64_t *)field = ms;
    return NULL;
}

static const char *
conf_set_head_bytes(void *field, char **args, int nargs)
{
    uint64_t n;
    const char *what = conf_value_size(args[0], strlen(args[0]), &n);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    if (n < 1024 || n > 1024 * 1024) {
        return "is not a size in 1k..1m";
    }
    *(size_t *)field = (size_t)n;
    return NULL;
}

static const char *
conf_set_key_bytes(void *field, char **args, int nargs)
{
    uint64_t n;

    (void)nargs;
    if (conf_value_uint(args[0], strlen(args[0]), 1, 4096, &n) != NULL) {
        return "is not a number in 1..4096";
    }
    *(size_t *)field = (size_t)n;
    return NULL;
}

/*
 * A duration in MIN_MS..MAX_MS into *OUT. TOO_SHORT and TOO_LONG are the
 * phrases for values outside ("is longer than 10m"); TOO_SHORT may be NULL
 * when MIN_MS is 0.
 */
static const char *
conf_msec_between(const char *word, uint64_t min_ms, uint64_t max_ms, const char *too_short,
                  const char *too_long, uint64_t *out)
{
    uint64_t ms;
    const char *what = conf_value_msec(word, strlen(word), &ms);

    if (what != NULL) {
        return what;
    }
    if (ms < min_ms) {
        return too_short;
    }
    if (ms > max_ms) {
        return too_long;
    }
    *out = ms;
    return NULL;
}

/* 0 (publish every change at once) up to a minute: a longer hold only delays recovery. */
static const char *
conf_set_ring_hold(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_msec_between(args[0], 0, 60 * 1000, NULL, "is longer than 1m", field);
}

/* Misplaced connections closed per second by the whole proxy; 0 = never migrate. */
static const char *
conf_set_migrate_rate(void *field, char **args, int nargs)
{
    uint64_t n;

    (void)nargs;
    if (conf_value_uint(args[0], strlen(args[0]), 0, 100000, &n) != NULL) {
        return "is not a number in 0..100000";
    }
    *(unsigned *)field = (unsigned)n;
    return NULL;
}

static const char *
conf_set_discovery(void *field, char **args, int nargs)
{
    static const char *const names[CONF_DISCOVERY_COUNT] = {
        [CONF_DISCOVERY_STATIC] = "static",
        [CONF_DISCOVERY_CONSUL] = "consul",
        [CONF_DISCOVERY_ETCD] = "etcd",
        [CONF_DISCOVERY_ZOOKEEPER] = "zookeeper",
    };
    int i = conf_pick(args[0], names, CONF_DISCOVERY_COUNT);

    (void)nargs;
    if (i < 0) {
        return "is not a supported source (use static, consul, etcd or zookeeper)";
    }
    *(enum conf_discovery *)field = (enum conf_discovery)i;
    return NULL;
}

/*
 * A member id or a Consul tag: 1 or more visible ASCII bytes (they show up in
 * logs, JSON, headers and query strings).
 */
static bool
conf_is_visible(const char *id)
{
    if (id[0] == '\0') {
        return false;
    }
    for (const char *c = id; *c != '\0'; c++) {
        if (*c < 0x21 || *c > 0x7e) {
            return false;
        }
    }
    return true;
}

/*
 * Parses backend's options after the address (ARGS, NARGS words): "weight N"
 * and "public_url URL", each at most once, in any order.
 */
static const char *
conf_backend_options(char **args, int nargs, struct conf_backend *b)
{
    bool weight_seen = false;
    uint64_t n;

    b->weight = 1;
    for (int i = 0; i < nargs; i += 2) {
        bool weight = strcmp(args[i], "weight") == 0;

        if ((!weight && strcmp(args[i], "public_url") != 0) || i + 1 == nargs) {
            return "has words after the address other than \"weight N\" and \"public_url URL\"";
        }
        if (weight ? weight_seen : b->public_url != NULL) {
            return weight ? "repeats weight" : "repeats public_url";
        }
        if (!weight) {
            const char *what =
                conf_value_public_url(args[i + 1], strlen(args[i + 1]), &b->public_url);

            if (what == conf_value_enomem) {
                return what;
            }
            if (what != NULL) {
                return "has a public_url that is not http://HOST[:PORT][/PATH] or https://... "
                       "(no query or fragment)";
            }
            continue;
        }
        weight_seen = true;
        if (conf_value_uint(args[i + 1], strlen(args[i + 1]), 1, MEMBER_SET_MAX_WEIGHT, &n) !=
            NULL) {
            return "has a weight that is not a number in 1..1000";
        }
        b->weight = (uint32_t)n;
    }
    return NULL;
}

static const char *
conf_add_backend(void *field, char **args, int nargs)
{
    struct conf *conf = field;
    struct conf_backend b = { 0 }, *slot;
    const char *what;

    if (!conf_is_visible(args[0])) {
        return "has a bad id (use visible ASCII characters)";
    }
    for (size_t i = 0; i < conf->nbackends; i++) {
        if (strcmp(conf->backends[i].id, args[0]) == 0) {
            return "has a duplicate id";
        }
    }
    what = conf_value_addr(args[1], strlen(args[1]), &b.addr);
    if (what == NULL) {
        what = conf_backend_options(args + 2, nargs - 2, &b);
    }
    if (what != NULL) {
        free(b.addr.host);
        free(b.public_url);
        return what;
    }
    b.id = strdup(args[0]);
    b.address = conf_value_addr_format(&b.addr);
    slot = conf_append((void **)&conf->backends, conf->nbackends, sizeof(*slot));
    if (b.id == NULL || b.address == NULL || slot == NULL) {
        free(b.id);
        free(b.address);
        free(b.addr.host);
        free(b.public_url);
        return conf_value_enomem;
    }
    *slot = b;
    conf->nbackends++;
    return NULL;
}

/* ---- routes and the backend pool --------------------------------------- */

/*
 * `route PATH proxy|redirect`: PATH is a path prefix ("/" then RFC 3986 path
 * bytes); the same prefix twice is refused, whatever its mode.
 */
static const char *
conf_add_route(void *field, char **args, int nargs)
{
    static const char *const names[] = {
        [CONF_ROUTE_PROXY] = "proxy",
        [CONF_ROUTE_REDIRECT] = "redirect",
    };
    struct conf *conf = field;
    struct conf_route *slot;
    size_t len = strlen(args[0]);
    int mode = conf_pick(args[1], names, (int)ARRAY_LEN(names));

    (void)nargs;
    if (args[0][0] != '/' || len > CONF_ROUTE_PREFIX_MAX) {
        return "has a path that does not start with \"/\" (or is longer than 1024 bytes)";
    }
    for (size_t i = 0; i < len; i++) {
        char c = args[0][i];

        if (c == '?' || c == '#' || c < 0x21 || c > 0x7e) {
            return "has a path with a byte that is not allowed (no query, fragment or space)";
        }
    }
    if (mode < 0) {
        return "has a mode that is not proxy or redirect";
    }
    for (size_t i = 0; i < conf->nroutes; i++) {
        if (strcmp(conf->routes[i].prefix, args[0]) == 0) {
            return "repeats a path given on an earlier route line";
        }
    }
    slot = conf_append((void **)&conf->routes, conf->nroutes, sizeof(*slot));
    if (slot == NULL || (slot->prefix = strdup(args[0])) == NULL) {
        return conf_value_enomem;
    }
    slot->prefix_len = len;
    slot->mode = (enum conf_route_mode)mode;
    conf->nroutes++;
    return NULL;
}

/* Keep it below the servers' own keep-alive timeouts (Node 5s, nginx 75s, gunicorn 2s). */
static const char *
conf_set_pool_idle_timeout(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_msec_between(args[0], 1, 60 * 60 * 1000, "must be longer than 0",
                             "is longer than 1h", field);
}

/* 0 turns pooling off: every request then connects anew. */
static const char *
conf_set_pool_max_idle(void *field, char **args, int nargs)
{
    uint64_t n;

    (void)nargs;
    if (conf_value_uint(args[0], strlen(args[0]), 0, 10000, &n) != NULL) {
        return "is not a number in 0..10000";
    }
    *(unsigned *)field = (unsigned)n;
    return NULL;
}

/* ---- the consul block ------------------------------------------------------ */

/* Sets the string *FIELD (NULL until now: seen[] refuses a second line) to a copy of WORD. */
static const char *
conf_set_string(void *field, const char *word)
{
    char *copy = strdup(word);

    if (copy == NULL) {
        return conf_value_enomem;
    }
    *(char **)field = copy;
    return NULL;
}

/* A file name, only stored: conf does no I/O, discovery opens it when it starts. */
static const char *
conf_set_path(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_set_string(field, args[0]);
}

static const char *
conf_set_consul_address(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_value_base_url(args[0], strlen(args[0]), field);
}

/* 1..255 letters, digits, "-", "_", and "." when DOT (service names, not datacenters). */
static bool
conf_is_consul_name(const char *s, bool dot)
{
    size_t n = strlen(s);

    if (n == 0 || n > CONF_CONSUL_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (dot && c == '.'))) {
            return false;
        }
    }
    return true;
}

static const char *
conf_set_consul_service(void *field, char **args, int nargs)
{
    (void)nargs;
    if (!conf_is_consul_name(args[0], true)) {
        return "is not a service name (letters, digits, -, _ and . only; at most 255)";
    }
    return conf_set_string(field, args[0]);
}

static const char *
conf_set_consul_datacenter(void *field, char **args, int nargs)
{
    (void)nargs;
    if (!conf_is_consul_name(args[0], false)) {
        return "is not a datacenter name (letters, digits, - and _ only; at most 255)";
    }
    return conf_set_string(field, args[0]);
}

/* Repeatable: the health query keeps instances that carry every tag. */
static const char *
conf_add_consul_tag(void *field, char **args, int nargs)
{
    struct conf_consul *consul = field;
    char **slot;

    (void)nargs;
    if (!conf_is_visible(args[0]) || strlen(args[0]) > CONF_CONSUL_MAX) {
        return "is not a tag (visible ASCII only; at most 255)";
    }
    for (size_t i = 0; i < consul->ntags; i++) {
        /* Compared exactly: refusing "V2" after "v2" would be wrong if Consul told them apart. */
        if (strcmp(consul->tags[i], args[0]) == 0) {
            return "is a duplicate";
        }
    }
    if (consul->ntags == CONF_TAGS_MAX) {
        return "is one tag too many (at most 16)";
    }
    slot = conf_append((void **)&consul->tags, consul->ntags, sizeof(*slot));
    if (slot == NULL || (*slot = strdup(args[0])) == NULL) {
        return conf_value_enomem;
    }
    consul->ntags++;
    return NULL;
}

/* The blocking-query wait: Consul caps it at 10m; below 1s the watch would spin. */
static const char *
conf_set_consul_wait(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_msec_between(args[0], 1000, 10 * 60 * 1000, "is shorter than 1s",
                             "is longer than 10m", field);
}

/* The cap of the error back-off. */
static const char *
conf_set_consul_retry_max(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_msec_between(args[0], 100, 60 * 1000, "is shorter than 100ms", "is longer than 1m",
                             field);
}

/* ---- the etcd block -------------------------------------------------------- */

/* Repeatable: the endpoints of one cluster, tried in turn when one fails. */
static const char *
conf_add_etcd_endpoint(void *field, char **args, int nargs)
{
    struct conf_etcd *etcd = field;
    char *url = NULL, **slot;
    const char *what = conf_value_base_url(args[0], strlen(args[0]), &url);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    for (size_t i = 0; i < etcd->nendpoints; i++) {
        if (strcmp(etcd->endpoints[i], url) == 0) {
            free(url);
            return "is a duplicate";
        }
    }
    if (etcd->nendpoints == CONF_ENDPOINTS_MAX) {
        free(url);
        return "is one endpoint too many (at most 16)";
    }
    slot = conf_append((void **)&etcd->endpoints, etcd->nendpoints, sizeof(*slot));
    if (slot == NULL) {
        free(url);
        return conf_value_enomem;
    }
    *slot = url;
    etcd->nendpoints++;
    return NULL;
}

/* The key prefix: visible ASCII (it shows up in logs and /ring), 1..512 bytes. */
static const char *
conf_set_etcd_prefix(void *field, char **args, int nargs)
{
    (void)nargs;
    if (!conf_is_visible(args[0]) || strlen(args[0]) > CONF_PREFIX_MAX) {
        return "is not a key prefix (visible ASCII only; at most 512 bytes)";
    }
    return conf_set_string(field, args[0]);
}

static const char *
conf_set_etcd_username(void *field, char **args, int nargs)
{
    (void)nargs;
    if (!conf_is_visible(args[0]) || strlen(args[0]) > CONF_CONSUL_MAX) {
        return "is not a user name (visible ASCII only; at most 255)";
    }
    return conf_set_string(field, args[0]);
}

/* ---- the zookeeper block --------------------------------------------------- */

/*
 * The connect string handed to zookeeper_init: 1..16 comma-separated
 * "host:port" servers, each checked like a listen address. ZooKeeper's
 * "/chroot" suffix is refused: `path` names the whole node instead.
 */
static const char *
conf_set_zk_hosts(void *field, char **args, int nargs)
{
    struct conf_addr seen[CONF_ZK_HOSTS];
    const char *s = args[0], *what = NULL;
    size_t n = 0;

    (void)nargs;
    if (strchr(s, '/') != NULL) {
        return "has a chroot suffix (give the whole node in \"path\" instead)";
    }
    while (what == NULL) {
        const char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);

        if (n == CONF_ZK_HOSTS) {
            what = "lists more than 16 servers";
            break;
        }
        if (len == 0) {
            what = "has an empty entry (write host:port,host:port)";
            break;
        }
        what = conf_value_addr(s, len, &seen[n]);
        if (what != NULL) {
            break;
        }
        for (size_t i = 0; i < n && what == NULL; i++) {
            if (conf_value_addr_equal(&seen[i], &seen[n])) {
                what = "lists a server twice";
            }
        }
        n++;
        if (comma == NULL) {
            break;
        }
        s = comma + 1;
    }
    for (size_t i = 0; i < n; i++) {
        free(seen[i].host);
    }
    return what != NULL ? what : conf_set_string(field, args[0]);
}

/*
 * A ZooKeeper node path as the server accepts it (PathUtils.validatePath):
 * "/" then segments of visible ASCII, no empty, "." or ".." segment, no
 * trailing "/". The root itself is refused: its children are ZooKeeper's own.
 */
static const char *
conf_set_zk_path(void *field, char **args, int nargs)
{
    const char *s = args[0];
    size_t len = strlen(s);

    (void)nargs;
    if (s[0] != '/') {
        return "does not start with \"/\"";
    }
    if (len == 1) {
        return "is the root (give the node the backends register under)";
    }
    if (len > CONF_ZK_PATH_MAX) {
        return "is longer than 1024 bytes";
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return "has a byte that is not visible ASCII";
        }
    }
    for (const char *seg = s + 1;; seg = strchr(seg, '/') + 1) {
        size_t seg_len = strcspn(seg, "/");

        if (seg_len == 0 || (seg_len == 1 && seg[0] == '.') ||
            (seg_len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return "has an empty, \".\" or \"..\" segment (or a trailing \"/\")";
        }
        if (seg[seg_len] == '\0') {
            break;
        }
    }
    return conf_set_string(field, s);
}

/* Asked of the server, which clamps it to 2..20 ticks (4s..40s with the default tickTime). */
static const char *
conf_set_zk_session_timeout(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_msec_between(args[0], 1000, 10 * 60 * 1000, "is shorter than 1s",
                             "is longer than 10m", field);
}

/* ---- TLS --------------------------------------------------------------------- */

/* The name a backend's certificate must carry (and the SNI sent): a DNS name, as RFC 6066 wants. */
static const char *
conf_set_server_name(void *field, char **args, int nargs)
{
    (void)nargs;
    if (!conf_value_is_hostname(args[0], strlen(args[0]))) {
        return "is not a host name (letters, digits, hyphens and dots)";
    }
    return conf_set_string(field, args[0]);
}

/* ---- edge: send_proxy, jwt_* (DESIGN §12) -------------------------------- */

static const char *
conf_set_send_proxy(void *field, char **args, int nargs)
{
    static const char *const names[] = {
        [CONF_SEND_PROXY_OFF] = "off",
        [CONF_SEND_PROXY_V1] = "v1",
        [CONF_SEND_PROXY_V2] = "v2",
    };
    int i = conf_pick(args[0], names, (int)ARRAY_LEN(names));

    (void)nargs;
    if (i < 0) {
        return "is not off, v1 or v2";
    }
    *(enum conf_send_proxy *)field = (enum conf_send_proxy)i;
    return NULL;
}

/* jwt_audience, jwt_issuer: compared byte for byte with the token's string claim. */
static const char *
conf_set_jwt_word(void *field, char **args, int nargs)
{
    (void)nargs;
    if (!conf_is_visible(args[0]) || strlen(args[0]) > 255) {
        return "is not 1..255 visible ASCII characters";
    }
    return conf_set_string(field, args[0]);
}

/* Clock skew allowed on exp and nbf: more than 10 minutes would make exp meaningless. */
static const char *
conf_set_jwt_leeway(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_msec_between(args[0], 0, 10 * 60 * 1000, NULL, "is longer than 10m", field);
}

/* ---- lines, words and messages ------------------------------------------- */

static int conf_error(struct conf_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes "FILE:LINE: " and the message into p->err. Returns -1. */
static int
conf_error(struct conf_parser *p, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->err, CONF_ERR_LEN, "%s:%u: ", p->file, p->line);

    if (n >= 0 && n < CONF_ERR_LEN) {
        va_start(ap, fmt);
        vsnprintf(p->err + n, CONF_ERR_LEN - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Writes the NARGS words of ARGS joined by spaces into OUT, cut to CONF_QUOTE_MAX bytes + "...". */
static void
conf_quote(char *const *args, int nargs, char out[CONF_QUOTE_MAX + 4])
{
    size_t n = 0;

    out[0] = '\0';
    for (int i = 0; i < nargs && i < CONF_MAX_ARGS && n <= CONF_QUOTE_MAX; i++) {
        n += (size_t)snprintf(out + n, CONF_QUOTE_MAX + 1 - n, "%s%s", i > 0 ? " " : "", args[i]);
    }
    if (n > CONF_QUOTE_MAX || nargs > CONF_MAX_ARGS) {
        strcpy(out + (n > CONF_QUOTE_MAX ? CONF_QUOTE_MAX : n), "...");
    }
}

/* Sets *START and *LEN to the next line (without its LF). Returns false at the end of the text. */
static bool
conf_next_line(struct conf_cursor *c, const char **start, size_t *len)
{
    const char *lf;

    if (c->pos >= c->len) {
        return false;
    }
    *start = c->text + c->pos;
    lf = memchr(*start, '\n', c->len - c->pos);
    *len = lf == NULL ? c->len - c->pos : (size_t)(lf - *start);
    c->pos += *len + 1;
    c->line++;
    return true;
}

static bool
conf_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Splits LINE (LEN <= CONF_LINE_MAX bytes) into W's words, dropping a "#" comment. */
static void
conf_split(struct conf_words *w, const char *line, size_t len)
{
    char *c = w->buf, *end;

    memcpy(w->buf, line, len);
    w->buf[len] = '\0';
    end = memchr(w->buf, '#', len);
    if (end != NULL) {
        *end = '\0';
    }
    w->nargs = 0;
    w->open_at = w->close_at = -1;
    for (;;) {
        while (conf_is_space(*c)) {
            c++;
        }
        if (*c == '\0') {
            return;
        }
        if (w->nargs < CONF_MAX_ARGS) {
            w->args[w->nargs] = c;
        }
        if (w->open_at < 0 && c[0] == '{' && (c[1] == '\0' || conf_is_space(c[1]))) {
            w->open_at = w->nargs;
        }
        if (w->close_at < 0 && c[0] == '}' && (c[1] == '\0' || conf_is_space(c[1]))) {
            w->close_at = w->nargs;
        }
        w->nargs++;
        while (*c != '\0' && !conf_is_space(*c)) {
            c++;
        }
        if (*c != '\0') {
            *c++ = '\0';
        }
    }
}

/* Checks LINE's bytes: no control byte but tab and CR, at most CONF_LINE_MAX of them. */
static int
conf_check_bytes(struct conf_parser *p, const char *line, size_t len)
{
    if (len > CONF_LINE_MAX) {
        return conf_error(p, "line is longer than %d bytes", CONF_LINE_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            return conf_error(p, "control byte 0x%02x (only tab, CR and LF may appear)", c);
        }
    }
    return 0;
}

/* Checks where W's braces stand. OPEN_LINE is the line of the open block's "{", or 0. */
static int
conf_check_braces(struct conf_parser *p, const struct conf_words *w, unsigned open_line,
                  const char *open_name)
{
    char name[CONF_QUOTE_MAX + 4];

    if (w->close_at >= 0) {
        if (w->nargs != 1) {
            return conf_error(p, "\"}\" must be alone on its line");
        }
        if (open_line == 0) {
            return conf_error(p, "stray \"}\" (no block is open)");
        }
    }
    if (w->open_at >= 0) {
        if (w->open_at != w->nargs - 1) {
            return conf_error(p, "\"{\" must be the last word on its line");
        }
        if (w->open_at == 0) {
            return conf_error(p, "\"{\" needs a block name before it");
        }
        if (open_line != 0) {
            conf_quote(w->args, 1, name);
            return conf_error(p, "nested block \"%s\" (block \"%s\" from line %u is still open)",
                              name, open_name, open_line);
        }
    }
    return 0;
}

/*
 * The syntax pass: bytes, line lengths and braces, before any directive is
 * looked at. Leaves p->line on the last line.
 */
static int
conf_check_syntax(struct conf_parser *p, struct conf_words *w, const char *text, size_t len)
{
    struct conf_cursor cur = { .text = text, .len = len };
    char open_name[CONF_QUOTE_MAX + 4] = "";
    unsigned open_line = 0;
    const char *line;
    size_t n;

    while (conf_next_line(&cur, &line, &n)) {
        p->line = cur.line;
        if (conf_check_bytes(p, line, n) != 0) {
            return -1;
        }
        conf_split(w, line, n);
        if (conf_check_braces(p, w, open_line, open_name) != 0) {
            return -1;
        }
        if (w->open_at >= 0) {
            open_line = cur.line;
            conf_quote(w->args, 1, open_name);
        } else if (w->close_at >= 0) {
            open_line = 0;
        }
    }
    if (open_line != 0) {
        p->line = open_line;
        return conf_error(p, "unterminated block \"%s\" (no \"}\")", open_name);
    }
    p->line = cur.line > 0 ? cur.line : 1;
    return 0;
}

/* ---- directives ---------------------------------------------------------- */

static const struct conf_directive *
conf_find(const struct conf_section *section, const char *name)
{
    for (size_t i = 0; i < section->ndirectives; i++) {
        if (strcmp(section->directives[i].name, name) == 0) {
            return &section->directives[i];
        }
    }
    return NULL;
}

/* The line where NAME of section ID was first used, or 0. */
static unsigned
conf_seen_line(const struct conf_parser *p, enum conf_section_id id, const char *name)
{
    const struct conf_section *section = &conf_sections[id];
    const struct conf_directive *d = conf_find(section, name);

    assert(d != NULL);
    return p->seen[id][d - section->directives];
}

static int
conf_error_nargs(struct conf_parser *p, const struct conf_directive *d, int got)
{
    if (d->min_args == d->max_args) {
        return conf_error(p, "\"%s\" takes %d argument%s, got %d", d->name, d->min_args,
                          d->min_args == 1 ? "" : "s", got);
    }
    return conf_error(p, "\"%s\" takes %d to %d arguments, got %d", d->name, d->min_args,
                      d->max_args, got);
}

/* W's first word names nothing in the open section: says where it belongs, if anywhere. */
static int
conf_error_unknown(struct conf_parser *p, const struct conf_words *w)
{
    const char *in = conf_sections[p->in].name;
    char name[CONF_QUOTE_MAX + 4];

    conf_quote(w->args, 1, name);
    for (size_t i = 0; i < CONF_SECTION_COUNT; i++) {
        const char *other = conf_sections[i].name;

        if (i == p->in || conf_find(&conf_sections[i], w->args[0]) == NULL) {
            continue;
        }
        if (other == NULL) {
            return conf_error(p, "\"%s\" is a top-level directive (not allowed in block \"%s\")",
                              name, in);
        }
        return conf_error(p, "\"%s\" is allowed only in block \"%s\"", name, other);
    }
    if (in != NULL) {
        return conf_error(p, "unknown directive \"%s\" in block \"%s\"", name, in);
    }
    if (w->open_at >= 0) {
        return conf_error(p, "unknown block \"%s\"", name);
    }
    return conf_error(p, "unknown directive \"%s\"", name);
}

/* Runs D's setter on ARGS (NARGS words, the directive's name first) and words its complaint. */
static int
conf_set(struct conf_parser *p, const struct conf_directive *d, char **args, int nargs)
{
    char text[CONF_QUOTE_MAX + 4];
    const char *what = d->set((char *)p->conf + p->base + d->offset, args + 1, nargs - 1);

    if (what == NULL) {
        if (d->set == conf_add_key && p->jwt_rule_line == 0 &&
            p->conf->keys[p->conf->nkeys - 1].source == CONF_KEY_JWT) {
            p->jwt_rule_line = p->line; /* conf_check_jwt() reports on it */
        }
        return 0;
    }
    if (what == conf_value_enomem) {
        return conf_error(p, "%s", what);
    }
    conf_quote(args, nargs, text);
    return conf_error(p, "\"%s\" %s", text, what);
}

/* Enters the block that row D of the top level opens. */
static void
conf_enter(struct conf_parser *p, const struct conf_directive *d)
{
    for (size_t i = 1; i < CONF_SECTION_COUNT; i++) {
        if (strcmp(conf_sections[i].name, d->name) == 0) {
            p->in = (enum conf_section_id)i;
            p->base = d->offset;
            return;
        }
    }
    assert(!"a CONF_BLOCK row without a section");
}

/* Applies one line's words W (at least one) to p->conf. */
static int
conf_apply(struct conf_parser *p, struct conf_words *w)
{
    const struct conf_section *in = &conf_sections[p->in];
    const struct conf_directive *d = conf_find(in, w->args[0]);
    bool opens = w->open_at >= 0;
    int nargs = w->nargs - (opens ? 2 : 1);
    unsigned *seen;

    if (d == NULL) {
        return conf_error_unknown(p, w);
    }
    if (opens && !(d->flags & CONF_BLOCK)) {
        return conf_error(p, "\"%s\" does not take a block", d->name);
    }
    if (!opens && (d->flags & CONF_BLOCK)) {
        return conf_error(p, "\"%s\" is a block (write \"%s {\", its lines, then \"}\")", d->name,
                          d->name);
    }
    if (nargs < d->min_args || nargs > d->max_args) {
        return conf_error_nargs(p, d, nargs);
    }
    seen = &p->seen[p->in][d - in->directives];
    if (!(d->flags & CONF_REPEATABLE) && *seen != 0) {
        return conf_error(p, "\"%s\" is a duplicate (first on line %u)", d->name, *seen);
    }
    if (*seen == 0) {
        *seen = p->line;
    }
    if (opens) {
        conf_enter(p, d);
        return 0;
    }
    if (conf_set(p, d, w->args, w->nargs) != 0) {
        return -1;
    }
    if (d->set == conf_add_listen) {
        p->conf->listen[p->conf->nlisten - 1].line = p->line; /* for conf_check_tls */
    }
    return 0;
}

/* The directive pass over every line; the syntax pass has vetted bytes and braces. */
static int
conf_apply_lines(struct conf_parser *p, struct conf_words *w, const char *text, size_t len)
{
    struct conf_cursor cur = { .text = text, .len = len };
    const char *line;
    size_t n;

    while (conf_next_line(&cur, &line, &n)) {
        p->line = cur.line;
        conf_split(w, line, n);
        if (w->nargs == 0) {
            continue;
        }
        if (w->close_at == 0) { /* the syntax pass saw to it that a block is open */
            p->in = CONF_SECTION_TOP;
            p->base = 0;
            continue;
        }
        if (conf_apply(p, w) != 0) {
            return -1;
        }
    }
    p->line = cur.line > 0 ? cur.line : 1;
    return 0;
}

/*
 * After the last line, for section ID (whose struct is at p->base): the
 * required directives, then each default through its own setter. Errors are
 * reported on p->line.
 */
static int
conf_finish_section(struct conf_parser *p, enum conf_section_id id)
{
    const struct conf_section *section = &conf_sections[id];

    for (size_t i = 0; i < section->ndirectives; i++) {
        const struct conf_directive *d = &section->directives[i];
        char word[32];
        char *args[2] = { (char *)d->name, word };

        if (p->seen[id][i] != 0) {
            continue;
        }
        if ((d->flags & CONF_REQUIRED) && section->name != NULL) {
            return conf_error(p, "no \"%s\" directive in block \"%s\" (it is required)", d->name,
                              section->name);
        }
        if (d->flags & CONF_REQUIRED) {
            return conf_error(p, "no \"%s\" directive (at least one is required)", d->name);
        }
        if (d->fallback == NULL) {
            continue;
        }
        snprintf(word, sizeof(word), "%s", d->fallback);
        if (conf_set(p, d, args, 2) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The consul block, on its "{" line: TLS client files come in pairs; registration needs admin. */
static int
conf_check_consul(struct conf_parser *p)
{
    const struct conf_consul *consul = &p->conf->consul;

    if ((consul->cert_file == NULL) != (consul->key_file == NULL)) {
        return conf_error(p, "block \"consul\" has %s but no %s (give both or neither)",
                          consul->cert_file != NULL ? "cert_file" : "key_file",
                          consul->cert_file != NULL ? "key_file" : "cert_file");
    }
    if (consul->register_self && p->conf->admin.host == NULL) {
        p->line = conf_seen_line(p, CONF_SECTION_CONSUL, "register");
        return conf_error(p, "\"register on\" needs the admin listener (the Consul check polls "
                             "/healthz; admin is off)");
    }
    return 0;
}

/* The etcd block, on its "{" line: TLS client files and credentials come in pairs. */
static int
conf_check_etcd(struct conf_parser *p)
{
    const struct conf_etcd *etcd = &p->conf->etcd;

    if ((etcd->cert_file == NULL) != (etcd->key_file == NULL)) {
        return conf_error(p, "block \"etcd\" has %s but no %s (give both or neither)",
                          etcd->cert_file != NULL ? "cert_file" : "key_file",
                          etcd->cert_file != NULL ? "key_file" : "cert_file");
    }
    if ((etcd->username == NULL) != (etcd->password_file == NULL)) {
        return conf_error(p, "block \"etcd\" has %s but no %s (give both or neither)",
                          etcd->username != NULL ? "username" : "password_file",
                          etcd->username != NULL ? "password_file" : "username");
    }
    return 0;
}

/* The source names of the discovery line, for messages. */
static const char *const conf_discovery_names[CONF_DISCOVERY_COUNT] = {
    [CONF_DISCOVERY_STATIC] = "static",
    [CONF_DISCOVERY_CONSUL] = "consul",
    [CONF_DISCOVERY_ETCD] = "etcd",
    [CONF_DISCOVERY_ZOOKEEPER] = "zookeeper",
};

/* Each source that has a block: the block must be there with it, and only with it. */
static int
conf_check_source_block(struct conf_parser *p, enum conf_discovery source)
{
    const char *name = conf_discovery_names[source];
    unsigned block = conf_seen_line(p, CONF_SECTION_TOP, name);

    if (p->conf->discovery != source && block != 0) {
        p->line = block;
        return conf_error(p, "the %s block needs \"discovery %s\" (discovery is %s)", name, name,
                          conf_discovery_names[p->conf->discovery]);
    }
    if (p->conf->discovery == source && block == 0) {
        p->line = conf_seen_line(p, CONF_SECTION_TOP, "discovery");
        return conf_error(p, "\"discovery %s\" needs a \"%s {\" ... \"}\" block", name, name);
    }
    return 0;
}

/* The member source and its lines must agree: never accept a block or a line that does nothing. */
static int
conf_check_discovery(struct conf_parser *p)
{
    unsigned backend = conf_seen_line(p, CONF_SECTION_TOP, "backend");
    unsigned state_file = conf_seen_line(p, CONF_SECTION_TOP, "state_file");

    if (conf_check_source_block(p, CONF_DISCOVERY_CONSUL) != 0 ||
        conf_check_source_block(p, CONF_DISCOVERY_ETCD) != 0 ||
        conf_check_source_block(p, CONF_DISCOVERY_ZOOKEEPER) != 0) {
        return -1;
    }
    if (p->conf->discovery == CONF_DISCOVERY_STATIC) {
        if (state_file != 0) {
            p->line = state_file;
            return conf_error(p, "state_file is used only with a discovery source (discovery is "
                                 "static: the members are in this file)");
        }
        return 0;
    }
    if (backend != 0) {
        p->line = backend;
        return conf_error(p, "backend lines are used only with \"discovery static\"");
    }
    return 0;
}

/* Reports on the line of NAME (top level): "NAME" is of no use without WANTED. */
static int
conf_error_unused(struct conf_parser *p, const char *name, const char *wanted)
{
    p->line = conf_seen_line(p, CONF_SECTION_TOP, name);
    return conf_error(p, "\"%s\" is used only with %s", name, wanted);
}

/*
 * TLS lines must agree with the listeners and each other: a `tls` listener
 * needs a certificate and its key; a certificate, key or backend TLS setting
 * that nothing would use is refused rather than silently ignored.
 */
static int
conf_check_tls(struct conf_parser *p)
{
    struct conf *conf = p->conf;
    const struct conf_listen *tls = NULL;

    conf->tls_certificate_line = conf_seen_line(p, CONF_SECTION_TOP, "tls_certificate");
    conf->tls_certificate_key_line = conf_seen_line(p, CONF_SECTION_TOP, "tls_certificate_key");
    conf->backend_ca_file_line = conf_seen_line(p, CONF_SECTION_TOP, "backend_ca_file");

    for (size_t i = 0; i < conf->nlisten && tls == NULL; i++) {
        tls = conf->listen[i].tls ? &conf->listen[i] : NULL;
    }
    if (tls != NULL && (conf->tls_certificate == NULL || conf->tls_certificate_key == NULL)) {
        p->line = tls->line;
        return conf_error(p, "listener %s:%u is flagged tls but there is no \"%s\" directive",
                          tls->addr.host, tls->addr.port,
                          conf->tls_certificate == NULL ? "tls_certificate"
                                                        : "tls_certificate_key");
    }
    if (tls == NULL && conf->tls_certificate != NULL) {
        return conf_error_unused(p, "tls_certificate", "a listener flagged tls");
    }
    if (tls == NULL && conf->tls_certificate_key != NULL) {
        return conf_error_unused(p, "tls_certificate_key", "a listener flagged tls");
    }
    if (!conf->backend_tls && conf->backend_ca_file != NULL) {
        return conf_error_unused(p, "backend_ca_file", "\"backend_tls on\"");
    }
    if (!conf->backend_tls && conf->backend_tls_server_name != NULL) {
        return conf_error_unused(p, "backend_tls_server_name", "\"backend_tls on\"");
    }
    return 0;
}

/* `key jwt:` needs a key to verify with; jwt_* lines without a jwt rule would do nothing. */
static int
conf_check_jwt(struct conf_parser *p)
{
    static const char *const lines[] = { "jwt_key_file", "jwt_audience", "jwt_issuer",
                                         "jwt_leeway" };

    p->conf->jwt_key_file_line = conf_seen_line(p, CONF_SECTION_TOP, "jwt_key_file");
    if (p->jwt_rule_line != 0) {
        if (p->conf->jwt_key_file == NULL) {
            p->line = p->jwt_rule_line;
            return conf_error(p, "a \"key jwt:CLAIM\" rule needs jwt_key_file (the HS256 secret "
                                 "or the public key that verifies tokens)");
        }
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        unsigned line = conf_seen_line(p, CONF_SECTION_TOP, lines[i]);

        if (line != 0) {
            p->line = line;
            return conf_error(
                p, "\"%s\" is used only with a \"key jwt:CLAIM\" rule (there is none)", lines[i]);
        }
    }
    return 0;
}

/* After the last line: the top level, the source cross-checks, then each block that was written. */
static int
conf_finish(struct conf_parser *p)
{
    p->base = 0;
    if (conf_finish_section(p, CONF_SECTION_TOP) != 0 || conf_check_discovery(p) != 0 ||
        conf_check_jwt(p) != 0 || conf_check_tls(p) != 0) {
        return -1;
    }
    for (size_t i = 1; i < CONF_SECTION_COUNT; i++) {
        const struct conf_section *section = &conf_sections[i];
        const struct conf_directive *row =
            conf_find(&conf_sections[CONF_SECTION_TOP], section->name);

        p->line = p->seen[CONF_SECTION_TOP][row - conf_directives];
        if (p->line == 0) {
            continue;
        }
        p->base = row->offset;
        if (conf_finish_section(p, (enum conf_section_id)i) != 0 ||
            (section->check != NULL && section->check(p) != 0)) {
            return -1;
        }
    }
    return 0;
}

/* ---- public -------------------------------------------------------------- */

struct conf *
conf_parse(const char *file, const char *text, size_t len, char err[CONF_ERR_LEN])
{
    struct conf_parser p = { .file = file, .err = err };
    struct conf_words *w = malloc(sizeof(*w)); /* 4 KiB: keep it off small thread stacks */

    err[0] = '\0';
    if (w == NULL) {
        conf_error(&p, "%s", conf_value_enomem);
        return NULL;
    }
    if (conf_check_syntax(&p, w, text, len) != 0) {
        goto fail;
    }
    p.conf = calloc(1, sizeof(*p.conf));
    if (p.conf == NULL || (p.conf->file = strdup(file)) == NULL) {
        conf_error(&p, "%s", conf_value_enomem);
        goto fail;
    }
    if (conf_apply_lines(&p, w, text, len) != 0 || conf_finish(&p) != 0) {
        goto fail;
    }
    free(w);
    return p.conf;
fail:
    free(w);
    conf_destroy(p.conf);
    return NULL;
}

/* Reads all of FD into a new buffer *TEXT of *LEN bytes. Returns 0, or -1 with errno. */
static int
conf_read_all(int fd, char **text, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);

    while (buf != NULL) {
        ssize_t got;

        if (n == cap) {
            char *grown = cap >= CONF_FILE_MAX ? NULL : realloc(buf, cap * 2);

            if (grown == NULL) {
                errno = cap >= CONF_FILE_MAX ? EFBIG : ENOMEM;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        got = read(fd, buf + n, cap - n);
        if (got == 0) {
            *text = buf;
            *len = n;
            return 0;
        }
        if (got < 0 && errno != EINTR) {
            break;
        }
        n += got > 0 ? (size_t)got : 0;
    }
    free(buf);
    return -1;
}

struct conf *
conf_load(const char *file, char err[CONF_ERR_LEN])
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    char *text = NULL, why[128];
    size_t len = 0;
    struct conf *conf;

    if (fd == -1 || conf_read_all(fd, &text, &len) != 0) {
        int e = errno;

        if (fd != -1) {
            close(fd);
        }
        snprintf(err, CONF_ERR_LEN, "%s: cannot read: %s", file, strerror_r(e, why, sizeof(why)));
        return NULL;
    }
    close(fd);
    conf = conf_parse(file, text, len, err);
    free(text);
    return conf;
}

void
conf_destroy(struct conf *conf)
{
    if (conf == NULL) {
        return;
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        free(conf->listen[i].addr.host);
    }
    for (size_t i = 0; i < conf->nkeys; i++) {
        free(conf->keys[i].name);
    }
    for (size_t i = 0; i < conf->nbackends; i++) {
        free(conf->backends[i].id);
        free(conf->backends[i].addr.host);
        free(conf->backends[i].address);
        free(conf->backends[i].public_url);
    }
    for (size_t i = 0; i < conf->nroutes; i++) {
        free(conf->routes[i].prefix);
    }
    free(conf->routes);
    for (size_t i = 0; i < conf->consul.ntags; i++) {
        free(conf->consul.tags[i]);
    }
    free(conf->consul.tags);
    free(conf->consul.address);
    free(conf->consul.service);
    free(conf->consul.datacenter);
    free(conf->consul.token_file);
    free(conf->consul.ca_file);
    free(conf->consul.cert_file);
    free(conf->consul.key_file);
    free(conf->jwt_key_file);
    free(conf->jwt_audience);
    free(conf->jwt_issuer);
    for (size_t i = 0; i < conf->etcd.nendpoints; i++) {
        free(conf->etcd.endpoints[i]);
    }
    free(conf->etcd.endpoints);
    free(conf->etcd.prefix);
    free(conf->etcd.ca_file);
    free(conf->etcd.cert_file);
    free(conf->etcd.key_file);
    free(conf->etcd.username);
    free(conf->etcd.password_file);
    free(conf->state_file);
    free(conf->tls_certificate);
    free(conf->tls_certificate_key);
    free(conf->backend_ca_file);
    free(conf->backend_tls_server_name);
    free(conf->zookeeper.hosts);
    free(conf->zookeeper.path);
    free(conf->listen);
    free(conf->keys);
    free(conf->backends);
    free(conf->admin.host);
    free(conf->file);
    free(conf);
}

/* Each section's names, NULL-terminated (static storage is zeroed, so the NULL is there). */
static const char *conf_names[CONF_SECTION_COUNT][CONF_SECTION_MAX + 1];
static once_flag conf_names_once = ONCE_FLAG_INIT;

static void
conf_names_fill(void)
{
    for (size_t i = 0; i < CONF_SECTION_COUNT; i++) {
        for (size_t j = 0; j < conf_sections[i].ndirectives; j++) {
            conf_names[i][j] = conf_sections[i].directives[j].name;
        }
    }
}

const char *const *
conf_directive_names(void)
{
    call_once(&conf_names_once, conf_names_fill);
    return conf_names[CONF_SECTION_TOP];
}

const char *const *
conf_block_directive_names(const char *block)
{
    call_once(&conf_names_once, conf_names_fill);
    for (size_t i = 1; i < CONF_SECTION_COUNT; i++) {
        if (strcmp(conf_sections[i].name, block) == 0) {
            return conf_names[i];
        }
    }
    return NULL;
}

struct member_set *
conf_static_members(const struct conf *conf)
{
    struct member_set *set = member_set_create();

    for (size_t i = 0; set != NULL && i < conf->nbackends; i++) {
        const struct conf_backend *b = &conf->backends[i];

        if (member_set_add(set, b->id, b->address, b->weight) != 0 ||
            (b->public_url != NULL && member_set_set_public_url(set, b->id, b->public_url) != 0)) {
            member_set_destroy(set);
            set = NULL;
        }
    }
    return set;
}

enum conf_route_mode
conf_route_mode(const struct conf *conf, const char *path, size_t len)
{
    enum conf_route_mode mode = CONF_ROUTE_PROXY;
    size_t best = 0;

    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct conf_route *r = &conf->routes[i];

        if (r->prefix_len > best && r->prefix_len <= len &&
            memcmp(path, r->prefix, r->prefix_len) == 0) {
            best = r->prefix_len;
            mode = r->mode;
        }
    }
    return mode;
}
