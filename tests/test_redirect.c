/* redirect_format(): the 307 answer of redirect mode (DESIGN §10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/redirect.h"

static void
expect_answer(const char *url, const char *target, bool close, const char *want)
{
    char out[512];
    size_t len = redirect_format(out, sizeof(out), url, target, strlen(target), close);

    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
}

/* Location is public_url (no trailing "/": conf and Consul parsing drop it) + target. */
static void
test_location_keeps_path_and_query(void **state)
{
    (void)state;
    expect_answer("https://ws-1.example.com", "/connect?user=alice&x=%20", false,
                  "HTTP/1.1 307 Temporary Redirect\r\n"
                  "Location: https://ws-1.example.com/connect?user=alice&x=%20\r\n"
                  "Content-Length: 0\r\n\r\n");
    expect_answer("http://[::1]:8081/chat", "/connect/u1", true,
                  "HTTP/1.1 307 Temporary Redirect\r\n"
                  "Location: http://[::1]:8081/chat/connect/u1\r\n"
                  "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

/* An absolute-form target keeps only its path and query. */
static void
test_absolute_form_target(void **state)
{
    (void)state;
    expect_answer(
        "https://a.example", "http://wsring.example:8080/connect?user=u", false,
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://a.example/connect?user=u\r\n"
        "Content-Length: 0\r\n\r\n");
    expect_answer("https://a.example", "http://wsring.example?user=u", false,
                  "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://a.example/?user=u\r\n"
                  "Content-Length: 0\r\n\r\n");
}

/* A buffer too small gets nothing (0), never a cut answer. */
static void
test_small_buffer(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(redirect_format(out, sizeof(out), "https://a.example", "/connect", 8, false),
                     0);
    assert_int_equal(redirect_format(out, 93, "https://a.example", "/c", 2, true), 0);
    assert_int_equal(redirect_format(out, 0, "https://a.example", "/c", 2, true), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_location_keeps_path_and_query),
        cmocka_unit_test(test_absolute_form_target),
        cmocka_unit_test(test_small_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
