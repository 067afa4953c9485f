/* Agent address, token and TLS for every Consul request (DISCOVERY §1.6). */
#include "discovery/consul_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

#define CONSUL_DEFAULT_ADDR       "http://127.0.0.1:8500"
#define CONSUL_TOKEN_MAX          4096
#define CONSUL_CONNECT_TIMEOUT_MS 2000L

/* CC's value, else the environment's, else NULL; a copy. */
static char *
consul_http_pick(const char *conf_value, const char *env)
{
    const char *v = conf_value != NULL ? conf_value : getenv(env);

    return v != NULL && v[0] != '\0' ? strdup(v) : NULL;
}

/* CONSUL_HTTP_ADDR may be "host:port" without a scheme (Consul's api.NewClient). */
static char *
consul_http_base_url(const struct conf_consul *cc)
{
    const char *addr = cc->address != NULL ? cc->address : getenv("CONSUL_HTTP_ADDR");
    size_t len;
    char *url;

    if (addr == NULL || addr[0] == '\0') {
        addr = CONSUL_DEFAULT_ADDR;
    }
    len = strlen(addr);
    while (len > 0 && addr[len - 1] == '/') {
        len--;
    }
    url = malloc(len + sizeof("http://"));
    if (url == NULL) {
        return NULL;
    }
    if (strstr(addr, "://") == NULL) {
        snprintf(url, len + sizeof("http://"), "http://%.*s", (int)len, addr);
    } else {
        snprintf(url, len + 1, "%.*s", (int)len, addr);
    }
    return url;
}

/* Reads the token: token_file, else CONSUL_HTTP_TOKEN_FILE (which wins over CONSUL_HTTP_TOKEN). */
static int
consul_http_token(const struct conf_consul *cc, char *token, size_t cap, char *err, size_t err_len)
{
    const char *file = cc->token_file != NULL ? cc->token_file : getenv("CONSUL_HTTP_TOKEN_FILE");
    const char *env = getenv("CONSUL_HTTP_TOKEN");
    size_t len = 0, start = 0;

    token[0] = '\0';
    if (file != NULL && file[0] != '\0') {
        FILE *f = fopen(file, "r");

        if (f == NULL) {
            snprintf(err, err_len, "consul token file %s: %s", file, strerror(errno));
            return -1;
        }
        len = fread(token, 1, cap - 1, f);
        fclose(f);
    } else if (env != NULL) {
        len = strlen(env) < cap - 1 ? strlen(env) : cap - 1;
        memcpy(token, env, len);
    }
    /* Whitespace-trimmed, as Consul's client reads it. */
    while (len > 0 && isspace((unsigned char)token[len - 1])) {
        len--;
    }
    while (start < len && isspace((unsigned char)token[start])) {
        start++;
    }
    memmove(token, token + start, len - start);
    token[len - start] = '\0';
    for (size_t i = 0; token[i] != '\0'; i++) {
        if ((unsigned char)token[i] < 0x20 || token[i] == 0x7f) {
            snprintf(err, err_len, "consul token holds a control byte");
            return -1;
        }
    }
    return 0;
}

int
consul_http_init(struct consul_http *http, const struct conf_consul *cc, char *err, size_t err_len)
{
    char token[CONSUL_TOKEN_MAX];
    char header[CONSUL_TOKEN_MAX + 32];

    memset(http, 0, sizeof(*http));
    if (consul_http_token(cc, token, sizeof(token), err, err_len) == -1) {
        return -1;
    }
    http->base_url = consul_http_base_url(cc);
    http->ca_file = consul_http_pick(cc->ca_file, "CONSUL_CACERT");
    http->cert_file = consul_http_pick(cc->cert_file, "CONSUL_CLIENT_CERT");
    http->key_file = consul_http_pick(cc->key_file, "CONSUL_CLIENT_KEY");
    if (token[0] != '\0') {
        snprintf(header, sizeof(header), "X-Consul-Token: %s", token);
        http->headers = curl_slist_append(NULL, header);
        memset(header, 0, sizeof(header));
    }
    /* The secret stays only in curl's header list. */
    if (http->base_url == NULL || (token[0] != '\0' && http->headers == NULL)) {
        memset(token, 0, sizeof(token));
        snprintf(err, err_len, "out of memory");
        consul_http_fini(http);
        return -1;
    }
    memset(token, 0, sizeof(token));
    return 0;
}

void
consul_http_fini(struct consul_http *http)
{
    free(http->base_url);
    curl_slist_free_all(http->headers);
    free(http->ca_file);
    free(http->cert_file);
    free(http->key_file);
    memset(http, 0, sizeof(*http));
}

int
consul_http_set_path(const struct consul_http *http, CURL *easy, const char *path_and_query)
{
    size_t len = strlen(http->base_url) + strlen(path_and_query) + 1;
    char *url = malloc(len);
    CURLcode rc;

    if (url == NULL) {
        return -1;
    }
    snprintf(url, len, "%s%s", http->base_url, path_and_query);
    rc = curl_easy_setopt(easy, CURLOPT_URL, url); /* curl copies it */
    free(url);
    return rc == CURLE_OK ? 0 : -1;
}

CURL *
consul_http_easy(const struct consul_http *http, const char *path_and_query, long timeout_ms)
{
    CURL *easy = curl_easy_init();

    if (easy == NULL) {
        return NULL;
    }
    if (consul_http_set_path(http, easy, path_and_query) == -1) {
        curl_easy_cleanup(easy);
        return NULL;
    }
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, CONSUL_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "wsring/" WSRING_VERSION);
    if (http->headers != NULL) {
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, http->headers);
    }
    if (http->ca_file != NULL) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, http->ca_file);
    }
    if (http->cert_file != NULL && http->key_file != NULL) {
        curl_easy_setopt(easy, CURLOPT_SSLCERT, http->cert_file);
        curl_easy_setopt(easy, CURLOPT_SSLKEY, http->key_file);
    }
    return easy;
}
