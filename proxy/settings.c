/* Refcounted confs (see settings.h). */
#include "proxy/settings.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "proxy/jwt.h"
#include "proxy/tls.h"

struct settings *
settings_create(struct conf *conf)
{
    struct settings *s = malloc(sizeof(*s));

    if (s == NULL) {
        conf_destroy(conf);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->conf = conf;
    s->jwt_key = NULL;
    s->tls_server = NULL;
    s->tls_backend = NULL;
    return s;
}

struct settings *
settings_load(const char *file, char err[CONF_ERR_LEN])
{
    struct conf *conf = conf_load(file, err);
    struct jwt_key *key = NULL;
    SSL_CTX *server, *backend;
    struct settings *s;

    if (conf == NULL) {
        return NULL;
    }
    if (conf->jwt_key_file != NULL) {
        char why[CONF_ERR_LEN / 2];

        key = jwt_key_load(conf->jwt_key_file, why, sizeof(why));
        if (key == NULL) {
            snprintf(err, CONF_ERR_LEN, "%s:%u: \"jwt_key_file %.100s\" %s", file,
                     conf->jwt_key_file_line, conf->jwt_key_file, why);
            conf_destroy(conf);
            return NULL;
        }
    }
    /* The certificate files are read here too: -t, a start and a SIGHUP all check them. */
    if (tls_contexts_create(conf, &server, &backend, err, CONF_ERR_LEN) == -1) {
        jwt_key_destroy(key);
        conf_destroy(conf);
        return NULL;
    }
    s = settings_create(conf);
    if (s == NULL) {
        jwt_key_destroy(key);
        SSL_CTX_free(server);
        SSL_CTX_free(backend);
        snprintf(err, CONF_ERR_LEN, "%s: cannot allocate memory", file);
        return NULL;
    }
    s->jwt_key = key;
    s->tls_server = server;
    s->tls_backend = backend;
    return s;
}

struct settings *
settings_ref(struct settings *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
settings_unref(struct settings *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        jwt_key_destroy(s->jwt_key);
        conf_destroy(s->conf);
        SSL_CTX_free(s->tls_server);
        SSL_CTX_free(s->tls_backend);
        free(s);
    }
}
