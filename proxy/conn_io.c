/* Plain or TLS byte I/O of a connection end (see conn_io.h). */
#include "proxy/conn_io.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/conn.h"

/* Makes E's reading wait for writability (ON_WRITE) or readability. Only TLS ends switch. */
static void
conn_io_arm_read(struct conn_end *e, bool on_write)
{
    fdev_read_on(&e->io, on_write ? FDEV_OUT : FDEV_IN);
}

/* Maps a failed SSL call (RC) to the socket contract: 0 for EOF, else -1 with errno. */
static ssize_t
conn_io_tls_failed(struct conn_end *e, int rc)
{
    int saved = errno;

    switch (SSL_get_error(e->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        fdev_drained(&e->io, FDEV_IN);
        conn_io_arm_read(e, false);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        fdev_drained(&e->io, FDEV_OUT);
        conn_io_arm_read(e, true);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify (or, with IGNORE_UNEXPECTED_EOF, a bare FIN) */
    case SSL_ERROR_SYSCALL:
        e->tls_broken = 1; /* OpenSSL forbids SSL_shutdown() from here on */
        ERR_clear_error();
        if (saved == 0) {
            return 0; /* EOF without close_notify on an OpenSSL without the option */
        }
        errno = saved;
        return -1;
    default:
        e->tls_broken = 1;
        e->tls_plain_http = ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST;
        ERR_clear_error(); /* the worker's queue must be empty before the next SSL call */
        errno = EPROTO;
        return -1;
    }
}

/* Fills BUF with as many records as TLS has at hand; stops before a read that would block. */
static ssize_t
conn_io_tls_recv(struct conn_end *e, void *buf, size_t len)
{
    size_t got = 0;

    e->tls_deferred = 0;
    while (got < len) {
        size_t n = 0;
        int rc;

        errno = 0;
        rc = SSL_read_ex(e->ssl, (char *)buf + got, len - got, &n);
        if (rc != 1) {
            ssize_t r = conn_io_tls_failed(e, rc);

            if (got == 0) {
                return r;
            }
            /*
             * Bytes already read go first; the EOF or error (OpenSSL repeats it)
             * is for the next call, which nothing on the socket may trigger (a
             * close_notify read ahead with the last record): count it as pending.
             */
            e->tls_deferred = r == 0 || errno != EAGAIN;
            return (ssize_t)got;
        }
        got += n;
        conn_io_arm_read(e, false);
        if (!SSL_has_pending(e->ssl)) {
            break; /* nothing read ahead: the next record needs a syscall, and epoll says when */
        }
    }
    return (ssize_t)got;
}

/* ---- the fdev BIO, and corked writes ---- */

/*
 * One SSL_write can make OpenSSL write several records: the session ticket
 * and then the data (conn_io_tls_sendv), or one record per piece of a
 * conn_io_sendv(). Each would cost a send() and a TCP segment of its own, so
 * during a conn_io send the BIO collects the records of the end being sent to
 * in the worker's cork buffer, and they leave in one send() at the end
 * (conn_io_cork_flush). When the socket does not take them all, the rest
 * waits in the end's tls_out: the BIO sends that before anything else and
 * takes no new record until it is out (so OpenSSL reports WANT_WRITE), and
 * conn_io_tls_sendv() reports the last byte it took as not sent yet
 * (tls_owed), so the caller waits for writability as after any short send and
 * then retries from that byte (the same bytes, as OpenSSL itself asks after a
 * WANT_WRITE), which counts as sent once tls_out is out.
 *
 * The TLS 1.3 session ticket, which OpenSSL writes as the handshake ends (in
 * the read of the client's Finished), would go alone too. It waits in tls_out
 * instead (tls_held) and heads the cork of the next conn_io send, normally the
 * first answer. Records are numbered, so it goes before any later one.
 */
#define CONN_IO_CORK_SIZE (32 * 1024) /* a full 16 KiB record, a ticket and then some */

struct conn_io_out {
    size_t off; /* first byte not sent */
    size_t len;
    char data[];
};

static _Thread_local struct {
    struct conn_end *end; /* whose records are being collected; NULL: none */
    size_t len;
    char buf[CONN_IO_CORK_SIZE];
} conn_io_cork;

/* Sends E's tls_out. Returns 0 when none is left, 1 when the socket is full, or -1 with errno. */
static int
conn_io_out_flush(struct conn_end *e)
{
    struct conn_io_out *o = e->tls_out;
    ssize_t n;

    if (o == NULL) {
        return 0;
    }
    e->tls_held = 0;
    n = fdev_send(&e->io, o->data + o->off, o->len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1) {
        return errno == EAGAIN || errno == EINTR ? 1 : -1;
    }
    o->off += (size_t)n;
    if (o->off < o->len) {
        return 1;
    }
    free(o);
    e->tls_out = NULL;
    return 0;
}

/* Sends the records collected for E; what the socket does not take goes to tls_out. 0 or -1. */
static int
conn_io_cork_flush(struct conn_end *e)
{
    size_t len = conn_io_cork.len;
    ssize_t n;
    struct conn_io_out *o;

    if (len == 0) {
        return 0;
    }
    conn_io_cork.len = 0;
    n = fdev_send(&e->io, conn_io_cork.buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        n = 0;
    }
    if ((size_t)n == len) {
        return 0;
    }
    /* Only an empty tls_out lets records into the cork (conn_io_bio_write). */
    assert(e->tls_out == NULL);
    if ((o = malloc(sizeof(*o) + len - (size_t)n)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    o->off = 0;
    o->len = len - (size_t)n;
    memcpy(o->data, conn_io_cork.buf + n, o->len);
    e->tls_out = o;
    return 0;
}

/* Appends the records in BUF to E's held ticket. 0, or -1 when they cannot wait (no memory). */
static int
conn_io_hold(struct conn_end *e, const char *buf, size_t len)
{
    size_t have = e->tls_out != NULL ? e->tls_out->len : 0;
    struct conn_io_out *o;

    if (have + len > sizeof(conn_io_cork.buf) ||
        (o = realloc(e->tls_out, sizeof(*o) + have + len)) == NULL) {
        return -1;
    }
    memcpy(o->data + have, buf, len);
    o->off = 0;
    o->len = have + len;
    e->tls_out = o;
    e->tls_held = 1;
    return 0;
}

/* Moves E's held ticket into the empty cork, ahead of the records about to be collected. */
static int
conn_io_out_to_cork(struct conn_end *e)
{
    struct conn_io_out *o = e->tls_out;

    if (conn_io_cork.len != 0) {
        return conn_io_out_flush(e); /* cannot happen: records wait in the cork only behind it */
    }
    memcpy(conn_io_cork.buf, o->data, o->len);
    conn_io_cork.len = o->len;
    free(o);
    e->tls_out = NULL;
    e->tls_held = 0;
    return 0;
}

static BIO_METHOD *conn_io_bio_method;
static pthread_once_t conn_io_bio_once = PTHREAD_ONCE_INIT;

static int
conn_io_bio_read(BIO *b, char *buf, size_t len, size_t *done)
{
    struct conn_end *e = BIO_get_data(b);
    ssize_t n = fdev_recv(&e->io, buf, len, 0);

    BIO_clear_retry_flags(b);
    if (n > 0) {
        *done = (size_t)n;
        return 1;
    }
    if (n == 0) {
        BIO_set_flags(b, BIO_FLAGS_IN_EOF); /* BIO_eof(): OpenSSL tells an unexpected EOF by it */
    } else if (errno == EAGAIN || errno == EINTR) {
        BIO_set_retry_read(b);
    }
    return 0; /* errno stays for SSL_ERROR_SYSCALL */
}

static int
conn_io_bio_write(BIO *b, const char *buf, size_t len, size_t *done)
{
    struct conn_end *e = BIO_get_data(b);
    int out;
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (conn_io_cork.end != e && (e->tls_out == NULL || e->tls_held) &&
        SSL_get_state(e->ssl) == TLS_ST_SW_SESSION_TICKET &&
        SSL_version(e->ssl) == TLS1_3_VERSION && conn_io_hold(e, buf, len) == 0) {
        *done = len;
        return 1;
    }
    out = e->tls_held && conn_io_cork.end == e ? conn_io_out_to_cork(e) : conn_io_out_flush(e);
    if (out == 0 && conn_io_cork.end == e) {
        if (conn_io_cork.len + len > sizeof(conn_io_cork.buf) && conn_io_cork_flush(e) == -1) {
            return 0;
        }
        out = e->tls_out != NULL;
        if (out == 0 && len <= sizeof(conn_io_cork.buf)) {
            memcpy(conn_io_cork.buf + conn_io_cork.len, buf, len);
            conn_io_cork.len += len;
            *done = len;
            return 1;
        }
    }
    if (out != 0) {
        if (out == 1) {
            BIO_set_retry_write(b); /* records go in order: none before tls_out is out */
        }
        return 0;
    }
    n = fdev_send(&e->io, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
        *done = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EINTR) {
        BIO_set_retry_write(b);
    }
    return 0;
}

static long
conn_io_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        /* Collected records leave when the conn_io call ends, a held ticket with our next
         * record; a left-over rest, now. */
        if (((struct conn_end *)BIO_get_data(b))->tls_held) {
            return 1;
        }
        switch (conn_io_out_flush(BIO_get_data(b))) {
        case 0:
            return 1;
        case 1:
            BIO_set_retry_write(b);
            return 0;
        default:
            return -1;
        }
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static void
conn_io_bio_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsring fdev");

    if (m != NULL && (BIO_meth_set_read_ex(m, conn_io_bio_read) != 1 ||
                      BIO_meth_set_write_ex(m, conn_io_bio_write) != 1 ||
                      BIO_meth_set_ctrl(m, conn_io_bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    conn_io_bio_method = m;
}

BIO *
conn_io_bio_new(struct conn_end *e)
{
    BIO *b;

    pthread_once(&conn_io_bio_once, conn_io_bio_method_new);
    if (conn_io_bio_method == NULL || (b = BIO_new(conn_io_bio_method)) == NULL) {
        return NULL;
    }
    BIO_set_data(b, e);
    BIO_set_init(b, 1);
    return b;
}

ssize_t
conn_io_recv(struct conn_end *e, void *buf, size_t len)
{
    if (e->ssl == NULL) {
        return fdev_recv(&e->io, buf, len, 0);
    }
    return conn_io_tls_recv(e, buf, len);
}

/* Maps a failed SSL_write (RC) to the socket contract: -1 with errno. */
static ssize_t
conn_io_tls_write_failed(struct conn_end *e, int rc)
{
    switch (SSL_get_error(e->ssl, rc)) {
    case SSL_ERROR_WANT_WRITE:
        fdev_drained(&e->io, FDEV_OUT);
        errno = EAGAIN; /* the caller keeps the bytes and waits on its write event */
        return -1;
    case SSL_ERROR_WANT_READ:
        /*
         * Only a renegotiation makes a write wait for a read, and it is off
         * (SSL_OP_NO_RENEGOTIATION): waiting for writability would spin.
         */
        errno = EPROTO;
        break;
    case SSL_ERROR_SYSCALL:
        errno = errno != 0 ? errno : EPIPE;
        break;
    default:
        errno = EPIPE; /* close_notify or a protocol error: the peer is gone either way */
        break;
    }
    e->tls_broken = 1;
    ERR_clear_error();
    return -1;
}

/* conn_io_sendv() on a TLS end: a record per piece, as many as go now, in one send(). */
static ssize_t
conn_io_tls_sendv(struct conn_end *e, const struct iovec *iov, int niov)
{
    size_t total = 0;
    ssize_t failed = 0;
    int saved;

    if (e->tls_owed) {
        int out = conn_io_out_flush(e);

        if (out != 0) {
            if (out == 1) {
                errno = EAGAIN;
            } else {
                e->tls_broken = 1;
            }
            return -1;
        }
        e->tls_owed = 0;
        return 1; /* the byte held back (the caller's first): its record is out now */
    }
    conn_io_cork.end = e;
    for (int i = 0; i < niov; i++) {
        size_t n = 0;
        int rc;

        if (iov[i].iov_len == 0) {
            continue;
        }
        errno = 0;
        rc = SSL_write_ex(e->ssl, iov[i].iov_base, iov[i].iov_len, &n);
        if (rc != 1) {
            failed = conn_io_tls_write_failed(e, rc);
            break;
        }
        total += n;
        if (n < iov[i].iov_len) {
            break;
        }
    }
    conn_io_cork.end = NULL;
    saved = errno;
    if (conn_io_cork_flush(e) == -1) {
        e->tls_broken = 1;
        return -1;
    }
    if (total > 0 && e->tls_out != NULL) {
        e->tls_owed = 1;
        if (--total == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    errno = saved;
    return total > 0 ? (ssize_t)total : failed; /* failed: 0 when every piece was empty */
}

ssize_t
conn_io_send(struct conn_end *e, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    if (e->ssl == NULL) {
        return fdev_send(&e->io, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    return conn_io_tls_sendv(e, &iov, 1);
}

ssize_t
conn_io_sendv(struct conn_end *e, const struct iovec *iov, int niov)
{
    if (e->ssl == NULL) {
        return fdev_sendv(&e->io, iov, niov, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    return conn_io_tls_sendv(e, iov, niov);
}

bool
conn_io_has_pending(const struct conn_end *e)
{
    return e->ssl != NULL && (e->tls_deferred || SSL_has_pending(e->ssl));
}

void
conn_io_resume_read(struct conn_end *e)
{
    fdev_read_resume(&e->io);
    if (conn_io_has_pending(e)) {
        fdev_kick(&e->io);
    }
}

bool
conn_io_in_handshake(const struct conn_end *e)
{
    return e->ssl != NULL && !SSL_is_init_finished(e->ssl);
}

int
conn_io_handshake(struct conn_end *e, char *why, size_t why_len)
{
    int rc;

    errno = 0;
    rc = SSL_do_handshake(e->ssl);
    if (rc == 1) {
        return 0;
    }
    switch (SSL_get_error(e->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        fdev_drained(&e->io, FDEV_IN);
        return EV_READ;
    case SSL_ERROR_WANT_WRITE:
        fdev_drained(&e->io, FDEV_OUT);
        return EV_WRITE;
    default:
        break;
    }
    e->tls_broken = 1;
    if (SSL_get_verify_result(e->ssl) != X509_V_OK) {
        snprintf(why, why_len, "certificate: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(e->ssl)));
    } else if (ERR_peek_error() != 0) {
        ERR_error_string_n(ERR_peek_error(), why, why_len);
    } else {
        snprintf(why, why_len, "%s", errno != 0 ? strerror(errno) : "connection closed");
    }
    ERR_clear_error();
    return -1;
}

int
conn_io_shutdown(struct conn_end *e)
{
    if (e->ssl != NULL && !e->tls_broken && SSL_is_init_finished(e->ssl)) {
        SSL_shutdown(e->ssl); /* our close_notify; theirs is not awaited (we half-close) */
        ERR_clear_error();
    }
    return shutdown(e->fd, SHUT_WR);
}

void
conn_io_tls_free(struct conn_end *e)
{
    if (e->ssl == NULL) {
        return;
    }
    /* A clean close for strict clients; not to a peer that is gone (an EOF read): wasted work. */
    if (!e->tls_broken && !e->eof && SSL_is_init_finished(e->ssl) &&
        !(SSL_get_shutdown(e->ssl) & (SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN))) {
        SSL_shutdown(e->ssl);
    }
    /*
     * A session whose connection ended without close_notify, or with a write
     * to a peer that had gone, stays resumable (RFC 5246 s7.2.1); without
     * this, SSL_free() drops it from the session cache (TLS 1.2 session ids).
     * A fatal alert, sent or received, has had OpenSSL drop it already.
     */
    SSL_set_shutdown(e->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(e->ssl);
    ERR_clear_error();
    e->ssl = NULL;
    free(e->tls_out);
    e->tls_out = NULL;
    e->tls_broken = e->tls_owed = e->tls_held = 0;
}
