/*
 * A worker's socket events, edge-triggered (DESIGN §1). Each socket joins the
 * worker's own epoll set once (see fdev_open()), and leaves it by being
 * closed: starting and stopping reading or writing costs no epoll_ctl.
 * libevent's level-triggered events cost one epoll_ctl to start writing a
 * connecting socket, one to switch it to reading and one to remove each
 * socket (5 per proxied handshake, 9% of its CPU), and a re-poll of every
 * ready socket in each epoll_wait.
 *
 * Epoll watches a socket for output only from the first time a send would
 * block (or someone waits to write one not known writable), one epoll_ctl
 * then; most never block. Watched from the start, a socket is ready at once,
 * and that edge alone cost the loop a turn (two epoll_waits) per socket.
 *
 * Readiness is remembered per socket until the I/O says the socket is drained
 * (fdev_recv() and fdev_send() do, and fdev_drained() for other calls): a
 * callback that stops before then (fairness, backpressure) is called again in
 * a later round, as with level-triggered events, and one that starts reading
 * a socket that is already readable is called without waiting for epoll.
 *
 * The set is one libevent event on the worker's base: timers and every other
 * event stay libevent's. Callbacks keep libevent's signature (WHAT is EV_READ
 * or EV_WRITE). Worker thread only.
 *
 * Batches (io_uring, when the kernel allows it): a syscall costs about 1 us on
 * the VMs we measure on, as much as the TCP work of a small message, and the
 * relay makes four per message. So each round first reads every ready socket
 * whose owner allows it (fdev_read_ahead) in one io_uring_enter, into the
 * loop's slots, and fdev_recv() hands those bytes out; and the sends its
 * callbacks put off (fdev_send_later) go together in one io_uring_enter at the
 * round's end. Both use MSG_DONTWAIT, so each completes inside that call, as a
 * recv() or send() would have. Without io_uring (seccomp, old kernels,
 * WSRING_NO_IO_URING set) every call is a plain syscall.
 */
#ifndef WSRING_PROXY_FDEV_H
#define WSRING_PROXY_FDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>

enum {
    FDEV_IN = 0x1,  /* readable */
    FDEV_OUT = 0x2, /* writable */
    FDEV_HELD = 0x4 /* ready: a read done ahead (bytes, EOF or error) waits for fdev_recv() */
};

#define FDEV_SLOTS     256  /* reads ahead per round; sends, and closes, per batch */
#define FDEV_SLOT_SIZE 4096 /* bytes a read ahead takes: a message, a request, a head */

struct fdev_loop;
struct io_uring;
TAILQ_HEAD(fdev_list, fdev);

struct fdev {
    struct fdev_loop *loop; /* NULL when not open */
    int fd;                 /* -1 when not open */
    uint8_t ready;          /* FDEV_* seen and not drained since */
    uint8_t stuck;          /* FDEV_* that never drain again: EOF (IN), error or hangup (both) */
    uint8_t want;           /* FDEV_IN: call on_read; FDEV_OUT: call on_write */
    uint8_t read_on;        /* what on_read waits for: FDEV_IN, or FDEV_OUT (TLS) */
    uint8_t out_watched;    /* epoll watches for output too (once a send would have blocked) */
    uint8_t adding;         /* joins the epoll set with the loop's next batch, at add_at */
    uint16_t add_at;
    event_callback_fn on_read; /* borrowed */
    event_callback_fn on_write;
    void *read_arg;
    void *write_arg;
    struct fdev_list *queue; /* the list LINK is on, or NULL */
    TAILQ_ENTRY(fdev) link;
    uint8_t ahead;     /* reads may be done ahead (a plain socket, whoever reads it) */
    uint8_t streaming; /* its last read filled a slot: a stream, read with recv() at once */
    uint8_t sending;   /* in the loop's send batch, at send_at */
    uint16_t send_at;
    uint16_t slot;     /* FDEV_HELD with bytes: the loop's slot holding them */
    int32_t held;      /* FDEV_HELD: bytes read ahead (> 0), 0 for EOF, or -errno */
    uint32_t held_off; /* bytes of them already handed out */
};

/* The batched send's owner: PREP names the bytes to send now (none: len 0), DONE hears
 * how many went (or -errno; 0 when nothing could be tried). */
typedef void (*fdev_send_prep_fn)(struct fdev *f, const void **buf, size_t *len);
typedef void (*fdev_send_done_fn)(struct fdev *f, ssize_t n);

struct fdev_loop {
    int epfd;
    struct event_base *base; /* borrowed */
    struct event ev;         /* epfd readable */
    struct event again;      /* sockets left ready and wanted: another round next turn */
    struct fdev **byfd;      /* owned; the open fdev of each descriptor, or NULL */
    size_t byfd_cap;
    struct fdev_list ready; /* to dispatch in the next round */
    struct fdev *current;   /* being dispatched; NULL once it has closed */
    uint64_t round;         /* counts epoll_waits: what came before the last one is known */
    bool dispatching;
    /* batches */
    int ring_state;        /* 0: not tried yet (the worker's thread starts it), 1: on, -1: off */
    struct io_uring *ring; /* owned */
    uint8_t *slots;        /* owned; FDEV_SLOTS x FDEV_SLOT_SIZE */
    uint16_t free_slot[FDEV_SLOTS];
    unsigned nfree;
    struct fdev *sendq[FDEV_SLOTS]; /* NULL: closed since */
    unsigned nsend;
    int closeq[FDEV_SLOTS]; /* descriptors to close with the sends */
    unsigned nclose;
    struct fdev *addq[FDEV_SLOTS]; /* to join the epoll set with the next batch; NULL: closed */
    struct epoll_event add_ev[FDEV_SLOTS];
    unsigned nadd;
    bool flushing;
    int32_t res[3 * FDEV_SLOTS]; /* a batch's results: sends, closes at FDEV_SLOTS, adds at 2x */
    fdev_send_prep_fn send_prep;
    fdev_send_done_fn send_done;
};

/* Creates L's epoll set on BASE. Returns 0, or -1 with errno. PREP and DONE serve
 * fdev_send_later() (NULL: sends are never put off). */
int fdev_loop_init(struct fdev_loop *l, struct event_base *base, fdev_send_prep_fn prep,
                   fdev_send_done_fn done);
/* Starts L's batches if it can (else it goes on without them); its first round does it, in
 * the thread that runs L, when nobody did before. */
void fdev_loop_start_batches(struct fdev_loop *l);
/* Runs a round now, for sockets opened outside one (accepted): their first reads, and their
 * joining the epoll set after them, go in one batch. */
void fdev_loop_run(struct fdev_loop *l);
/* Frees L; every fdev must have been closed. Accepts a zeroed L never initialised. */
void fdev_loop_fini(struct fdev_loop *l);

/*
 * Adds FD to L as F (calloc'd or closed before). WRITABLE: the socket takes bytes now, and
 * may hold some already (an accepted one); else F is writable once epoll says so (a connecting
 * one). With batches on, FD joins the epoll set with the next batch, after F's first read
 * ahead: added while readable, a socket is ready at once, and that edge costs the loop a turn
 * when the read empties it. Returns 0, or -1 with errno (FD untouched).
 */
int fdev_open(struct fdev_loop *l, struct fdev *f, int fd, bool writable);
/* F forgets its descriptor, which the caller closes (that removes it from the epoll set). */
void fdev_close(struct fdev *f);
/* fdev_close(F), then closes FD: at the round's end with its sends, when in a round. */
void fdev_close_fd(struct fdev *f, int fd);
/* Hands FROM's descriptor, readiness and all, to TO (not open); no callback is kept. */
void fdev_move(struct fdev *to, struct fdev *from);

/* Calls CB(fd, EV_READ, ARG) while F is readable (or, after fdev_read_on(OUT), writable). */
void fdev_read(struct fdev *f, event_callback_fn cb, void *arg);
/* Reading waits for what: FDEV_IN, or FDEV_OUT for a TLS read that must write first. */
void fdev_read_on(struct fdev *f, uint8_t what);
void fdev_read_stop(struct fdev *f);
/* Starts reading again with the callback of the last fdev_read(). */
void fdev_read_resume(struct fdev *f);
/* Calls CB(fd, EV_WRITE, ARG) while F is writable. */
void fdev_write(struct fdev *f, event_callback_fn cb, void *arg);
void fdev_write_stop(struct fdev *f);

static inline bool
fdev_is_open(const struct fdev *f)
{
    return f->loop != NULL;
}

/* WHAT (FDEV_IN or FDEV_OUT) would block now: wait for epoll to say otherwise. */
void fdev_drained(struct fdev *f, uint8_t what);
/* F is readable although epoll cannot know (TLS holds bytes read ahead). */
void fdev_kick(struct fdev *f);

struct iovec;

/* True when a send on F may be put off to the round's batch now (in a round, io_uring on). */
bool fdev_can_send_later(const struct fdev *f);
/* Puts F in the round's send batch (after fdev_can_send_later()): the loop's PREP and DONE
 * are called for it at the round's end. */
void fdev_send_later(struct fdev *f);

/* recv(), send() and sendmsg() on F's socket that keep its readiness (flags as theirs);
 * fdev_recv() hands out what was read ahead first, and says EAGAIN without a syscall while F
 * is drained (a peek always asks the socket). */
ssize_t fdev_recv(struct fdev *f, void *buf, size_t len, int flags);
ssize_t fdev_send(struct fdev *f, const void *buf, size_t len, int flags);
ssize_t fdev_sendv(struct fdev *f, const struct iovec *iov, int niov, int flags);

#endif /* WSRING_PROXY_FDEV_H */
