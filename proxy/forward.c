/* Builds the forwarded request head (DESIGN §3 step 4). */
#include "proxy/forward.h"

#include <string.h>
#include <strings.h>

#include "proxy/head.h"

#define FORWARD_OWN_HEADERS_MAX 160 /* names, separators and CRLFs of the appended headers */

static bool
forward_name_is(const struct head_header *h, const char *name)
{
    size_t len = strlen(name);

    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

static bool
forward_drops(const struct head_header *h, const struct forward_info *info)
{
    if (h->name_len >= 9 && strncasecmp(h->name, "X-Wsring-", 9) == 0) {
        return true;
    }
    if (forward_name_is(h, "X-Forwarded-Proto")) {
        return true;
    }
    return (info->connection_close || info->hop_by_hop) &&
           (forward_name_is(h, "Connection") || forward_name_is(h, "Keep-Alive"));
}

size_t
forward_size(const struct head *head, const struct forward_info *info)
{
    return head->len + FORWARD_OWN_HEADERS_MAX + strlen(info->client_ip) + strlen(info->proto) +
           info->key_len + strlen(info->fingerprint);
}

static char *
forward_put(char *out, const char *s, size_t len)
{
    memcpy(out, s, len);
    return out + len;
}

static char *
forward_put_header(char *out, const char *name, const char *value, size_t value_len)
{
    out = forward_put(out, name, strlen(name));
    out = forward_put(out, ": ", 2);
    out = forward_put(out, value, value_len);
    return forward_put(out, "\r\n", 2);
}

size_t
forward_write(const char *buf, const struct head *head, const struct forward_info *info, char *out)
{
    const char *end = buf + head->len - 2; /* the final empty line's CRLF */
    const char *from = buf;                /* start of bytes not yet copied */
    char *p = out;

    for (size_t i = 0; i < head->nheaders; i++) {
        const struct head_header *h = &head->headers[i];
        const char *eol;

        if (!forward_drops(h, info)) {
            continue;
        }
        /* The line runs from its name to the LF after its value (bare LF was refused). */
        eol = memchr(h->value + h->value_len, '\n', (size_t)(end - (h->value + h->value_len)));
        p = forward_put(p, from, (size_t)(h->name - from));
        from = eol + 1;
    }
    p = forward_put(p, from, (size_t)(end - from));
    if (info->connection_close) {
        p = forward_put_header(p, "Connection", "close", 5);
    }
    p = forward_put_header(p, "X-Forwarded-For", info->client_ip, strlen(info->client_ip));
    p = forward_put_header(p, "X-Forwarded-Proto", info->proto, strlen(info->proto));
    p = forward_put_header(p, "X-Wsring-Key", info->key, info->key_len);
    p = forward_put_header(p, "X-Wsring-Ring", info->fingerprint, strlen(info->fingerprint));
    p = forward_put(p, "\r\n", 2);
    return (size_t)(p - out);
}
