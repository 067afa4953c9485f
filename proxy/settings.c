/* Refcounted confs (see settings.h). */
#include "proxy/settings.h"

#include <stdio.h>
#include <stdlib.h>

#include "conf/conf.h"
#include "proxy/jwt.h"

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
    return s;
}

struct settings *
settings_load(const char *file, char err[CONF_ERR_LEN])
{
    struct conf *conf = conf_load(file, err);
    struct jwt_key *key = NULL;
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
    s = settings_create(conf);
    if (s == NULL) {
        jwt_key_destroy(key);
        snprintf(err, CONF_ERR_LEN, "%s: cannot allocate memory", file);
        return NULL;
    }
    s->jwt_key = key;
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
        free(s);
    }
}
