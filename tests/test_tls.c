/* test_tls.c: proxy/tls.c's pure part (the name a backend certificate must carry), ticket keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

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

/*
 * A handshake between SERVER and a client of version VERSION that offers
 * OFFER (or nothing); says whether it resumed, and returns the client's
 * session after a byte of data (which brings a TLS 1.3 ticket).
 */
static SSL_SESSION *
handshake(SSL_CTX *server, int version, SSL_SESSION *offer, bool *resumed)
{
    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    SSL *s, *c;
    SSL_SESSION *session;
    int sv[2];
    char byte;

    assert_non_null(client_ctx);
    SSL_CTX_set_min_proto_version(client_ctx, version);
    SSL_CTX_set_max_proto_version(client_ctx, version);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    s = SSL_new(server);
    c = SSL_new(client_ctx);
    assert_non_null(s);
    assert_non_null(c);
    assert_int_equal(SSL_set_fd(s, sv[0]), 1);
    assert_int_equal(SSL_set_fd(c, sv[1]), 1);
    if (offer != NULL) { /* a copy: a TLS 1.2 client puts a renewed ticket in its session */
        SSL_SESSION *copy = SSL_SESSION_dup(offer);

        assert_non_null(copy);
        assert_int_equal(SSL_set_session(c, copy), 1);
        SSL_SESSION_free(copy);
    }
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int i = 0; i < 20 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    assert_true(SSL_is_init_finished(s) && SSL_is_init_finished(c));
    assert_int_equal(SSL_write(s, "x", 1), 1);
    assert_int_equal(SSL_read(c, &byte, 1), 1);
    *resumed = SSL_session_reused(c);
    session = SSL_get1_session(c);
    assert_true(SSL_SESSION_is_resumable(session));
    SSL_shutdown(c); /* else OpenSSL marks the client's session not resumable */
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(client_ctx);
    close(sv[0]);
    close(sv[1]);
    ERR_clear_error();
    return session;
}

/* Whether a handshake offering OFFER resumes. */
static bool
resumes(SSL_CTX *server, int version, SSL_SESSION *offer)
{
    bool resumed;

    SSL_SESSION_free(handshake(server, version, offer, &resumed));
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
    first = handshake(server, version, NULL, &resumed);
    assert_false(resumed);
    fake_now = t0 + TLS_TICKET_KEY_PERIOD - 1;
    assert_true(resumes(server, version, first));
    fake_now = t0 + 2 * TLS_TICKET_KEY_PERIOD - 1; /* the next period: old key, new ticket */
    renewed = handshake(server, version, first, &resumed);
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
    session = handshake(before, TLS1_3_VERSION, NULL, &resumed);
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
