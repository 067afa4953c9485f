/* Refcounted confs (see settings.h). */
#include "proxy/settings.h"

#include <stdlib.h>

#include <openssl/ssl.h>

#include "conf/conf.h"

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
    s->tls_server = NULL;
    s->tls_backend = NULL;
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
        conf_destroy(s->conf);
        SSL_CTX_free(s->tls_server);
        SSL_CTX_free(s->tls_backend);
        free(s);
    }
}
