/*
 * HTTP/1.1 message framing for per-request routing on keep-alive client
 * connections (DESIGN §10.1; RFC 9112 §6, §7): where a request body ends,
 * where a response head and body end. Pure: bytes in, counts out; no I/O,
 * no allocation; bodies are scanned, never copied.
 */
#ifndef WSRING_PROXY_HTTP1_H
#define WSRING_PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http1_result {
    HTTP1_MORE = 0, /* all of the input belongs to the message; it has not ended */
    HTTP1_DONE,     /* the message ended; *USED bytes of the input belong to it */
    HTTP1_BAD       /* not valid framing (bad chunk size, ...): close the connection */
};

enum http1_body_kind {
    HTTP1_BODY_NONE = 0,   /* no body (or Content-Length: 0) */
    HTTP1_BODY_LENGTH,     /* Content-Length bytes */
    HTTP1_BODY_CHUNKED,    /* chunked, with optional trailers, ending in an empty line */
    HTTP1_BODY_UNTIL_CLOSE /* response only: until the server closes */
};

/* A body being scanned. Fields are private to http1.c. */
struct http1_body {
    enum http1_body_kind kind;
    uint64_t left;  /* LENGTH: bytes to go; CHUNKED: bytes of the current chunk's data to go */
    uint8_t state;  /* CHUNKED: where in the chunk grammar we are */
    uint8_t digits; /* CHUNKED: hex digits of the size seen so far */
    uint16_t line;  /* CHUNKED: bytes of the current size/extension/trailer line (limit) */
};

/* Starts scanning a body of KIND; LENGTH is the Content-Length for HTTP1_BODY_LENGTH. */
void http1_body_init(struct http1_body *b, enum http1_body_kind kind, uint64_t length);
/*
 * Scans LEN bytes of BUF. Returns HTTP1_DONE with *USED the bytes up to and
 * including the body's last byte (the rest of BUF is the next message),
 * HTTP1_MORE with *USED = LEN, or HTTP1_BAD. Chunk sizes over 2^60, lines
 * over 4 KiB in the chunk grammar and malformed chunk lines are BAD.
 * HTTP1_BODY_UNTIL_CLOSE never ends here (the caller sees EOF).
 */
enum http1_result http1_body_scan(struct http1_body *b, const uint8_t *buf, size_t len,
                                  size_t *used);

/* What a response head says about its framing (RFC 9112 §6.3). */
struct http1_response {
    unsigned status;        /* 100..999 */
    unsigned minor_version; /* HTTP/1.MINOR */
    size_t head_len;        /* bytes of the head, final CRLF CRLF included */
    enum http1_body_kind body;
    uint64_t content_length; /* when body == HTTP1_BODY_LENGTH */
    bool keep_alive;         /* the server keeps the connection open after this response */
};

/*
 * Parses the response head at the start of BUF (LEN bytes). REQUEST_HEAD
 * tells that the request was HEAD (no body whatever the headers say).
 * Returns HTTP1_MORE until CRLF CRLF arrives (heads over 64 KiB are BAD),
 * HTTP1_DONE with *R filled, or HTTP1_BAD (no status line, bad
 * Content-Length, Content-Length with Transfer-Encoding, ...); a
 * Transfer-Encoding whose last coding is not chunked is close-delimited
 * (RFC 9112 §6.3 rule 4). *USED is 0 on BAD. Rescans from byte 0: callers
 * bound how often they call it (heads over 64 KiB are BAD anyway). 1xx, 204 and
 * 304 answers and answers to HEAD have no body; 1xx is interim (another
 * head follows). keep_alive: HTTP/1.1 unless "Connection: close"; HTTP/1.0
 * only with "Connection: keep-alive"; never for UNTIL_CLOSE bodies.
 */
enum http1_result http1_response_parse(const uint8_t *buf, size_t len, bool request_head,
                                       struct http1_response *r);

#endif /* WSRING_PROXY_HTTP1_H */
