/* Helpers shared by the unit tests (see helpers.h). */
#include "tests/helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

void
cert_use_new(SSL_CTX *ctx)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();

    assert_non_null(key);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
}

SSL_SESSION *
tls_pair_handshake(SSL_CTX *server, int version, SSL_SESSION *offer, bool *resumed)
{
    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    SSL *s, *c;
    SSL_SESSION *session;
    int sv[2];
    char byte;

    assert_non_null(client_ctx);
    SSL_CTX_set_min_proto_version(client_ctx, version);
    SSL_CTX_set_max_proto_version(client_ctx, version);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    s = SSL_new(server);
    c = SSL_new(client_ctx);
    assert_non_null(s);
    assert_non_null(c);
    assert_int_equal(SSL_set_fd(s, sv[0]), 1);
    assert_int_equal(SSL_set_fd(c, sv[1]), 1);
    if (offer != NULL) { /* a copy: a TLS 1.2 client puts a renewed ticket in its session */
        SSL_SESSION *copy = SSL_SESSION_dup(offer);

        assert_non_null(copy);
        assert_int_equal(SSL_set_session(c, copy), 1);
        SSL_SESSION_free(copy);
    }
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int i = 0; i < 20 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    assert_true(SSL_is_init_finished(s) && SSL_is_init_finished(c));
    assert_int_equal(SSL_write(s, "x", 1), 1);
    assert_int_equal(SSL_read(c, &byte, 1), 1);
    *resumed = SSL_session_reused(c);
    session = SSL_get1_session(c);
    assert_true(SSL_SESSION_is_resumable(session));
    SSL_shutdown(c); /* else OpenSSL marks the client's session not resumable */
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(client_ctx);
    close(sv[0]);
    close(sv[1]);
    ERR_clear_error();
    return session;
}
