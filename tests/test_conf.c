/* test_conf.c: proxy.conf parsing, defaults, value parsers and every error message (DESIGN §9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_value.h"
#include "ring/member_set.h"

#define L "listen 127.0.0.1:8080\n"
#define C L "discovery consul\n"    /* a consul block starts on line 3 */
#define E L "discovery etcd\n"      /* an etcd block starts on line 3 */
#define Z L "discovery zookeeper\n" /* a zookeeper block starts on line 3 */

/* Parses a heap copy of exactly LEN bytes of TEXT (no NUL after it), so ASan sees over-reads. */
static struct conf *
parse_exact(const char *text, size_t len, char err[CONF_ERR_LEN])
{
    char *copy = malloc(len);
    struct conf *conf;

    if (len > 0) {
        assert_non_null(copy);
        memcpy(copy, text, len);
    }
    conf = conf_parse("t.conf", copy, len, err);
    free(copy);
    return conf;
}

static struct conf *
parse_ok(const char *text)
{
    char err[CONF_ERR_LEN] = "x";
    struct conf *conf = parse_exact(text, strlen(text), err);

    if (conf == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    assert_string_equal(err, "");
    return conf;
}

/* Returns a heap copy of exactly strlen(TEXT) bytes, without a NUL. */
static char *
exact_copy(const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len > 0 ? len : 1);

    assert_non_null(copy);
    memcpy(copy, text, len);
    return copy;
}

/* The value parsers, each run on an exact_copy() of TEXT. */
static const char *
value_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_uint(copy, strlen(text), min, max, out);

    free(copy);
    return what;
}

static const char *
value_msec(const char *text, uint64_t *out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_msec(copy, strlen(text), out);

    free(copy);
    return what;
}

static const char *
value_size(const char *text, uint64_t *out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_size(copy, strlen(text), out);

    free(copy);
    return what;
}

static const char *
value_flag(const char *text, bool *out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_flag(copy, strlen(text), out);

    free(copy);
    return what;
}

static const char *
value_addr(const char *text, struct conf_addr *out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_addr(copy, strlen(text), out);

    free(copy);
    return what;
}

static const char *
value_key_rule(const char *text, struct conf_key_rule *out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_key_rule(copy, strlen(text), out);

    free(copy);
    return what;
}

static void
test_example_config_parses(void **state)
{
    char err[CONF_ERR_LEN];
    struct conf *conf = conf_load("conf/proxy.conf", err);

    (void)state;
    if (conf == NULL) {
        fail_msg("%s", err);
    }
    assert_string_equal(conf->file, "conf/proxy.conf");
    assert_int_equal(conf->nlisten, 1);
    assert_string_equal(conf->listen[0].addr.host, "127.0.0.1");
    assert_int_equal(conf->listen[0].addr.port, 8080);
    assert_string_equal(conf->admin.host, "127.0.0.1");
    assert_int_equal(conf->admin.port, 9090);
    assert_int_equal(conf->workers, 0);
    assert_int_equal(conf->nkeys, 3);
    assert_int_equal(conf->keys[0].source, CONF_KEY_QUERY);
    assert_string_equal(conf->keys[0].name, "user");
    assert_int_equal(conf->keys[0].name_len, 4);
    assert_int_equal(conf->keys[1].source, CONF_KEY_HEADER);
    assert_string_equal(conf->keys[1].name, "X-User-Id");
    assert_int_equal(conf->keys[2].source, CONF_KEY_COOKIE);
    assert_string_equal(conf->keys[2].name, "uid");
    assert_int_equal(conf->key_missing, CONF_KEY_MISSING_REJECT);
    assert_int_equal(conf->ring.algo, RING_ALGO_RING);
    assert_int_equal(conf->ring.vnodes, 1000);
    assert_true(conf->retry_next);
    assert_int_equal(conf->down_hold_ms, 10000);
    assert_int_equal(conf->connect_timeout_ms, 3000);
    assert_int_equal(conf->handshake_timeout_ms, 10000);
    assert_int_equal(conf->max_head_bytes, 16384);
    assert_int_equal(conf->max_key_bytes, 256);
    assert_int_equal(conf->ring_hold_ms, 1000);
    assert_int_equal(conf->discovery, CONF_DISCOVERY_STATIC);
    assert_null(conf->consul.service); /* the example block is commented out */
    assert_int_equal(conf->nbackends, 3);
    for (size_t i = 0; i < 3; i++) {
        char id[8], address[32];

        snprintf(id, sizeof(id), "ws-%c", (char)('a' + i));
        snprintf(address, sizeof(address), "127.0.0.1:%zu", 9001 + i);
        assert_string_equal(conf->backends[i].id, id);
        assert_string_equal(conf->backends[i].address, address);
        assert_string_equal(conf->backends[i].addr.host, "127.0.0.1");
        assert_int_equal(conf->backends[i].addr.port, 9001 + i);
        assert_int_equal(conf->backends[i].weight, 1);
    }
    conf_destroy(conf);
}

static void
test_every_default(void **state)
{
    struct conf *conf = parse_ok("listen [::]:8080");

    (void)state;
    assert_string_equal(conf->file, "t.conf");
    assert_int_equal(conf->nlisten, 1);
    assert_string_equal(conf->listen[0].addr.host, "::");
    assert_string_equal(conf->admin.host, "127.0.0.1");
    assert_int_equal(conf->admin.port, 9090);
    assert_int_equal(conf->workers, 0);
    assert_int_equal(conf->nkeys, 1);
    assert_int_equal(conf->keys[0].source, CONF_KEY_QUERY);
    assert_string_equal(conf->keys[0].name, "user");
    assert_int_equal(conf->key_missing, CONF_KEY_MISSING_REJECT);
    assert_int_equal(conf->ring.algo, RING_ALGO_RING);
    assert_int_equal(conf->ring.vnodes, RING_DEFAULT_VNODES);
    assert_true(conf->retry_next);
    assert_int_equal(conf->down_hold_ms, 10000);
    assert_int_equal(conf->connect_timeout_ms, 3000);
    assert_int_equal(conf->handshake_timeout_ms, 10000);
    assert_int_equal(conf->max_head_bytes, 16 * 1024);
    assert_int_equal(conf->max_key_bytes, 256);
    assert_int_equal(conf->ring_hold_ms, 1000);
    assert_int_equal(conf->migrate_rate, 200);
    assert_int_equal(conf->close_grace_ms, 5000);
    assert_int_equal(conf->nroutes, 0);
    assert_null(conf->routes);
    assert_int_equal(conf->pool_idle_timeout_ms, 4000);
    assert_int_equal(conf->pool_max_idle, 64);
    assert_int_equal(conf->send_proxy, CONF_SEND_PROXY_OFF);
    assert_null(conf->jwt_key_file);
    assert_null(conf->jwt_audience);
    assert_null(conf->jwt_issuer);
    assert_int_equal(conf->jwt_leeway_ms, 60000);
    assert_int_equal(conf->drain_timeout_ms, 30000);
    assert_int_equal(conf->discovery, CONF_DISCOVERY_STATIC);
    assert_int_equal(conf->nbackends, 0); /* allowed: an empty ring answers 503 */
    assert_null(conf->backends);
    /* No block: its defaults are not applied, all of it stays zero. */
    assert_null(conf->consul.service);
    assert_null(conf->consul.tags);
    assert_int_equal(conf->consul.wait_ms, 0);
    assert_false(conf->consul.stale);
    conf_destroy(conf);
}

static void
test_every_value_is_read(void **state)
{
    struct conf *conf = parse_ok("# all set\n"
                                 "listen 0.0.0.0:80\n"
                                 "listen\t[2001:db8::1]:443  # v6\r\n"
                                 "listen ws.example.com:8080 proxy_protocol tls\n"
                                 "tls_certificate /etc/wsring/cert.pem\n"
                                 "tls_certificate_key /etc/wsring/key.pem\n"
                                 "backend_tls on\n"
                                 "backend_ca_file /etc/wsring/backend-ca.pem\n"
                                 "backend_tls_server_name ws.internal.example\n"
                                 "admin off\n"
                                 "workers 64\n"
                                 "key path:2\n"
                                 "key cookie:sid\n"
                                 "key jwt:uid\n"
                                 "send_proxy v2\n"
                                 "jwt_key_file /etc/wsring/jwt.pem\n"
                                 "jwt_audience chat\n"
                                 "jwt_issuer https://id.example.com/\n"
                                 "jwt_leeway 10m\n"
                                 "key_missing client_ip\n"
                                 "hash rendezvous\n"
                                 "vnodes 10000\n"
                                 "retry_next off\n"
                                 "down_hold 0\n"
                                 "connect_timeout 250ms\n"
                                 "handshake_timeout 2m\n"
                                 "max_head_bytes 1m\n"
                                 "max_key_bytes 4096\n"
                                 "ring_hold 0\n"
                                 "migrate_rate 0\n"
                                 "close_grace 100ms\n"
                                 "drain_timeout 1m\n"
                                 "discovery static\n"
                                 "backend b-1 [::1]:9002 weight 1000\n"
                                 "backend a! localhost:9001\n");

    (void)state;
    assert_int_equal(conf->nlisten, 3);
    assert_string_equal(conf->listen[1].addr.host, "2001:db8::1");
    assert_int_equal(conf->listen[1].addr.port, 443);
    assert_string_equal(conf->listen[2].addr.host, "ws.example.com");
    assert_false(conf->listen[0].tls);
    assert_false(conf->listen[0].proxy_protocol);
    assert_true(conf->listen[2].tls);
    assert_true(conf->listen[2].proxy_protocol);
    assert_int_equal(conf->listen[2].line, 4);
    assert_string_equal(conf->tls_certificate, "/etc/wsring/cert.pem");
    assert_string_equal(conf->tls_certificate_key, "/etc/wsring/key.pem");
    assert_true(conf->backend_tls);
    assert_string_equal(conf->backend_ca_file, "/etc/wsring/backend-ca.pem");
    assert_string_equal(conf->backend_tls_server_name, "ws.internal.example");
    assert_null(conf->admin.host);
    assert_int_equal(conf->admin.port, 0);
    assert_int_equal(conf->workers, 64);
    assert_int_equal(conf->nkeys, 3);
    assert_int_equal(conf->keys[2].source, CONF_KEY_JWT);
    assert_string_equal(conf->keys[2].name, "uid");
    assert_int_equal(conf->send_proxy, CONF_SEND_PROXY_V2);
    assert_string_equal(conf->jwt_key_file, "/etc/wsring/jwt.pem");
    assert_int_equal(conf->jwt_key_file_line, 16);
    assert_string_equal(conf->jwt_audience, "chat");
    assert_string_equal(conf->jwt_issuer, "https://id.example.com/");
    assert_int_equal(conf->jwt_leeway_ms, 600000);
    assert_int_equal(conf->keys[0].source, CONF_KEY_PATH);
    assert_null(conf->keys[0].name);
    assert_int_equal(conf->keys[0].segment, 2);
    assert_int_equal(conf->keys[1].source, CONF_KEY_COOKIE);
    assert_string_equal(conf->keys[1].name, "sid");
    assert_int_equal(conf->key_missing, CONF_KEY_MISSING_CLIENT_IP);
    assert_int_equal(conf->ring.algo, RING_ALGO_RENDEZVOUS);
    assert_int_equal(conf->ring.vnodes, 10000);
    assert_false(conf->retry_next);
    assert_int_equal(conf->down_hold_ms, 0);
    assert_int_equal(conf->connect_timeout_ms, 250);
    assert_int_equal(conf->handshake_timeout_ms, 120000);
    assert_int_equal(conf->max_head_bytes, 1024 * 1024);
    assert_int_equal(conf->max_key_bytes, 4096);
    assert_int_equal(conf->ring_hold_ms, 0);
    assert_int_equal(conf->migrate_rate, 0);
    assert_int_equal(conf->close_grace_ms, 100);
    assert_int_equal(conf->drain_timeout_ms, 60000);
    assert_int_equal(conf->nbackends, 2);
    assert_string_equal(conf->backends[0].id, "b-1");
    assert_string_equal(conf->backends[0].address, "[::1]:9002");
    assert_int_equal(conf->backends[0].weight, 1000);
    assert_string_equal(conf->backends[1].id, "a!");
    assert_string_equal(conf->backends[1].address, "localhost:9001");
    assert_int_equal(conf->backends[1].weight, 1);
    conf_destroy(conf);
}

static void
test_comments_and_blank_lines(void **state)
{
    struct conf *conf = parse_ok("\n   \n\t# x { } \"\n" L "vnodes 10#0 comment glued to a word\n"
                                 "workers 2 # a comment\r\n"
                                 "#listen 1.1.1.1:1\n");

    (void)state;
    assert_int_equal(conf->ring.vnodes, 10);
    assert_int_equal(conf->workers, 2);
    assert_int_equal(conf->nlisten, 1);
    conf_destroy(conf);
}

static void
test_consul_every_value(void **state)
{
    struct conf *conf = parse_ok(L "ring_hold 1m\n"
                                   "consul {\r\n"
                                   "\taddress https://[2001:db8::5]:8501/  # trailing / dropped\n"
                                   "    service    web.ws-backend_2\n"
                                   "    tag        v2\n"
                                   "\n"
                                   "    # a comment inside the block\n"
                                   "    tag        traefik.enable=true\n"
                                   "    tag        V2\n"
                                   "    datacenter eu-west_1\n"
                                   "    token_file /etc/wsring/consul.token\n"
                                   "    ca_file    ca.pem\n"
                                   "    cert_file  /c.pem\n"
                                   "    key_file   /k.pem\n"
                                   "    wait       10m\n"
                                   "    retry_max  100ms\n"
                                   "    stale      off\n"
                                   "    register   on\n"
                                   "}\n"
                                   "discovery consul  # after the block is fine too\n"
                                   "workers 3\n");
    const struct conf_consul *c = &conf->consul;

    (void)state;
    assert_int_equal(conf->ring_hold_ms, 60000);
    assert_int_equal(conf->discovery, CONF_DISCOVERY_CONSUL);
    assert_int_equal(conf->workers, 3); /* "}" went back to the top level */
    assert_int_equal(conf->nbackends, 0);
    assert_string_equal(c->address, "https://[2001:db8::5]:8501");
    assert_string_equal(c->service, "web.ws-backend_2");
    assert_int_equal(c->ntags, 3);
    assert_string_equal(c->tags[0], "v2");
    assert_string_equal(c->tags[1], "traefik.enable=true");
    assert_string_equal(c->tags[2], "V2");
    assert_string_equal(c->datacenter, "eu-west_1");
    assert_string_equal(c->token_file, "/etc/wsring/consul.token");
    assert_string_equal(c->ca_file, "ca.pem");
    assert_string_equal(c->cert_file, "/c.pem");
    assert_string_equal(c->key_file, "/k.pem");
    assert_int_equal(c->wait_ms, 600000);
    assert_int_equal(c->retry_max_ms, 100);
    assert_false(c->stale);
    assert_true(c->register_self);
    conf_destroy(conf);
}

static void
test_consul_defaults(void **state)
{
    struct conf *conf = parse_ok(C "consul {\n  service ws\n}\n");
    const struct conf_consul *c = &conf->consul;

    (void)state;
    assert_int_equal(conf->discovery, CONF_DISCOVERY_CONSUL);
    assert_int_equal(conf->ring_hold_ms, 1000);
    assert_null(c->address); /* discovery reads $CONSUL_HTTP_ADDR, then 127.0.0.1:8500 */
    assert_string_equal(c->service, "ws");
    assert_int_equal(c->ntags, 0);
    assert_null(c->tags);
    assert_null(c->datacenter);
    assert_null(c->token_file);
    assert_null(c->ca_file);
    assert_null(c->cert_file);
    assert_null(c->key_file);
    assert_int_equal(c->wait_ms, 5 * 60000);
    assert_int_equal(c->retry_max_ms, 1000);
    assert_true(c->stale);
    assert_false(c->register_self);
    conf_destroy(conf);

    /* The bounds themselves, and a scheme-less port default. */
    conf = parse_ok(C "consul {\n  service a\n  wait 1s\n  retry_max 1m\n"
                      "  address http://consul.service.consul\n}\nring_hold 60s\n");
    assert_int_equal(conf->consul.wait_ms, 1000);
    assert_int_equal(conf->consul.retry_max_ms, 60000);
    assert_string_equal(conf->consul.address, "http://consul.service.consul");
    assert_int_equal(conf->ring_hold_ms, 60000);
    conf_destroy(conf);
}

/* Appends to BUF (CAP bytes) with snprintf; fails the test on truncation. */
static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < cap - len);
}

static void
test_consul_limits(void **state)
{
    char text[8192] = C "consul {\n  service ", err[CONF_ERR_LEN];
    size_t body_len;
    struct conf *conf;

    (void)state;
    /* A 255-byte service name and tag, and 16 tags, are fine. */
    for (int i = 0; i < 255; i++) {
        append(text, sizeof(text), "s");
    }
    append(text, sizeof(text), "\n  tag ");
    for (int i = 0; i < 255; i++) {
        append(text, sizeof(text), "t");
    }
    append(text, sizeof(text), "\n");
    for (int i = 1; i < 16; i++) {
        append(text, sizeof(text), "  tag t%d\n", i);
    }
    body_len = strlen(text);
    append(text, sizeof(text), "}\n");
    conf = parse_ok(text);
    assert_int_equal(strlen(conf->consul.service), 255);
    assert_int_equal(conf->consul.ntags, 16);
    assert_int_equal(strlen(conf->consul.tags[0]), 255);
    conf_destroy(conf);

    /* The 17th tag, on line 21 (after service and 16 tags), is refused, */
    text[body_len] = '\0';
    append(text, sizeof(text), "  tag t16\n}\n");
    assert_null(parse_exact(text, strlen(text), err));
    assert_string_equal(err, "t.conf:21: \"tag t16\" is one tag too many (at most 16)");
    /* and so are a 256-byte service name and tag. */
    strcpy(text, C "consul {\n  service a");
    for (int i = 0; i < 255; i++) {
        append(text, sizeof(text), "s");
    }
    append(text, sizeof(text), "\n}\n");
    assert_null(parse_exact(text, strlen(text), err));
    assert_int_equal(strncmp(err, "t.conf:4: \"service ass", 22), 0);
    assert_non_null(strstr(err, "...\" is not a service name"));
    strcpy(text, C "consul {\n  service a\n  tag a");
    for (int i = 0; i < 255; i++) {
        append(text, sizeof(text), "t");
    }
    append(text, sizeof(text), "\n}\n");
    assert_null(parse_exact(text, strlen(text), err));
    assert_non_null(strstr(err, "t.conf:5: \"tag at"));
    assert_non_null(strstr(err, "...\" is not a tag (visible ASCII only; at most 255)"));
}

/*
 * Reads conf/proxy.conf with the commented block NAME (and the commented
 * state_file line) switched on: "#" removed, "discovery NAME", no backend
 * lines. Returns the parsed conf, or fails the test with the message.
 */
static struct conf *
example_with_block(const char *name)
{
    FILE *f = fopen("conf/proxy.conf", "r");
    char line[512], open[64], err[CONF_ERR_LEN], *text = calloc(1, 1 << 16);
    bool in_block = false;
    struct conf *conf;

    assert_non_null(f);
    assert_non_null(text);
    snprintf(open, sizeof(open), "#%s {\n", name);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strcmp(line, open) == 0) {
            in_block = true;
        }
        if (in_block || strncmp(line, "#state_file ", 12) == 0) {
            append(text, 1 << 16, "%s", line + 1);
            in_block = in_block && strcmp(line, "#}\n") != 0;
        } else if (strncmp(line, "discovery ", 10) == 0) {
            append(text, 1 << 16, "discovery %s\n", name);
        } else if (strncmp(line, "backend ", 8) != 0) {
            append(text, 1 << 16, "%s", line);
        }
    }
    fclose(f);
    assert_false(in_block);
    conf = conf_parse("proxy.conf", text, strlen(text), err);
    if (conf == NULL) {
        fail_msg("%s", err);
    }
    free(text);
    assert_string_equal(conf->state_file, "/var/lib/wsring/members.json");
    return conf;
}

/* The example's commented consul block is valid and parses with the values it documents. */
static void
test_example_consul_block_parses(void **state)
{
    struct conf *conf = example_with_block("consul");

    (void)state;
    assert_int_equal(conf->discovery, CONF_DISCOVERY_CONSUL);
    assert_string_equal(conf->consul.address, "http://127.0.0.1:8500");
    assert_string_equal(conf->consul.service, "ws-backend");
    assert_int_equal(conf->consul.ntags, 1);
    assert_string_equal(conf->consul.datacenter, "dc1");
    assert_non_null(conf->consul.token_file);
    assert_non_null(conf->consul.ca_file);
    assert_non_null(conf->consul.cert_file);
    assert_non_null(conf->consul.key_file);
    assert_int_equal(conf->consul.wait_ms, 5 * 60000);
    assert_int_equal(conf->consul.retry_max_ms, 1000);
    assert_true(conf->consul.stale);
    assert_false(conf->consul.register_self);
    assert_null(conf->etcd.prefix);
    conf_destroy(conf);
}

/* ... and so is its etcd block. */
static void
test_example_etcd_block_parses(void **state)
{
    struct conf *conf = example_with_block("etcd");

    (void)state;
    assert_int_equal(conf->discovery, CONF_DISCOVERY_ETCD);
    assert_int_equal(conf->etcd.nendpoints, 1);
    assert_string_equal(conf->etcd.endpoints[0], "http://127.0.0.1:2379");
    assert_string_equal(conf->etcd.prefix, "/services/ws-backend/");
    assert_non_null(conf->etcd.ca_file);
    assert_non_null(conf->etcd.cert_file);
    assert_non_null(conf->etcd.key_file);
    assert_string_equal(conf->etcd.username, "wsring");
    assert_string_equal(conf->etcd.password_file, "/etc/wsring/etcd.password");
    assert_null(conf->consul.service);
    conf_destroy(conf);
}

/* Every etcd value, endpoints repeated in order; the defaults. */
static void
test_etcd_values_and_defaults(void **state)
{
    struct conf *conf = parse_ok(L "discovery etcd\nstate_file /tmp/m.json\netcd {\n"
                                   "  endpoints https://e1:2379\n  endpoints https://[::1]:2379/\n"
                                   "  prefix /svc/ws/\n  ca_file /ca.pem\n"
                                   "  cert_file /c.pem\n  key_file /k.pem\n}\n");

    (void)state;
    assert_int_equal(conf->discovery, CONF_DISCOVERY_ETCD);
    assert_int_equal(conf->etcd.nendpoints, 2);
    assert_string_equal(conf->etcd.endpoints[0], "https://e1:2379");
    assert_string_equal(conf->etcd.endpoints[1], "https://[::1]:2379");
    assert_string_equal(conf->etcd.prefix, "/svc/ws/");
    assert_string_equal(conf->etcd.ca_file, "/ca.pem");
    assert_null(conf->etcd.username);
    assert_string_equal(conf->state_file, "/tmp/m.json");
    conf_destroy(conf);
    conf = parse_ok(L "discovery etcd\netcd {\n  prefix p\n}\n");
    assert_int_equal(conf->etcd.nendpoints, 1);
    assert_string_equal(conf->etcd.endpoints[0], "http://127.0.0.1:2379");
    assert_null(conf->etcd.ca_file);
    assert_null(conf->state_file);
    conf_destroy(conf);
    /* state_file works with consul too */
    conf = parse_ok(C "consul {\n  service ws\n}\nstate_file /var/lib/wsring/m.json\n");
    assert_string_equal(conf->state_file, "/var/lib/wsring/m.json");
    conf_destroy(conf);
}

static void
test_zookeeper_values_and_defaults(void **state)
{
    struct conf *conf = parse_ok(Z "zookeeper {\n  hosts 127.0.0.1:2181\n  path /services/ws\n}\n");

    (void)state;
    assert_int_equal(conf->discovery, CONF_DISCOVERY_ZOOKEEPER);
    assert_string_equal(conf->zookeeper.hosts, "127.0.0.1:2181");
    assert_string_equal(conf->zookeeper.path, "/services/ws");
    assert_int_equal(conf->zookeeper.session_timeout_ms, 10000);
    assert_int_equal(conf->nbackends, 0);
    conf_destroy(conf);
    conf = parse_ok(Z "zookeeper {\r\n"
                      "  hosts zk-1.example.com:2181,[::1]:2182,10.0.0.3:2183  # three\n"
                      "  path /a/b-c/d.e_f/x:y\n"
                      "  session_timeout 1s\n"
                      "}\n");
    assert_string_equal(conf->zookeeper.hosts, "zk-1.example.com:2181,[::1]:2182,10.0.0.3:2183");
    assert_string_equal(conf->zookeeper.path, "/a/b-c/d.e_f/x:y");
    assert_int_equal(conf->zookeeper.session_timeout_ms, 1000);
    conf_destroy(conf);
    conf =
        parse_ok(Z "zookeeper {\n  hosts h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,h:13,"
                   "h:14,h:15,h:16\n  path /..a/.b\n  session_timeout 10m\n}\n");
    assert_string_equal(conf->zookeeper.path, "/..a/.b");
    assert_int_equal(conf->zookeeper.session_timeout_ms, 600000);
    conf_destroy(conf);
}

/* The example's commented zookeeper block is valid, as for consul. */
static void
test_example_zookeeper_block_parses(void **state)
{
    FILE *f = fopen("conf/proxy.conf", "r");
    char line[512], err[CONF_ERR_LEN], *text = calloc(1, 1 << 16);
    bool in_block = false;
    struct conf *conf;

    (void)state;
    assert_non_null(f);
    assert_non_null(text);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strcmp(line, "#zookeeper {\n") == 0) {
            in_block = true;
        }
        if (in_block) {
            append(text, 1 << 16, "%s", line + 1);
            in_block = strcmp(line, "#}\n") != 0;
        } else if (strncmp(line, "discovery ", 10) == 0) {
            append(text, 1 << 16, "discovery zookeeper\n");
        } else if (strncmp(line, "backend ", 8) != 0) {
            append(text, 1 << 16, "%s", line);
        }
    }
    fclose(f);
    assert_false(in_block);
    conf = conf_parse("proxy.conf", text, strlen(text), err);
    if (conf == NULL) {
        fail_msg("%s", err);
    }
    assert_int_equal(conf->discovery, CONF_DISCOVERY_ZOOKEEPER);
    assert_string_equal(conf->zookeeper.hosts, "127.0.0.1:2181,127.0.0.1:2182");
    assert_string_equal(conf->zookeeper.path, "/services/ws-backend");
    assert_int_equal(conf->zookeeper.session_timeout_ms, 10000);
    conf_destroy(conf);
    free(text);
}

struct bad_row {
    const char *text;
    size_t len;
    const char *message;
};

#define ROW(text, message)                                                                         \
    {                                                                                              \
        text, sizeof(text) - 1, message                                                            \
    }

/* clang-format off */
static const struct bad_row bad_rows[] = {
    /* unknown directive, argument counts */
    ROW(L "foo 1\n", "t.conf:2: unknown directive \"foo\""),
    ROW("listen\n", "t.conf:1: \"listen\" takes 1 to 3 arguments, got 0"),
    ROW("listen 127.0.0.1:8080 x\n", "t.conf:1: \"listen 127.0.0.1:8080 x\" takes flags tls and proxy_protocol after the address"),
    ROW("listen 127.0.0.1:8080 tls tls\n", "t.conf:1: \"listen 127.0.0.1:8080 tls tls\" repeats a flag"),
    ROW("listen 1 2 3 4 5 6 7 8 9 10\n", "t.conf:1: \"listen\" takes 1 to 3 arguments, got 10"),
    ROW(L "backend a\n", "t.conf:2: \"backend\" takes 2 to 6 arguments, got 1"),
    ROW(L "backend a 127.0.0.1:1 weight 2 public_url http://h x\n", "t.conf:2: \"backend\" takes 2 to 6 arguments, got 7"),
    /* durations */
    ROW(L "connect_timeout 3x\n", "t.conf:2: \"connect_timeout 3x\" is not a duration (use ms, s, m or h)"),
    ROW(L "down_hold 10\n", "t.conf:2: \"down_hold 10\" is not a duration (use ms, s, m or h)"),
    ROW(L "down_hold -1s\n", "t.conf:2: \"down_hold -1s\" is not a duration (use ms, s, m or h)"),
    ROW(L "down_hold 25h\n", "t.conf:2: \"down_hold 25h\" is longer than 24h"),
    ROW(L "handshake_timeout 0\n", "t.conf:2: \"handshake_timeout 0\" must be longer than 0"),
    ROW(L "connect_timeout 0ms\n", "t.conf:2: \"connect_timeout 0ms\" must be longer than 0"),
    /* sizes and numbers */
    ROW(L "max_head_bytes 16q\n", "t.conf:2: \"max_head_bytes 16q\" is not a size (use a number of bytes, k or m)"),
    ROW(L "max_head_bytes 2m\n", "t.conf:2: \"max_head_bytes 2m\" is not a size in 1k..1m"),
    ROW(L "max_head_bytes 1023\n", "t.conf:2: \"max_head_bytes 1023\" is not a size in 1k..1m"),
    ROW(L "max_head_bytes 99999999999999999999k\n", "t.conf:2: \"max_head_bytes 99999999999999999999k\" is too large"),
    ROW(L "vnodes 0\n", "t.conf:2: \"vnodes 0\" is not a number in 1..10000"),
    ROW(L "vnodes 1e3\n", "t.conf:2: \"vnodes 1e3\" is not a number in 1..10000"),
    ROW(L "vnodes 18446744073709551617\n", "t.conf:2: \"vnodes 18446744073709551617\" is not a number in 1..10000"),
    ROW(L "workers 65\n", "t.conf:2: \"workers 65\" is not auto or a number in 1..64"),
    ROW(L "workers 0\n", "t.conf:2: \"workers 0\" is not auto or a number in 1..64"),
    ROW(L "max_key_bytes 4097\n", "t.conf:2: \"max_key_bytes 4097\" is not a number in 1..4096"),
    /* flags and enums */
    ROW(L "retry_next yes\n", "t.conf:2: \"retry_next yes\" is not on or off"),
    ROW(L "hash maglev\n", "t.conf:2: \"hash maglev\" is not ring or rendezvous"),
    ROW(L "key_missing drop\n", "t.conf:2: \"key_missing drop\" is not reject or client_ip"),
    ROW(L "ring_hold 61s\n", "t.conf:2: \"ring_hold 61s\" is longer than 1m"),
    ROW(L "migrate_rate 100001\n", "t.conf:2: \"migrate_rate 100001\" is not a number in 0..100000"),
    ROW(L "migrate_rate -1\n", "t.conf:2: \"migrate_rate -1\" is not a number in 0..100000"),
    ROW(L "close_grace 0\n", "t.conf:2: \"close_grace 0\" must be longer than 0"),
    ROW(L "drain_timeout 5\n", "t.conf:2: \"drain_timeout 5\" is not a duration (use ms, s, m or h)"),
    ROW(L "ring_hold 1\n", "t.conf:2: \"ring_hold 1\" is not a duration (use ms, s, m or h)"),
    /* addresses */
    ROW("listen 127.0.0.1\n", "t.conf:1: \"listen 127.0.0.1\" is not an address (use IPv4:port, [IPv6]:port or host:port)"),
    ROW("listen 127.0.0.1:0\n", "t.conf:1: \"listen 127.0.0.1:0\" has a bad port (use 1..65535)"),
    ROW("listen 127.0.0.1:65536\n", "t.conf:1: \"listen 127.0.0.1:65536\" has a bad port (use 1..65535)"),
    ROW("listen 256.1.1.1:80\n", "t.conf:1: \"listen 256.1.1.1:80\" has a bad IPv4 address"),
    ROW("listen [::g]:80\n", "t.conf:1: \"listen [::g]:80\" has a bad IPv6 address"),
    ROW("listen ::1:80\n", "t.conf:1: \"listen ::1:80\" has an IPv6 address without [ ] around it"),
    ROW("listen -a.example:80\n", "t.conf:1: \"listen -a.example:80\" has a bad host name"),
    ROW("listen a_b:80\n", "t.conf:1: \"listen a_b:80\" has a bad host name"),
    ROW(L "admin on\n", "t.conf:2: \"admin on\" is not an address (use IPv4:port, [IPv6]:port or host:port)"),
    /* duplicates */
    ROW(L "hash ring\n\nhash ring\n", "t.conf:4: \"hash\" is a duplicate (first on line 2)"),
    ROW(L "admin off\nadmin off\n", "t.conf:3: \"admin\" is a duplicate (first on line 2)"),
    ROW(L "listen 127.0.0.1:8080\n", "t.conf:2: \"listen 127.0.0.1:8080\" is a duplicate"),
    ROW("listen [::1]:80\nlisten [0::1]:80\n", "t.conf:2: \"listen [0::1]:80\" is a duplicate"),
    ROW("listen Example.com:80\nlisten example.COM:80\n", "t.conf:2: \"listen example.COM:80\" is a duplicate"),
    ROW(L "backend a 127.0.0.1:1\nbackend b 127.0.0.1:2\nbackend a 127.0.0.1:3\n",
        "t.conf:4: \"backend a 127.0.0.1:3\" has a duplicate id"),
    ROW(L "key query:user\nkey query:user\n", "t.conf:3: \"key query:user\" is a duplicate"),
    ROW(L "key header:X-User\nkey header:x-user\n", "t.conf:3: \"key header:x-user\" is a duplicate"),
    /* backends */
    ROW(L "backend a 127.0.0.1:1 weight 0\n", "t.conf:2: \"backend a 127.0.0.1:1 weight 0\" has a weight that is not a number in 1..1000"),
    ROW(L "backend a 127.0.0.1:1 weight 1001\n", "t.conf:2: \"backend a 127.0.0.1:1 weight 1001\" has a weight that is not a number in 1..1000"),
    ROW(L "backend a 127.0.0.1:1 w 2\n", "t.conf:2: \"backend a 127.0.0.1:1 w 2\" has words after the address other than \"weight N\" and \"public_url URL\""),
    ROW(L "backend a 127.0.0.1:1 weight\n", "t.conf:2: \"backend a 127.0.0.1:1 weight\" has words after the address other than \"weight N\" and \"public_url URL\""),
    ROW(L "backend a 127.0.0.1:1 weight 2 public_url\n", "t.conf:2: \"backend a 127.0.0.1:1 weight 2 public_url\" has words after the address other than \"weight N\" and \"public_url URL\""),
    ROW(L "backend a 127.0.0.1:1 weight 2 weight 3\n", "t.conf:2: \"backend a 127.0.0.1:1 weight 2 weight 3\" repeats weight"),
    ROW(L "backend a 127.0.0.1:1 public_url http://a public_url http://b\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url http://a public_url http://b\" repeats public_url"),
    ROW(L "backend a 127.0.0.1:1 public_url ws://a.example\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url ws://a.example\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    ROW(L "backend a 127.0.0.1:1 public_url a.example\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url a.example\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    ROW(L "backend a 127.0.0.1:1 public_url https://\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url https://\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    ROW(L "backend a 127.0.0.1:1 public_url https://a.example/x?y=1\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url https://a.example/x?y=1\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    ROW(L "backend a 127.0.0.1:1 public_url https://a.example:0/\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url https://a.example:0/\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    ROW(L "backend a 127.0.0.1:1 public_url https://us@a.example/\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url https://us@a.example/\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    ROW(L "backend a 127.0.0.1:1 public_url https://a.example/%zz\n", "t.conf:2: \"backend a 127.0.0.1:1 public_url https://a.example/%zz\" has a public_url that is not http://HOST[:PORT][/PATH] or https://... (no query or fragment)"),
    /* routes and the pool */
    ROW(L "route /connect\n", "t.conf:2: \"route\" takes 2 arguments, got 1"),
    ROW(L "route /connect redirect now\n", "t.conf:2: \"route\" takes 2 arguments, got 3"),
    ROW(L "route connect redirect\n", "t.conf:2: \"route connect redirect\" has a path that does not start with \"/\" (or is longer than 1024 bytes)"),
    ROW(L "route /connect bounce\n", "t.conf:2: \"route /connect bounce\" has a mode that is not proxy or redirect"),
    ROW(L "route /connect?x redirect\n", "t.conf:2: \"route /connect?x redirect\" has a path with a byte that is not allowed (no query, fragment or space)"),
    ROW(L "route /c\xc3\xa9 redirect\n", "t.conf:2: \"route /c\xc3\xa9 redirect\" has a path with a byte that is not allowed (no query, fragment or space)"),
    ROW(L "route /connect redirect\nroute /x proxy\nroute /connect proxy\n", "t.conf:4: \"route /connect proxy\" repeats a path given on an earlier route line"),
    ROW(L "pool_idle_timeout 0\n", "t.conf:2: \"pool_idle_timeout 0\" must be longer than 0"),
    ROW(L "pool_idle_timeout 2h\n", "t.conf:2: \"pool_idle_timeout 2h\" is longer than 1h"),
    ROW(L "pool_idle_timeout 5\n", "t.conf:2: \"pool_idle_timeout 5\" is not a duration (use ms, s, m or h)"),
    ROW(L "pool_idle_timeout 1s\npool_idle_timeout 2s\n", "t.conf:3: \"pool_idle_timeout\" is a duplicate (first on line 2)"),
    ROW(L "pool_max_idle 10001\n", "t.conf:2: \"pool_max_idle 10001\" is not a number in 0..10000"),
    ROW(L "pool_max_idle -1\n", "t.conf:2: \"pool_max_idle -1\" is not a number in 0..10000"),
    ROW(L "pool_max_idle 1 2\n", "t.conf:2: \"pool_max_idle\" takes 1 argument, got 2"),
    ROW(L "backend \xc3\xa9 127.0.0.1:1\n", "t.conf:2: \"backend \xc3\xa9 127.0.0.1:1\" has a bad id (use visible ASCII characters)"),
    ROW(L "backend a 127.0.0.1\n", "t.conf:2: \"backend a 127.0.0.1\" is not an address (use IPv4:port, [IPv6]:port or host:port)"),
    /* key rules */
    ROW(L "key foo:bar\n", "t.conf:2: \"key foo:bar\" is not a key rule (use query:NAME, header:NAME, cookie:NAME, path:N or jwt:CLAIM)"),
    ROW(L "key user\n", "t.conf:2: \"key user\" is not a key rule (use query:NAME, header:NAME, cookie:NAME, path:N or jwt:CLAIM)"),
    ROW(L "key path:0\n", "t.conf:2: \"key path:0\" has a bad path segment (use 1..64)"),
    ROW(L "key path:65\n", "t.conf:2: \"key path:65\" has a bad path segment (use 1..64)"),
    ROW(L "key header:X:Y\n", "t.conf:2: \"key header:X:Y\" has a bad name (use an RFC 9110 token)"),
    ROW(L "key cookie:\n", "t.conf:2: \"key cookie:\" has a bad name (use an RFC 9110 token)"),
    ROW(L "key query:a=b\n", "t.conf:2: \"key query:a=b\" has a bad query parameter name"),
    ROW(L "key jwt:\n", "t.conf:2: \"key jwt:\" has a bad claim name (use 1..255 visible ASCII characters)"),
    ROW(L "key jwt:sub\nkey jwt:sub\n", "t.conf:3: \"key jwt:sub\" is a duplicate"),
    /* edge (DESIGN §12): send_proxy, jwt_* */
    ROW(L "send_proxy on\n", "t.conf:2: \"send_proxy on\" is not off, v1 or v2"),
    ROW(L "send_proxy v2 v1\n", "t.conf:2: \"send_proxy\" takes 1 argument, got 2"),
    ROW(L "key jwt:sub\njwt_key_file /k\njwt_leeway 11m\n", "t.conf:4: \"jwt_leeway 11m\" is longer than 10m"),
    ROW(L "key jwt:sub\njwt_key_file /k\njwt_leeway 60\n", "t.conf:4: \"jwt_leeway 60\" is not a duration (use ms, s, m or h)"),
    ROW(L "key jwt:sub\njwt_key_file /k\njwt_audience \xc3\xa9\n", "t.conf:4: \"jwt_audience \xc3\xa9\" is not 1..255 visible ASCII characters"),
    ROW(L "key jwt:sub\njwt_key_file /k\njwt_issuer\n", "t.conf:4: \"jwt_issuer\" takes 1 argument, got 0"),
    ROW(L "key jwt:sub\njwt_key_file /k\njwt_key_file /j\n", "t.conf:4: \"jwt_key_file\" is a duplicate (first on line 3)"),
    ROW(L "key query:user\n\nkey jwt:sub\nkey jwt:uid\n", "t.conf:4: a \"key jwt:CLAIM\" rule needs jwt_key_file (the HS256 secret or the public key that verifies tokens)"),
    ROW(L "jwt_audience chat\n", "t.conf:2: \"jwt_audience\" is used only with a \"key jwt:CLAIM\" rule (there is none)"),
    ROW(L "key query:user\njwt_key_file /k\n", "t.conf:3: \"jwt_key_file\" is used only with a \"key jwt:CLAIM\" rule (there is none)"),
    ROW(L "jwt_issuer https://id.example.com\n", "t.conf:2: \"jwt_issuer\" is used only with a \"key jwt:CLAIM\" rule (there is none)"),
    ROW(L "jwt_leeway 0\n", "t.conf:2: \"jwt_leeway\" is used only with a \"key jwt:CLAIM\" rule (there is none)"),
    /* blocks: the syntax pass runs before any directive is looked at */
    ROW(L "etcdd {\n}\n", "t.conf:2: unknown block \"etcdd\""),
    ROW(L "listen 1.2.3.4:80 {\n}\n", "t.conf:2: \"listen\" does not take a block"),
    ROW(L "consul {\n  wait 5m\n\n", "t.conf:2: unterminated block \"consul\" (no \"}\")"),
    ROW("foo 1\na {\n}\netcd {\n", "t.conf:4: unterminated block \"etcd\" (no \"}\")"),
    ROW(L "}\n", "t.conf:2: stray \"}\" (no block is open)"),
    ROW("bogus\na {\n}\n}\n", "t.conf:4: stray \"}\" (no block is open)"),
    ROW(L "a {\n  b {\n  }\n}\n", "t.conf:3: nested block \"b\" (block \"a\" from line 2 is still open)"),
    ROW(L "a { x\n", "t.conf:2: \"{\" must be the last word on its line"),
    ROW(L "{\n}\n", "t.conf:2: \"{\" needs a block name before it"),
    ROW(L "a {\n} x\n", "t.conf:3: \"}\" must be alone on its line"),
    /* the consul block: its place, its lines */
    ROW(L "consul\n", "t.conf:2: \"consul\" is a block (write \"consul {\", its lines, then \"}\")"),
    ROW(C "consul dc1 {\n}\n", "t.conf:3: \"consul\" takes 0 arguments, got 1"),
    ROW(C "consul {\n service a\n}\n\nconsul {\n service b\n}\n", "t.conf:7: \"consul\" is a duplicate (first on line 3)"),
    ROW(C "consul {\n  wait 1m\n}\n", "t.conf:3: no \"service\" directive in block \"consul\" (it is required)"),
    ROW(C "consul {\n}\n", "t.conf:3: no \"service\" directive in block \"consul\" (it is required)"),
    ROW(C "consul {\n  servce ws\n}\n", "t.conf:4: unknown directive \"servce\" in block \"consul\""),
    ROW(C "consul {\n  listen 1.2.3.4:80\n}\n", "t.conf:4: \"listen\" is a top-level directive (not allowed in block \"consul\")"),
    ROW(C "consul {\n  consul\n}\n", "t.conf:4: \"consul\" is a top-level directive (not allowed in block \"consul\")"),
    ROW(L "service ws\n", "t.conf:2: \"service\" is allowed only in block \"consul\""),
    ROW(C "consul {\n  service a\n}\nwait 5m\n", "t.conf:6: \"wait\" is allowed only in block \"consul\""),
    ROW(L "tag {\n}\n", "t.conf:2: \"tag\" is allowed only in block \"consul\""),
    ROW(C "consul {\n  service a\n  wait 1m\n  wait 2m\n}\n", "t.conf:6: \"wait\" is a duplicate (first on line 5)"),
    ROW(C "consul {\n  service\n}\n", "t.conf:4: \"service\" takes 1 argument, got 0"),
    ROW(C "consul {\n  service a b\n}\n", "t.conf:4: \"service\" takes 1 argument, got 2"),
    /* the consul block: values */
    ROW(C "consul {\n  address 127.0.0.1:8500\n}\n", "t.conf:4: \"address 127.0.0.1:8500\" is not a URL (use http://host:port or https://host:port)"),
    ROW(C "consul {\n  address http://consul:8500/v1\n}\n", "t.conf:4: \"address http://consul:8500/v1\" has a path (use http://host:port or https://host:port)"),
    ROW(C "consul {\n  address https://consul_1:8501\n}\n", "t.conf:4: \"address https://consul_1:8501\" has a bad host name"),
    ROW(C "consul {\n  address http://[::1]:0\n}\n", "t.conf:4: \"address http://[::1]:0\" has a bad port (use 1..65535)"),
    ROW(C "consul {\n  service ws/backend\n}\n", "t.conf:4: \"service ws/backend\" is not a service name (letters, digits, -, _ and . only; at most 255)"),
    ROW(C "consul {\n  service a\n  datacenter dc.1\n}\n", "t.conf:5: \"datacenter dc.1\" is not a datacenter name (letters, digits, - and _ only; at most 255)"),
    ROW(C "consul {\n  service a\n  tag v2\n  tag v2\n}\n", "t.conf:6: \"tag v2\" is a duplicate"),
    ROW(C "consul {\n  service a\n  tag \xc3\xa9\n}\n", "t.conf:5: \"tag \xc3\xa9\" is not a tag (visible ASCII only; at most 255)"),
    ROW(C "consul {\n  service a\n  wait 11m\n}\n", "t.conf:5: \"wait 11m\" is longer than 10m"),
    ROW(C "consul {\n  service a\n  wait 999ms\n}\n", "t.conf:5: \"wait 999ms\" is shorter than 1s"),
    ROW(C "consul {\n  service a\n  wait 0\n}\n", "t.conf:5: \"wait 0\" is shorter than 1s"),
    ROW(C "consul {\n  service a\n  wait 25h\n}\n", "t.conf:5: \"wait 25h\" is longer than 24h"),
    ROW(C "consul {\n  service a\n  retry_max 99ms\n}\n", "t.conf:5: \"retry_max 99ms\" is shorter than 100ms"),
    ROW(C "consul {\n  service a\n  retry_max 2m\n}\n", "t.conf:5: \"retry_max 2m\" is longer than 1m"),
    ROW(C "consul {\n  service a\n  stale yes\n}\n", "t.conf:5: \"stale yes\" is not on or off"),
    /* the consul block: checks on the block's line or on the line at fault */
    ROW(C "consul {\n  service a\n  cert_file /c.pem\n}\n", "t.conf:3: block \"consul\" has cert_file but no key_file (give both or neither)"),
    ROW(C "consul {\n  service a\n  key_file /k.pem\n}\n", "t.conf:3: block \"consul\" has key_file but no cert_file (give both or neither)"),
    ROW(C "admin off\nconsul {\n  service a\n  register on\n}\n", "t.conf:6: \"register on\" needs the admin listener (the Consul check polls /healthz; admin is off)"),
    ROW(L "discovery consul\n", "t.conf:2: \"discovery consul\" needs a \"consul {\" ... \"}\" block"),
    ROW(L "consul {\n  service ws\n}\n", "t.conf:2: the consul block needs \"discovery consul\" (discovery is static)"),
    ROW(L "discovery static\nconsul {\n  service ws\n}\n", "t.conf:3: the consul block needs \"discovery consul\" (discovery is static)"),
    ROW(L "consul {\n}\n", "t.conf:2: the consul block needs \"discovery consul\" (discovery is static)"),
    ROW(C "backend a 127.0.0.1:1\nbackend b 127.0.0.1:2\nconsul {\n  service ws\n}\n", "t.conf:3: backend lines are used only with \"discovery static\""),
    ROW(L "backend a 127.0.0.1:1\nconsul {\n  service ws\n}\ndiscovery consul\n", "t.conf:2: backend lines are used only with \"discovery static\""),
    /* the etcd block and state_file */
    ROW(L "discovery etcd\n", "t.conf:2: \"discovery etcd\" needs a \"etcd {\" ... \"}\" block"),
    ROW(L "etcd {\n  prefix /p/\n}\n", "t.conf:2: the etcd block needs \"discovery etcd\" (discovery is static)"),
    ROW(C "consul {\n  service a\n}\netcd {\n  prefix /p/\n}\n", "t.conf:6: the etcd block needs \"discovery etcd\" (discovery is consul)"),
    ROW(E "consul {\n  service a\n}\netcd {\n  prefix /p/\n}\n", "t.conf:3: the consul block needs \"discovery consul\" (discovery is etcd)"),
    ROW(E "etcd {\n  endpoints http://127.0.0.1:2379\n}\n", "t.conf:3: no \"prefix\" directive in block \"etcd\" (it is required)"),
    ROW(E "etcd {\n}\n", "t.conf:3: no \"prefix\" directive in block \"etcd\" (it is required)"),
    ROW(E "etcd {\n  prefix /p/\n  prefix /q/\n}\n", "t.conf:5: \"prefix\" is a duplicate (first on line 4)"),
    ROW(E "etcd {\n  prefix /p/ /q/\n}\n", "t.conf:4: \"prefix\" takes 1 argument, got 2"),
    ROW(E "etcd {\n  prefix /p/\xc3\xa9\n}\n", "t.conf:4: \"prefix /p/\xc3\xa9\" is not a key prefix (visible ASCII only; at most 512 bytes)"),
    ROW(E "etcd {\n  prefix /p/\n  endpoints 127.0.0.1:2379\n}\n", "t.conf:5: \"endpoints 127.0.0.1:2379\" is not a URL (use http://host:port or https://host:port)"),
    ROW(E "etcd {\n  prefix /p/\n  endpoints http://e:2379/v3\n}\n", "t.conf:5: \"endpoints http://e:2379/v3\" has a path (use http://host:port or https://host:port)"),
    ROW(E "etcd {\n  prefix /p/\n  endpoints http://e:0\n}\n", "t.conf:5: \"endpoints http://e:0\" has a bad port (use 1..65535)"),
    ROW(E "etcd {\n  prefix /p/\n  endpoints http://e:1\n  endpoints http://e:1/\n}\n", "t.conf:6: \"endpoints http://e:1/\" is a duplicate"),
    ROW(E "etcd {\n  prefix /p/\n  cert_file /c.pem\n}\n", "t.conf:3: block \"etcd\" has cert_file but no key_file (give both or neither)"),
    ROW(E "etcd {\n  prefix /p/\n  key_file /k.pem\n}\n", "t.conf:3: block \"etcd\" has key_file but no cert_file (give both or neither)"),
    ROW(E "etcd {\n  prefix /p/\n  username u\n}\n", "t.conf:3: block \"etcd\" has username but no password_file (give both or neither)"),
    ROW(E "etcd {\n  prefix /p/\n  password_file /pw\n}\n", "t.conf:3: block \"etcd\" has password_file but no username (give both or neither)"),
    ROW(E "etcd {\n  prefix /p/\n  username \xc3\xa9\n  password_file /pw\n}\n", "t.conf:5: \"username \xc3\xa9\" is not a user name (visible ASCII only; at most 255)"),
    ROW(E "etcd {\n  prefix /p/\n  service ws\n}\n", "t.conf:5: \"service\" is allowed only in block \"consul\""),
    ROW(E "etcd {\n  prefix /p/\n}\nbackend a 127.0.0.1:1\n", "t.conf:6: backend lines are used only with \"discovery static\""),
    ROW(E "etcd {\n  prefix /p/\n}\nprefix /q/\n", "t.conf:6: \"prefix\" is allowed only in block \"etcd\""),
    ROW(L "state_file /var/lib/wsring/m.json\n", "t.conf:2: state_file is used only with a discovery source (discovery is static: the members are in this file)"),
    ROW(E "state_file /a\nstate_file /b\netcd {\n  prefix /p/\n}\n", "t.conf:4: \"state_file\" is a duplicate (first on line 3)"),
    ROW(E "state_file\netcd {\n  prefix /p/\n}\n", "t.conf:3: \"state_file\" takes 1 argument, got 0"),
    /* TLS: a tls listener needs both files; nothing that would go unused is accepted */
    ROW("listen 127.0.0.1:80\nlisten 127.0.0.1:443 tls\n", "t.conf:2: listener 127.0.0.1:443 is flagged tls but there is no \"tls_certificate\" directive"),
    ROW("listen 127.0.0.1:443 tls\ntls_certificate /c.pem\n", "t.conf:1: listener 127.0.0.1:443 is flagged tls but there is no \"tls_certificate_key\" directive"),
    ROW("listen 127.0.0.1:443 tls\ntls_certificate_key /k.pem\n", "t.conf:1: listener 127.0.0.1:443 is flagged tls but there is no \"tls_certificate\" directive"),
    ROW(L "tls_certificate /c.pem\ntls_certificate_key /k.pem\n", "t.conf:2: \"tls_certificate\" is used only with a listener flagged tls"),
    ROW(L "\ntls_certificate_key /k.pem\n", "t.conf:3: \"tls_certificate_key\" is used only with a listener flagged tls"),
    ROW(L "tls_certificate\n", "t.conf:2: \"tls_certificate\" takes 1 argument, got 0"),
    ROW(L "tls_certificate /a.pem /b.pem\n", "t.conf:2: \"tls_certificate\" takes 1 argument, got 2"),
    ROW(L "tls_certificate /a.pem\ntls_certificate /b.pem\n", "t.conf:3: \"tls_certificate\" is a duplicate (first on line 2)"),
    ROW(L "backend_tls yes\n", "t.conf:2: \"backend_tls yes\" is not on or off"),
    ROW(L "backend_ca_file /ca.pem\n", "t.conf:2: \"backend_ca_file\" is used only with \"backend_tls on\""),
    ROW(L "backend_tls off\nbackend_tls_server_name ws.example\n", "t.conf:3: \"backend_tls_server_name\" is used only with \"backend_tls on\""),
    ROW(L "backend_tls on\nbackend_tls_server_name ws_1.example\n", "t.conf:3: \"backend_tls_server_name ws_1.example\" is not a host name (letters, digits, hyphens and dots)"),
    /* the zookeeper block: its place, its lines */
    ROW(L "zookeeper\n", "t.conf:2: \"zookeeper\" is a block (write \"zookeeper {\", its lines, then \"}\")"),
    ROW(Z "zookeeper {\n  path /s\n}\n", "t.conf:3: no \"hosts\" directive in block \"zookeeper\" (it is required)"),
    ROW(Z "zookeeper {\n  hosts h:1\n}\n", "t.conf:3: no \"path\" directive in block \"zookeeper\" (it is required)"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s\n  service ws\n}\n", "t.conf:6: \"service\" is allowed only in block \"consul\""),
    ROW(C "consul {\n  service a\n  path /s\n}\n", "t.conf:5: \"path\" is allowed only in block \"zookeeper\""),
    ROW(L "hosts h:1\n", "t.conf:2: \"hosts\" is allowed only in block \"zookeeper\""),
    ROW(Z "zookeeper {\n  hosts h:1\n  hosts h:2\n  path /s\n}\n", "t.conf:5: \"hosts\" is a duplicate (first on line 4)"),
    ROW(Z "zookeeper {\n  hosts h:1 h:2\n  path /s\n}\n", "t.conf:4: \"hosts\" takes 1 argument, got 2"),
    ROW(L "discovery dns\n", "t.conf:2: \"discovery dns\" is not a supported source (use static, consul, etcd or zookeeper)"),
    ROW(L "discovery zookeeper\n", "t.conf:2: \"discovery zookeeper\" needs a \"zookeeper {\" ... \"}\" block"),
    ROW(L "zookeeper {\n  hosts h:1\n  path /s\n}\n", "t.conf:2: the zookeeper block needs \"discovery zookeeper\" (discovery is static)"),
    ROW(C "consul {\n  service a\n}\nzookeeper {\n  hosts h:1\n  path /s\n}\n", "t.conf:6: the zookeeper block needs \"discovery zookeeper\" (discovery is consul)"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s\n}\nconsul {\n  service a\n}\n", "t.conf:7: the consul block needs \"discovery consul\" (discovery is zookeeper)"),
    ROW(Z "backend a 127.0.0.1:1\nzookeeper {\n  hosts h:1\n  path /s\n}\n", "t.conf:3: backend lines are used only with \"discovery static\""),
    /* the zookeeper block: values */
    ROW(Z "zookeeper {\n  hosts h\n  path /s\n}\n", "t.conf:4: \"hosts h\" is not an address (use IPv4:port, [IPv6]:port or host:port)"),
    ROW(Z "zookeeper {\n  hosts h:1,\n  path /s\n}\n", "t.conf:4: \"hosts h:1,\" has an empty entry (write host:port,host:port)"),
    ROW(Z "zookeeper {\n  hosts ,h:1\n  path /s\n}\n", "t.conf:4: \"hosts ,h:1\" has an empty entry (write host:port,host:port)"),
    ROW(Z "zookeeper {\n  hosts h:1,h:0\n  path /s\n}\n", "t.conf:4: \"hosts h:1,h:0\" has a bad port (use 1..65535)"),
    ROW(Z "zookeeper {\n  hosts h:1,H:1\n  path /s\n}\n", "t.conf:4: \"hosts h:1,H:1\" lists a server twice"),
    ROW(Z "zookeeper {\n  hosts h:1,h:2/chroot\n  path /s\n}\n", "t.conf:4: \"hosts h:1,h:2/chroot\" has a chroot suffix (give the whole node in \"path\" instead)"),
    ROW(Z "zookeeper {\n  hosts h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,h:13,h:14,h:15,h:16,h:17\n  path /s\n}\n", "t.conf:4: \"hosts h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,h:13,h:14,h:15,h:16,h:17\" lists more than 16 servers"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path s\n}\n", "t.conf:5: \"path s\" does not start with \"/\""),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /\n}\n", "t.conf:5: \"path /\" is the root (give the node the backends register under)"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s/\n}\n", "t.conf:5: \"path /s/\" has an empty, \".\" or \"..\" segment (or a trailing \"/\")"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /a//b\n}\n", "t.conf:5: \"path /a//b\" has an empty, \".\" or \"..\" segment (or a trailing \"/\")"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /a/./b\n}\n", "t.conf:5: \"path /a/./b\" has an empty, \".\" or \"..\" segment (or a trailing \"/\")"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /a/..\n}\n", "t.conf:5: \"path /a/..\" has an empty, \".\" or \"..\" segment (or a trailing \"/\")"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s\xc3\xa9\n}\n", "t.conf:5: \"path /s\xc3\xa9\" has a byte that is not visible ASCII"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s\n  session_timeout 999ms\n}\n", "t.conf:6: \"session_timeout 999ms\" is shorter than 1s"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s\n  session_timeout 11m\n}\n", "t.conf:6: \"session_timeout 11m\" is longer than 10m"),
    ROW(Z "zookeeper {\n  hosts h:1\n  path /s\n  session_timeout 10\n}\n", "t.conf:6: \"session_timeout 10\" is not a duration (use ms, s, m or h)"),
    /* bytes */
    ROW(L "vnodes 1\0\n", "t.conf:2: control byte 0x00 (only tab, CR and LF may appear)"),
    ROW("\0", "t.conf:1: control byte 0x00 (only tab, CR and LF may appear)"),
    ROW(L "# \x1b[31m\n", "t.conf:2: control byte 0x1b (only tab, CR and LF may appear)"),
    ROW(L "vnodes\x7f 1\n", "t.conf:2: control byte 0x7f (only tab, CR and LF may appear)"),
    /* the required listen, reported on the last line */
    ROW("", "t.conf:1: no \"listen\" directive (at least one is required)"),
    ROW("\n", "t.conf:1: no \"listen\" directive (at least one is required)"),
    ROW("# nothing\nworkers 2\n", "t.conf:2: no \"listen\" directive (at least one is required)"),
    ROW("workers 2\n# end", "t.conf:2: no \"listen\" directive (at least one is required)"),
    /* line numbers survive CRLF */
    ROW("listen 127.0.0.1:8080\r\n\r\nvnodes x\r\n", "t.conf:3: \"vnodes x\" is not a number in 1..10000"),
};
/* clang-format on */

static void
test_bad_configs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        char err[CONF_ERR_LEN] = "";
        struct conf *conf = parse_exact(bad_rows[i].text, bad_rows[i].len, err);

        if (conf != NULL || strcmp(err, bad_rows[i].message) != 0) {
            fail_msg("row %zu: got \"%s\"\n  want \"%s\"", i, conf != NULL ? "(parsed)" : err,
                     bad_rows[i].message);
        }
    }
}

static void
test_line_length_limit(void **state)
{
    char text[2 + 4097 + 1 + sizeof(L)];
    char err[CONF_ERR_LEN];
    struct conf *conf;

    (void)state;
    /* A 4096-byte comment line is fine... */
    text[0] = '#';
    memset(text + 1, 'x', 4095);
    text[4096] = '\n';
    memcpy(text + 4097, L, sizeof(L) - 1);
    conf = parse_exact(text, 4097 + sizeof(L) - 1, err);
    assert_non_null(conf);
    conf_destroy(conf);
    /* ...one byte more is not, even as the last line without an LF. */
    memcpy(text, L, sizeof(L) - 1);
    memset(text + sizeof(L) - 1, '#', 4097);
    assert_null(parse_exact(text, sizeof(L) - 1 + 4097, err));
    assert_string_equal(err, "t.conf:2: line is longer than 4096 bytes");
}

static void
test_long_words_are_clipped(void **state)
{
    char text[300], want[CONF_ERR_LEN], err[CONF_ERR_LEN];

    (void)state;
    memset(text, 'a', 200);
    assert_null(parse_exact(text, 200, err));
    snprintf(want, sizeof(want), "t.conf:1: unknown directive \"%.100s...\"", text);
    assert_string_equal(err, want);

    memcpy(text, "listen ", 7);
    assert_null(parse_exact(text, 200, err));
    snprintf(want, sizeof(want), "t.conf:1: \"listen %.93s...\" %s", text + 7,
             "is not an address (use IPv4:port, [IPv6]:port or host:port)");
    assert_string_equal(err, want);
}

static void
test_rendezvous_keeps_vnodes(void **state)
{
    struct conf *conf = parse_ok(L "hash rendezvous\nvnodes 7\n");

    (void)state;
    assert_int_equal(conf->ring.algo, RING_ALGO_RENDEZVOUS);
    assert_int_equal(conf->ring.vnodes, 7);
    conf_destroy(conf);
}

/* backend's options in any order; public_url loses trailing "/"s; static members carry it. */
static void
test_backend_public_url(void **state)
{
    struct conf *conf =
        parse_ok(L "backend a 127.0.0.1:1 public_url https://a.example/ weight 2\n"
                   "backend b 127.0.0.1:2 public_url http://[::1]:8081/chat/%41//\n"
                   "backend c 127.0.0.1:3 weight 1\n"
                   "backend d 127.0.0.1:4 public_url https://d.example:443/a/b;c=d/~e\n");
    struct member_set *set = conf_static_members(conf);

    (void)state;
    assert_string_equal(conf->backends[0].public_url, "https://a.example");
    assert_int_equal(conf->backends[0].weight, 2);
    assert_string_equal(conf->backends[1].public_url, "http://[::1]:8081/chat/%41");
    assert_null(conf->backends[2].public_url);
    assert_string_equal(conf->backends[3].public_url, "https://d.example:443/a/b;c=d/~e");
    assert_non_null(set);
    assert_string_equal(member_set_at(set, 0)->public_url, "https://a.example");
    assert_string_equal(member_set_at(set, 1)->public_url, "http://[::1]:8081/chat/%41");
    assert_null(member_set_at(set, 2)->public_url);
    member_set_destroy(set);
    conf_destroy(conf);
}

/* route lines: the longest matching prefix wins, whatever the file order; no match is proxy. */
static void
test_routes_longest_prefix(void **state)
{
    struct conf *conf = parse_ok(L "route /connect/admin proxy\n"
                                   "route /connect redirect\n"
                                   "route / proxy\n"
                                   "route /internal/ proxy\n"
                                   "route /internal/redirect/ redirect\n"
                                   "pool_idle_timeout 250ms\n"
                                   "pool_max_idle 0\n");

    (void)state;
    assert_int_equal(conf->nroutes, 5);
    assert_string_equal(conf->routes[1].prefix, "/connect");
    assert_int_equal(conf->routes[1].prefix_len, 8);
    assert_int_equal(conf->routes[1].mode, CONF_ROUTE_REDIRECT);
    assert_int_equal(conf_route_mode(conf, "/connect", 8), CONF_ROUTE_REDIRECT);
    assert_int_equal(conf_route_mode(conf, "/connected", 10), CONF_ROUTE_REDIRECT);
    assert_int_equal(conf_route_mode(conf, "/connect/admin/x", 16), CONF_ROUTE_PROXY);
    assert_int_equal(conf_route_mode(conf, "/connect/adm", 12), CONF_ROUTE_REDIRECT);
    assert_int_equal(conf_route_mode(conf, "/conn", 5), CONF_ROUTE_PROXY);
    assert_int_equal(conf_route_mode(conf, "/internal/redirect/x", 20), CONF_ROUTE_REDIRECT);
    assert_int_equal(conf_route_mode(conf, "/internal/redirect", 18), CONF_ROUTE_PROXY);
    assert_int_equal(conf_route_mode(conf, "", 0), CONF_ROUTE_PROXY);
    assert_int_equal(conf->pool_idle_timeout_ms, 250);
    assert_int_equal(conf->pool_max_idle, 0);
    conf_destroy(conf);

    conf = parse_ok(L "route / redirect\n");
    assert_int_equal(conf_route_mode(conf, "/", 1), CONF_ROUTE_REDIRECT);
    assert_int_equal(conf_route_mode(conf, "/anything", 9), CONF_ROUTE_REDIRECT);
    conf_destroy(conf);
}

static void
test_static_members(void **state)
{
    struct conf *conf = parse_ok(L "backend b [::1]:9002 weight 3\n"
                                   "backend a host.example:9001\n");
    struct member_set *set = conf_static_members(conf);

    (void)state;
    assert_non_null(set);
    assert_int_equal(member_set_count(set), 2);
    assert_string_equal(member_set_at(set, 0)->id, "a");
    assert_string_equal(member_set_at(set, 0)->address, "host.example:9001");
    assert_int_equal(member_set_at(set, 0)->weight, 1);
    assert_string_equal(member_set_at(set, 1)->id, "b");
    assert_string_equal(member_set_at(set, 1)->address, "[::1]:9002");
    assert_int_equal(member_set_at(set, 1)->weight, 3);
    member_set_destroy(set);
    conf_destroy(conf);

    conf = parse_ok(L);
    set = conf_static_members(conf);
    assert_non_null(set);
    assert_int_equal(member_set_count(set), 0);
    member_set_destroy(set);
    conf_destroy(conf);
}

/* Every directive of BLOCK (COUNT of them) is in the example TEXT, commented: "#    NAME ...". */
static void
expect_block_in_example(const char *text, const char *block, size_t count)
{
    size_t n = 0;

    for (const char *const *name = conf_block_directive_names(block); *name != NULL; name++, n++) {
        char line[64];

        snprintf(line, sizeof(line), "\n#    %s ", *name);
        if (strstr(text, line) == NULL) {
            fail_msg("directive \"%s\" of block \"%s\" is not in conf/proxy.conf", *name, block);
        }
    }
    assert_int_equal(n, count);
}

/* The table is the documentation index: every directive appears as a line of the example. */
static void
test_every_directive_is_in_the_example(void **state)
{
    FILE *f = fopen("conf/proxy.conf", "r");
    char *text = calloc(1, 1 << 16);
    size_t len, n = 0;

    (void)state;
    assert_non_null(f);
    assert_non_null(text);
    len = fread(text + 1, 1, (1 << 16) - 2, f);
    fclose(f);
    text[0] = '\n';
    assert_true(len > 0);
    for (const char *const *name = conf_directive_names(); *name != NULL; name++, n++) {
        char line[64];

        /* A block is commented out (the example runs with static members): "#consul {". */
        char commented[64];

        snprintf(line, sizeof(line),
                 conf_block_directive_names(*name) != NULL ? "\n#%s {\n" : "\n%s ", *name);
        /* Lines that need files or a service (TLS) are shown commented out: "#NAME ...". */
        snprintf(commented, sizeof(commented), "\n#%s ", *name);
        if (strstr(text, line) == NULL && strstr(text, commented) == NULL) {
            fail_msg("directive \"%s\" is not set in conf/proxy.conf", *name);
        }
        for (const char *const *other = conf_directive_names(); other != name; other++) {
            assert_string_not_equal(*other, *name);
        }
    }
    assert_int_equal(n, 36);
    assert_string_equal(conf_directive_names()[0], "listen");
    /* ... and its lines as "#    NAME ...". */
    expect_block_in_example(text, "consul", 12);
    expect_block_in_example(text, "etcd", 7);
    expect_block_in_example(text, "zookeeper", 3);
    assert_null(conf_block_directive_names("listen"));
    free(text);
}

/* ... and has a row in the README's configuration reference ("| `name ..."). */
static void
test_every_directive_is_in_the_readme(void **state)
{
    FILE *f = fopen("README.md", "r");
    char *text = calloc(1, 1 << 17);

    (void)state;
    assert_non_null(f);
    assert_non_null(text);
    assert_true(fread(text, 1, (1 << 17) - 1, f) > 0);
    fclose(f);
    for (const char *const *name = conf_directive_names(); *name != NULL; name++) {
        char row[64];

        snprintf(row, sizeof(row), "| `%s ", *name);
        if (strstr(text, row) == NULL) {
            fail_msg("directive \"%s\" has no row in README.md", *name);
        }
        /* A block's directives have rows "| `BLOCK { NAME ...". */
        for (const char *const *inner = conf_block_directive_names(*name);
             inner != NULL && *inner != NULL; inner++) {
            snprintf(row, sizeof(row), "| `%s { %s ", *name, *inner);
            if (strstr(text, row) == NULL) {
                fail_msg("directive \"%s\" of block \"%s\" has no row in README.md", *inner, *name);
            }
        }
    }
    free(text);
}

static void
test_load_errors(void **state)
{
    char err[CONF_ERR_LEN];

    (void)state;
    assert_null(conf_load("tests/no-such-dir/x.conf", err));
    assert_string_equal(err, "tests/no-such-dir/x.conf: cannot read: No such file or directory");
    assert_null(conf_load("conf", err));
    assert_string_equal(err, "conf: cannot read: Is a directory");
    conf_destroy(NULL);
}

static void
test_durations(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms; /* UINT64_MAX: refused */
    } rows[] = {
        { "0", 0 },
        { "00", 0 },
        { "0s", 0 },
        { "500ms", 500 },
        { "3s", 3000 },
        { "2m", 120000 },
        { "1h", 3600000 },
        { "24h", 86400000 },
        { "1440m", 86400000 },
        { "86400000ms", 86400000 },
        { "1441m", UINT64_MAX },
        { "", UINT64_MAX },
        { "s", UINT64_MAX },
        { "5", UINT64_MAX },
        { "5S", UINT64_MAX },
        { "1.5s", UINT64_MAX },
        { "5 s", UINT64_MAX },
        { "5sec", UINT64_MAX },
        { "99999999999999999999999h", UINT64_MAX },
        { "1ms0", UINT64_MAX },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t ms = 42;
        const char *what = value_msec(rows[i].text, &ms);

        if (rows[i].ms == UINT64_MAX) {
            assert_non_null(what);
            assert_int_equal(ms, 42);
        } else if (what != NULL || ms != rows[i].ms) {
            fail_msg("\"%s\": %s, %ju", rows[i].text, what, (uintmax_t)ms);
        }
    }
}

static void
test_sizes_numbers_flags(void **state)
{
    uint64_t v = 0;
    bool on = false;

    (void)state;
    assert_null(value_size("16k", &v));
    assert_int_equal(v, 16384);
    assert_null(value_size("1M", &v));
    assert_int_equal(v, 1048576);
    assert_null(value_size("512", &v));
    assert_int_equal(v, 512);
    assert_non_null(value_size("k", &v));
    assert_non_null(value_size("1g", &v));
    assert_non_null(value_size("1kb", &v));
    assert_non_null(value_size("", &v));

    assert_null(value_uint("007", 1, 10, &v));
    assert_int_equal(v, 7);
    assert_string_equal(value_uint("", 0, 10, &v), "is not a number");
    assert_string_equal(value_uint("+1", 0, 10, &v), "is not a number");
    assert_string_equal(value_uint("1 ", 0, 10, &v), "is not a number");
    assert_string_equal(value_uint("11", 0, 10, &v), "is out of range");
    assert_string_equal(value_uint("99999999999999999999999", 0, UINT32_MAX, &v),
                        "is out of range");

    assert_null(value_flag("on", &on));
    assert_true(on);
    assert_null(value_flag("off", &on));
    assert_false(on);
    assert_non_null(value_flag("o", &on));
    assert_non_null(value_flag("ON", &on));
    assert_non_null(value_flag("offf", &on));
}

static void
test_addresses(void **state)
{
    static const struct {
        const char *text, *host;
        unsigned port;
    } good[] = {
        { "127.0.0.1:80", "127.0.0.1", 80 },
        { "0.0.0.0:65535", "0.0.0.0", 65535 },
        { "[::1]:443", "::1", 443 },
        { "[::]:8080", "::", 8080 },
        { "[2001:db8::1]:1", "2001:db8::1", 1 },
        { "[::ffff:10.0.0.1]:9", "::ffff:10.0.0.1", 9 },
        { "localhost:9000", "localhost", 9000 },
        { "ws-1.Example.com:8080", "ws-1.Example.com", 8080 },
        { "1a:80", "1a", 80 },
        { "a:00080", "a", 80 },
    };
    static const char *const bad[] = {
        "",
        ":",
        ":80",
        "a",
        "a:",
        "a:x",
        "a:-1",
        "a:+80",
        "a:123456",
        "[::1]80",
        "[::1]:",
        "[]:80",
        "[1.2.3.4]:80",
        "[::1:80",
        "::1]:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "01.2.3.4:80",
        "a..b:80",
        "a.:80",
        ".a:80",
        "a-:80",
        "a b:80",
        "*:80",
        "a_b:80",
        "[::1%lo]:80",
        "[:::]:80",
        "\xc3\xa9:80",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80", /* 64-byte label */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct conf_addr addr = { 0 };
        const char *what = value_addr(good[i].text, &addr);

        if (what != NULL) {
            fail_msg("\"%s\": %s", good[i].text, what);
        }
        assert_string_equal(addr.host, good[i].host);
        assert_int_equal(addr.port, good[i].port);
        free(addr.host);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct conf_addr addr = { 0 };

        if (value_addr(bad[i], &addr) == NULL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_null(addr.host);
    }
}

static void
test_host_names(void **state)
{
    char name[256];

    (void)state;
    /* Three 63-byte labels and a 61-byte one: 253 bytes, the longest name (RFC 1035 s2.3.4). */
    memset(name, 'a', sizeof(name));
    name[63] = name[127] = name[191] = '.';
    assert_true(conf_value_is_hostname(name, 253));
    assert_false(conf_value_is_hostname(name, 254));
    assert_true(conf_value_is_hostname(name, 63));
    assert_false(conf_value_is_hostname(name, 64)); /* "aaa...a." ends with an empty label */
    name[64] = '-';
    assert_false(conf_value_is_hostname(name, 80)); /* a label may not start with "-" */
    assert_false(conf_value_is_hostname("", 0));
    assert_true(conf_value_is_hostname("a-b", 3));
    assert_true(conf_value_is_token("X-User-Id", 9));
    assert_true(conf_value_is_token("!#$%&'*+-.^_`|~", 15));
    assert_false(conf_value_is_token("", 0));
    assert_false(conf_value_is_token("a b", 3));
    assert_false(conf_value_is_token("a\0b", 3));
    assert_false(conf_value_is_token("a:", 2));
}

static void
test_address_equality_and_format(void **state)
{
    struct conf_addr v6a = { "::1", 80 }, v6b = { "0:0::1", 80 }, v4 = { "127.0.0.1", 80 };
    struct conf_addr name_a = { "LocalHost", 80 }, name_b = { "localhost", 80 };
    struct conf_addr other_port = { "127.0.0.1", 81 }, off = { NULL, 0 };
    char *text;

    (void)state;
    assert_true(conf_value_addr_equal(&v6a, &v6b));
    assert_true(conf_value_addr_equal(&name_a, &name_b));
    assert_true(conf_value_addr_equal(&off, &off));
    assert_false(conf_value_addr_equal(&v4, &other_port));
    assert_false(conf_value_addr_equal(&v4, &name_b));
    assert_false(conf_value_addr_equal(&v4, &v6a));
    assert_false(conf_value_addr_equal(&off, &v4));
    text = conf_value_addr_format(&v6b);
    assert_string_equal(text, "[0:0::1]:80");
    free(text);
    text = conf_value_addr_format(&other_port);
    assert_string_equal(text, "127.0.0.1:81");
    free(text);
}

static const char *
value_base_url(const char *text, char **out)
{
    char *copy = exact_copy(text);
    const char *what = conf_value_base_url(copy, strlen(text), out);

    free(copy);
    return what;
}

static void
test_base_urls(void **state)
{
    static const struct {
        const char *text, *url;
    } good[] = {
        { "http://127.0.0.1:8500", "http://127.0.0.1:8500" },
        { "http://127.0.0.1:8500/", "http://127.0.0.1:8500" },
        { "https://consul.example.com", "https://consul.example.com" },
        { "https://Consul-1.example:8501/", "https://Consul-1.example:8501" },
        { "http://[::1]:8500", "http://[::1]:8500" },
        { "http://[::1]/", "http://[::1]" },
        { "http://localhost:08500", "http://localhost:08500" },
    };
    static const char *const bad[] = {
        "",
        "http://",
        "https://",
        "http:///",
        "http:/x",
        "ftp://x",
        "HTTP://x",
        "x://y",
        "127.0.0.1:8500",
        "unix:///var/run/consul.sock",
        "http://x/y",
        "http://x//",
        "http://x/v1/",
        "http://x:",
        "http://x:0",
        "http://x:65536",
        "http://x:8500:1",
        "http://[::1",
        "http://[::1]x",
        "http://[::1]:",
        "http://[]:80",
        "http://[1.2.3.4]:80",
        "http://::1",
        "http://::1:8500",
        "http://user@x",
        "http://x?y",
        "http://a_b",
        "http://1.2.3.4.5",
        "http://-a",
        "http://a b",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *url = NULL;
        const char *what = value_base_url(good[i].text, &url);

        if (what != NULL) {
            fail_msg("\"%s\": %s", good[i].text, what);
        }
        assert_string_equal(url, good[i].url);
        free(url);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *url = NULL;

        if (value_base_url(bad[i], &url) == NULL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_null(url);
    }
}

static void
test_key_rules(void **state)
{
    static const char *const bad[] = {
        "",           "query",   "query:",     "query:a&b",    "query:a%20",
        "query:a#",   "header:", "header:a b", "header:a\"",   "cookie:a=b",
        "cookie:a;",  "path:",   "path:x",     "path:-1",      "path:01x",
        "Query:user", "jwt:",    ":user",      "jwt:\xc3\xa9",
    };
    struct conf_key_rule rule = { 0 };

    (void)state;
    assert_null(value_key_rule("query:access-token.v2~x", &rule));
    assert_int_equal(rule.source, CONF_KEY_QUERY);
    assert_string_equal(rule.name, "access-token.v2~x");
    assert_int_equal(rule.name_len, 17);
    free(rule.name);
    assert_null(value_key_rule("header:X-User-Id", &rule));
    assert_int_equal(rule.source, CONF_KEY_HEADER);
    assert_string_equal(rule.name, "X-User-Id");
    free(rule.name);
    assert_null(value_key_rule("cookie:__Host-uid", &rule));
    assert_int_equal(rule.source, CONF_KEY_COOKIE);
    free(rule.name);
    assert_null(value_key_rule("jwt:https://example.com/uid", &rule));
    assert_int_equal(rule.source, CONF_KEY_JWT);
    assert_string_equal(rule.name, "https://example.com/uid");
    free(rule.name);
    assert_null(value_key_rule("path:64", &rule));
    assert_int_equal(rule.source, CONF_KEY_PATH);
    assert_null(rule.name);
    assert_int_equal(rule.name_len, 0);
    assert_int_equal(rule.segment, 64);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct conf_key_rule untouched = { .name = NULL };

        if (value_key_rule(bad[i], &untouched) == NULL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_null(untouched.name);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_parses),
        cmocka_unit_test(test_every_default),
        cmocka_unit_test(test_every_value_is_read),
        cmocka_unit_test(test_comments_and_blank_lines),
        cmocka_unit_test(test_consul_every_value),
        cmocka_unit_test(test_consul_defaults),
        cmocka_unit_test(test_consul_limits),
        cmocka_unit_test(test_example_consul_block_parses),
        cmocka_unit_test(test_example_etcd_block_parses),
        cmocka_unit_test(test_etcd_values_and_defaults),
        cmocka_unit_test(test_zookeeper_values_and_defaults),
        cmocka_unit_test(test_example_zookeeper_block_parses),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_long_words_are_clipped),
        cmocka_unit_test(test_rendezvous_keeps_vnodes),
        cmocka_unit_test(test_backend_public_url),
        cmocka_unit_test(test_routes_longest_prefix),
        cmocka_unit_test(test_static_members),
        cmocka_unit_test(test_every_directive_is_in_the_example),
        cmocka_unit_test(test_every_directive_is_in_the_readme),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes_numbers_flags),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_host_names),
        cmocka_unit_test(test_address_equality_and_format),
        cmocka_unit_test(test_base_urls),
        cmocka_unit_test(test_key_rules),
    };

    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
