/* The saved member set: atomic writes, strict reads (DESIGN §11). */
#include "discovery/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ring/member_set.h"

#define STATE_FILE_VERSION 1

static json_t *
state_file_json(const struct member_set *set, const char *source)
{
    json_t *members = json_array();
    json_t *root;

    for (size_t i = 0; members != NULL && i < member_set_count(set); i++) {
        const struct member *m = member_set_at(set, i);
        json_t *o = json_pack("{s:s, s:s, s:i}", "id", m->id, "address", m->address, "weight",
                              (int)m->weight);

        if (o != NULL && m->public_url != NULL) {
            json_object_set_new(o, "public_url", json_string(m->public_url));
        }
        if (o == NULL || json_array_append_new(members, o) == -1) {
            json_decref(members);
            return NULL;
        }
    }
    root = json_pack("{s:i, s:s, s:I, s:o}", "version", STATE_FILE_VERSION, "source", source,
                     "saved", (json_int_t)time(NULL), "members", members);
    return root;
}

/* fsync of PATH's directory, so the rename itself survives a crash. */
static int
state_file_sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd, rc;

    if (copy == NULL) {
        errno = ENOMEM;
        return -1;
    }
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd == -1) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}

int
state_file_write(const char *path, const struct member_set *set, const char *source, char *err,
                 size_t err_len)
{
    json_t *root = state_file_json(set, source);
    char *text = root != NULL ? json_dumps(root, JSON_INDENT(1)) : NULL;
    size_t tmp_len = strlen(path) + 32, len, done = 0;
    char *tmp = malloc(tmp_len);
    int fd = -1, e = 0;

    json_decref(root);
    if (text == NULL || tmp == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        free(text);
        free(tmp);
        return -1;
    }
    /* Same directory as PATH, so rename() replaces it atomically. */
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    len = strlen(text);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd != -1 && done < len) {
        ssize_t n = write(fd, text + done, len - done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    if (fd == -1) {
        e = errno;
    } else if (e == 0 && (write(fd, "\n", 1) != 1 || fsync(fd) != 0)) {
        e = errno != 0 ? errno : EIO;
    }
    if (fd != -1 && close(fd) != 0 && e == 0) {
        e = errno;
    }
    if (e == 0 && rename(tmp, path) != 0) {
        e = errno;
    }
    if (e != 0) {
        snprintf(err, err_len, "%s: %s", fd == -1 ? tmp : path, strerror(e));
        if (fd != -1) {
            unlink(tmp);
        }
    } else if (state_file_sync_dir(path) != 0) {
        /* The file is in place; only its durability across a crash is in doubt. */
        snprintf(err, err_len, "%s: fsync of the directory: %s", path, strerror(errno));
        e = -1;
    }
    free(text);
    free(tmp);
    return e == 0 ? 0 : -1;
}

static const char *
state_file_member(struct member_set *set, const json_t *m)
{
    const json_t *id = json_object_get(m, "id"), *address = json_object_get(m, "address");
    const json_t *weight = json_object_get(m, "weight"), *url = json_object_get(m, "public_url");

    if (!json_is_object(m) || !json_is_string(id) || !json_is_string(address) ||
        !json_is_integer(weight) || (url != NULL && !json_is_null(url) && !json_is_string(url))) {
        return "a member is not {id, address, weight[, public_url]}";
    }
    if (json_string_length(id) != strlen(json_string_value(id)) ||
        json_string_length(address) != strlen(json_string_value(address)) ||
        json_integer_value(weight) < 1 ||
        json_integer_value(weight) > (json_int_t)MEMBER_SET_MAX_WEIGHT) {
        return "a member has a NUL byte or a weight outside 1..1000";
    }
    if (member_set_add(set, json_string_value(id), json_string_value(address),
                       (uint32_t)json_integer_value(weight)) == -1) {
        return errno == EEXIST   ? "duplicate member id"
               : errno == ENOMEM ? "out of memory"
                                 : "a member has an empty id or address";
    }
    if (json_is_string(url) &&
        member_set_set_public_url(set, json_string_value(id), json_string_value(url)) == -1) {
        return "out of memory";
    }
    return NULL;
}

struct member_set *
state_file_read(const char *path, char *err, size_t err_len)
{
    json_error_t error;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
    const json_t *members = json_object_get(root, "members");
    const json_t *version = json_object_get(root, "version");
    struct member_set *set = NULL;
    const char *what = NULL;

    if (root == NULL) {
        snprintf(err, err_len, "%s: %s (line %d)", path, error.text, error.line);
        return NULL;
    }
    if (!json_is_integer(version) || json_integer_value(version) != STATE_FILE_VERSION) {
        what = "not a wsring state file of version 1";
    } else if (!json_is_array(members)) {
        what = "no members array";
    } else if ((set = member_set_create()) == NULL) {
        what = "out of memory";
    }
    for (size_t i = 0; what == NULL && i < json_array_size(members); i++) {
        what = state_file_member(set, json_array_get(members, i));
    }
    json_decref(root);
    if (what != NULL) {
        snprintf(err, err_len, "%s: %s", path, what);
        member_set_destroy(set);
        return NULL;
    }
    return set;
}
