/* Edge-triggered socket events of one worker (see fdev.h). */
#include "proxy/fdev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#define FDEV_BATCH  256 /* events taken per epoll_wait */
#define FDEV_ROUNDS 4   /* rounds per libevent turn, so timers and listeners get their turn */

static const struct timeval fdev_now = { 0, 0 }; /* l->again: the next turn */

#define FDEV_NOT_TRIED INT32_MIN /* l->res: the batch broke before this one completed */

static bool
fdev_readable(const struct fdev *f)
{
    return (f->want & FDEV_IN) && (f->ready & (f->read_on | FDEV_HELD));
}

static bool
fdev_due(const struct fdev *f)
{
    return fdev_readable(f) || ((f->want & FDEV_OUT) && (f->ready & FDEV_OUT));
}

/* A read done for F's owner (bytes in F's slot, 0 for EOF, -errno) waits for fdev_recv(). */
static void
fdev_hold(struct fdev *f, int32_t res)
{
    f->ready |= FDEV_HELD;
    f->held = res;
    f->held_off = 0;
}

/* F's bytes read ahead are all handed out (or F is closing): its slot serves others. */
static void
fdev_release(struct fdev *f)
{
    struct fdev_loop *l = f->loop;

    if ((f->ready & FDEV_HELD) && f->held > 0) {
        l->free_slot[l->nfree++] = f->slot;
    }
    f->ready &= (uint8_t)~FDEV_HELD;
}

/* What epoll watches F for. */
static uint32_t
fdev_events(const struct fdev *f)
{
    return EPOLLIN | EPOLLRDHUP | EPOLLET | (f->out_watched ? EPOLLOUT : 0);
}

/* Adds F's descriptor to the set now. EEXIST: closed by fdev_close() but not by close(), and
 * opened again. Returns 0, or -errno. */
static int
fdev_epoll_add(struct fdev *f)
{
    struct epoll_event ev = { .events = fdev_events(f), .data.fd = f->fd };

    if (epoll_ctl(f->loop->epfd, EPOLL_CTL_ADD, f->fd, &ev) == -1 &&
        (errno != EEXIST || epoll_ctl(f->loop->epfd, EPOLL_CTL_MOD, f->fd, &ev) == -1)) {
        return -errno;
    }
    return 0;
}

/* Puts F on the list of the next round when it is ready for what it wants. */
static void
fdev_queue(struct fdev *f)
{
    struct fdev_loop *l = f->loop;

    if (f->queue != NULL || !fdev_due(f)) {
        return;
    }
    TAILQ_INSERT_TAIL(&l->ready, f, link);
    f->queue = &l->ready;
    if (!l->dispatching) {
        evtimer_add(&l->again, &fdev_now); /* from a timer or another event */
    }
}

/* F no longer stands for its descriptor (closed, or moved to another fdev). */
static void
fdev_forget(struct fdev *f)
{
    struct fdev_loop *l = f->loop;

    if (f->queue != NULL) {
        TAILQ_REMOVE(f->queue, f, link);
        f->queue = NULL;
    }
    if (l->current == f) {
        l->current = NULL; /* the round calls nothing more on it */
    }
    fdev_release(f);
    if (f->sending) {
        l->sendq[f->send_at] = NULL;
        f->sending = 0;
    }
    if (f->adding) {
        l->addq[f->add_at] = NULL; /* never joined the set: nothing to take out */
        f->adding = 0;
    }
    f->loop = NULL;
    f->fd = -1;
    f->ready = f->stuck = f->want = 0;
}

/* What epoll said about FD. */
static void
fdev_note(struct fdev_loop *l, int fd, uint32_t events)
{
    struct fdev *f = (size_t)fd < l->byfd_cap ? l->byfd[fd] : NULL;

    if (f == NULL) {
        return; /* closed by a callback of the round before */
    }
    if (events & (EPOLLERR | EPOLLHUP)) {
        f->stuck |= FDEV_IN | FDEV_OUT; /* every call now fails or returns 0 at once */
    } else if (events & EPOLLRDHUP) {
        f->stuck |= FDEV_IN; /* reads return the rest, then 0 */
    }
    f->ready |=
        f->stuck | ((events & EPOLLIN) ? FDEV_IN : 0) | ((events & EPOLLOUT) ? FDEV_OUT : 0);
    fdev_queue(f);
}

/* Calls F's callbacks for what it is ready for; a callback may close F, or free it. */
static void
fdev_run(struct fdev_loop *l, struct fdev *f)
{
    l->current = f;
    if (fdev_readable(f)) {
        f->on_read(f->fd, EV_READ, f->read_arg);
    }
    if (l->current == f && (f->want & FDEV_OUT) && (f->ready & FDEV_OUT)) {
        f->on_write(f->fd, EV_WRITE, f->write_arg);
    }
    if (l->current == f) {
        fdev_queue(f); /* stopped before draining (fairness): again in the next round */
    }
    l->current = NULL;
}

void
fdev_loop_start_batches(struct fdev_loop *l)
{
    struct io_uring_params p = { .flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                                          IORING_SETUP_DEFER_TASKRUN };

    if (l->ring_state != 0) {
        return;
    }
    l->ring_state = -1;
    l->ring = calloc(1, sizeof(*l->ring));
    l->slots = malloc((size_t)FDEV_SLOTS * FDEV_SLOT_SIZE); /* pages come as they are used */
    if (l->ring == NULL || l->slots == NULL) {
        return;
    }
    /*
     * Linux 6.1; 5.18 has SUBMIT_ALL without the other two, which it runs a little slower.
     * Older kernels go without batches: we rely on MSG_DONTWAIT completing every operation
     * inside io_uring_enter, as these do.
     */
    if (io_uring_queue_init_params(2 * FDEV_SLOTS, l->ring, &p) < 0) {
        p = (struct io_uring_params){ .flags = IORING_SETUP_SUBMIT_ALL };
        if (io_uring_queue_init_params(2 * FDEV_SLOTS, l->ring, &p) < 0) {
            free(l->ring);
            l->ring = NULL;
            return; /* seccomp (Docker's default profile), io_uring_disabled, old kernels */
        }
    }
    for (unsigned i = 0; i < FDEV_SLOTS; i++) {
        l->free_slot[i] = (uint16_t)(FDEV_SLOTS - 1 - i);
    }
    l->nfree = FDEV_SLOTS;
    l->ring_state = 1;
}

/*
 * Submits the K operations prepared (user_data: their index in l->res) and takes their
 * results into l->res; MSG_DONTWAIT has each complete inside the call. If the ring fails,
 * what did not complete stays FDEV_NOT_TRIED and the ring is not used again.
 */
static void
fdev_ring_run(struct fdev_loop *l, unsigned k)
{
    int submitted = io_uring_submit(l->ring);
    unsigned got = 0;
    struct io_uring_cqe *cqe;

    while (submitted > 0 && got < (unsigned)submitted && io_uring_wait_cqe(l->ring, &cqe) == 0) {
        l->res[cqe->user_data] = cqe->res;
        io_uring_cqe_seen(l->ring, cqe);
        got++;
    }
    if (got < k) {
        l->ring_state = -1; /* never entered again, so what is left in it never runs */
    }
}

/* Puts the adds to the set pending into the batch being prepared; returns how many went in. */
static unsigned
fdev_prep_adds(struct fdev_loop *l)
{
    unsigned k = 0;

    for (unsigned i = 0; i < l->nadd; i++) {
        struct fdev *f = l->addq[i];
        struct io_uring_sqe *sqe;

        l->res[2 * FDEV_SLOTS + i] = FDEV_NOT_TRIED;
        if (f == NULL || l->ring_state != 1 || (sqe = io_uring_get_sqe(l->ring)) == NULL) {
            continue;
        }
        l->add_ev[i] = (struct epoll_event){ .events = fdev_events(f), .data.fd = f->fd };
        io_uring_prep_epoll_ctl(sqe, l->epfd, f->fd, EPOLL_CTL_ADD, &l->add_ev[i]);
        sqe->user_data = 2 * FDEV_SLOTS + i;
        k++;
    }
    return k;
}

/*
 * After the batch: each pending fdev is in the set now (added here if the batch could not).
 * One that cannot join hears it as an error from its next read, as from a broken socket.
 */
static void
fdev_adds_done(struct fdev_loop *l)
{
    for (unsigned i = 0; i < l->nadd; i++) {
        struct fdev *f = l->addq[i];
        int32_t res = l->res[2 * FDEV_SLOTS + i];

        if (f == NULL) {
            continue;
        }
        l->addq[i] = NULL;
        f->adding = 0;
        if (res == FDEV_NOT_TRIED || res == -EEXIST) {
            res = fdev_epoll_add(f);
        }
        if (res < 0) {
            fdev_release(f);
            fdev_hold(f, res);
            f->stuck = FDEV_IN | FDEV_OUT;
            f->ready |= f->stuck;
            fdev_queue(f);
        }
    }
    l->nadd = 0;
}

/* Reads every socket of NOW that is ready and allows it into a slot, in one call; the sockets
 * opened since the last batch join the set in it, after their reads. */
static void
fdev_read_ahead(struct fdev_loop *l, struct fdev_list *now)
{
    struct fdev *f, *who[FDEV_SLOTS];
    unsigned k = 0;

    TAILQ_FOREACH(f, now, link)
    {
        struct io_uring_sqe *sqe;

        if (!f->ahead || f->streaming || (f->ready & FDEV_HELD) || !(f->want & FDEV_IN) ||
            f->read_on != FDEV_IN || !(f->ready & FDEV_IN)) {
            continue;
        }
        if (l->nfree == 0 || (sqe = io_uring_get_sqe(l->ring)) == NULL) {
            break;
        }
        f->slot = l->free_slot[--l->nfree];
        io_uring_prep_recv(sqe, f->fd, l->slots + (size_t)f->slot * FDEV_SLOT_SIZE, FDEV_SLOT_SIZE,
                           MSG_DONTWAIT);
        sqe->user_data = f->slot;
        l->res[f->slot] = FDEV_NOT_TRIED;
        who[k++] = f;
    }
    unsigned kadd = fdev_prep_adds(l);

    if (k + kadd == 0) {
        fdev_adds_done(l);
        return;
    }
    fdev_ring_run(l, k + kadd); /* no callback runs before the loops below: every F is alive */
    for (unsigned i = 0; i < k; i++) {
        int32_t res;

        f = who[i];
        res = l->res[f->slot];
        if (res > 0) {
            fdev_hold(f, res);
            if (res < FDEV_SLOT_SIZE) {
                fdev_drained(f, FDEV_IN); /* a short read emptied the socket */
            } else {
                f->streaming = 1; /* a slot is too small for it: the copy and the recv() that
                                   * fetches the rest cost more than the batch saves */
            }
            continue;
        }
        l->free_slot[l->nfree++] = f->slot; /* no bytes: the slot goes back */
        if (res == -EAGAIN) {
            fdev_drained(f, FDEV_IN);
        } else if (res != -EINTR && res != FDEV_NOT_TRIED) {
            fdev_hold(f, res); /* an EOF or error, told once as recv() would */
        }
    }
    fdev_adds_done(l);
}

/* Sends what the round's callbacks put off and closes what they closed, in one call, then
 * tells each sender. */
static void
fdev_round_end(struct fdev_loop *l)
{
    size_t len[FDEV_SLOTS];
    unsigned k, nclose = l->nclose;

    if (l->nsend == 0 && nclose == 0 && l->nadd == 0) {
        return;
    }
    l->flushing = true;    /* what the owners send or close now goes at once */
    k = fdev_prep_adds(l); /* before the sends: a connect's first bytes go in this batch too */
    for (unsigned i = 0; i < l->nsend; i++) {
        struct fdev *f = l->sendq[i];
        struct io_uring_sqe *sqe;
        const void *buf = NULL;

        len[i] = 0;
        l->res[i] = 0;
        if (f == NULL) {
            continue;
        }
        l->send_prep(f, &buf, &len[i]);
        if (len[i] == 0 || l->ring_state != 1 || (sqe = io_uring_get_sqe(l->ring)) == NULL) {
            len[i] = 0;
            continue;
        }
        io_uring_prep_send(sqe, f->fd, buf, len[i], MSG_NOSIGNAL | MSG_DONTWAIT);
        sqe->user_data = i;
        l->res[i] = FDEV_NOT_TRIED;
        k++;
    }
    for (unsigned i = 0; i < nclose; i++) {
        struct io_uring_sqe *sqe = l->ring_state == 1 ? io_uring_get_sqe(l->ring) : NULL;

        l->res[FDEV_SLOTS + i] = FDEV_NOT_TRIED;
        if (sqe != NULL) {
            io_uring_prep_close(sqe, l->closeq[i]);
            sqe->user_data = FDEV_SLOTS + i;
            k++;
        }
    }
    l->nclose = 0;
    if (k > 0) {
        fdev_ring_run(l, k);
    }
    fdev_adds_done(l);
    for (unsigned i = 0; i < nclose; i++) {
        if (l->res[FDEV_SLOTS + i] == FDEV_NOT_TRIED) {
            close(l->closeq[i]); /* no batch after all (nothing reused its number meanwhile) */
        }
    }
    for (unsigned i = 0; i < l->nsend; i++) {
        struct fdev *f = l->sendq[i];
        int32_t res = l->res[i] == FDEV_NOT_TRIED ? 0 : l->res[i];

        if (f == NULL) {
            continue; /* closed by an owner told before it */
        }
        l->sendq[i] = NULL;
        f->sending = 0;
        /* As fdev_send(): a short send filled the socket, and the kernel will say when not. */
        if (res == -EAGAIN || (res >= 0 && (size_t)res < len[i] && l->res[i] != FDEV_NOT_TRIED)) {
            fdev_drained(f, FDEV_OUT);
        }
        l->send_done(f, res);
    }
    l->nsend = 0;
    l->flushing = false;
}

bool
fdev_can_send_later(const struct fdev *f)
{
    const struct fdev_loop *l = f->loop;

    return l != NULL && l->ring_state == 1 && l->dispatching && !l->flushing &&
           l->send_prep != NULL && (f->sending || l->nsend < FDEV_SLOTS);
}

void
fdev_send_later(struct fdev *f)
{
    struct fdev_loop *l = f->loop;

    if (!f->sending) {
        f->sending = 1;
        f->send_at = (uint16_t)l->nsend;
        l->sendq[l->nsend++] = f;
    }
}

/*
 * One libevent callback for the set becoming readable and for work left over (l->again): takes
 * what epoll has, then runs a round over every socket ready and wanted. Another round follows
 * only while there is surely more, so a quiet turn costs a single epoll_wait here.
 */
static void
fdev_rounds(struct fdev_loop *l, bool poll_first)
{
    struct epoll_event evs[FDEV_BATCH];
    struct fdev_list now;
    struct fdev *f;

    l->dispatching = true;
    fdev_loop_start_batches(l); /* in the thread that runs L: the ring takes one issuer */
    for (int round = 0; round < FDEV_ROUNDS; round++) {
        /* Not polled first, the set's news wait for the next turn, which libevent's own
         * epoll_wait brings at once: none is lost. */
        int n = round > 0 || poll_first ? epoll_wait(l->epfd, evs, FDEV_BATCH, 0) : 0;

        l->round++;
        for (int i = 0; i < n; i++) {
            fdev_note(l, evs[i].data.fd, evs[i].events);
        }
        /* This round runs what is queued now; what its callbacks queue waits for the next. */
        TAILQ_INIT(&now);
        while ((f = TAILQ_FIRST(&l->ready)) != NULL) {
            TAILQ_REMOVE(&l->ready, f, link);
            TAILQ_INSERT_TAIL(&now, f, link);
            f->queue = &now;
        }
        if (l->ring_state == 1) {
            fdev_read_ahead(l, &now);
        }
        while ((f = TAILQ_FIRST(&now)) != NULL) {
            TAILQ_REMOVE(&now, f, link);
            f->queue = NULL;
            fdev_run(l, f);
        }
        fdev_round_end(l);
        if (n < FDEV_BATCH && TAILQ_EMPTY(&l->ready)) {
            break;
        }
    }
    l->dispatching = false;
    if (!TAILQ_EMPTY(&l->ready) || l->nadd > 0) {
        evtimer_add(&l->again, &fdev_now); /* after libevent's own events have had this turn */
    }
}

static void
fdev_on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fdev_rounds(arg, true);
}

void
fdev_loop_run(struct fdev_loop *l)
{
    if (l->dispatching) {
        return; /* a round is on: what was opened joins its next one */
    }
    evtimer_del(&l->again);
    fdev_rounds(l, false);
}

int
fdev_loop_init(struct fdev_loop *l, struct event_base *base, fdev_send_prep_fn prep,
               fdev_send_done_fn done)
{
    memset(l, 0, sizeof(*l));
    TAILQ_INIT(&l->ready);
    l->send_prep = prep;
    l->send_done = done;
    if (getenv("WSRING_NO_IO_URING") != NULL) {
        l->ring_state = -1;
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1) {
        return -1;
    }
    l->base = base;
    event_assign(&l->ev, base, l->epfd, EV_READ | EV_PERSIST, fdev_on_ready, l);
    evtimer_assign(&l->again, base, fdev_on_ready, l);
    return event_add(&l->ev, NULL);
}

void
fdev_loop_fini(struct fdev_loop *l)
{
    if (l->base == NULL) {
        return;
    }
    event_del(&l->ev);
    event_del(&l->again);
    close(l->epfd);
    if (l->ring != NULL) {
        io_uring_queue_exit(l->ring);
        free(l->ring);
        l->ring = NULL;
    }
    free(l->slots);
    l->slots = NULL;
    free(l->byfd);
    l->byfd = NULL;
    l->byfd_cap = 0;
    l->base = NULL;
}

int
fdev_open(struct fdev_loop *l, struct fdev *f, int fd, bool writable)
{
    if ((size_t)fd >= l->byfd_cap) {
        size_t cap = l->byfd_cap == 0 ? 1024 : l->byfd_cap;
        struct fdev **p;

        while (cap <= (size_t)fd) {
            cap *= 2;
        }
        p = realloc(l->byfd, cap * sizeof(*p));
        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        memset(p + l->byfd_cap, 0, (cap - l->byfd_cap) * sizeof(*p));
        l->byfd = p;
        l->byfd_cap = cap;
    }
    *f = (struct fdev){ .loop = l, .fd = fd, .read_on = FDEV_IN, .ready = writable ? FDEV_OUT : 0 };
    if (l->ring_state == 1 && l->nadd < FDEV_SLOTS) {
        f->adding = 1;
        f->add_at = (uint16_t)l->nadd;
        l->addq[l->nadd++] = f;
        if (writable) {
            f->ready |= FDEV_IN; /* its first bytes are likely in: the batch reads before adding */
        }
        if (!l->dispatching) {
            evtimer_add(&l->again, &fdev_now); /* the batch comes with a round */
        }
    } else {
        int err = fdev_epoll_add(f);

        if (err < 0) {
            *f = (struct fdev){ .fd = -1 };
            errno = -err;
            return -1;
        }
    }
    l->byfd[fd] = f;
    return 0;
}

/* When WHAT asks about output and F is not known writable (a send would have blocked, or
 * someone waits to write), epoll says when F can take bytes, from now on. */
static void
fdev_watch_out(struct fdev *f, uint8_t what)
{
    struct epoll_event ev;

    if (!(what & FDEV_OUT) || (f->ready & FDEV_OUT) || f->out_watched || f->loop == NULL) {
        return;
    }
    f->out_watched = 1;
    if (f->adding) {
        return; /* its add asks for output too */
    }
    /* MOD re-polls: room made before it is reported all the same. It fails only for a descriptor
     * not in the set, which no open fdev has. */
    ev = (struct epoll_event){ .events = fdev_events(f), .data.fd = f->fd };
    if (epoll_ctl(f->loop->epfd, EPOLL_CTL_MOD, f->fd, &ev) == -1) {
        f->out_watched = 0;
    }
}

void
fdev_close(struct fdev *f)
{
    if (f->loop == NULL) {
        return;
    }
    f->loop->byfd[f->fd] = NULL;
    fdev_forget(f);
}

void
fdev_close_fd(struct fdev *f, int fd)
{
    struct fdev_loop *l = f->loop;

    fdev_close(f);
    if (l != NULL && l->ring_state == 1 && l->dispatching && !l->flushing &&
        l->nclose < FDEV_SLOTS) {
        l->closeq[l->nclose++] = fd; /* its number stays taken until then: no mix-up */
        return;
    }
    close(fd);
}

void
fdev_move(struct fdev *to, struct fdev *from)
{
    struct fdev_loop *l = from->loop;

    *to = (struct fdev){ .loop = l,
                         .fd = from->fd,
                         .ready = from->ready,
                         .stuck = from->stuck,
                         .read_on = FDEV_IN,
                         .out_watched = from->out_watched,
                         .ahead = from->ahead,
                         .streaming = from->streaming,
                         .slot = from->slot,
                         .held = from->held,
                         .held_off = from->held_off };
    l->byfd[to->fd] = to;
    if (from->adding) {
        to->adding = 1;
        to->add_at = from->add_at;
        l->addq[to->add_at] = to;
        from->adding = 0;
    }
    from->ready &= (uint8_t)~FDEV_HELD; /* its bytes (and slot) went with the descriptor */
    fdev_forget(from);
}

static void
fdev_want(struct fdev *f, uint8_t what, bool on)
{
    if (on) {
        f->want |= what;
        fdev_watch_out(f, what);
        fdev_queue(f);
    } else {
        f->want &= (uint8_t)~what;
    }
}

void
fdev_read(struct fdev *f, event_callback_fn cb, void *arg)
{
    f->on_read = cb;
    f->read_arg = arg;
    fdev_want(f, FDEV_IN, true);
}

void
fdev_read_on(struct fdev *f, uint8_t what)
{
    f->read_on = what;
    fdev_watch_out(f, what);
    fdev_queue(f);
}

void
fdev_read_stop(struct fdev *f)
{
    fdev_want(f, FDEV_IN, false);
}

void
fdev_read_resume(struct fdev *f)
{
    fdev_want(f, FDEV_IN, true);
}

void
fdev_write(struct fdev *f, event_callback_fn cb, void *arg)
{
    f->on_write = cb;
    f->write_arg = arg;
    fdev_want(f, FDEV_OUT, true);
}

void
fdev_write_stop(struct fdev *f)
{
    fdev_want(f, FDEV_OUT, false);
}

void
fdev_drained(struct fdev *f, uint8_t what)
{
    f->ready &= (uint8_t) ~(what & ~f->stuck);
    fdev_watch_out(f, what);
}

void
fdev_kick(struct fdev *f)
{
    if (f->loop != NULL) {
        f->ready |= FDEV_IN;
        fdev_queue(f);
    }
}

/* Hands out what was read ahead for F: bytes (as many as fit), else its EOF or error. */
static ssize_t
fdev_take_held(struct fdev *f, void *buf, size_t len, int flags)
{
    size_t n;

    if (f->held <= 0) {
        int32_t res = f->held;

        if (!(flags & MSG_PEEK)) {
            fdev_release(f);
        }
        if (res < 0) {
            errno = -res;
            return -1;
        }
        return 0;
    }
    n = (size_t)f->held - f->held_off;
    n = n < len ? n : len;
    memcpy(buf, f->loop->slots + (size_t)f->slot * FDEV_SLOT_SIZE + f->held_off, n);
    if (!(flags & MSG_PEEK)) {
        f->held_off += (uint32_t)n;
        if (f->held_off == (uint32_t)f->held) {
            fdev_release(f);
        }
    }
    return (ssize_t)n;
}

/* Holds an EOF (N 0) or error (N -1, errno) met after GOT bytes: the next call returns it. */
static ssize_t
fdev_hold_end(struct fdev *f, ssize_t n, size_t got)
{
    if (n == 0 || errno != EAGAIN) {
        fdev_hold(f, n == 0 ? 0 : -errno);
    } else {
        fdev_drained(f, FDEV_IN);
    }
    return (ssize_t)got;
}

ssize_t
fdev_recv(struct fdev *f, void *buf, size_t len, int flags)
{
    size_t got = 0;
    ssize_t n;

    if (f->ready & FDEV_HELD) {
        n = fdev_take_held(f, buf, len, flags);
        /* A full slot taken whole: the socket may have more, which the caller asked for. */
        if (n <= 0 || (size_t)n == len || (flags & MSG_PEEK) || (f->ready & FDEV_HELD) ||
            !(f->ready & FDEV_IN)) {
            return n;
        }
        got = (size_t)n;
    }
    if (!(f->ready & FDEV_IN) && !(flags & MSG_PEEK)) {
        /* Drained, and epoll has not said otherwise since: the syscall would say EAGAIN (a TLS
         * end asks right after its flight). A peek asks the socket: events may be unread. */
        errno = EAGAIN;
        return -1;
    }
    n = recv(f->fd, (char *)buf + got, len - got, flags);
    if (n >= 0 && !(flags & MSG_PEEK)) {
        f->streaming = (size_t)n + got >= FDEV_SLOT_SIZE; /* small again: read it ahead again */
    }
    if (got > 0 && n <= 0) {
        return fdev_hold_end(f, n, got);
    }
    /* A short read emptied the socket (bytes arriving later are a new edge); a peek did not. */
    if ((n == -1 && errno == EAGAIN) || (n > 0 && (size_t)n < len - got && !(flags & MSG_PEEK))) {
        fdev_drained(f, FDEV_IN);
    }
    return n > 0 ? n + (ssize_t)got : n;
}

/* N of LEN bytes went: a short send filled the socket, and the kernel marked it to wake us
 * once there is room. */
static ssize_t
fdev_sent(struct fdev *f, ssize_t n, size_t len)
{
    if ((n == -1 && errno == EAGAIN) || (n >= 0 && (size_t)n < len)) {
        fdev_drained(f, FDEV_OUT);
    }
    return n;
}

ssize_t
fdev_send(struct fdev *f, const void *buf, size_t len, int flags)
{
    return fdev_sent(f, send(f->fd, buf, len, flags), len);
}

ssize_t
fdev_sendv(struct fdev *f, const struct iovec *iov, int niov, int flags)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)niov };
    size_t len = 0;

    if (niov == 1) {
        /* send(): the kernel skips copying in and checking a msghdr and an iovec. */
        return fdev_send(f, iov[0].iov_base, iov[0].iov_len, flags);
    }
    for (int i = 0; i < niov; i++) {
        len += iov[i].iov_len;
    }
    return fdev_sent(f, sendmsg(f->fd, &msg, flags), len);
}
