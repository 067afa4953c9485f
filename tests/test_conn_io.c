/*
 * test_conn_io.c: a TLS end through proxy/conn_io.c, against an OpenSSL client
 * on a socketpair: the session ticket goes with the first answer, and records
 * that a full socket did not take leave before the caller hears they went.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/conn.h"
#include "proxy/conn_io.h"
#include "proxy/fdev.h"
#include "tests/helpers.h"

#define READ_STEP 3000 /* bytes the slow client reads per step */
#define STEPS     5000 /* alternations a test allows: far more than any case needs */

static struct event_base *base;
static struct fdev_loop loop;
static SSL_CTX *server_ctx, *client_ctx;

struct pair {
    struct conn_end e; /* wsring's end, the server */
    SSL *client;
};

static void
no_prep(struct fdev *f, const void **buf, size_t *len)
{
    (void)f;
    *buf = NULL;
    *len = 0;
}

static void
no_done(struct fdev *f, ssize_t n)
{
    (void)f;
    (void)n;
}

static int
setup(void **state)
{
    (void)state;
    base = event_base_new();
    assert_non_null(base);
    assert_int_equal(fdev_loop_init(&loop, base, no_prep, no_done), 0);
    loop.ring_state = -1; /* plain syscalls: the records' order is what is tested */
    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(server_ctx);
    assert_non_null(client_ctx);
    cert_use_new(server_ctx);
    /* As proxy/tls.c: one ticket at the handshake's end, partial writes like send(). */
    SSL_CTX_set_num_tickets(server_ctx, 1);
    SSL_CTX_set_mode(server_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_min_proto_version(server_ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    fdev_loop_fini(&loop);
    event_base_free(base);
    return 0;
}

/*
 * A handshaken pair; SNDBUF (0: the default) bounds what wsring's socket
 * holds; SESSION (or NULL) is offered for resumption.
 */
static void
pair_open(struct pair *p, int sndbuf, SSL_SESSION *session)
{
    int sv[2];
    BIO *bio;

    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (sndbuf > 0) {
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    }
    p->e.fd = sv[0];
    assert_int_equal(fdev_open(&loop, &p->e.io, sv[0], true), 0);
    bio = conn_io_bio_new(&p->e);
    assert_non_null(bio);
    p->e.ssl = SSL_new(server_ctx);
    assert_non_null(p->e.ssl);
    SSL_set_bio(p->e.ssl, bio, bio);
    SSL_set_accept_state(p->e.ssl);
    p->client = SSL_new(client_ctx);
    assert_non_null(p->client);
    assert_int_equal(SSL_set_fd(p->client, sv[1]), 1);
    if (session != NULL) {
        assert_int_equal(SSL_set_session(p->client, session), 1);
    }
    SSL_set_connect_state(p->client);
    for (int i = 0; i < STEPS && (conn_io_in_handshake(&p->e) || !SSL_is_init_finished(p->client));
         i++) {
        char c;

        SSL_do_handshake(p->client);
        event_base_loop(base, EVLOOP_NONBLOCK);           /* epoll tells the fdev what came */
        assert_int_equal(conn_io_recv(&p->e, &c, 1), -1); /* the handshake, then no data */
        assert_int_equal(errno, EAGAIN);
    }
    assert_false(conn_io_in_handshake(&p->e));
    assert_true(SSL_is_init_finished(p->client));
    ERR_clear_error();
}

static void
pair_close(struct pair *p)
{
    int fd = SSL_get_fd(p->client);

    SSL_shutdown(p->client); /* else OpenSSL marks the client's session not resumable */
    SSL_free(p->client);
    conn_io_tls_free(&p->e);
    fdev_close(&p->e.io);
    close(p->e.fd);
    close(fd);
    ERR_clear_error();
}

/* What the client can read now, into BUF (at most CAP bytes). */
static size_t
client_read(struct pair *p, uint8_t *buf, size_t cap)
{
    size_t got = 0, n;

    while (got < cap && SSL_read_ex(p->client, buf + got, cap - got, &n) == 1) {
        got += n;
    }
    ERR_clear_error();
    return got;
}

static void
test_ticket_goes_with_the_first_answer(void **state)
{
    struct pair p, again;
    uint8_t buf[64];
    SSL_SESSION *session;

    (void)state;
    pair_open(&p, 0, NULL);
    /* A client that has had no answer holds no ticket: none came after the handshake. */
    assert_int_equal(client_read(&p, buf, sizeof(buf)), 0);
    session = SSL_get1_session(p.client);
    assert_false(SSL_SESSION_is_resumable(session));
    SSL_SESSION_free(session);

    assert_int_equal(conn_io_send(&p.e, "HTTP/1.1 101", 12), 12);
    assert_int_equal(client_read(&p, buf, sizeof(buf)), 12);
    assert_memory_equal(buf, "HTTP/1.1 101", 12);
    session = SSL_get1_session(p.client);
    assert_true(SSL_SESSION_is_resumable(session));
    /* One ticket per connection: a second answer brings none. */
    assert_int_equal(conn_io_send(&p.e, "more", 4), 4);
    assert_int_equal(client_read(&p, buf, sizeof(buf)), 4);
    pair_close(&p);

    pair_open(&again, 0, session);
    assert_true(SSL_session_reused(again.client));
    pair_close(&again);
    SSL_SESSION_free(session);
}

/* A close_notify as our first word: the held ticket goes before it (records are numbered). */
static void
test_held_ticket_goes_before_a_close(void **state)
{
    struct pair p;
    uint8_t buf[8];
    SSL_SESSION *session;

    (void)state;
    pair_open(&p, 0, NULL);
    assert_int_equal(conn_io_shutdown(&p.e), 0);
    assert_int_equal(SSL_read_ex(p.client, buf, sizeof(buf), &(size_t){ 0 }), 0);
    assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
    session = SSL_get1_session(p.client);
    assert_true(SSL_SESSION_is_resumable(session));
    SSL_SESSION_free(session);
    pair_close(&p);
}

/*
 * As the relay does: send, keep what did not go, send it again later. The
 * socket holds less than a record and the client reads a little at a time,
 * so it stays full and most sends (the last one too) leave a record's rest
 * behind: the client must get every byte, in order, although the sender
 * only sends again while it still has bytes it heard did not go.
 */
static void
test_records_a_full_socket_left_go_first(void **state)
{
    static uint8_t data[4 * 16384], got[sizeof(data)]; /* whole records: the last is big too */
    struct pair p;
    size_t sent = 0, read = 0;
    int blocked = 0, blocked_last = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + i / 251);
    }
    pair_open(&p, 4096, NULL);
    for (int step = 0; step < STEPS && read < sizeof(data); step++) {
        if (sent < sizeof(data)) {
            /*
             * Fresh bytes as two pieces (the relay's frames: both records in
             * the cork); after a short send, the rest as one buffer, as the
             * relay retries from its pending bytes (OpenSSL wants no less).
             */
            size_t left = sizeof(data) - sent, half = blocked_last ? left : left / 2;
            struct iovec iov[2] = {
                { .iov_base = data + sent, .iov_len = half },
                { .iov_base = data + sent + half, .iov_len = left - half },
            };
            ssize_t n = conn_io_sendv(&p.e, iov, left - half > 0 ? 2 : 1);

            if (n == -1) {
                assert_int_equal(errno, EAGAIN);
                blocked++;
            } else {
                sent += (size_t)n;
            }
            blocked_last = n != (ssize_t)left;
        }
        read += client_read(&p, got + read,
                            READ_STEP < sizeof(got) - read ? READ_STEP : sizeof(got) - read);
    }
    assert_true(blocked > 0); /* the socket did fill up */
    assert_int_equal(sent, sizeof(data));
    assert_int_equal(read, sizeof(data));
    assert_memory_equal(got, data, sizeof(data));
    pair_close(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticket_goes_with_the_first_answer),
        cmocka_unit_test(test_held_ticket_goes_before_a_close),
        cmocka_unit_test(test_records_a_full_socket_left_go_first),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
