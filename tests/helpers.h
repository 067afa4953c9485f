/* Helpers shared by the unit tests (tests/helpers.c is linked into each). */
#ifndef WSRING_TESTS_HELPERS_H
#define WSRING_TESTS_HELPERS_H

#include <openssl/ssl.h>

/* Gives CTX a fresh self-signed P-256 certificate for "localhost" and its key. */
void cert_use_new(SSL_CTX *ctx);

#endif /* WSRING_TESTS_HELPERS_H */
