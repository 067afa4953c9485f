/* The head wsring sends to a backend: the client's, plus its own headers (DESIGN §3 step 4). */
#ifndef WSRING_PROXY_FORWARD_H
#define WSRING_PROXY_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

struct head;

struct forward_info {
    const char *client_ip; /* X-Forwarded-For */
    const char *proto;     /* X-Forwarded-Proto: "http" or "https" */
    const char *key;       /* X-Wsring-Key; not NUL-terminated, no control bytes */
    size_t key_len;
    const char *fingerprint; /* X-Wsring-Ring */
    bool connection_close;   /* replace Connection with "close" */
    bool hop_by_hop;         /* drop Connection and Keep-Alive: they describe the client's hop */
};

/* An upper bound of forward_write()'s output for HEAD and INFO. */
size_t forward_size(const struct head *head, const struct forward_info *info);
/*
 * Writes HEAD (whose bytes start at BUF) to OUT with the client's own
 * X-Wsring-* and X-Forwarded-Proto headers dropped (a client must not choose
 * what the backend trusts), Connection replaced when INFO->connection_close,
 * and X-Forwarded-For, X-Forwarded-Proto, X-Wsring-Key and X-Wsring-Ring
 * appended. OUT must hold forward_size() bytes. Returns the bytes written.
 */
size_t forward_write(const char *buf, const struct head *head, const struct forward_info *info,
                     char *out);

#endif /* WSRING_PROXY_FORWARD_H */
