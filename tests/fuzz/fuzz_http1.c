/*
 * fuzz_http1.c: libFuzzer target for proxy/http1.c. Input: one byte picking
 * the body kind, two bytes for a Content-Length and a split point, then the
 * bytes. Properties: a body scanned in one call, byte by byte and in two
 * pieces gives the same result and the same total used, never more than the
 * input; a parsed response head never claims more than the input, ends in
 * CRLF CRLF, parses the same from exactly its own bytes, is incomplete one
 * byte short, and its body scans the same way.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Scans BUF in pieces: the first FIRST bytes long, the rest STEP bytes each. */
static enum http1_result
fuzz_scan_pieces(enum http1_body_kind kind, uint64_t length, const uint8_t *buf, size_t len,
                 size_t first, size_t step, size_t *used)
{
    struct http1_body b;
    size_t off = 0, n = first;

    http1_body_init(&b, kind, length);
    for (;; n = step) {
        size_t got = 0;
        enum http1_result res;

        if (n > len - off) {
            n = len - off;
        }
        res = http1_body_scan(&b, buf + off, n, &got);
        if (got > n || (res == HTTP1_MORE && got != n)) {
            abort();
        }
        if (res == HTTP1_BAD) {
            *used = 0;
            return res;
        }
        off += got;
        if (res == HTTP1_DONE || off == len) {
            *used = off;
            return res;
        }
    }
}

/* The same result and total used in one call, byte by byte and split at SPLIT. */
static void
fuzz_body(enum http1_body_kind kind, uint64_t length, const uint8_t *buf, size_t len, size_t split)
{
    size_t once, bytewise, two;
    enum http1_result r1 = fuzz_scan_pieces(kind, length, buf, len, len, len, &once);
    enum http1_result r2 = fuzz_scan_pieces(kind, length, buf, len, 1, 1, &bytewise);
    enum http1_result r3 = fuzz_scan_pieces(kind, length, buf, len, split, len, &two);

    if (r1 != r2 || r1 != r3 || once != bytewise || once != two || once > len) {
        abort();
    }
    if (kind == HTTP1_BODY_UNTIL_CLOSE && r1 != HTTP1_MORE) {
        abort();
    }
}

static bool
fuzz_same_response(const struct http1_response *a, const struct http1_response *b)
{
    return a->status == b->status && a->minor_version == b->minor_version &&
           a->head_len == b->head_len && a->body == b->body &&
           a->content_length == b->content_length && a->keep_alive == b->keep_alive;
}

static void
fuzz_response(const uint8_t *buf, size_t len, bool request_head)
{
    struct http1_response r, again;
    uint8_t *exact;

    if (http1_response_parse(buf, len, request_head, &r) != HTTP1_DONE) {
        return;
    }
    if (r.head_len > len || r.head_len < 16 || memcmp(buf + r.head_len - 4, "\r\n\r\n", 4) != 0 ||
        r.status < 100 || r.status > 999 || (r.keep_alive && r.body == HTTP1_BODY_UNTIL_CLOSE)) {
        abort();
    }
    /* a heap copy of just the head, so reading past it shows */
    exact = malloc(r.head_len);
    if (exact == NULL) {
        abort();
    }
    memcpy(exact, buf, r.head_len);
    if (http1_response_parse(exact, r.head_len, request_head, &again) != HTTP1_DONE ||
        !fuzz_same_response(&r, &again) ||
        http1_response_parse(exact, r.head_len - 1, request_head, &again) != HTTP1_MORE) {
        abort();
    }
    free(exact);
    fuzz_body(r.body, r.content_length, buf + r.head_len, len - r.head_len, (len - r.head_len) / 2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum http1_body_kind kind;
    uint64_t length;
    size_t split;

    if (size < 3) {
        return 0;
    }
    kind = (enum http1_body_kind)(data[0] % 4);
    length = data[1];
    split = data[2];
    data += 3;
    size -= 3;
    fuzz_body(kind, length, data, size, split > size ? size : split);
    fuzz_response(data, size, (data[-3] & 4) != 0);
    return 0;
}
