/* test_forward.c: the head a backend receives (DESIGN §3 step 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/forward.h"
#include "proxy/head.h"

/* Parses IN (a heap copy of exactly its length) and forwards it with INFO. */
static char *
forward_of(const char *in, const struct forward_info *info)
{
    size_t len = strlen(in);
    char *copy = malloc(len);
    struct head head;
    char *out;
    size_t n;

    memcpy(copy, in, len);
    assert_int_equal(head_parse(copy, len, &head, NULL), HEAD_DONE);
    out = malloc(forward_size(&head, info) + 1);
    n = forward_write(copy, &head, info, out);
    assert_true(n <= forward_size(&head, info));
    out[n] = '\0';
    free(copy);
    return out;
}

static const struct forward_info ws_info = {
    .client_ip = "192.0.2.7",
    .proto = "http",
    .key = "alice",
    .key_len = 5,
    .fingerprint = "0123456789abcdef",
    .connection_close = false,
};

static void
test_upgrade_head_is_kept_and_headers_appended(void **state)
{
    char *out = forward_of("GET /chat?user=alice HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\n\r\n",
                           &ws_info);

    (void)state;
    assert_string_equal(out, "GET /chat?user=alice HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nX-Forwarded-For: 192.0.2.7\r\n"
                             "X-Forwarded-Proto: http\r\nX-Wsring-Key: alice\r\n"
                             "X-Wsring-Ring: 0123456789abcdef\r\n\r\n");
    free(out);
}

static void
test_client_cannot_spoof_trusted_headers(void **state)
{
    char *out = forward_of("GET /?user=alice HTTP/1.1\r\nX-Wsring-Key: mallory\r\nHost: h\r\n"
                           "x-wsring-ring: 00\r\nX-Forwarded-Proto: https\r\n\r\n",
                           &ws_info);

    (void)state;
    assert_string_equal(out, "GET /?user=alice HTTP/1.1\r\nHost: h\r\n"
                             "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
                             "X-Wsring-Key: alice\r\nX-Wsring-Ring: 0123456789abcdef\r\n\r\n");
    free(out);
}

static void
test_plain_http_gets_connection_close(void **state)
{
    struct forward_info info = ws_info;
    char *out;

    (void)state;
    info.connection_close = true;
    out = forward_of("POST /send?user=alice HTTP/1.1\r\nConnection: keep-alive\r\nHost: h\r\n"
                     "Keep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
                     &info);
    assert_string_equal(out, "POST /send?user=alice HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
                             "Connection: close\r\nX-Forwarded-For: 192.0.2.7\r\n"
                             "X-Forwarded-Proto: http\r\nX-Wsring-Key: alice\r\n"
                             "X-Wsring-Ring: 0123456789abcdef\r\n\r\n");
    free(out);
}

static void
test_empty_header_value_is_dropped_whole(void **state)
{
    char *out =
        forward_of("GET /?user=a HTTP/1.1\r\nHost: h\r\nX-Wsring-Key:\r\nA: b\r\n\r\n", &ws_info);

    (void)state;
    assert_non_null(strstr(out, "Host: h\r\nA: b\r\nX-Forwarded-For"));
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_head_is_kept_and_headers_appended),
        cmocka_unit_test(test_client_cannot_spoof_trusted_headers),
        cmocka_unit_test(test_plain_http_gets_connection_close),
        cmocka_unit_test(test_empty_header_value_is_dropped_whole),
    };

    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
