/* test_tls.c: proxy/tls.c's pure part (the name a backend certificate must carry), ticket keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/tls.h"
#include "tests/helpers.h"

/* The ticket keys' clock: the keys are the process's, so each test starts periods later. */
static time_t fake_now = 250000 * (time_t)TLS_TICKET_KEY_PERIOD;

static time_t
fake_clock(time_t *out)
{
    if (out != NULL) {
        *out = fake_now;
    }
    return fake_now;
}

/* The start of a period later than any used so far. */
static time_t
fresh_period(void)
{
    fake_now = (fake_now / TLS_TICKET_KEY_PERIOD + 10) * TLS_TICKET_KEY_PERIOD;
    return fake_now;
}

static int
use_fake_clock(void **state)
{
    (void)state;
    tls_ticket_clock = fake_clock;
    return 0;
}

/* A server context as tls.c makes one, as far as tickets go. */
static SSL_CTX *
server_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    assert_non_null(ctx);
    cert_use_new(ctx);
    tls_ticket_keys_use(ctx);
    return ctx;
}

/* Whether a handshake offering OFFER resumes. */
static bool
resumes(SSL_CTX *server, int version, SSL_SESSION *offer)
{
    bool resumed;

    SSL_SESSION_free(tls_pair_handshake(server, version, offer, &resumed));
    return resumed;
}

/* A ticket resumes in its key's period and the next (renewed there), not after. */
static void
ticket_key_rotation(int version)
{
    SSL_CTX *server = server_ctx_new();
    SSL_SESSION *first, *renewed;
    time_t t0 = fresh_period();
    bool resumed;

    fake_now = t0 + 10;
    first = tls_pair_handshake(server, version, NULL, &resumed);
    assert_false(resumed);
    fake_now = t0 + TLS_TICKET_KEY_PERIOD - 1;
    assert_true(resumes(server, version, first));
    fake_now = t0 + 2 * TLS_TICKET_KEY_PERIOD - 1; /* the next period: old key, new ticket */
    renewed = tls_pair_handshake(server, version, first, &resumed);
    assert_true(resumed);
    fake_now = t0 + 2 * TLS_TICKET_KEY_PERIOD + 1; /* two periods on: that key is gone */
    assert_false(resumes(server, version, first));
    assert_true(resumes(server, version, renewed));
    SSL_SESSION_free(first);
    SSL_SESSION_free(renewed);
    SSL_CTX_free(server);
}

static void
test_ticket_key_rotation_tls13(void **state)
{
    (void)state;
    ticket_key_rotation(TLS1_3_VERSION);
}

static void
test_ticket_key_rotation_tls12(void **state)
{
    (void)state;
    ticket_key_rotation(TLS1_2_VERSION);
}

/* A reload makes new contexts: tickets from the old one still resume. */
static void
test_ticket_keys_outlive_the_context(void **state)
{
    SSL_CTX *before = server_ctx_new(), *after = server_ctx_new();
    SSL_SESSION *session;
    bool resumed;

    (void)state;
    fake_now = fresh_period() + 10;
    session = tls_pair_handshake(before, TLS1_3_VERSION, NULL, &resumed);
    SSL_CTX_free(before);
    assert_true(resumes(after, TLS1_3_VERSION, session));
    SSL_SESSION_free(session);
    SSL_CTX_free(after);
}

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
        cmocka_unit_test(test_ticket_key_rotation_tls13),
        cmocka_unit_test(test_ticket_key_rotation_tls12),
        cmocka_unit_test(test_ticket_keys_outlive_the_context),
    };

    return cmocka_run_group_tests(tests, use_fake_clock, NULL);
}
