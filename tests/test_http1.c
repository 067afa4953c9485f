/* test_http1.c: body and response-head framing (RFC 9112 s6, s7; proxy/http1.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http1.h"

/* Some rows are built at run time (long lines, big heads). */
#define TEST_MAX_LINE 4096
#define TEST_MAX_HEAD 65536

/* Like assert_int_equal, naming the table row that failed. */
#define ROW_EQUAL(row, got, want)                                                                  \
    do {                                                                                           \
        if ((unsigned long long)(got) != (unsigned long long)(want)) {                             \
            fail_msg("row %zu: %s is %llu, want %llu", (row), #got, (unsigned long long)(got),     \
                     (unsigned long long)(want));                                                  \
        }                                                                                          \
    } while (0)

/* A heap copy of exactly LEN bytes, no NUL after it, so ASan sees an over-read. */
static uint8_t *
copy_of(const void *text, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);

    assert_non_null(p);
    memcpy(p, text, len);
    return p;
}

/* ---- bodies ---- */

struct body_row {
    enum http1_body_kind kind;
    uint64_t length;
    const char *text;
    size_t len; /* 0: strlen(text) */
    enum http1_result result;
    size_t used; /* DONE: bytes of the body; MORE: the whole input */
};

#define BODY_ROW(kind, length, text, result, used)                                                 \
    {                                                                                              \
        (kind), (length), (text), sizeof(text) - 1, (result), (used)                               \
    }
#define CHUNKED_OK(text, used) BODY_ROW(HTTP1_BODY_CHUNKED, 0, text, HTTP1_DONE, used)
#define CHUNKED_MORE(text)     BODY_ROW(HTTP1_BODY_CHUNKED, 0, text, HTTP1_MORE, sizeof(text) - 1)
#define CHUNKED_BAD(text)      BODY_ROW(HTTP1_BODY_CHUNKED, 0, text, HTTP1_BAD, 0)

/* Scans BUF in one call. */
static enum http1_result
scan_once(enum http1_body_kind kind, uint64_t length, const uint8_t *buf, size_t len, size_t *used)
{
    struct http1_body b;

    http1_body_init(&b, kind, length);
    return http1_body_scan(&b, buf, len, used);
}

/* Scans BUF in pieces of STEP bytes, the first one FIRST bytes long; *USED totals. */
static enum http1_result
scan_pieces(enum http1_body_kind kind, uint64_t length, const uint8_t *buf, size_t len,
            size_t first, size_t step, size_t *used)
{
    struct http1_body b;
    size_t off = 0, n = first;

    http1_body_init(&b, kind, length);
    for (;; n = step) {
        size_t got = 0;
        enum http1_result res;
        uint8_t *piece;

        if (n > len - off) {
            n = len - off;
        }
        /* each piece is its own heap block, so an over-read of a piece shows too */
        piece = copy_of(buf + off, n);
        res = http1_body_scan(&b, piece, n, &got);
        free(piece);
        if (res == HTTP1_BAD) {
            *used = 0;
            return res;
        }
        assert_true(got <= n);
        if (res == HTTP1_MORE) {
            assert_int_equal(got, n);
        }
        off += got;
        if (res == HTTP1_DONE || off == len) {
            *used = off;
            return res;
        }
    }
}

/* One call, every two-piece split, and byte by byte must all agree with ROW. */
static void
check_body_row(const struct body_row *row, size_t index)
{
    size_t len = row->len, used = 0, stride = len / 256 + 1;
    uint8_t *buf = copy_of(row->text, len);

    ROW_EQUAL(index, scan_once(row->kind, row->length, buf, len, &used), row->result);
    ROW_EQUAL(index, used, row->used);
    for (size_t split = 0; split <= len; split += stride) {
        ROW_EQUAL(index, scan_pieces(row->kind, row->length, buf, len, split, len, &used),
                  row->result);
        ROW_EQUAL(index, used, row->used);
    }
    ROW_EQUAL(index, scan_pieces(row->kind, row->length, buf, len, 1, 1, &used), row->result);
    ROW_EQUAL(index, used, row->used);
    free(buf);
}

static void
test_body_rows_agree_at_every_split(void **state)
{
    /* clang-format off */
    static const struct body_row rows[] = {
        BODY_ROW(HTTP1_BODY_NONE,        0,   "",             HTTP1_DONE, 0),
        BODY_ROW(HTTP1_BODY_NONE,        0,   "GET / HTTP/1.1\r\n", HTTP1_DONE, 0),
        BODY_ROW(HTTP1_BODY_LENGTH,      0,   "",             HTTP1_DONE, 0),
        BODY_ROW(HTTP1_BODY_LENGTH,      0,   "next",         HTTP1_DONE, 0),
        BODY_ROW(HTTP1_BODY_LENGTH,      1,   "x",            HTTP1_DONE, 1),
        BODY_ROW(HTTP1_BODY_LENGTH,      1,   "xGET",         HTTP1_DONE, 1),
        BODY_ROW(HTTP1_BODY_LENGTH,      1,   "",             HTTP1_MORE, 0),
        BODY_ROW(HTTP1_BODY_LENGTH,      10,  "hello",        HTTP1_MORE, 5),
        BODY_ROW(HTTP1_BODY_LENGTH,      UINT64_MAX, "hello", HTTP1_MORE, 5),
        BODY_ROW(HTTP1_BODY_LENGTH,      5,   "hello\r\n0\r\n\r\n", HTTP1_DONE, 5),
        BODY_ROW(HTTP1_BODY_UNTIL_CLOSE, 0,   "anything\n\r", HTTP1_MORE, 10),
        BODY_ROW(HTTP1_BODY_UNTIL_CLOSE, 0,   "",             HTTP1_MORE, 0),
        BODY_ROW(HTTP1_BODY_CHUNKED,     0,   "",             HTTP1_MORE, 0),
        CHUNKED_OK("0\r\n\r\n", 5),
        CHUNKED_OK("0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 5),
        CHUNKED_OK("5\r\nhello\r\n0\r\n\r\n", 15),
        CHUNKED_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nPOST", 26),
        CHUNKED_OK("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", 35),
        CHUNKED_OK("00000F\r\n0123456789abcde\r\n0000\r\n\r\n", 33),
        CHUNKED_OK("000000000000001\r\nx\r\n0\r\n\r\n", 25),  /* 15 digits */
        CHUNKED_OK("5\r\n\r\n0\r\n\r\n0\r\n\r\n", 15),   /* CR LF inside data */
        /* RFC 9112 s7.1.1: chunk extensions */
        CHUNKED_OK("1;ext\r\nx\r\n0;last\r\n\r\n", 20),
        CHUNKED_OK("1;a=b;c=d\r\nx\r\n0\r\n\r\n", 19),
        CHUNKED_OK("1 ;a = b\t; c\r\nx\r\n0\r\n\r\n", 22),
        CHUNKED_OK("1\t;a\r\nx\r\n0\r\n\r\n", 14),
        CHUNKED_OK("1;a=\"q \\\" ;\\\\\"\r\nx\r\n0\r\n\r\n", 24),
        CHUNKED_OK("1;a=\"\"\r\nx\r\n0\r\n\r\n", 16),
        CHUNKED_OK("1;a=\"\xc3\xa9\"\r\nx\r\n0\r\n\r\n", 18),
        /* RFC 9112 s7.1.2: trailers */
        CHUNKED_OK("0\r\nX-A: 1\r\n\r\n", 13),
        CHUNKED_OK("1\r\nx\r\n0\r\nX-A: 1\r\nX-B:\t2 3\t\r\nX-C:\r\n\r\nNEXT", 36),
        CHUNKED_OK("0\r\nX-A: caf\xc3\xa9\r\n\r\n", 17),
        CHUNKED_MORE("5\r\nhel"),
        CHUNKED_MORE("5\r\nhello"),
        CHUNKED_MORE("5\r\nhello\r"),
        CHUNKED_MORE("5;a=\"x"),
        CHUNKED_MORE("0\r\n"),
        CHUNKED_MORE("0\r\n\r"),
        CHUNKED_MORE("0\r\nX-A: 1\r\n"),
        CHUNKED_MORE("fffffffffffffff\r\nxyz"),
    };
    /* clang-format on */

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_body_row(&rows[i], i);
    }
}

static void
test_chunked_bad_rows(void **state)
{
    /* clang-format off */
    static const struct body_row rows[] = {
        CHUNKED_BAD("1\nx\r\n0\r\n\r\n"),          /* bare LF after the size */
        CHUNKED_BAD("1\r\nx\n0\r\n\r\n"),          /* bare LF after the data */
        CHUNKED_BAD("0\r\n\n"),                     /* bare LF as the last line */
        CHUNKED_BAD("0\r\nX-A: 1\n\r\n"),           /* bare LF after a trailer */
        CHUNKED_BAD("0\r\nX-A: 1\nX: 2\r\n\r\n"),   /* bare LF inside the trailers */
        CHUNKED_BAD("1\rx\r\n0\r\n\r\n"),           /* CR without LF */
        CHUNKED_BAD("1\r\nxy\r\n0\r\n\r\n"),        /* no CRLF after the data */
        CHUNKED_BAD("1\r\nx\r0\r\n\r\n"),           /* CR but no LF after the data */
        CHUNKED_BAD("1\r\nx0\r\n\r\n"),             /* next size right after the data */
        CHUNKED_BAD("0x10\r\n"),
        CHUNKED_BAD("-1\r\n"),
        CHUNKED_BAD("+1\r\n"),
        CHUNKED_BAD(" 1\r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("1 \r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("1\t\r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("1_0\r\n"),
        CHUNKED_BAD("1000000000000000\r\n"),       /* 16 hex digits */
        CHUNKED_BAD("0000000000000000\r\n\r\n"),   /* 16 digits, even as zeros */
        CHUNKED_BAD("g\r\n"),
        CHUNKED_BAD("\r\n"),                        /* empty size line */
        CHUNKED_BAD(";a\r\n"),                      /* extension without a size */
        CHUNKED_BAD("1;\r\nx\r\n0\r\n\r\n"),        /* empty extension name */
        CHUNKED_BAD("1;a=\r\nx\r\n0\r\n\r\n"),      /* empty extension value */
        CHUNKED_BAD("1;a \r\nx\r\n0\r\n\r\n"),      /* whitespace before CRLF */
        CHUNKED_BAD("1;a=b \r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("1;a=b c\r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("1;a=\"x\ny\"\r\nx\r\n0\r\n\r\n"), /* LF inside quotes */
        CHUNKED_BAD("1;a=\"x\"y\r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("1;a=\"\x01\"\r\nx\r\n0\r\n\r\n"),
        CHUNKED_BAD("0\r\nX-A: a\x01z\r\n\r\n"),    /* control byte in a trailer */
        CHUNKED_BAD("0\r\nX-A: a\x7fz\r\n\r\n"),
        CHUNKED_BAD("0\r\nX-A: a\rz\r\n\r\n"),
        CHUNKED_BAD("0\r\n X-A: 1\r\n\r\n"),        /* obs-fold */
        CHUNKED_BAD("0\r\nX-A: 1\r\n\tmore\r\n\r\n"),
        CHUNKED_BAD("0\r\nX-A : 1\r\n\r\n"),        /* whitespace before colon */
        CHUNKED_BAD("0\r\nX-A\r\n\r\n"),            /* no colon */
        CHUNKED_BAD("0\r\n: 1\r\n\r\n"),            /* empty name */
        CHUNKED_BAD("0\r\n\rX"),                    /* final CR without LF */
    };
    /* clang-format on */

    (void)state;
    assert_true(sizeof(rows) / sizeof(rows[0]) >= 20);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_body_row(&rows[i], i);
    }
}

/* PREFIX, then N bytes of FILL, then SUFFIX, as a heap string. */
static char *
text_with_run(const char *prefix, char fill, size_t n, const char *suffix, size_t *len)
{
    size_t a = strlen(prefix), c = strlen(suffix);
    char *t = malloc(a + n + c + 1);

    assert_non_null(t);
    memcpy(t, prefix, a);
    memset(t + a, fill, n);
    memcpy(t + a + n, suffix, c + 1);
    *len = a + n + c;
    return t;
}

static void
test_chunked_line_limit_is_4096_bytes(void **state)
{
    /* the line's bytes, CRLF excluded: "1;" + name, "X:" + value */
    static const struct {
        const char *prefix;
        size_t fixed;
        const char *suffix;
    } lines[] = {
        { "1;", 2, "\r\nx\r\n0\r\n\r\n" },
        { "0\r\nX:", 2, "\r\n\r\n" },
        { "1;a=", 4, "\r\nx\r\n0\r\n\r\n" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        for (size_t extra = 0; extra <= 1; extra++) {
            size_t len;
            char *t = text_with_run(lines[i].prefix, 'n', TEST_MAX_LINE - lines[i].fixed + extra,
                                    lines[i].suffix, &len);
            struct body_row row = { HTTP1_BODY_CHUNKED, 0, t, len, extra ? HTTP1_BAD : HTTP1_DONE,
                                    extra ? 0 : len };

            check_body_row(&row, i * 2 + extra);
            free(t);
        }
    }
}

static void
test_big_chunk_then_next_message(void **state)
{
    static const char tail[] = "\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    size_t n = 0x12345, len;
    char *t = text_with_run("12345;big\r\n", 'd', n, tail, &len);
    struct body_row row = { HTTP1_BODY_CHUNKED, 0, t, len, HTTP1_DONE, len - 18 };

    (void)state;
    check_body_row(&row, 0);
    free(t);
}

static void
test_scan_after_end(void **state)
{
    static const char text[] = "1\r\nx\r\n0\r\n\r\nABC";
    uint8_t *buf = copy_of(text, sizeof(text) - 1);
    struct http1_body b;
    size_t used = 99;

    (void)state;
    http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
    assert_int_equal(http1_body_scan(&b, buf, sizeof(text) - 1, &used), HTTP1_DONE);
    assert_int_equal(used, 11);
    /* the message has ended: what follows is not its body */
    assert_int_equal(http1_body_scan(&b, buf + used, 3, &used), HTTP1_DONE);
    assert_int_equal(used, 0);
    http1_body_init(&b, HTTP1_BODY_LENGTH, 2);
    assert_int_equal(http1_body_scan(&b, buf, 1, &used), HTTP1_MORE);
    assert_int_equal(http1_body_scan(&b, buf, 0, &used), HTTP1_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(http1_body_scan(&b, buf, 5, &used), HTTP1_DONE);
    assert_int_equal(used, 1);
    assert_int_equal(http1_body_scan(&b, buf, 5, &used), HTTP1_DONE);
    assert_int_equal(used, 0);
    /* BAD stays BAD */
    http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
    assert_int_equal(http1_body_scan(&b, buf + 1, 1, &used), HTTP1_BAD);
    assert_int_equal(http1_body_scan(&b, buf, 5, &used), HTTP1_BAD);
    free(buf);
}

/* ---- response heads ---- */

struct response_row {
    const char *text;
    bool request_head;
    enum http1_result result;
    unsigned status;
    unsigned minor_version;
    enum http1_body_kind body;
    uint64_t content_length;
    bool keep_alive;
};

#define RESP_DONE(text, head, status, minor, body, cl, ka)                                         \
    {                                                                                              \
        (text), (head), HTTP1_DONE, (status), (minor), (body), (cl), (ka)                          \
    }
#define RESP_BAD(text)                                                                             \
    {                                                                                              \
        (text), false, HTTP1_BAD, 0, 0, HTTP1_BODY_NONE, 0, false                                  \
    }
#define RESP_MORE(text)                                                                            \
    {                                                                                              \
        (text), false, HTTP1_MORE, 0, 0, HTTP1_BODY_NONE, 0, false                                 \
    }

/* Where the head in TEXT ends, found independently of the parser. */
static size_t
head_len_of(const char *text, size_t len)
{
    const char *end = memmem(text, len, "\r\n\r\n", 4);

    assert_non_null(end);
    return (size_t)(end - text) + 4;
}

static void
check_response_row(const struct response_row *row, size_t index)
{
    size_t len = strlen(row->text);
    uint8_t *buf = copy_of(row->text, len);
    struct http1_response r;

    ROW_EQUAL(index, http1_response_parse(buf, len, row->request_head, &r), row->result);
    if (row->result == HTTP1_DONE) {
        size_t head_len = head_len_of(row->text, len);

        ROW_EQUAL(index, r.head_len, head_len);
        ROW_EQUAL(index, r.status, row->status);
        ROW_EQUAL(index, r.minor_version, row->minor_version);
        ROW_EQUAL(index, r.body, row->body);
        ROW_EQUAL(index, r.content_length, row->content_length);
        ROW_EQUAL(index, r.keep_alive, row->keep_alive);
        /* every shorter prefix is incomplete, never bad */
        for (size_t n = 0; n < head_len; n++) {
            uint8_t *prefix = copy_of(row->text, n);

            ROW_EQUAL(index, http1_response_parse(prefix, n, row->request_head, &r), HTTP1_MORE);
            free(prefix);
        }
    }
    free(buf);
}

static void
test_response_rows(void **state)
{
    /* clang-format off */
    static const struct response_row rows[] = {
        RESP_DONE("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_CHUNKED, 0, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_CHUNKED, 0, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_NONE, 0, true),
        RESP_DONE("HTTP/1.1 200 OK\r\ncontent-length:\t 1234567890 \t\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 1234567890, true),
        /* RFC 9112 s6.3 rule 1: no body whatever the headers say */
        RESP_DONE("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
                  false, 204, 1, HTTP1_BODY_NONE, 10, true),
        RESP_DONE("HTTP/1.1 304 Not Modified\r\nContent-Length: 300\r\nETag: \"x\"\r\n\r\n",
                  false, 304, 1, HTTP1_BODY_NONE, 300, true),
        RESP_DONE("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                  false, 304, 1, HTTP1_BODY_NONE, 0, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                  true, 200, 1, HTTP1_BODY_NONE, 100, true),
        RESP_DONE("HTTP/1.1 200 OK\r\n\r\n",
                  true, 200, 1, HTTP1_BODY_NONE, 0, true),
        RESP_DONE("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
                  false, 100, 1, HTTP1_BODY_NONE, 0, true),
        RESP_DONE("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                  false, 103, 1, HTTP1_BODY_NONE, 0, true),
        RESP_DONE("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\n\r\n\x81\x02hi",
                  false, 101, 1, HTTP1_BODY_NONE, 0, false),
        /* RFC 9112 s9.3: persistence */
        RESP_DONE("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                  false, 200, 0, HTTP1_BODY_LENGTH, 5, false),
        RESP_DONE("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\nhello",
                  false, 200, 0, HTTP1_BODY_LENGTH, 5, true),
        RESP_DONE("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nhello",
                  false, 200, 0, HTTP1_BODY_UNTIL_CLOSE, 0, false),
        RESP_DONE("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, false),
        RESP_DONE("HTTP/1.1 200 OK\r\nConnection: keep-alive, CLOSE\r\nContent-Length: 5\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, false),
        RESP_DONE("HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: ,close,\r\n"
                  "Content-Length: 5\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, false),
        RESP_DONE("HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 5\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil close",
                  false, 200, 1, HTTP1_BODY_UNTIL_CLOSE, 0, false),
        /* Transfer-Encoding: the last coding decides (s6.3 rule 4) */
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_CHUNKED, 0, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_CHUNKED, 0, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_UNTIL_CLOSE, 0, false),
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_UNTIL_CLOSE, 0, false),
        RESP_DONE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_CHUNKED, 0, true),
        /* Content-Length repeated with one value (RFC 9110 s8.6) */
        RESP_DONE("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, true),
        RESP_DONE("HTTP/1.1 200 OK\r\nContent-Length: 5, 5,5\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 5, true),
        /* the status line */
        RESP_DONE("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n",
                  false, 200, 1, HTTP1_BODY_LENGTH, 1, true),
        RESP_DONE("HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n",
                  false, 404, 1, HTTP1_BODY_LENGTH, 1, true),
        RESP_DONE("HTTP/1.1 599 Odd \t reason \xff\r\nContent-Length: 1\r\n\r\n",
                  false, 599, 1, HTTP1_BODY_LENGTH, 1, true),
        RESP_DONE("HTTP/1.1 999 x\r\nX-Empty:\r\nX-Odd: a\tb \xc3\xa9\r\nContent-Length: 2\r\n\r\n",
                  false, 999, 1, HTTP1_BODY_LENGTH, 2, true),

        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        RESP_BAD("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"),
        RESP_BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;a=b\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        RESP_BAD("HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nServer: x\r\n folded\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\n X: 1\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\n: empty\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nX-A: a\x01z\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nX-A: a\x7fz\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nX-A: a\rz\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\nX-A: a\nz\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 OK\n\n"),
        RESP_BAD("HTTP/1.1 200 OK\r\n\n"),
        RESP_BAD("HTTP/1.1 200 OK\n"),                    /* bad before the head is complete */
        RESP_BAD("hello\r\n\r\n"),                         /* no status line */
        RESP_BAD("\r\nHTTP/1.1 200 OK\r\n\r\n"),
        RESP_BAD("\r\n\r\n"),
        RESP_BAD("HTTP/2 200\r\n\r\n"),
        RESP_BAD("http/1.1 200 OK\r\n\r\n"),
        RESP_BAD("HTTP/1.x 200 OK\r\n\r\n"),
        RESP_BAD("HTTP/1.1  200 OK\r\n\r\n"),
        RESP_BAD("HTTP/1.1 20 OK\r\n\r\n"),
        RESP_BAD("HTTP/1.1 2000 OK\r\n\r\n"),
        RESP_BAD("HTTP/1.1 099 Low\r\n\r\n"),
        RESP_BAD("HTTP/1.1 2x0 OK\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200\tOK\r\n\r\n"),
        RESP_BAD("HTTP/1.1 200 O\x01K\r\n\r\n"),
        RESP_BAD("HTTP/1.1\r\n\r\n"),
        RESP_BAD("HTTP/1.10 200 OK\r\n\r\n"),
        RESP_BAD("XTTP"),                                  /* bad before the head is complete */

        RESP_MORE(""),
        RESP_MORE("H"),
        RESP_MORE("HTTP/1."),
        RESP_MORE("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
        RESP_MORE("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r"),
    };
    /* clang-format on */

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_response_row(&rows[i], i);
    }
}

/* A head of exactly LEN bytes: a status line, one padded field, CRLF CRLF. */
static char *
head_of_size(size_t len)
{
    static const char start[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
    size_t got;
    char *t = text_with_run(start, 'p', len - (sizeof(start) - 1) - 4, "\r\n\r\n", &got);

    assert_int_equal(got, len);
    return t;
}

static void
test_response_head_limit_is_64_kib(void **state)
{
    struct http1_response r;
    char *t = head_of_size(TEST_MAX_HEAD);
    uint8_t *buf = copy_of(t, TEST_MAX_HEAD);
    char *t2 = head_of_size(TEST_MAX_HEAD + 1);
    uint8_t *buf2 = copy_of(t2, TEST_MAX_HEAD + 1);

    (void)state;
    assert_int_equal(http1_response_parse(buf, TEST_MAX_HEAD, false, &r), HTTP1_DONE);
    assert_int_equal(r.head_len, TEST_MAX_HEAD);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    /* one byte short of the end: still waiting; at the limit without an end: bad */
    assert_int_equal(http1_response_parse(buf2, TEST_MAX_HEAD - 1, false, &r), HTTP1_MORE);
    assert_int_equal(http1_response_parse(buf2, TEST_MAX_HEAD, false, &r), HTTP1_BAD);
    assert_int_equal(http1_response_parse(buf2, TEST_MAX_HEAD + 1, false, &r), HTTP1_BAD);
    free(t);
    free(buf);
    free(t2);
    free(buf2);
}

/* A response head, then its body, then the next response, on one backend connection. */
static void
test_response_then_body_then_next(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
                               "HTTP/1.1 204 No Content\r\n\r\n";
    size_t len = sizeof(text) - 1, off, used;
    uint8_t *buf = copy_of(text, len);
    struct http1_response r;
    struct http1_body b;

    (void)state;
    assert_int_equal(http1_response_parse(buf, len, false, &r), HTTP1_DONE);
    assert_int_equal(r.body, HTTP1_BODY_CHUNKED);
    off = r.head_len;
    http1_body_init(&b, r.body, r.content_length);
    assert_int_equal(http1_body_scan(&b, buf + off, len - off, &used), HTTP1_DONE);
    off += used;
    assert_int_equal(http1_response_parse(buf + off, len - off, false, &r), HTTP1_DONE);
    assert_int_equal(r.status, 204);
    assert_int_equal(off + r.head_len, len);
    free(buf);
}

/*
 * The relay keeps the bytes of a response head as they come and parses them again on each
 * read: every proper prefix is MORE (never BAD, never DONE early), the whole head gives the
 * answer of a single call, and the bytes after it are left for the body. Interim 1xx heads
 * in front are each DONE on their own.
 */
static void
test_response_head_resumes_from_any_prefix(void **state)
{
    static const char *const heads[] = {
        ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
         "Content-Length: 5\r\n\r\nhello"), /* one entry (parentheses: not a missing comma) */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n0\r\nX-T: 1\r\n\r\n",
        "HTTP/1.0 304 Not Modified\r\nETag: \"v\"\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 502\r\nContent-Length: 0\r\n\r\n",
    };

    (void)state;
    for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
        size_t len = strlen(heads[k]);
        uint8_t *buf = copy_of(heads[k], len);
        struct http1_response whole, part;

        assert_int_equal(http1_response_parse(buf, len, false, &whole), HTTP1_DONE);
        for (size_t n = 0; n < whole.head_len; n++) {
            uint8_t *prefix = copy_of(heads[k], n); /* exactly N bytes: ASan sees over-reads */

            if (http1_response_parse(prefix, n, false, &part) != HTTP1_MORE) {
                fail_msg("head %zu: prefix of %zu bytes is not MORE", k, n);
            }
            free(prefix);
        }
        assert_int_equal(http1_response_parse(buf, whole.head_len, false, &part), HTTP1_DONE);
        assert_int_equal(part.status, whole.status);
        assert_int_equal(part.head_len, whole.head_len);
        assert_int_equal(part.body, whole.body);
        assert_int_equal(part.content_length, whole.content_length);
        assert_int_equal(part.keep_alive, whole.keep_alive);
        free(buf);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_rows_agree_at_every_split),
        cmocka_unit_test(test_chunked_bad_rows),
        cmocka_unit_test(test_chunked_line_limit_is_4096_bytes),
        cmocka_unit_test(test_big_chunk_then_next_message),
        cmocka_unit_test(test_scan_after_end),
        cmocka_unit_test(test_response_rows),
        cmocka_unit_test(test_response_head_limit_is_64_kib),
        cmocka_unit_test(test_response_then_body_then_next),
        cmocka_unit_test(test_response_head_resumes_from_any_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
