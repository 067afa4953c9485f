/* Helpers shared by the unit tests (tests/helpers.c is linked into each). */
#ifndef WSRING_TESTS_HELPERS_H
#define WSRING_TESTS_HELPERS_H

#include <stdbool.h>

#include <openssl/ssl.h>

/* Gives CTX a fresh self-signed P-256 certificate for "localhost" and its key. */
void cert_use_new(SSL_CTX *ctx);
/*
 * A handshake (in memory, over a socketpair) between SERVER and a client of version VERSION that
 * offers OFFER (or nothing); says whether it resumed, and returns the client's session after a byte
 * of data (which brings a TLS 1.3 ticket).
 */
SSL_SESSION *tls_pair_handshake(SSL_CTX *server, int version, SSL_SESSION *offer, bool *resumed);

#endif /* WSRING_TESTS_HELPERS_H */
