/* Self-registration with the local Consul agent (Consul docs: api-docs/agent/service.mdx). */
#include "discovery/consul_register.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf/conf.h"
#include "discovery/consul_http.h"
#include "discovery/curl_event.h"
#include "proxy/log.h"

#define CONSUL_REGISTER_TIMEOUT_MS   5000L
#define CONSUL_DEREGISTER_TIMEOUT_MS 2000L
#define CONSUL_REGISTER_RETRY_MS     1000
#define CONSUL_ID_LEN                300

struct consul_register {
    const struct conf *conf; /* borrowed */
    struct curl_event *ce;   /* borrowed */
    struct consul_http http; /* owned */
    CURL *easy;              /* owned; the registration request */
    struct event *retry;     /* owned */
    char *payload;           /* owned; the registration JSON */
    char id[CONSUL_ID_LEN];  /* our service ID: unique per agent */
    int registered;
    int warned; /* the current run of failures was logged */
};

/* An address as a URL host: IPv6 in brackets; the wildcard becomes loopback for checks. */
static void
consul_register_host(const char *host, char *out, size_t cap)
{
    if (strcmp(host, "0.0.0.0") == 0) {
        host = "127.0.0.1";
    } else if (strcmp(host, "::") == 0) {
        host = "::1";
    }
    snprintf(out, cap, strchr(host, ':') != NULL ? "[%s]" : "%s", host);
}

static char *
consul_register_payload(const struct consul_register *r)
{
    const struct conf *conf = r->conf;
    const struct conf_addr *l = &conf->listen[0].addr;
    char host[300], check_url[400];
    json_t *svc;
    char *text;

    consul_register_host(conf->admin.host, host, sizeof(host));
    snprintf(check_url, sizeof(check_url), "http://%s:%u/healthz", host, conf->admin.port);
    /* Agent service doc: Address empty = the agent's address; right for a wildcard listen. */
    svc = json_pack("{s:s, s:s, s:[s], s:i, s:{s:s, s:s, s:s, s:s}}", "ID", r->id, "Name", "wsring",
                    "Tags", "wsring", "Port", (int)l->port, "Check", "Name",
                    "wsring admin /healthz", "HTTP", check_url, "Interval", "5s", "Timeout", "2s");
    if (svc == NULL) {
        return NULL;
    }
    if (strcmp(l->host, "0.0.0.0") != 0 && strcmp(l->host, "::") != 0) {
        json_object_set_new(svc, "Address", json_string(l->host));
    }
    text = json_dumps(svc, JSON_COMPACT);
    json_decref(svc);
    return text;
}

static void consul_register_send(struct consul_register *r);

static void
consul_register_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    consul_register_send(arg);
}

static void
consul_register_on_done(CURL *easy, CURLcode result, void *arg)
{
    struct consul_register *r = arg;
    struct timeval tv = { .tv_sec = CONSUL_REGISTER_RETRY_MS / 1000,
                          .tv_usec = (CONSUL_REGISTER_RETRY_MS % 1000) * 1000 };
    long code = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (result == CURLE_OK && code == 200) {
        r->registered = 1;
        r->warned = 0;
        log_msg(LOG_INFO, "event=consul_registered id=%s agent=%s", r->id, r->http.base_url);
        return;
    }
    if (!r->warned) {
        log_msg(LOG_WARN, "event=consul_register_failed id=%s error=\"%s\" status=%ld%s", r->id,
                result != CURLE_OK ? curl_easy_strerror(result) : "HTTP error", code,
                code == 403 ? " hint=\"ACL token refused (needs service:write)\"" : "");
        r->warned = 1;
    }
    evtimer_add(r->retry, &tv);
}

static void
consul_register_send(struct consul_register *r)
{
    if (curl_event_add(r->ce, r->easy, consul_register_on_done, r) == -1) {
        consul_register_on_done(r->easy, CURLE_OUT_OF_MEMORY, r);
    }
}

struct consul_register *
consul_register_start(struct event_base *base, struct curl_event *ce, const struct conf *conf,
                      char *err, size_t err_len)
{
    struct consul_register *r;
    char hostname[256] = "wsring";

    if (conf->admin.host == NULL) {
        snprintf(err, err_len,
                 "consul register needs the admin address (its /healthz is the "
                 "check); admin is off");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    r->conf = conf;
    r->ce = ce;
    gethostname(hostname, sizeof(hostname) - 1);
    snprintf(r->id, sizeof(r->id), "wsring-%s-%u", hostname, conf->listen[0].addr.port);
    if (consul_http_init(&r->http, &conf->consul, err, err_len) == -1) {
        free(r);
        return NULL;
    }
    r->payload = consul_register_payload(r);
    r->easy = consul_http_easy(&r->http, "/v1/agent/service/register", CONSUL_REGISTER_TIMEOUT_MS);
    r->retry = evtimer_new(base, consul_register_on_retry, r);
    if (r->payload == NULL || r->easy == NULL || r->retry == NULL) {
        snprintf(err, err_len, "out of memory");
        consul_register_stop(r);
        return NULL;
    }
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->payload);
    consul_register_send(r);
    return r;
}

/* PUT /v1/agent/service/deregister/:id, synchronously: the loop is ending. */
static void
consul_register_deregister(struct consul_register *r)
{
    char path[CONSUL_ID_LEN + 64];
    CURL *easy;
    CURLcode rc;
    long code = 0;

    snprintf(path, sizeof(path), "/v1/agent/service/deregister/%s", r->id);
    easy = consul_http_easy(&r->http, path, CONSUL_DEREGISTER_TIMEOUT_MS);
    if (easy == NULL) {
        return;
    }
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
    rc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code == 200) {
        log_msg(LOG_INFO, "event=consul_deregistered id=%s", r->id);
    } else {
        log_msg(LOG_WARN, "event=consul_deregister_failed id=%s error=\"%s\" status=%ld", r->id,
                curl_easy_strerror(rc), code);
    }
    curl_easy_cleanup(easy);
}

void
consul_register_stop(struct consul_register *r)
{
    if (r == NULL) {
        return;
    }
    if (r->easy != NULL) {
        curl_event_remove(r->ce, r->easy);
        curl_easy_cleanup(r->easy);
    }
    if (r->registered) {
        consul_register_deregister(r);
    }
    if (r->retry != NULL) {
        event_free(r->retry);
    }
    consul_http_fini(&r->http);
    free(r->payload);
    free(r);
}
