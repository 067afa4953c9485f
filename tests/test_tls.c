/* test_tls.c: the pure part of proxy/tls.c (the name a backend certificate must carry). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/tls.h"

static void
test_member_host(void **state)
{
    static const struct {
        const char *address, *host; /* host NULL: refused */
    } rows[] = {
        { "127.0.0.1:9001", "127.0.0.1" },
        { "[::1]:9001", "::1" },
        { "[2001:db8::7]:443", "2001:db8::7" },
        { "ws-1.example.com:8443", "ws-1.example.com" },
        { "ws-1.example.com", "ws-1.example.com" }, /* no port: all of it */
        { ":80", NULL },
        { "[]:80", NULL },
        { "[::1:80", NULL }, /* no closing bracket */
        { "", NULL },
    };
    char out[TLS_HOST_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool ok = tls_member_host(rows[i].address, out);

        if (rows[i].host == NULL) {
            assert_false(ok);
        } else {
            assert_true(ok);
            assert_string_equal(out, rows[i].host);
        }
    }
}

static void
test_member_host_length(void **state)
{
    char address[TLS_HOST_MAX + 8], out[TLS_HOST_MAX];

    (void)state;
    memset(address, 'a', TLS_HOST_MAX - 1);
    strcpy(address + TLS_HOST_MAX - 1, ":80");
    assert_true(tls_member_host(address, out)); /* 255 bytes: the longest that fits */
    assert_int_equal(strlen(out), TLS_HOST_MAX - 1);
    memset(address, 'a', TLS_HOST_MAX);
    strcpy(address + TLS_HOST_MAX, ":80");
    assert_false(tls_member_host(address, out));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_host),
        cmocka_unit_test(test_member_host_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
