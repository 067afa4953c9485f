/*
 * The edge-triggered socket events (proxy/fdev.c) on a real event base, with
 * socketpairs: what keeps the relay from hanging on an edge it already took
 * (a callback that stops before the socket is drained is called again, a
 * resumed reader with bytes waiting is called at once, an EOF behind a short
 * read is still seen), writes that wait for room, and a socket closed by
 * another callback of the same round is never called.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

static void
turns(struct fixture *f)
{
    for (int i = 0; i < TURNS; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
}

struct reader {
    struct fdev io;
    int peer;        /* the other end of the pair */
    size_t per_call; /* bytes read per callback */
    int stop_each;   /* stops reading after each callback (backpressure) */
    int calls;
    char got[64];
    size_t got_len;
    int eof;
    int err;                /* errno of a failed read */
    struct reader *victim;  /* closed by this one's first callback, when set */
    struct reader *stopped; /* its reading stopped by this one's first callback, when set */
};

static struct fixture fixture;

static void send_prep(struct fdev *f, const void **buf, size_t *len);
static void send_done(struct fdev *f, ssize_t n);

static int
setup(void **state)
{
    fixture.base = event_base_new();
    assert_non_null(fixture.base);
    assert_int_equal(fdev_loop_init(&fixture.loop, fixture.base, send_prep, send_done), 0);
    *state = &fixture;
    return 0;
}

/* The same loop without io_uring, as on a kernel or sandbox that refuses it. */
static int
setup_plain(void **state)
{
    setup(state);
    fixture.loop.ring_state = -1;
    return 0;
}

/* Starts the batches now (a loop starts them in its first round), or skips the test. */
static void
need_ring(struct fixture *f)
{
    fdev_loop_start_batches(&f->loop);
    if (f->loop.ring_state != 1) {
        skip(); /* io_uring refused here: the plain runs cover fdev */
    }
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
    if (r->stopped != NULL) {
        fdev_read_stop(&r->stopped->io); /* after its socket may have been read ahead */
        r->stopped->stopped = NULL;
        r->stopped = NULL;
    }
    n = fdev_recv(&r->io, r->got + r->got_len, r->per_call, 0);
    if (n > 0) {
        r->got_len += (size_t)n;
    } else if (n == 0) {
        r->eof = 1;
        fdev_read_stop(&r->io);
    } else if (errno != EAGAIN) {
        r->err = errno;
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
    assert_int_equal(fdev_open(&f->loop, &r->io, sv[0], true), 0);
    r->io.ahead = 1; /* a plain socket, as the proxy's */
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

    fdev_loop_start_batches(&f->loop);
    reader_open(f, &r, 1);
    assert_int_equal(write(r.peer, "abc", 3), 3);
    turns(f);
    assert_int_equal(r.got_len, 3);
    assert_memory_equal(r.got, "abc", 3);
    /* The 4th read says EAGAIN, then it waits; read ahead, the short read said it already. */
    assert_int_equal(r.calls, f->loop.ring_state == 1 ? 3 : 4);
    turns(f);
    assert_int_equal(r.calls, f->loop.ring_state == 1 ? 3 : 4);
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
    assert_int_equal(fdev_open(&f->loop, &w.io, sv[0], true), 0);
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

/* A connecting socket is not taken as writable: the writer runs once epoll says it is. */
static void
test_connecting_socket_is_written_once_connected(void **state)
{
    struct fixture *f = *state;
    struct writer w = { .calls = 0 };
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(addr);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(lfd >= 0 && fd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
    assert_true(connect(fd, (struct sockaddr *)&addr, len) == 0 || errno == EINPROGRESS);
    assert_int_equal(fdev_open(&f->loop, &w.io, fd, false), 0);
    fdev_write(&w.io, on_write, &w);
    assert_int_equal(w.calls, 0);
    turns(f);
    assert_int_equal(w.calls, 1);
    fdev_close(&w.io);
    close(fd);
    close(lfd);
}

/* A reader that emptied its socket is not asked again until epoll says there is more: the
 * recv() would only say EAGAIN. The bytes that came meanwhile are not lost. */
static void
test_drained_socket_is_read_again_after_its_edge(void **state)
{
    struct fixture *f = *state;
    struct reader r;
    char buf[8];

    reader_open(f, &r, sizeof(r.got));
    assert_int_equal(write(r.peer, "ab", 2), 2);
    turns(f);
    assert_int_equal(r.got_len, 2);
    fdev_read_stop(&r.io);
    assert_int_equal(write(r.peer, "cd", 2), 2);
    assert_int_equal(fdev_recv(&r.io, buf, sizeof(buf), 0), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(fdev_recv(&r.io, buf, sizeof(buf), MSG_PEEK), 2); /* a peek asks */
    fdev_read_resume(&r.io);
    turns(f);
    assert_int_equal(r.got_len, 4);
    assert_memory_equal(r.got, "abcd", 4);
    reader_close(&r);
}

/* An accepted socket whose first bytes are in: read when the loop runs, before it joins the
 * epoll set (with batches), and bytes that come later still wake its reader. */
static void
test_first_bytes_of_a_new_socket_and_later_ones_are_read(void **state)
{
    struct fixture *f = *state;
    struct reader r;

    fdev_loop_start_batches(&f->loop);
    reader_open(f, &r, sizeof(r.got));
    assert_int_equal(write(r.peer, "hi", 2), 2); /* before any round: in when "accepted" */
    fdev_loop_run(&f->loop);
    if (f->loop.ring_state == 1) {
        assert_int_equal(r.got_len, 2); /* in the run's batch, no turn of the loop needed */
    }
    turns(f);
    assert_int_equal(r.got_len, 2);
    assert_int_equal(write(r.peer, "!", 1), 1);
    turns(f);
    assert_int_equal(r.got_len, 3);
    assert_memory_equal(r.got, "hi!", 3);
    reader_close(&r);
}

/* A descriptor epoll refuses (a regular file): with batches its reader hears the error, as
 * from a broken socket; without, fdev_open() says it. */
static void
test_descriptor_epoll_refuses_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct reader r;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    memset(&r, 0, sizeof(r));
    r.peer = -1;
    assert_true(fd >= 0);
    fdev_loop_start_batches(&f->loop);
    if (f->loop.ring_state != 1) {
        assert_int_equal(fdev_open(&f->loop, &r.io, fd, true), -1);
        assert_int_equal(errno, EPERM);
        close(fd);
        return;
    }
    assert_int_equal(fdev_open(&f->loop, &r.io, fd, true), 0);
    r.per_call = sizeof(r.got);
    fdev_read(&r.io, on_read, &r);
    turns(f);
    assert_int_equal(r.err, EPERM);
    fdev_close(&r.io);
    close(fd);
}

/* Two readers ready in one round; the first stops the other, whose bytes may be read ahead
 * already: they wait for it, and come once it reads again. */
static void
test_bytes_of_a_reader_stopped_in_its_round_wait_for_it(void **state)
{
    struct fixture *f = *state;
    struct reader a, b, *later;

    reader_open(f, &a, sizeof(a.got));
    reader_open(f, &b, sizeof(b.got));
    a.stopped = &b;
    b.stopped = &a;
    assert_int_equal(write(a.peer, "aa", 2), 2);
    assert_int_equal(write(b.peer, "bb", 2), 2);
    turns(f);
    later = a.calls > 0 ? &b : &a;
    assert_int_equal(later->calls, 0);
    fdev_read_resume(&later->io);
    turns(f);
    assert_int_equal(later->got_len, 2);
    assert_memory_equal(later->got, later == &a ? "aa" : "bb", 2);
    assert_int_equal(a.got_len + b.got_len, 4);
    reader_close(&a);
    reader_close(&b);
}

/* Bytes read ahead for a descriptor the pool takes over (fdev_move) go with it. */
static void
test_bytes_read_ahead_move_with_the_descriptor(void **state)
{
    struct fixture *f = *state;
    struct reader r, into, other;
    char buf[8];
    int fd;

    need_ring(f);
    reader_open(f, &r, sizeof(r.got));
    r.stop_each = 1;
    r.per_call = 1;
    assert_int_equal(write(r.peer, "xyz", 3), 3);
    turns(f);
    assert_int_equal(r.got_len, 1);
    assert_true(r.io.ready & FDEV_HELD); /* "yz" taken from the socket already */
    memset(&into, 0, sizeof(into));
    fdev_move(&into.io, &r.io);
    /* Another socket read ahead meanwhile must not get the slot that holds them. */
    reader_open(f, &other, 1);
    other.stop_each = 1;
    assert_int_equal(write(other.peer, "QQ", 2), 2);
    turns(f);
    assert_int_equal(other.got_len, 1);
    assert_int_equal(fdev_recv(&into.io, buf, sizeof(buf), 0), 2);
    assert_memory_equal(buf, "yz", 2);
    fd = into.io.fd;
    fdev_close(&into.io);
    close(fd);
    close(r.peer);
    reader_close(&other);
}

static int closed_fd = -1;
static int open_in_round; /* the descriptor was still open after fdev_close_fd() in the round */

static void
on_read_close(evutil_socket_t fd, short what, void *arg)
{
    struct reader *r = arg;
    char c;

    (void)what;
    assert_int_equal(fdev_recv(&r->io, &c, 1, 0), 1); /* unread bytes would make it a reset */
    fdev_close_fd(&r->io, fd);
    closed_fd = fd;
    open_in_round = fcntl(fd, F_GETFD) != -1;
}

/* fdev_close_fd() in a round: the descriptor goes with the round's batch (its number stays
 * taken until then), else at once; either way it is closed once the round is over. */
static void
test_descriptor_closed_in_a_round_is_closed_after_it(void **state)
{
    struct fixture *f = *state;
    struct reader r;
    char c;

    reader_open(f, &r, 1);
    fdev_read(&r.io, on_read_close, &r);
    closed_fd = -1;
    assert_int_equal(write(r.peer, "x", 1), 1);
    turns(f);
    assert_int_not_equal(closed_fd, -1);
    assert_int_equal(open_in_round, f->loop.ring_state == 1);
    assert_int_equal(fcntl(closed_fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(read(r.peer, &c, 1), 0); /* the peer sees the close */
    close(r.peer);
}

/* ---- the send batch ---- */

struct sender {
    struct fdev io; /* first: send_prep and send_done find the sender from it */
    int peer;
    const char *msg;
    size_t len, off;
    ssize_t done; /* what send_done heard; -1000 before */
    int calls;
    int writable;          /* write callbacks */
    int ran;               /* read callbacks */
    struct sender *victim; /* closed by this one when it ran first and put its send off */
};

static void
on_write_sender(evutil_socket_t fd, short what, void *arg)
{
    struct sender *s = arg;

    (void)fd;
    (void)what;
    s->writable++;
    fdev_write_stop(&s->io);
}

static void
send_prep(struct fdev *f, const void **buf, size_t *len)
{
    struct sender *s = (struct sender *)f;

    *buf = s->msg + s->off;
    *len = s->len - s->off;
}

static void
send_done(struct fdev *f, ssize_t n)
{
    struct sender *s = (struct sender *)f;

    s->done = n;
    s->calls++;
    s->off += n > 0 ? (size_t)n : 0;
}

/* A read callback that puts a send off (the relay does so with the bytes it read). */
static void
on_read_send_later(evutil_socket_t fd, short what, void *arg)
{
    struct sender *s = arg;
    char buf[16];

    (void)fd;
    (void)what;
    while (fdev_recv(&s->io, buf, sizeof(buf), 0) > 0) {
    }
    fdev_read_stop(&s->io);
    assert_true(fdev_can_send_later(&s->io));
    fdev_send_later(&s->io);
    fdev_send_later(&s->io); /* twice in a round: still one send */
    s->ran++;
    if (s->victim != NULL && s->victim->ran) {
        int vfd = s->victim->io.fd;

        fdev_close(&s->victim->io);
        close(vfd);
    }
}

static void
sender_open(struct fixture *f, struct sender *s, const char *msg, size_t len)
{
    int sv[2];

    memset(s, 0, sizeof(*s));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fdev_open(&f->loop, &s->io, sv[0], true), 0);
    s->peer = sv[1];
    s->msg = msg;
    s->len = len;
    s->done = -1000;
    fdev_read(&s->io, on_read_send_later, s);
}

/* Sends put off in a round go at its end; each owner hears how many bytes went. */
static void
test_sends_put_off_go_at_the_rounds_end(void **state)
{
    struct fixture *f = *state;
    struct sender a, b;
    char buf[16];

    need_ring(f);
    sender_open(f, &a, "hello", 5);
    sender_open(f, &b, "world!", 6);
    assert_false(fdev_can_send_later(&a.io)); /* outside a round: nothing would send it */
    assert_int_equal(write(a.peer, "?", 1), 1);
    assert_int_equal(write(b.peer, "?", 1), 1);
    turns(f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.done, 5);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.done, 6);
    assert_int_equal(read(a.peer, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(read(b.peer, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "world!", 6);
    fdev_close(&a.io);
    fdev_close(&b.io);
}

/* A full socket: the owner hears that nothing (or a part) went, and its writability is
 * forgotten, so a write callback waits for room as after a short send(). */
static void
test_send_put_off_to_a_full_socket_says_so(void **state)
{
    struct fixture *f = *state;
    static char big[256 * 1024];
    struct sender s;
    int sndbuf = 4096;

    need_ring(f);
    sender_open(f, &s, big, sizeof(big));
    assert_int_equal(setsockopt(s.io.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    assert_int_equal(write(s.peer, "?", 1), 1);
    turns(f);
    assert_int_equal(s.calls, 1);
    assert_true(s.done < (ssize_t)sizeof(big));
    assert_false(s.io.ready & FDEV_OUT);
    fdev_write(&s.io, on_write_sender, &s);
    turns(f);
    assert_int_equal(s.writable, 0); /* no room yet */
    while (read(s.peer, big, sizeof(big)) > 0) {
    }
    turns(f);
    assert_int_equal(s.writable, 1);
    fdev_close(&s.io);
    close(s.peer);
}

/* A socket closed in the round after it put a send off: its owner is not told (nor called
 * with a socket that is gone), the others are. */
static void
test_send_of_a_socket_closed_in_its_round_is_dropped(void **state)
{
    struct fixture *f = *state;
    struct sender a, b;

    need_ring(f);
    sender_open(f, &a, "aaa", 3);
    sender_open(f, &b, "bbb", 3);
    a.victim = &b;
    b.victim = &a;
    assert_int_equal(write(a.peer, "?", 1), 1);
    assert_int_equal(write(b.peer, "?", 1), 1);
    turns(f);
    /* Both put a send off; the second to run closed the first. */
    assert_int_equal(a.ran + b.ran, 2);
    assert_int_equal(a.calls + b.calls, 1);
    assert_int_equal(a.calls ? a.done : b.done, 3);
    fdev_close(a.calls ? &a.io : &b.io);
    close(a.peer);
    close(b.peer);
}

int
main(void)
{
#define BOTH(t)                                                                                    \
    cmocka_unit_test_setup_teardown(t, setup, teardown),                                           \
        cmocka_unit_test_setup_teardown(t, setup_plain, teardown)
    const struct CMUnitTest tests[] = {
        BOTH(test_reader_stopping_short_is_called_again),
        BOTH(test_resumed_reader_with_bytes_waiting_is_called),
        BOTH(test_eof_behind_a_short_read_is_seen),
        BOTH(test_socket_closed_by_another_callback_is_not_called),
        BOTH(test_writer_waits_for_room),
        BOTH(test_connecting_socket_is_written_once_connected),
        BOTH(test_drained_socket_is_read_again_after_its_edge),
        BOTH(test_first_bytes_of_a_new_socket_and_later_ones_are_read),
        BOTH(test_descriptor_epoll_refuses_is_an_error),
        BOTH(test_bytes_of_a_reader_stopped_in_its_round_wait_for_it),
        BOTH(test_descriptor_closed_in_a_round_is_closed_after_it),
        cmocka_unit_test_setup_teardown(test_bytes_read_ahead_move_with_the_descriptor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sends_put_off_go_at_the_rounds_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_put_off_to_a_full_socket_says_so, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_of_a_socket_closed_in_its_round_is_dropped, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
