/* Edge-triggered socket events of one worker (see fdev.h). */
#include "proxy/fdev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define FDEV_BATCH  256 /* events taken per epoll_wait */
#define FDEV_ROUNDS 4   /* rounds per libevent turn, so timers and listeners get their turn */

static const struct timeval fdev_now = { 0, 0 }; /* l->again: the next turn */

static bool
fdev_due(const struct fdev *f)
{
    return ((f->want & FDEV_IN) && (f->ready & f->read_on)) ||
           ((f->want & FDEV_OUT) && (f->ready & FDEV_OUT));
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
    if ((f->want & FDEV_IN) && (f->ready & f->read_on)) {
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

/*
 * One libevent callback for the set becoming readable and for work left over (l->again): takes
 * what epoll has, then runs a round over every socket ready and wanted. Another round follows
 * only while there is surely more, so a quiet turn costs a single epoll_wait here.
 */
static void
fdev_on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct fdev_loop *l = arg;
    struct epoll_event evs[FDEV_BATCH];
    struct fdev_list now;
    struct fdev *f;

    (void)fd;
    (void)what;
    l->dispatching = true;
    for (int round = 0; round < FDEV_ROUNDS; round++) {
        int n = epoll_wait(l->epfd, evs, FDEV_BATCH, 0);

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
        while ((f = TAILQ_FIRST(&now)) != NULL) {
            TAILQ_REMOVE(&now, f, link);
            f->queue = NULL;
            fdev_run(l, f);
        }
        if (n < FDEV_BATCH && TAILQ_EMPTY(&l->ready)) {
            break;
        }
    }
    l->dispatching = false;
    if (!TAILQ_EMPTY(&l->ready)) {
        evtimer_add(&l->again, &fdev_now); /* after libevent's own events have had this turn */
    }
}

int
fdev_loop_init(struct fdev_loop *l, struct event_base *base)
{
    memset(l, 0, sizeof(*l));
    TAILQ_INIT(&l->ready);
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
    free(l->byfd);
    l->byfd = NULL;
    l->byfd_cap = 0;
    l->base = NULL;
}

int
fdev_open(struct fdev_loop *l, struct fdev *f, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd };

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
    /* EEXIST: closed by fdev_close() but not by close(), and opened again. */
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1 &&
        (errno != EEXIST || epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == -1)) {
        return -1;
    }
    *f = (struct fdev){ .loop = l, .fd = fd, .read_on = FDEV_IN };
    l->byfd[fd] = f;
    return 0;
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
fdev_move(struct fdev *to, struct fdev *from)
{
    struct fdev_loop *l = from->loop;

    *to = (struct fdev){
        .loop = l, .fd = from->fd, .ready = from->ready, .stuck = from->stuck, .read_on = FDEV_IN
    };
    l->byfd[to->fd] = to;
    fdev_forget(from);
}

static void
fdev_want(struct fdev *f, uint8_t what, bool on)
{
    if (on) {
        f->want |= what;
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
}

void
fdev_kick(struct fdev *f)
{
    if (f->loop != NULL) {
        f->ready |= FDEV_IN;
        fdev_queue(f);
    }
}

ssize_t
fdev_recv(struct fdev *f, void *buf, size_t len, int flags)
{
    ssize_t n = recv(f->fd, buf, len, flags);

    /* A short read emptied the socket (bytes arriving later are a new edge); a peek did not. */
    if ((n == -1 && errno == EAGAIN) || (n > 0 && (size_t)n < len && !(flags & MSG_PEEK))) {
        fdev_drained(f, FDEV_IN);
    }
    return n;
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
