/*
 * How wsring talks to its Consul agent: address, token, TLS, resolved once
 * from the consul block and the environment Consul's own tools read
 * (DISCOVERY §1.6: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN,
 * CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY).
 */
#ifndef WSRING_DISCOVERY_CONSUL_HTTP_H
#define WSRING_DISCOVERY_CONSUL_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

struct conf_consul;

struct consul_http {
    char *base_url;             /* owned; "http://127.0.0.1:8500", no trailing '/' */
    struct curl_slist *headers; /* owned; X-Consul-Token when there is a token */
    char *ca_file;              /* owned or NULL */
    char *cert_file;            /* owned or NULL */
    char *key_file;             /* owned or NULL */
};

/*
 * Fills HTTP from CC and the environment; reads the token file. Returns 0, or
 * -1 with ERR (the token itself never appears in a message).
 */
int consul_http_init(struct consul_http *http, const struct conf_consul *cc, char *err,
                     size_t err_len);
void consul_http_fini(struct consul_http *http);
/*
 * Returns a new easy handle for PATH_AND_QUERY (starting with '/') with the
 * token, TLS files, TIMEOUT_MS and a 2 s connect timeout set, or NULL.
 */
CURL *consul_http_easy(const struct consul_http *http, const char *path_and_query, long timeout_ms);
/* Sets EASY's URL to the agent's PATH_AND_QUERY. Returns 0 or -1. */
int consul_http_set_path(const struct consul_http *http, CURL *easy, const char *path_and_query);

#endif /* WSRING_DISCOVERY_CONSUL_HTTP_H */
