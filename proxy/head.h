/*
 * Strict HTTP/1.1 request-head parser (DESIGN §3 step 1). Pure: bytes in,
 * struct head out; no I/O, no allocation. Pointers in struct head point into
 * the caller's buffer and live as long as it does.
 */
#ifndef WSRING_PROXY_HEAD_H
#define WSRING_PROXY_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAD_MAX_HEADERS 100

struct head_header {
    const char *name; /* borrowed; not NUL-terminated */
    size_t name_len;
    const char *value; /* borrowed; leading and trailing OWS removed */
    size_t value_len;
};

struct head {
    const char *method; /* borrowed */
    size_t method_len;
    const char *target; /* borrowed; the request-target as sent */
    size_t target_len;
    unsigned minor_version; /* HTTP/1.MINOR: 0 or 1 */
    struct head_header headers[HEAD_MAX_HEADERS];
    size_t nheaders;
    size_t len;              /* bytes of the head, final CRLF CRLF included */
    int64_t content_length;  /* -1 when absent */
    unsigned chunked : 1;    /* Transfer-Encoding: chunked */
    unsigned upgrade_ws : 1; /* Upgrade: websocket with Connection: upgrade (RFC 6455 s4.1) */
};

enum head_result {
    HEAD_DONE = 0, /* a complete, valid head of head->len bytes */
    HEAD_PARTIAL,  /* no CRLF CRLF yet: read more */
    HEAD_BAD       /* malformed: answer 400 and close */
};

/*
 * Returns the length of the head (through the first CRLF CRLF) in BUF, or 0
 * when it has not arrived yet. *SCANNED carries progress between calls on a
 * growing buffer (start it at 0), so a slow client costs O(bytes), not O(n^2).
 */
size_t head_find_end(const char *buf, size_t len, size_t *scanned);

/*
 * Parses the head at the start of BUF (LEN bytes, no NUL needed). Rejects
 * invalid methods, targets and header bytes, obs-fold, whitespace before a
 * colon or leading a line, bare CR or LF, duplicate or invalid
 * Content-Length, Content-Length with Transfer-Encoding, and any
 * Transfer-Encoding other than exactly "chunked". On HEAD_BAD, *WHY (if not
 * NULL) gets a static phrase for the log. Never allocates.
 */
enum head_result head_parse(const char *buf, size_t len, struct head *head, const char **why);

/* Returns the first header named NAME (case-insensitive), or NULL. */
const struct head_header *head_find(const struct head *head, const char *name, size_t name_len);

/* True when the comma-separated list in H's value holds TOKEN (ASCII case ignored). */
bool head_list_has(const struct head_header *h, const char *token);

#endif /* WSRING_PROXY_HEAD_H */
