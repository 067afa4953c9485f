/* test_tls_mem.c: proxy/tls_mem.c, the per-thread blocks OpenSSL allocates from. */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/tls_mem.h"
#include "tests/helpers.h"

static bool installed; /* tls_mem_install() as main() called it, before OpenSSL allocated */

static void *
take(size_t n)
{
    void *p = tls_mem_malloc(n, __FILE__, __LINE__);

    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0); /* what malloc promises, and OpenSSL relies on */
    return p;
}

static void
give(void *p)
{
    tls_mem_free(p, __FILE__, __LINE__);
}

/* A freed block is the next of its size class handed out: no malloc, and warm. */
static void
test_freed_block_serves_its_class(void **state)
{
    void *p;

    (void)state;
    p = take(100);
    give(p);
    assert_ptr_equal(take(112), p); /* 100 and 112 share the class of 97-112 */
    give(p);
    /* The handshake's record buffers: 16,584 and 16,712 bytes, one class. */
    p = take(16584);
    give(p);
    assert_ptr_equal(take(16712), p);
    give(p);
    tls_mem_release();
    assert_int_equal(tls_mem_kept(), 0);
}

/* Blocks of every size, alive together, hold what is written into them. */
static void
test_blocks_hold_their_whole_size(void **state)
{
    enum {
        COUNT = 64
    };
    static const size_t sizes[] = { 1,    15,    16,   17,    1023,  1024,   1025,   1152,
                                    1153, 2048,  2049, 16584, 21848, 65535,  65536,  65537,
                                    4096, 40000, 100,  7624,  3272,  200000, 131072, 960 };
    unsigned char *p[COUNT];
    size_t n[COUNT];

    (void)state;
    for (int round = 0; round < 2; round++) { /* the second round runs on kept blocks */
        for (int i = 0; i < COUNT; i++) {
            n[i] = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))] + (size_t)(i / 24);
            p[i] = take(n[i]);
            memset(p[i], i + 1, n[i]);
        }
        for (int i = 0; i < COUNT; i++) {
            for (size_t j = 0; j < n[i]; j++) {
                if (p[i][j] != (unsigned char)(i + 1)) {
                    fail_msg("block %d (%zu bytes) was overwritten at %zu", i, n[i], j);
                }
            }
            give(p[i]);
        }
    }
    tls_mem_release();
}

/* realloc keeps the content, in place while it fits its class; NULL and 0 as C's. */
static void
test_realloc_keeps_content(void **state)
{
    static const size_t steps[] = { 10, 100, 110, 5000, 100000, 300000, 300, 20 };
    unsigned char *p, *q;
    size_t have = 0;

    (void)state;
    p = tls_mem_realloc(NULL, 5, __FILE__, __LINE__);
    assert_non_null(p);
    memset(p, 0x5a, 5);
    have = 5;
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        q = tls_mem_realloc(p, steps[s], __FILE__, __LINE__);
        assert_non_null(q);
        for (size_t j = 0; j < have && j < steps[s]; j++) {
            assert_int_equal(q[j], 0x5a);
        }
        memset(q, 0x5a, steps[s]);
        have = steps[s];
        p = q;
    }
    q = tls_mem_realloc(p, 30, __FILE__, __LINE__); /* 20 and 30 share a class */
    assert_ptr_equal(q, p);
    assert_null(tls_mem_realloc(q, 0, __FILE__, __LINE__));        /* freed */
    assert_null(tls_mem_malloc(0, __FILE__, __LINE__));            /* as CRYPTO_malloc */
    assert_null(tls_mem_malloc(SIZE_MAX - 8, __FILE__, __LINE__)); /* no wrap past the header */
    tls_mem_free(NULL, __FILE__, __LINE__);
    tls_mem_release();
}

/* However much is freed, a thread keeps at most its class limits and TLS_MEM_KEEP_BYTES. */
static void
test_kept_blocks_are_bounded(void **state)
{
    enum {
        MANY = 1000
    };
    static void *p[MANY];
    static const size_t large[] = { 20000, 30000, 40000, 60000 };

    (void)state;
    for (int i = 0; i < MANY; i++) {
        p[i] = take(64);
    }
    for (int i = 0; i < MANY; i++) {
        give(p[i]);
    }
    assert_int_equal(tls_mem_kept(), TLS_MEM_KEEP_SMALL * (64 + 16));
    tls_mem_release();

    for (size_t c = 0; c < sizeof(large) / sizeof(large[0]); c++) {
        for (int i = 0; i < 40; i++) {
            p[c * 40 + (size_t)i] = take(large[c]);
        }
    }
    for (int i = 0; i < 160; i++) {
        give(p[i]);
    }
    assert_true(tls_mem_kept() <= TLS_MEM_KEEP_BYTES);
    assert_true(tls_mem_kept() > TLS_MEM_KEEP_BYTES / 2);
    tls_mem_release();
    assert_int_equal(tls_mem_kept(), 0);
}

/* ---- a thread's blocks go when it ends, even those freed by a later destructor ---- */

enum {
    THREAD_BLOCKS = 24,
    THREAD_BLOCK = 60000
};

static pthread_key_t late_key; /* made after tls_mem's: its destructor runs after tls_mem's */

static void
late_free(void *block)
{
    give(block);
}

/* Keeps THREAD_BLOCKS - 1 blocks and leaves one to late_key; returns what it keeps (no cmocka
 * here). */
static void *
thread_keeps_blocks(void *arg)
{
    void *p[THREAD_BLOCKS];

    (void)arg;
    for (int i = 0; i < THREAD_BLOCKS; i++) {
        p[i] = tls_mem_malloc(THREAD_BLOCK, __FILE__, __LINE__);
        if (p[i] == NULL) {
            return NULL;
        }
    }
    for (int i = 1; i < THREAD_BLOCKS; i++) {
        give(p[i]);
    }
    if (pthread_setspecific(late_key, p[0]) != 0) {
        return NULL;
    }
    return (void *)(uintptr_t)tls_mem_kept();
}

static void
test_thread_exit_releases(void **state)
{
    struct mallinfo2 before, after;
    pthread_t t;
    void *kept;

    (void)state;
    give(take(THREAD_BLOCK)); /* tls_mem's exit key exists before late_key */
    tls_mem_release();
    assert_int_equal(pthread_key_create(&late_key, late_free), 0);
    before = mallinfo2();
    assert_int_equal(pthread_create(&t, NULL, thread_keeps_blocks, NULL), 0);
    assert_int_equal(pthread_join(t, &kept), 0);
    after = mallinfo2();
    assert_true((uintptr_t)kept >= (THREAD_BLOCKS - 1) * (size_t)THREAD_BLOCK);
    /* Under ASan mallinfo2 sees nothing, and LeakSanitizer checks instead. */
    assert_true(after.uordblks < before.uordblks + THREAD_BLOCK);
    pthread_key_delete(late_key);
}

/* OpenSSL allocates through tls_mem: handshakes leave blocks the next ones use. */
static void
test_handshakes_use_kept_blocks(void **state)
{
    SSL_CTX *server;
    size_t after_one;
    bool resumed;

    (void)state;
#ifdef TLS_MEM_SANITIZED
    assert_false(installed); /* ASan must see OpenSSL's blocks */
    skip();
#endif
    assert_true(installed);
    tls_mem_release();
    server = SSL_CTX_new(TLS_server_method());
    assert_non_null(server);
    cert_use_new(server);
    SSL_SESSION_free(tls_pair_handshake(server, TLS1_3_VERSION, NULL, &resumed));
    after_one = tls_mem_kept();
    assert_true(after_one > 16 * 1024); /* the record and handshake buffers at least */
    for (int i = 0; i < 20; i++) {
        SSL_SESSION_free(tls_pair_handshake(server, TLS1_3_VERSION, NULL, &resumed));
    }
    /* The same blocks serve each handshake: what is kept does not grow with their count. */
    assert_true(tls_mem_kept() <= after_one + after_one / 4);
    SSL_CTX_free(server);
    tls_mem_release();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freed_block_serves_its_class),
        cmocka_unit_test(test_blocks_hold_their_whole_size),
        cmocka_unit_test(test_realloc_keeps_content),
        cmocka_unit_test(test_kept_blocks_are_bounded),
        cmocka_unit_test(test_thread_exit_releases),
        cmocka_unit_test(test_handshakes_use_kept_blocks),
    };

    installed = tls_mem_install(); /* first, as wsring's main does */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
