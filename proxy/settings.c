/* Refcounted confs (see settings.h). */
#include "proxy/settings.h"

#include <stdlib.h>

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
        free(s);
    }
}
