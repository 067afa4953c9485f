/*
 * A connection end's byte I/O: plain recv()/send() on the socket, or
 * SSL_read()/SSL_write() when the end speaks TLS (DESIGN §12). The relay and
 * the state machine call only these, so one code path serves ws:// and wss://
 * and the relay keeps its zero-copy shape (no bufferevents, no per-message
 * allocation): TLS records go from the socket through OpenSSL straight into
 * the worker's scratch buffer.
 *
 * Both follow the socket calls' contract: > 0 bytes moved, 0 (recv only) the
 * peer finished, -1 with errno (EAGAIN: wait for the end's event), and keep
 * the end's readiness (fdev.h) for the edge-triggered events. When TLS
 * needs the socket writable to go on reading (a handshake flight that did
 * not fit), conn_io_recv() makes the end's reading wait for writability, and
 * readability again once that is over, so callers need not know.
 *
 * On a TLS end, the records of one conn_io_send()/conn_io_sendv() leave in
 * one send(), and a server end's first one brings the TLS 1.3 session ticket
 * along. As with SSL_write(), a send that moved fewer bytes than asked must
 * be retried with the bytes that did not go (at the same or another address).
 */
#ifndef WSRING_PROXY_CONN_IO_H
#define WSRING_PROXY_CONN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct conn_end;
struct iovec;

ssize_t conn_io_recv(struct conn_end *e, void *buf, size_t len);
ssize_t conn_io_send(struct conn_end *e, const void *buf, size_t len);
/* conn_io_send() of the NIOV pieces at IOV in order: one sendmsg() on a plain end. */
ssize_t conn_io_sendv(struct conn_end *e, const struct iovec *iov, int niov);
/*
 * True when TLS holds bytes already read from the socket (read ahead):
 * epoll will not say so, the caller must read on or kick its events.
 */
bool conn_io_has_pending(const struct conn_end *e);
/* (Re)starts reading E, at once when TLS holds bytes. */
void conn_io_resume_read(struct conn_end *e);
/*
 * A BIO for OpenSSL on E's socket that reads and writes through E's fdev, so
 * TLS keeps the end's readiness and has its reads done ahead in the worker's
 * batch like a plain end's. NULL on ENOMEM.
 */
struct bio_st *conn_io_bio_new(struct conn_end *e);
/* True while E's TLS handshake has not finished (false for a plain end). */
bool conn_io_in_handshake(const struct conn_end *e);
/*
 * Drives E's TLS handshake (a backend connection). Returns 0 when done,
 * EV_READ or EV_WRITE to wait for, or -1 with what went wrong in WHY.
 */
int conn_io_handshake(struct conn_end *e, char *why, size_t why_len);
/* Sends the FIN (after a TLS close_notify). Returns 0 or -1 with errno. */
int conn_io_shutdown(struct conn_end *e);
/* Frees E's TLS state, sending close_notify first when the session is healthy. Accepts none. */
void conn_io_tls_free(struct conn_end *e);

#endif /* WSRING_PROXY_CONN_IO_H */
