/*
 * proxy.conf -> immutable struct conf (DESIGN §9). Pure: conf_parse() reads a
 * buffer; conf_load() only adds reading the file. Every error is one message
 * "file:line: what" written into the caller's buffer.
 */
#ifndef WSRING_CONF_CONF_H
#define WSRING_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring/ring.h"

#define CONF_ERR_LEN 512

/* A listen/admin/backend address as written: host (no brackets) and port. */
struct conf_addr {
    char *host;    /* owned; IPv4 literal, IPv6 literal (written [..] in the file) or host name */
    uint16_t port; /* 1..65535 */
};

/* A `listen` line: the address and its per-listener flags (DESIGN §12). */
struct conf_listen {
    struct conf_addr addr;
    bool tls;            /* `tls`: terminate TLS with tls_certificate / tls_certificate_key */
    bool proxy_protocol; /* `proxy_protocol`: a PROXY v1/v2 header must come first */
    unsigned line;       /* where it was written, for messages about it */
};

enum conf_key_source {
    CONF_KEY_QUERY = 0,   /* query:NAME, percent-decoded */
    CONF_KEY_HEADER,      /* header:NAME, case-insensitive name, value verbatim (trimmed) */
    CONF_KEY_COOKIE,      /* cookie:NAME, from the Cookie header(s) */
    CONF_KEY_PATH,        /* path:N, the N-th path segment (1-based), percent-decoded */
    CONF_KEY_JWT,         /* jwt:CLAIM, a string claim of a verified JWT (DESIGN §12) */
    CONF_KEY_SOURCE_COUNT /* must stay last */
};

struct conf_key_rule {
    enum conf_key_source source;
    char *name;       /* owned; NULL for CONF_KEY_PATH; the claim for CONF_KEY_JWT */
    size_t name_len;  /* strlen(name) */
    unsigned segment; /* CONF_KEY_PATH only: 1 = first segment */
};

enum conf_key_missing {
    CONF_KEY_MISSING_REJECT = 0, /* 400 */
    CONF_KEY_MISSING_CLIENT_IP   /* hash the client address as text */
};

/* `send_proxy`: the PROXY header wsring writes first on each backend connection (DESIGN §12). */
enum conf_send_proxy {
    CONF_SEND_PROXY_OFF = 0,
    CONF_SEND_PROXY_V1, /* text */
    CONF_SEND_PROXY_V2  /* binary */
};

enum conf_discovery {
    CONF_DISCOVERY_STATIC = 0, /* `backend` lines */
    CONF_DISCOVERY_CONSUL,     /* the `consul { }` block: a health watch (DESIGN §5) */
    CONF_DISCOVERY_ETCD,       /* the `etcd { }` block: list-then-watch of a prefix (DESIGN §11) */
    CONF_DISCOVERY_ZOOKEEPER,  /* the `zookeeper { }` block: child watches (DESIGN §11) */
    CONF_DISCOVERY_COUNT       /* must stay last */
};

/*
 * The `consul { }` block (DESIGN §9). Values the environment may supply
 * (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN(_FILE), CONSUL_CACERT) stay NULL here
 * when not written: conf is pure, discovery/consul.c reads the environment.
 */
struct conf_consul {
    char *address; /* owned or NULL; "http://host:port" or "https://host:port" */
    char *service; /* owned; required with discovery consul */
    char **tags;   /* owned array of ntags owned strings; `tag` is repeatable */
    size_t ntags;
    char *datacenter;      /* owned or NULL */
    char *token_file;      /* owned or NULL */
    char *ca_file;         /* owned or NULL */
    char *cert_file;       /* owned or NULL; client certificate (with key_file) */
    char *key_file;        /* owned or NULL */
    uint64_t wait_ms;      /* blocking-query wait; default 5m, at most 10m */
    uint64_t retry_max_ms; /* cap of the error back-off; default 1s */
    bool stale;            /* ?stale reads; default on */
    bool register_self;    /* `register on`: register wsring with the local agent */
};

/* The `etcd { }` block (DESIGN §9, §11). conf is pure: discovery/etcd.c reads the files. */
struct conf_etcd {
    char **endpoints; /* owned array of nendpoints "http(s)://host:port"; tried in turn */
    size_t nendpoints;
    char *prefix;        /* owned; required; members are the keys under it */
    char *ca_file;       /* owned or NULL */
    char *cert_file;     /* owned or NULL; client certificate (with key_file) */
    char *key_file;      /* owned or NULL */
    char *username;      /* owned or NULL; with password_file: auth/authenticate for a token */
    char *password_file; /* owned or NULL */
};

/* The `zookeeper { }` block (DESIGN §9, §11). */
struct conf_zookeeper {
    char *hosts;                 /* owned; "h1:p1,h2:p2" as written, for zookeeper_init */
    char *path;                  /* owned; the node whose children are the members */
    uint64_t session_timeout_ms; /* asked of the server (it clamps to 2..20 ticks); default 10s */
};

struct conf_backend {
    char *id;              /* owned; the member id */
    struct conf_addr addr; /* where to connect */
    char *address;         /* owned; "host:port" / "[v6]:port", as the member address */
    uint32_t weight;       /* default 1 */
    char *public_url;      /* owned or NULL; `public_url URL`, without a trailing "/" */
};

enum conf_route_mode {
    CONF_ROUTE_PROXY = 0, /* relay the request to the owner (the default for every path) */
    CONF_ROUTE_REDIRECT   /* answer 307 to the owner's public_url (DESIGN §10) */
};

/* A `route PATH proxy|redirect` line: requests whose path starts with PREFIX. */
struct conf_route {
    char *prefix; /* owned; starts with "/" */
    size_t prefix_len;
    enum conf_route_mode mode;
};

struct conf {
    char *file; /* owned; the path it was loaded from */

    struct conf_listen *listen; /* owned array of nlisten */
    size_t nlisten;
    struct conf_addr admin; /* host NULL when `admin off` */
    unsigned workers;       /* 0 = auto (number of cores) */

    struct conf_key_rule *keys; /* owned array of nkeys, in file order */
    size_t nkeys;
    enum conf_key_missing key_missing;

    struct ring_params ring; /* hash + vnodes */
    bool retry_next;
    uint64_t down_hold_ms;
    uint64_t connect_timeout_ms;
    uint64_t handshake_timeout_ms;
    size_t max_head_bytes;
    size_t max_key_bytes;

    uint64_t ring_hold_ms;     /* debounce of membership changes; default 1s */
    unsigned migrate_rate;     /* misplaced conns closed per second per proxy; 0 = never */
    uint64_t close_grace_ms;   /* wait for a message boundary before injecting a Close */
    uint64_t drain_timeout_ms; /* SIGTERM: how long clients get to close */

    struct conf_route *routes; /* owned array of nroutes, in file order */
    size_t nroutes;
    uint64_t pool_idle_timeout_ms;   /* an idle pooled backend connection is closed after this */
    unsigned pool_max_idle;          /* idle backend connections kept per member and worker */
    enum conf_send_proxy send_proxy; /* off: backends see wsring's own address */

    /* `key jwt:CLAIM` (DESIGN §12); conf only keeps the path, proxy/settings.c loads the key. */
    char *jwt_key_file;         /* owned or NULL */
    unsigned jwt_key_file_line; /* the line of jwt_key_file, for key-loading messages */
    char *jwt_audience;         /* owned or NULL: when set, `aud` must hold it */
    char *jwt_issuer;           /* owned or NULL: when set, `iss` must equal it */
    uint64_t jwt_leeway_ms;     /* clock skew allowed on exp and nbf; default 60s */

    /* TLS (DESIGN §12). File names only: conf does no I/O, proxy/tls.c reads them. */
    char *tls_certificate;         /* owned or NULL; PEM chain, leaf first */
    char *tls_certificate_key;     /* owned or NULL; PEM private key */
    bool backend_tls;              /* `backend_tls on`: speak TLS to every backend */
    char *backend_ca_file;         /* owned or NULL (the system's CAs) */
    char *backend_tls_server_name; /* owned or NULL (the member address's host) */
    unsigned tls_certificate_line; /* lines of the three files, for messages about them */
    unsigned tls_certificate_key_line;
    unsigned backend_ca_file_line;

    enum conf_discovery discovery;
    struct conf_consul consul;       /* meaningful with CONF_DISCOVERY_CONSUL */
    struct conf_etcd etcd;           /* meaningful with CONF_DISCOVERY_ETCD */
    struct conf_zookeeper zookeeper; /* meaningful with CONF_DISCOVERY_ZOOKEEPER */
    char *state_file; /* owned or NULL; last accepted member set, used at start if the source is
                         down */
    struct conf_backend *backends; /* owned array of nbackends */
    size_t nbackends;
};

/*
 * Parses LEN bytes of TEXT (no NUL needed) as proxy.conf named FILE (used in
 * messages). Returns a new conf, or NULL with "FILE:LINE: what" in ERR.
 */
struct conf *conf_parse(const char *file, const char *text, size_t len, char err[CONF_ERR_LEN]);
/* Reads and parses FILE. Returns NULL with "FILE: why" or "FILE:LINE: what" in ERR. */
struct conf *conf_load(const char *file, char err[CONF_ERR_LEN]);
/* Accepts NULL. */
void conf_destroy(struct conf *conf);

/* Directive names in table order, NULL-terminated; the docs test walks it. */
const char *const *conf_directive_names(void);
/*
 * Returns the names of block BLOCK's directives ("consul" -> "address", "service", ...) in table
 * order, NULL-terminated, or NULL when BLOCK names no block. The docs test
 * walks it.
 */
const char *const *conf_block_directive_names(const char *block);

/*
 * The mode for a request whose path (the target up to "?", LEN bytes) is
 * PATH: the longest matching `route` prefix wins; no match is a proxy.
 */
enum conf_route_mode conf_route_mode(const struct conf *conf, const char *path, size_t len);

/*
 * Builds the static member set from CONF's backend lines. Returns NULL on
 * ENOMEM (duplicates were already refused by conf_parse).
 */
struct member_set *conf_static_members(const struct conf *conf);

#endif /* WSRING_CONF_CONF_H */
