/* TLS contexts for listeners and backends (see tls.h, DESIGN §12). */
#include "proxy/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "ring/member_set.h"

#define TLS_SESSION_CACHE_SIZE 20000 /* server-side sessions kept for TLS 1.2 id resumption */
#define TLS_TICKETS            1 /* at the handshake's end; conn_io sends it with the first answer */

static const unsigned char tls_alpn_http11[] = "\x08http/1.1";

/*
 * Our order, not the client's (SSL_OP_CIPHER_SERVER_PREFERENCE): AES-128-GCM
 * first, as in Mozilla's "intermediate" profile; it is as safe here and
 * costs less per relayed byte than AES-256. TLS 1.2 keeps only forward-secret
 * AEAD suites (no CBC, no RSA key exchange).
 */
#define TLS_CIPHERSUITES_13                                                                        \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_CIPHERS_12                                                                             \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384" /* X25519 first: the cheapest key exchange */

/* The oldest OpenSSL error as text (and the queue cleared): what to add to a message. */
static const char *
tls_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();

    if (e == 0) {
        snprintf(buf, len, "no details");
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

/* Settings every context gets: TLS 1.2 and 1.3 only, and the relay's write rules. */
static int
tls_ctx_common(SSL_CTX *ctx)
{
    long opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;

#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Browsers often close without close_notify; for us that is an EOF like any other. */
    opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    SSL_CTX_set_options(ctx, (uint64_t)opts);
    /*
     * RELEASE_BUFFERS: an idle connection holds no 16 KiB record buffers.
     * ENABLE_PARTIAL_WRITE: SSL_write returns what went, like send().
     * ACCEPT_MOVING_WRITE_BUFFER: a write retried after WANT_WRITE comes
     * from the pend buffer (maybe moved by realloc), not the scratch buffer.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read ahead: one recv() brings many records; SSL_has_pending() says when to read on. */
    SSL_CTX_set_read_ahead(ctx, 1);
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
                   SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1
               ? 0
               : -1;
}

/* ALPN: http/1.1 when the client offers it; without it the handshake goes on without ALPN. */
static int
tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    unsigned char *chosen = NULL;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&chosen, outlen, tls_alpn_http11, sizeof(tls_alpn_http11) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/*
 * Session-ticket keys: one process-wide pair, the current period's (it
 * encrypts) and the one before (it still decrypts, and the ticket is
 * renewed), so tickets resume across reloads and stop resuming once two
 * periods have passed. A key is overwritten when it goes (a thread's copy,
 * at that thread's next ticket), so keys read from memory open no older
 * ticket. Each thread copies the pair once a period: the lock is taken
 * then, not per handshake.
 */
struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

struct tls_ticket_keys {
    time_t period; /* clock / TLS_TICKET_KEY_PERIOD when made; 0: none yet */
    struct tls_ticket_key cur, prev;
};

time_t (*tls_ticket_clock)(time_t *) = time;

static pthread_mutex_t tls_ticket_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_ticket_keys tls_ticket_keys;               /* under tls_ticket_lock */
static _Thread_local struct tls_ticket_keys tls_ticket_seen; /* this thread's copy */
static EVP_CIPHER *tls_ticket_cipher;                        /* AES-256-CBC, fetched once */
static pthread_once_t tls_ticket_once = PTHREAD_ONCE_INIT;

static void
tls_ticket_fetch(void)
{
    tls_ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

static bool
tls_ticket_key_make(struct tls_ticket_key *k)
{
    return RAND_bytes(k->name, sizeof(k->name)) == 1 &&
           RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1 &&
           RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1;
}

/* Brings this thread's keys to the clock's period. False when no key could be made. */
static bool
tls_ticket_keys_now(void)
{
    time_t period = tls_ticket_clock(NULL) / TLS_TICKET_KEY_PERIOD;
    bool ok = true;

    if (period == tls_ticket_seen.period) {
        return true;
    }
    pthread_mutex_lock(&tls_ticket_lock);
    if (period > tls_ticket_keys.period) { /* a clock gone back keeps the newer keys */
        struct tls_ticket_keys *k = &tls_ticket_keys;

        if (period == k->period + 1) {
            k->prev = k->cur;
        } else {
            ok = tls_ticket_key_make(&k->prev); /* a gap: no ticket was made with it */
        }
        ok = ok && tls_ticket_key_make(&k->cur);
        k->period = ok ? period : 0;
    }
    OPENSSL_cleanse(&tls_ticket_seen, sizeof(tls_ticket_seen));
    if (ok) {
        tls_ticket_seen = tls_ticket_keys;
        tls_ticket_seen.period = period;
    }
    pthread_mutex_unlock(&tls_ticket_lock);
    return ok;
}

/* Loads KEY into the ticket's cipher and MAC contexts (ENC: to encrypt with IV). */
static bool
tls_ticket_key_load(const struct tls_ticket_key *key, unsigned char *iv, EVP_CIPHER_CTX *ctx,
                    EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key->hmac, sizeof(key->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };

    return tls_ticket_cipher != NULL &&
           EVP_CipherInit_ex(ctx, tls_ticket_cipher, NULL, key->aes, iv, enc) == 1 &&
           EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/*
 * SSL_CTX_set_tlsext_ticket_key_evp_cb: a new ticket (ENC) under the current
 * key; an old one opened by the key it names, renewed when that is the
 * previous one. 0: no ticket made / a full handshake.
 */
static int
tls_on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                  EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx, int enc)
{
    const struct tls_ticket_keys *k = &tls_ticket_seen;

    (void)ssl;
    if (!tls_ticket_keys_now()) {
        ERR_clear_error();
        return 0;
    }
    if (enc) {
        memcpy(name, k->cur.name, sizeof(k->cur.name));
        return RAND_bytes(iv, 16) == 1 && tls_ticket_key_load(&k->cur, iv, ctx, hctx, 1) ? 1 : -1;
    }
    if (memcmp(name, k->cur.name, sizeof(k->cur.name)) == 0) {
        return tls_ticket_key_load(&k->cur, iv, ctx, hctx, 0) ? 1 : -1;
    }
    if (memcmp(name, k->prev.name, sizeof(k->prev.name)) == 0) {
        return tls_ticket_key_load(&k->prev, iv, ctx, hctx, 0) ? 2 : -1;
    }
    return 0;
}

void
tls_ticket_keys_use(SSL_CTX *ctx)
{
    pthread_once(&tls_ticket_once, tls_ticket_fetch);
    SSL_CTX_set_timeout(ctx, TLS_TICKET_KEY_PERIOD);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_on_ticket_key);
}

/* Opens PATH to say plainly why it cannot be read (OpenSSL's own words are cryptic). */
static int
tls_check_readable(const char *conf_file, unsigned line, const char *name, const char *path,
                   char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, err_len, "%s:%u: \"%s %s\": cannot read: %s", conf_file, line, name, path,
                 strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Never asks for a passphrase (a daemon has no terminal): an encrypted key fails to load. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

static EVP_PKEY *
tls_read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *key;

    if (f == NULL) {
        return NULL;
    }
    key = PEM_read_PrivateKey(f, NULL, tls_no_passphrase, NULL);
    fclose(f);
    return key;
}

static SSL_CTX *
tls_server_ctx_create(const struct conf *conf, char *err, size_t err_len)
{
    SSL_CTX *ctx;
    EVP_PKEY *key;
    char why[256];
    bool ok;

    if (tls_check_readable(conf->file, conf->tls_certificate_line, "tls_certificate",
                           conf->tls_certificate, err, err_len) == -1 ||
        tls_check_readable(conf->file, conf->tls_certificate_key_line, "tls_certificate_key",
                           conf->tls_certificate_key, err, err_len) == -1) {
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || tls_ctx_common(ctx) == -1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES_13) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        snprintf(err, err_len, "%s: TLS: %s", conf->file, tls_error_text(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_certificate) != 1) {
        snprintf(err, err_len, "%s:%u: \"tls_certificate %s\" holds no usable PEM certificate (%s)",
                 conf->file, conf->tls_certificate_line, conf->tls_certificate,
                 tls_error_text(why, sizeof(why)));
        goto fail;
    }
    key = tls_read_key(conf->tls_certificate_key);
    if (key == NULL) {
        snprintf(err, err_len,
                 "%s:%u: \"tls_certificate_key %s\" holds no PEM private key (an encrypted key "
                 "is not supported) (%s)",
                 conf->file, conf->tls_certificate_key_line, conf->tls_certificate_key,
                 tls_error_text(why, sizeof(why)));
        goto fail;
    }
    ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        ERR_clear_error();
        snprintf(err, err_len,
                 "%s:%u: \"tls_certificate_key %s\" does not match the certificate in %s",
                 conf->file, conf->tls_certificate_key_line, conf->tls_certificate_key,
                 conf->tls_certificate);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /*
     * The chain is what the certificate file holds. Without this, OpenSSL tries to complete it
     * from the context's store at every handshake (X509_verify_cert), and ours is empty.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, NULL);
    /* Resumption: tickets (TLS 1.2 and 1.3) and a server cache for TLS 1.2 session ids. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"wsring", 6);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
    SSL_CTX_set_num_tickets(ctx, TLS_TICKETS);
    tls_ticket_keys_use(ctx);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static SSL_CTX *
tls_backend_ctx_create(const struct conf *conf, char *err, size_t err_len)
{
    SSL_CTX *ctx;
    char why[256];

    if (conf->backend_ca_file != NULL &&
        tls_check_readable(conf->file, conf->backend_ca_file_line, "backend_ca_file",
                           conf->backend_ca_file, err, err_len) == -1) {
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || tls_ctx_common(ctx) == -1 ||
        SSL_CTX_set_alpn_protos(ctx, tls_alpn_http11, sizeof(tls_alpn_http11) - 1) != 0) {
        snprintf(err, err_len, "%s: TLS: %s", conf->file, tls_error_text(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (conf->backend_ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, conf->backend_ca_file, NULL) != 1) {
            snprintf(err, err_len, "%s:%u: \"backend_ca_file %s\" holds no PEM certificate (%s)",
                     conf->file, conf->backend_ca_file_line, conf->backend_ca_file,
                     tls_error_text(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, err_len, "%s: backend_tls: the system CA store: %s", conf->file,
                 tls_error_text(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int
tls_contexts_create(const struct conf *conf, SSL_CTX **server, SSL_CTX **backend, char *err,
                    size_t err_len)
{
    *server = *backend = NULL;
    if (conf->tls_certificate != NULL &&
        (*server = tls_server_ctx_create(conf, err, err_len)) == NULL) {
        return -1;
    }
    if (conf->backend_tls && (*backend = tls_backend_ctx_create(conf, err, err_len)) == NULL) {
        SSL_CTX_free(*server);
        *server = NULL;
        return -1;
    }
    return 0;
}

SSL *
tls_server_new(SSL_CTX *ctx, BIO *bio)
{
    SSL *ssl = bio != NULL ? SSL_new(ctx) : NULL;

    if (ssl == NULL) {
        BIO_free(bio);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(ssl, bio, bio);
    SSL_set_accept_state(ssl);
    return ssl;
}

bool
tls_member_host(const char *address, char out[TLS_HOST_MAX])
{
    const char *start = address, *end;
    size_t n;

    if (*address == '[') {
        start = address + 1;
        end = strchr(start, ']');
        if (end == NULL) {
            return false;
        }
    } else {
        end = strrchr(address, ':');
        if (end == NULL) {
            end = address + strlen(address);
        }
    }
    n = (size_t)(end - start);
    if (n == 0 || n >= TLS_HOST_MAX) {
        return false;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return true;
}

SSL *
tls_backend_new(SSL_CTX *ctx, const struct conf *conf, const struct member *m, BIO *bio)
{
    char host[TLS_HOST_MAX];
    const char *name = conf->backend_tls_server_name;
    unsigned char ip[sizeof(struct in6_addr)];
    SSL *ssl = bio != NULL ? SSL_new(ctx) : NULL;
    bool is_ip;
    int ok = 1;

    if (ssl == NULL) {
        BIO_free(bio);
        return NULL;
    }
    SSL_set_bio(ssl, bio, bio);
    if (name == NULL) {
        name = tls_member_host(m->address, host) ? host : "";
    }
    is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if (is_ip) {
        /* RFC 6066 §3: no IP literals in SNI; the certificate's IP entries are checked. */
        ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        ok = ok && SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}
