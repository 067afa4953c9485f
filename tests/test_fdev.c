/*
 * The edge-triggered socket events (proxy/fdev.c) on a real event base, with
 * socketpairs: what keeps the relay from hanging on an edge it already took
 * (a callback that stops before the socket is drained is called again, a
 * resumed reader with bytes waiting is called at once, an EOF behind a short
 * read is still seen), writes that wait for room, and a socket closed by
 * another callback of the same round is never called.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proxy/fdev.h"

#define TURNS 20 /* loop turns a test lets run: more than any case needs */

struct fixture {
    struct event_base *base;
    struct fdev_loop loop;
};

struct reader {
    struct fdev io;
    int peer;        /* the other end of the pair */
    size_t per_call; /* bytes read per callback */
    int stop_each;   /* stops reading after each callback (backpressure) */
    int calls;
    char got[64];
    size_t got_len;
    int eof;
    struct reader *victim; /* closed by this one's first callback, when set */
};

static int
setup(void **state)
{
    static struct fixture f;

    f.base = event_base_new();
    assert_non_null(f.base);
    assert_int_equal(fdev_loop_init(&f.loop, f.base), 0);
    *state = &f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    fdev_loop_fini(&f->loop);
    event_base_free(f->base);
    return 0;
}

static void
turns(struct fixture *f)
{
    for (int i = 0; i < TURNS; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
}

static void
reader_close(struct reader *r)
{
    if (fdev_is_open(&r->io)) {
        int fd = r->io.fd;

        fdev_close(&r->io);
        close(fd);
    }
    close(r->peer);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    struct reader *r = arg;
    ssize_t n;

    (void)fd;
    assert_true(what & EV_READ);
    r->calls++;
    if (r->victim != NULL) {
        reader_close(r->victim); /* its own event of this round must not run */
        r->victim = NULL;
    }
    n = fdev_recv(&r->io, r->got + r->got_len, r->per_call, 0);
    if (n > 0) {
        r->got_len += (size_t)n;
    } else if (n == 0) {
        r->eof = 1;
        fdev_read_stop(&r->io);
    }
    if (r->stop_each) {
        fdev_read_stop(&r->io);
    }
}

static void
reader_open(struct fixture *f, struct reader *r, size_t per_call)
{
    int sv[2];

    memset(r, 0, sizeof(*r));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fdev_open(&f->loop, &r->io, sv[0]), 0);
    r->peer = sv[1];
    r->per_call = per_call;
    fdev_read(&r->io, on_read, r);
}

/* One edge for three bytes, read one per call: the other two come without another edge. */
static void
test_reader_stopping_short_is_called_again(void **state)
{
    struct fixture *f = *state;
    struct reader r;

    reader_open(f, &r, 1);
    assert_int_equal(write(r.peer, "abc", 3), 3);
    turns(f);
    assert_int_equal(r.got_len, 3);
    assert_memory_equal(r.got, "abc", 3);
    assert_int_equal(r.calls, 4); /* the 4th read says EAGAIN: then it waits */
    turns(f);
    assert_int_equal(r.calls, 4);
    reader_close(&r);
}

/* Reading stopped with bytes left, then resumed: called at once, no new edge needed. */
static void
test_resumed_reader_with_bytes_waiting_is_called(void **state)
{
    struct fixture *f = *state;
    struct reader r;

    reader_open(f, &r, 2);
    r.stop_each = 1; /* backpressure: the peer is full after each read */
    assert_int_equal(write(r.peer, "abcd", 4), 4);
    turns(f);
    assert_int_equal(r.got_len, 2);
    fdev_read_resume(&r.io);
    turns(f);
    assert_int_equal(r.got_len, 4);
    assert_memory_equal(r.got, "abcd", 4);
    reader_close(&r);
}

/* Bytes and the FIN together: the short read that empties the socket must not hide the EOF. */
static void
test_eof_behind_a_short_read_is_seen(void **state)
{
    struct fixture *f = *state;
    struct reader r;

    reader_open(f, &r, sizeof(r.got));
    assert_int_equal(write(r.peer, "x", 1), 1);
    assert_int_equal(shutdown(r.peer, SHUT_WR), 0);
    turns(f);
    assert_int_equal(r.got_len, 1);
    assert_int_equal(r.eof, 1);
    reader_close(&r);
}

/* Two sockets ready in one round, each closing the other: only the first runs. */
static void
test_socket_closed_by_another_callback_is_not_called(void **state)
{
    struct fixture *f = *state;
    struct reader a, b;

    reader_open(f, &a, 1);
    reader_open(f, &b, 1);
    a.victim = &b;
    b.victim = &a;
    assert_int_equal(write(a.peer, "a", 1), 1);
    assert_int_equal(write(b.peer, "b", 1), 1);
    turns(f);
    assert_true((a.calls > 0) != (b.calls > 0));
    if (a.calls > 0) {
        reader_close(&a);
    } else {
        reader_close(&b);
    }
}

struct writer {
    struct fdev io;
    int calls;
};

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    struct writer *w = arg;

    (void)fd;
    assert_true(what & EV_WRITE);
    w->calls++;
    fdev_write_stop(&w->io);
}

/* A full socket: the write callback waits until the peer makes room, then runs once. */
static void
test_writer_waits_for_room(void **state)
{
    struct fixture *f = *state;
    struct writer w = { .calls = 0 };
    char buf[65536] = { 0 };
    int sv[2], sndbuf = 4096;
    ssize_t n;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    assert_int_equal(fdev_open(&f->loop, &w.io, sv[0]), 0);
    turns(f); /* the first edge (writable) arrives while nobody wants it */
    do {
        n = fdev_send(&w.io, buf, sizeof(buf), MSG_DONTWAIT);
    } while (n > 0);
    assert_int_equal(errno, EAGAIN);
    fdev_write(&w.io, on_write, &w);
    turns(f);
    assert_int_equal(w.calls, 0);
    while (read(sv[1], buf, sizeof(buf)) > 0) {
    }
    turns(f);
    assert_int_equal(w.calls, 1);
    fdev_close(&w.io);
    close(sv[0]);
    close(sv[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reader_stopping_short_is_called_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resumed_reader_with_bytes_waiting_is_called, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_eof_behind_a_short_read_is_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_closed_by_another_callback_is_not_called, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer_waits_for_room, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
