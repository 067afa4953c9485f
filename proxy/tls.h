/*
 * TLS contexts (DESIGN §12): the server context for listeners flagged `tls`
 * and the client context for `backend_tls on`, built from a conf's file
 * names. A context is shared by every worker (OpenSSL makes that safe) and
 * every SSL made from it holds a reference of its own, so a SIGHUP that
 * builds new contexts leaves live connections on the certificate they began
 * with.
 */
#ifndef WSRING_PROXY_TLS_H
#define WSRING_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#define TLS_HOST_MAX          256  /* longest host name or address, with its NUL */
#define TLS_TICKET_KEY_PERIOD 7200 /* s: a ticket key seals this long, then opens this long */

struct conf;
struct member;

/*
 * Builds the contexts CONF asks for into *SERVER (NULL when no listener is
 * flagged tls) and *BACKEND (NULL with backend_tls off). Reads the
 * certificate, key and CA files: an unreadable file, a file without PEM, or
 * a key that does not match the certificate is an error. Returns 0, or -1
 * with "FILE:LINE: what" in ERR (ERR_LEN bytes) and nothing built.
 */
int tls_contexts_create(const struct conf *conf, SSL_CTX **server, SSL_CTX **backend, char *err,
                        size_t err_len);
/*
 * Has server context CTX seal its session tickets with the process's ticket
 * keys: those of the current TLS_TICKET_KEY_PERIOD, and of the one before
 * for tickets still to open (then renewed). They outlive reloads; a ticket
 * older than two periods makes a full handshake. Sessions last one period.
 */
void tls_ticket_keys_use(SSL_CTX *ctx);
/* The clock tls_ticket_keys_use() rotates keys by (time(); tests set another). */
extern time_t (*tls_ticket_clock)(time_t *);
/*
 * A new client SSL on BIO (which it owns, NULL for ENOMEM) for a connection to
 * member M: certificate checked against backend_tls_server_name, or else M's
 * host (by IP entry when it is an address); SNI sent for names only. Returns
 * NULL on ENOMEM.
 */
SSL *tls_backend_new(SSL_CTX *ctx, const struct conf *conf, const struct member *m, BIO *bio);
/*
 * The host of a member ADDRESS ("host:port", "[v6]:port", or a bare host)
 * into OUT: what its certificate must name. Returns false for an empty or
 * too long host, or a "[" without "]". Pure.
 */
bool tls_member_host(const char *address, char out[TLS_HOST_MAX]);
/* A new server SSL on BIO (which it owns, NULL for ENOMEM), or NULL on ENOMEM. */
SSL *tls_server_new(SSL_CTX *ctx, BIO *bio);

#endif /* WSRING_PROXY_TLS_H */
