/*
 * The backend connection pool (proxy/pool.c) on a real event base, with
 * socketpairs standing in for backend connections: per-member lists, the
 * per-member cap, members that leave or move, and the liveness rules (a
 * connection put this round is checked; one put earlier is checked when
 * epoll said it became readable, even before its own callback has run).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proxy/fdev.h"
#include "proxy/pool.h"
#include "proxy/worker.h"
#include "ring/member_set.h"

struct fixture {
    struct event_base *base;
    struct fdev_loop loop;
    struct pool pool;
    struct member_set *set;
};

static int
setup(void **state)
{
    static struct fixture f;

    f.base = worker_base_new();
    assert_non_null(f.base);
    assert_int_equal(fdev_loop_init(&f.loop, f.base, NULL, NULL), 0);
    pool_init(&f.pool, f.base);
    f.set = member_set_create();
    assert_non_null(f.set);
    *state = &f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    pool_fini(&f->pool);
    fdev_loop_fini(&f->loop);
    member_set_destroy(f->set);
    event_base_free(f->base);
    return 0;
}

static const struct member *
member(struct fixture *f, const char *id)
{
    long at = member_set_find(f->set, id);

    assert_true(at >= 0);
    return member_set_at(f->set, (size_t)at);
}

/* A connected pair: [0] goes to the pool, [1] is the "backend". */
static void
pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* True when the pool closed its end of the pair whose backend end is PEER. */
static bool
closed_by_pool(int peer)
{
    char byte;

    return recv(peer, &byte, 1, MSG_DONTWAIT) == 0;
}

/* pool_take() for the connection end that wsring would open: the caller owns the fd after. */
static int
take_m(struct fixture *f, const struct member *m)
{
    struct fdev into = { .fd = -1 };
    int fd = pool_take(&f->pool, m, &into);

    if (fd != -1) {
        assert_int_equal(into.fd, fd);
        fdev_close(&into);
    }
    return fd;
}

static int
take(struct fixture *f, const char *id)
{
    return take_m(f, member(f, id));
}

/* pool_put() of FD as a relay's backend end (open in the worker's set) would do it. */
static int
put_m(struct fixture *f, const struct member *m, int fd)
{
    struct fdev from;
    int rc;

    assert_int_equal(fdev_open(&f->loop, &from, fd, true), 0);
    rc = pool_put(&f->pool, m, &from);
    if (rc == 0) {
        assert_false(fdev_is_open(&from));
    } else {
        fdev_close(&from); /* still the caller's */
    }
    return rc;
}

static int
put(struct fixture *f, const char *id, int fd)
{
    return put_m(f, member(f, id), fd);
}

static void
test_each_member_gets_its_own_connections(void **state)
{
    struct fixture *f = *state;
    int a[2], b[2];

    assert_int_equal(member_set_add(f->set, "ws-a", "127.0.0.1:1", 1), 0);
    assert_int_equal(member_set_add(f->set, "ws-b", "127.0.0.1:2", 1), 0);
    pair(a);
    pair(b);
    assert_int_equal(take(f, "ws-a"), -1);
    assert_int_equal(put(f, "ws-a", a[0]), 0);
    assert_int_equal(put(f, "ws-b", b[0]), 0);
    assert_int_equal(f->pool.nidle, 2);
    assert_int_equal(take(f, "ws-b"), b[0]);
    assert_int_equal(take(f, "ws-b"), -1);
    assert_int_equal(take(f, "ws-a"), a[0]);
    assert_int_equal(f->pool.nidle, 0);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

static void
test_cap_is_per_member(void **state)
{
    struct fixture *f = *state;
    int sv[4][2], taken;

    assert_int_equal(member_set_add(f->set, "ws-a", "127.0.0.1:1", 1), 0);
    assert_int_equal(member_set_add(f->set, "ws-b", "127.0.0.1:2", 1), 0);
    pool_set_limits(&f->pool, 4000, 2);
    for (int i = 0; i < 4; i++) {
        pair(sv[i]);
    }
    assert_int_equal(put(f, "ws-a", sv[0][0]), 0);
    assert_int_equal(put(f, "ws-a", sv[1][0]), 0);
    assert_int_equal(put(f, "ws-a", sv[2][0]), -1); /* full: caller's */
    assert_int_equal(put(f, "ws-b", sv[3][0]), 0);
    assert_int_equal(f->pool.nidle, 3);
    pool_set_limits(&f->pool, 4000, 0);
    taken = take(f, "ws-a");
    assert_true(taken == sv[0][0] || taken == sv[1][0]);
    assert_int_equal(put(f, "ws-a", taken), -1); /* 0 keeps none */
    for (int i = 0; i < 4; i++) {
        close(sv[i][1]);
    }
    close(taken);
    close(sv[2][0]);
}

/* Members that leave the ring, or come back at another address, lose their idle connections. */
static void
test_prune_drops_members_gone_or_moved(void **state)
{
    struct fixture *f = *state;
    struct member_set *next = member_set_create();
    enum {
        N = 40
    }; /* enough to grow the table twice and wrap probe chains */
    int sv[N][2];
    char id[16], addr[32];

    assert_non_null(next);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "ws-%d", i);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 1000 + i);
        assert_int_equal(member_set_add(f->set, id, addr, 1), 0);
        /* next ring: even members stay, i % 4 == 2 moved, odd ones left */
        if (i % 4 == 0) {
            assert_int_equal(member_set_add(next, id, addr, 1), 0);
        } else if (i % 4 == 2) {
            snprintf(addr, sizeof(addr), "127.0.0.1:%d", 2000 + i);
            assert_int_equal(member_set_add(next, id, addr, 1), 0);
        }
        pair(sv[i]);
        assert_int_equal(put(f, id, sv[i][0]), 0);
    }
    pool_prune(&f->pool, next);
    assert_int_equal(f->pool.nidle, N / 4);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "ws-%d", i);
        if (i % 4 == 0) {
            assert_false(closed_by_pool(sv[i][1]));
            assert_int_equal(take(f, id), sv[i][0]);
            close(sv[i][0]);
        } else {
            assert_true(closed_by_pool(sv[i][1]));
        }
        close(sv[i][1]);
    }
    /* The moved member's connections to its new address are pooled apart from the old ones. */
    snprintf(id, sizeof(id), "ws-%d", 2);
    assert_int_equal(take_m(f, member_set_at(next, (size_t)member_set_find(next, id))), -1);
    member_set_destroy(next);
}

/*
 * Prune's one-pass deletion (slots cleared with entries moved back along their probe chains)
 * over many random rings: every member that stays keeps exactly its connection, findable.
 */
static void
test_prune_keeps_every_survivor_findable(void **state)
{
    struct fixture *f = *state;
    enum {
        IDS = 48,
        ROUNDS = 200
    };
    unsigned seed = 12345;

    for (int round = 0; round < ROUNDS; round++) {
        struct member_set *now = member_set_create(), *next = member_set_create();
        int sv[IDS][2], in_now[IDS], stays[IDS], kept = 0;
        char id[16], addr[32];

        assert_non_null(now);
        assert_non_null(next);
        for (int i = 0; i < IDS; i++) {
            in_now[i] = rand_r(&seed) % 3 != 0;
            stays[i] = in_now[i] && rand_r(&seed) % 2 == 0;
            snprintf(id, sizeof(id), "m-%d", i);
            snprintf(addr, sizeof(addr), "127.0.0.1:%d", 1000 + i);
            if (in_now[i]) {
                assert_int_equal(member_set_add(now, id, addr, 1), 0);
                pair(sv[i]);
                assert_int_equal(
                    put_m(f, member_set_at(now, (size_t)member_set_find(now, id)), sv[i][0]), 0);
            }
            if (stays[i]) {
                assert_int_equal(member_set_add(next, id, addr, 1), 0);
                kept++;
            }
        }
        pool_prune(&f->pool, next);
        assert_int_equal(f->pool.nidle, kept);
        for (int i = 0; i < IDS; i++) {
            if (!in_now[i]) {
                continue;
            }
            snprintf(id, sizeof(id), "m-%d", i);
            if (stays[i]) {
                assert_int_equal(take_m(f, member_set_at(next, (size_t)member_set_find(next, id))),
                                 sv[i][0]);
                close(sv[i][0]);
            } else {
                assert_true(closed_by_pool(sv[i][1]));
            }
            close(sv[i][1]);
        }
        member_set_destroy(now);
        member_set_destroy(next);
    }
}

struct turn {
    struct fixture *f;
    int sv[2];
    int taken;
    struct fdev request; /* a client socket whose request asks for a connection */
};

/* A turn in which the connection is put. */
static void
on_turn_put(evutil_socket_t fd, short what, void *arg)
{
    struct turn *t = arg;

    (void)fd;
    (void)what;
    assert_int_equal(put(t->f, "ws-a", t->sv[0]), 0);
}

/* A later turn: a request asks for a connection. */
static void
on_turn_take(evutil_socket_t fd, short what, void *arg)
{
    struct turn *t = arg;

    (void)fd;
    (void)what;
    t->taken = take(t->f, "ws-a");
}

/* The request's socket is readable: one request, one take. */
static void
on_request(evutil_socket_t fd, short what, void *arg)
{
    struct turn *t = arg;

    fdev_read_stop(&t->request);
    on_turn_take(fd, what, arg);
}

/* Put, backend closes, then taken in the same turn: the check catches the EOF. */
static void
on_turn_put_close_take(evutil_socket_t fd, short what, void *arg)
{
    struct turn *t = arg;

    on_turn_put(fd, what, arg);
    close(t->sv[1]);
    on_turn_take(fd, what, arg);
}

static void
test_connection_closed_in_its_put_turn_is_not_handed_out(void **state)
{
    struct fixture *f = *state;
    struct turn t = { .f = f, .taken = 0 };

    assert_int_equal(member_set_add(f->set, "ws-a", "127.0.0.1:1", 1), 0);
    pair(t.sv);
    event_base_once(f->base, -1, EV_TIMEOUT, on_turn_put_close_take, &t, NULL);
    event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(t.taken, -1);
    assert_int_equal(f->pool.nidle, 0);
    assert_int_equal(fcntl(t.sv[0], F_GETFD), -1); /* and closed */
    assert_int_equal(errno, EBADF);
}

/*
 * Put in one turn; then a request and the backend's EOF become ready together, the request
 * first in epoll's order: the take knows of the EOF (the round noted it) and does not hand it out.
 */
static void
test_connection_closed_before_a_later_turn_is_not_handed_out(void **state)
{
    struct fixture *f = *state;
    struct turn t = { .f = f, .taken = 0 };
    int ready[2];

    assert_int_equal(member_set_add(f->set, "ws-a", "127.0.0.1:1", 1), 0);
    pair(t.sv);
    pair(ready);
    assert_int_equal(fdev_open(&f->loop, &t.request, ready[0], true), 0);
    fdev_read(&t.request, on_request, &t);
    event_base_once(f->base, -1, EV_TIMEOUT, on_turn_put, &t, NULL);
    event_base_loop(f->base, EVLOOP_ONCE);
    event_base_loop(f->base, EVLOOP_NONBLOCK); /* the pool's event reaches epoll */
    assert_int_equal(f->pool.nidle, 1);
    assert_int_equal(write(ready[1], "x", 1), 1); /* the request first, */
    close(t.sv[1]);                               /* then the EOF */
    event_base_loop(f->base, EVLOOP_ONCE);        /* runs until no callback is left active */
    assert_int_equal(t.taken, -1);
    assert_int_equal(f->pool.nidle, 0);
    fdev_close(&t.request);
    close(ready[0]);
    close(ready[1]);
}

/* A healthy connection put in an earlier turn is handed out without a check. */
static void
test_open_connection_is_handed_out_in_a_later_turn(void **state)
{
    struct fixture *f = *state;
    struct turn t = { .f = f, .taken = 0 };

    assert_int_equal(member_set_add(f->set, "ws-a", "127.0.0.1:1", 1), 0);
    pair(t.sv);
    assert_int_equal(put(f, "ws-a", t.sv[0]), 0);
    event_base_once(f->base, -1, EV_TIMEOUT, on_turn_take, &t, NULL);
    event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(t.taken, t.sv[0]);
    close(t.sv[0]);
    close(t.sv[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_member_gets_its_own_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_is_per_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_drops_members_gone_or_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_keeps_every_survivor_findable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_closed_in_its_put_turn_is_not_handed_out,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_connection_closed_before_a_later_turn_is_not_handed_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_connection_is_handed_out_in_a_later_turn, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
