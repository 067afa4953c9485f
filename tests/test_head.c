/* test_head.c: the strict request-head parser (DESIGN §3 step 1, proxy/head.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/head.h"

/* Parser input: a heap copy of exactly the bytes, no NUL after, so ASan sees over-reads. */
struct test_input {
    char *buf; /* owned */
    size_t len;
};

static struct test_input
input_of(const char *bytes, size_t len)
{
    struct test_input in = { malloc(len > 0 ? len : 1), len };

    assert_non_null(in.buf);
    if (len > 0) {
        memcpy(in.buf, bytes, len);
    }
    return in;
}

#define INPUT(lit) input_of(lit, sizeof(lit) - 1)

static enum head_result
parse_input(struct test_input in, struct head *head, const char **why)
{
    return head_parse(in.buf, in.len, head, why);
}

static void
assert_span_equal(const char *p, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
}

static void
assert_header(const struct head *head, const char *name, const char *value)
{
    const struct head_header *h = head_find(head, name, strlen(name));

    assert_non_null(h);
    assert_span_equal(h->value, h->value_len, value);
}

static void
test_websocket_upgrade_is_parsed(void **state)
{
    static struct head head;
    struct test_input in = INPUT("GET /chat?user=alice HTTP/1.1\r\n"
                                 "Host: example.com:8080\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: keep-alive, Upgrade\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "\r\n");

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
    assert_span_equal(head.method, head.method_len, "GET");
    assert_span_equal(head.target, head.target_len, "/chat?user=alice");
    assert_int_equal(head.minor_version, 1);
    assert_int_equal(head.nheaders, 5);
    assert_int_equal(head.len, in.len);
    assert_int_equal(head.content_length, -1);
    assert_false(head.chunked);
    assert_true(head.upgrade_ws);
    assert_header(&head, "host", "example.com:8080");
    assert_header(&head, "SEC-WEBSOCKET-VERSION", "13");
    assert_null(head_find(&head, "Cookie", 6));
    free(in.buf);
}

static void
test_upgrade_needs_both_headers(void **state)
{
    static struct head head;
    /* clang-format off */
    static const struct {
        const char *text;
        int upgrade_ws;
    } rows[] = {
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n\r\n", 1 },
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\nConnection: close\r\n"
          "Connection: Upgrade\r\n\r\n",                                                    1 },
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",                        0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",                       0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websockets\r\nConnection: upgrade\r\n\r\n", 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n", 0 },
        /* RFC 9110 s7.8: Upgrade in HTTP/1.0 is ignored */
        { "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",            0 },
    };
    /* clang-format on */

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct test_input in = input_of(rows[i].text, strlen(rows[i].text));

        assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
        assert_int_equal(head.upgrade_ws, rows[i].upgrade_ws);
        free(in.buf);
    }
}

static void
test_post_with_content_length(void **state)
{
    static struct head head;
    struct test_input in = INPUT("POST /internal/send?user=B HTTP/1.1\r\n"
                                 "Host: wsring\r\n"
                                 "Content-Length:   9223372036854775807  \r\n"
                                 "\r\n"
                                 "body bytes");

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
    assert_span_equal(head.method, head.method_len, "POST");
    assert_int_equal(head.content_length, INT64_MAX);
    assert_false(head.chunked);
    assert_int_equal(head.len, in.len - strlen("body bytes"));
    assert_header(&head, "Content-Length", "9223372036854775807");
    free(in.buf);
}

static void
test_chunked_body(void **state)
{
    static struct head head;
    struct test_input in =
        INPUT("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n");

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
    assert_true(head.chunked);
    assert_int_equal(head.content_length, -1);
    free(in.buf);
}

static void
test_http10_without_host(void **state)
{
    static struct head head;
    struct test_input in = INPUT("GET http://example.com/a/b?c=d HTTP/1.0\r\n\r\n");

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
    assert_int_equal(head.minor_version, 0);
    assert_int_equal(head.nheaders, 0);
    assert_span_equal(head.target, head.target_len, "http://example.com/a/b?c=d");
    free(in.buf);
}

static void
test_other_target_forms(void **state)
{
    static struct head head;
    static const char *const rows[] = {
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "GET HTTPS://EXAMPLE.COM HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a?b=%20#frag HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\nX-Empty:\r\n\r\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct test_input in = input_of(rows[i], strlen(rows[i]));
        const char *why = NULL;

        assert_int_equal(parse_input(in, &head, &why), HEAD_DONE);
        free(in.buf);
    }
}

/* "GET / HTTP/1.1", Host and then X-H1 .. X-H<NEXTRA>, and the blank line. */
static struct test_input
input_with_headers(int nextra)
{
    char text[8192];
    int len = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\n");

    for (int i = 1; i <= nextra; i++) {
        len += snprintf(text + len, sizeof(text) - (size_t)len, "X-H%d: v%d\r\n", i, i);
    }
    len += snprintf(text + len, sizeof(text) - (size_t)len, "\r\n");
    assert_true(len > 0 && (size_t)len < sizeof(text));
    return input_of(text, (size_t)len);
}

static void
test_many_headers_up_to_the_limit(void **state)
{
    static struct head head;
    struct test_input in = input_with_headers(HEAD_MAX_HEADERS - 1);
    const char *why = NULL;

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
    assert_int_equal(head.nheaders, HEAD_MAX_HEADERS);
    assert_header(&head, "x-h99", "v99");
    free(in.buf);

    in = input_with_headers(HEAD_MAX_HEADERS);
    assert_int_equal(parse_input(in, &head, &why), HEAD_BAD);
    assert_string_equal(why, "too many headers");
    free(in.buf);
}

static void
test_value_keeps_obs_text_and_inner_whitespace(void **state)
{
    static struct head head;
    struct test_input in = INPUT("GET / HTTP/1.1\r\nHost: a\r\n"
                                 "X-Name: \t Zo\xc3\xab \t K\x80\xff \t\r\n\r\n");

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_DONE);
    assert_header(&head, "x-name", "Zo\xc3\xab \t K\x80\xff");
    free(in.buf);
}

/* clang-format off */
static const struct {
    const char *text;
    size_t len; /* 0: strlen(text) */
    const char *why;
} bad_rows[] = {
    /* request smuggling: framing read two ways */
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
      "Content-Length with Transfer-Encoding" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0,
      "Content-Length with Transfer-Encoding" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0,
      "duplicate Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 0,
      "duplicate Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 0,
      "Transfer-Encoding other than chunked" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0,
      "Transfer-Encoding other than chunked" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 0,
      "Transfer-Encoding other than chunked" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk ed\r\n\r\n", 0,
      "Transfer-Encoding other than chunked" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 0,
      "Transfer-Encoding other than chunked" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      0, "duplicate Transfer-Encoding" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 0,
      "whitespace before colon" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", 0,
      "tab in framing header" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n", 0,
      "tab in framing header" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0b" "chunked\r\n\r\n", 0,
      "invalid byte in header value" },
    { "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", 0,
      "underscore in framing header name" },
    { "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
      "Transfer-Encoding in HTTP/1.0" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 0, "invalid Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,2\r\n\r\n", 0, "invalid Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 0, "invalid Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 0, "invalid Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 0, "invalid Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 0, "invalid Content-Length" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 0,
      "Content-Length too large" },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5\r\n\r\n", 0, "tab in framing header" },
    /* line ends */
    { "GET / HTTP/1.1\nHost: a\r\n\r\n", 0, "bare LF" },
    { "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 0, "bare LF" },
    { "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 0, "bare CR" },
    { "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 0, "bare CR" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n continued\r\n\r\n", 0, "obs-fold" },
    { "GET / HTTP/1.1\r\n\tX: b\r\nHost: a\r\n\r\n", 0, "obs-fold" },
    { "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, "obs-fold" },
    { "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "empty request line" },
    /* field bytes */
    { "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35, "invalid byte in header value" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 0, "invalid byte in header value" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n", 0, "invalid byte in header value" },
    { "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 0, "header without colon" },
    { "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 0, "empty header name" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", 0, "invalid header name" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX\0: z\r\n\r\n", 34, "invalid header name" },
    /* request line */
    { "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid method" },
    { " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid method" },
    { "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid method" },
    { "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "malformed request line" },
    { "GET /\r\n\r\n", 0, "malformed request line" },
    { "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 0, "unsupported HTTP version" },
    { "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, "unsupported HTTP version" },
    { "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, "unsupported HTTP version" },
    { "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, "unsupported HTTP version" },
    { "GET / http/1.1\r\nHost: a\r\n\r\n", 0, "unsupported HTTP version" },
    { "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid byte in request-target" },
    { "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid byte in request-target" },
    { "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid request-target" },
    { "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid request-target" },
    { "GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid request-target" },
    { "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid request-target" },
    { "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid request-target for CONNECT" },
    { "CONNECT a:b HTTP/1.1\r\nHost: a\r\n\r\n", 0, "invalid request-target for CONNECT" },
    /* Host */
    { "GET / HTTP/1.1\r\nX: a\r\n\r\n", 0, "missing Host" },
    { "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 0, "duplicate Host" },
    { "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 0, "duplicate Host" },
    { "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, "invalid Host" },
    { "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, "invalid Host" },
};
/* clang-format on */

static void
test_bad_heads_are_rejected_with_a_reason(void **state)
{
    static struct head head;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        size_t len = bad_rows[i].len != 0 ? bad_rows[i].len : strlen(bad_rows[i].text);
        struct test_input in = input_of(bad_rows[i].text, len);
        const char *why = NULL;
        enum head_result r = parse_input(in, &head, &why);

        if (r != HEAD_BAD || why == NULL || strcmp(why, bad_rows[i].why) != 0) {
            fail_msg("row %zu: got %d \"%s\", want \"%s\"", i, r, why ? why : "(null)",
                     bad_rows[i].why);
        }
        free(in.buf);
    }
}

static void
test_bad_without_why_pointer(void **state)
{
    static struct head head;
    struct test_input in = INPUT("GET / HTTP/1.1\n\r\n\r\n");

    (void)state;
    assert_int_equal(parse_input(in, &head, NULL), HEAD_BAD);
    free(in.buf);
}

static void
test_partial_until_the_blank_line(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    static struct head head;

    (void)state;
    for (size_t len = 0; len < sizeof(text) - 1; len++) {
        struct test_input in = input_of(text, len);

        assert_int_equal(parse_input(in, &head, NULL), HEAD_PARTIAL);
        free(in.buf);
    }
    /* a bad byte does not make a partial head final: only CRLF CRLF does */
    struct test_input in = INPUT("GET / HTTP/1.1\nHost: a\r\n");
    assert_int_equal(parse_input(in, &head, NULL), HEAD_PARTIAL);
    free(in.buf);
}

static void
test_find_end_at_every_split(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY\r\n\r\n";
    const size_t end = strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n");

    (void)state;
    for (size_t split = 0; split <= sizeof(text) - 1; split++) {
        struct test_input in = input_of(text, sizeof(text) - 1);
        size_t scanned = 0;
        size_t first = head_find_end(in.buf, split, &scanned);

        if (split < end) {
            assert_int_equal(first, 0);
            assert_int_equal(scanned, split);
            assert_int_equal(head_find_end(in.buf, in.len, &scanned), end);
        } else {
            assert_int_equal(first, end);
        }
        /* once found, asking again gives the same end */
        assert_int_equal(head_find_end(in.buf, in.len, &scanned), end);
        free(in.buf);
    }
}

static void
test_find_end_byte_by_byte(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nX: \r\n\r\r\nHost: a\r\n\r\n";
    size_t scanned = 0, found = 0;

    (void)state;
    for (size_t len = 1; len <= sizeof(text) - 1 && found == 0; len++) {
        struct test_input in = input_of(text, len);

        found = head_find_end(in.buf, len, &scanned);
        if (found == 0) {
            assert_int_equal(scanned, len);
        }
        free(in.buf);
    }
    assert_int_equal(found, sizeof(text) - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_websocket_upgrade_is_parsed),
        cmocka_unit_test(test_upgrade_needs_both_headers),
        cmocka_unit_test(test_post_with_content_length),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_http10_without_host),
        cmocka_unit_test(test_other_target_forms),
        cmocka_unit_test(test_many_headers_up_to_the_limit),
        cmocka_unit_test(test_value_keeps_obs_text_and_inner_whitespace),
        cmocka_unit_test(test_bad_heads_are_rejected_with_a_reason),
        cmocka_unit_test(test_bad_without_why_pointer),
        cmocka_unit_test(test_partial_until_the_blank_line),
        cmocka_unit_test(test_find_end_at_every_split),
        cmocka_unit_test(test_find_end_byte_by_byte),
    };

    return cmocka_run_group_tests_name("head", tests, NULL, NULL);
}
