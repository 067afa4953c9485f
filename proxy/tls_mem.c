#include "proxy/tls_mem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/*
 * Every block starts with a header naming its class, so that a free needs no
 * lookup. Classes: 16-byte steps up to 1 KiB, then eight per doubling (at
 * most an eighth wasted) up to TLS_MEM_KEEP_MAX; larger blocks are class
 * TLS_MEM_CLASSES and go straight back to malloc.
 */
#define TLS_MEM_HEADER      16u
#define TLS_MEM_SMALL_MAX   1024u
#define TLS_MEM_SMALL_STEPS (TLS_MEM_SMALL_MAX / 16u)
#define TLS_MEM_CLASSES     (TLS_MEM_SMALL_STEPS + 6u * 8u) /* 1 KiB to 64 KiB */

/* A kept block: its first bytes link it to the next of its class. */
struct tls_mem_free {
    struct tls_mem_free *next;
};

struct tls_mem_kept {
    struct tls_mem_free *head[TLS_MEM_CLASSES];
    uint16_t n[TLS_MEM_CLASSES];
    size_t bytes;    /* kept, headers included */
    bool registered; /* the thread's exit will release them */
};

/* What precedes each block. */
struct tls_mem_header {
    uint32_t cls;
    uint32_t unused;
    size_t size; /* asked for: what a realloc of a large block copies */
};
_Static_assert(sizeof(struct tls_mem_header) == TLS_MEM_HEADER,
               "the header keeps 16-byte alignment");

static _Thread_local struct tls_mem_kept tls_mem_mine;
static pthread_key_t tls_mem_exit_key;
static pthread_once_t tls_mem_exit_once = PTHREAD_ONCE_INIT;

static unsigned
tls_mem_class(size_t n)
{
    unsigned shift;

    if (n <= TLS_MEM_SMALL_MAX) {
        return n == 0 ? 0 : (unsigned)((n - 1) / 16);
    }
    if (n > TLS_MEM_KEEP_MAX) {
        return TLS_MEM_CLASSES;
    }
    shift = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1)); /* 2^shift <= n-1 */
    return TLS_MEM_SMALL_STEPS + (shift - 10u) * 8u + (unsigned)(((n - 1) >> (shift - 3)) & 7u);
}

static size_t
tls_mem_class_size(unsigned c)
{
    unsigned d;

    if (c < TLS_MEM_SMALL_STEPS) {
        return (size_t)(c + 1) * 16;
    }
    d = c - TLS_MEM_SMALL_STEPS;
    return ((size_t)8 + d % 8 + 1) << (d / 8 + 7);
}

static unsigned
tls_mem_keep_limit(unsigned c)
{
    return c < TLS_MEM_SMALL_STEPS ? TLS_MEM_KEEP_SMALL : TLS_MEM_KEEP_LARGE;
}

static void
tls_mem_on_thread_exit(void *unused)
{
    (void)unused;
    tls_mem_release();
    /* A later destructor (OpenSSL's own) may free more: the next free registers again. */
    tls_mem_mine.registered = false;
}

static void
tls_mem_exit_key_create(void)
{
    (void)pthread_key_create(&tls_mem_exit_key, tls_mem_on_thread_exit);
}

void
tls_mem_release(void)
{
    struct tls_mem_kept *k = &tls_mem_mine;

    for (unsigned c = 0; c < TLS_MEM_CLASSES; c++) {
        while (k->head[c] != NULL) {
            struct tls_mem_free *f = k->head[c];

            k->head[c] = f->next;
            free((char *)f - TLS_MEM_HEADER);
        }
        k->n[c] = 0;
    }
    k->bytes = 0;
}

size_t
tls_mem_kept(void)
{
    return tls_mem_mine.bytes;
}

void *
tls_mem_malloc(size_t n, const char *file, int line)
{
    struct tls_mem_kept *k = &tls_mem_mine;
    unsigned c = tls_mem_class(n);
    struct tls_mem_header *h;

    (void)file;
    (void)line;
    if (n == 0 || n > SIZE_MAX - TLS_MEM_HEADER) {
        return NULL; /* as CRYPTO_malloc's own for 0; no room for the header */
    }
    if (c < TLS_MEM_CLASSES && k->head[c] != NULL) {
        struct tls_mem_free *f = k->head[c];

        k->head[c] = f->next;
        k->n[c]--;
        k->bytes -= tls_mem_class_size(c) + TLS_MEM_HEADER;
        h = (struct tls_mem_header *)((char *)f - TLS_MEM_HEADER);
        h->size = n;
        return f;
    }
    h = malloc(TLS_MEM_HEADER + (c < TLS_MEM_CLASSES ? tls_mem_class_size(c) : n));
    if (h == NULL) {
        return NULL;
    }
    h->cls = c;
    h->size = n;
    return h + 1;
}

void
tls_mem_free(void *p, const char *file, int line)
{
    struct tls_mem_kept *k = &tls_mem_mine;
    struct tls_mem_header *h;
    struct tls_mem_free *f = p;
    unsigned c;
    size_t bytes;

    (void)file;
    (void)line;
    if (p == NULL) {
        return;
    }
    h = (struct tls_mem_header *)p - 1;
    c = h->cls;
    if (c == TLS_MEM_CLASSES || k->n[c] >= tls_mem_keep_limit(c)) {
        free(h);
        return;
    }
    bytes = tls_mem_class_size(c) + TLS_MEM_HEADER;
    if (k->bytes + bytes > TLS_MEM_KEEP_BYTES) {
        free(h);
        return;
    }
    if (!k->registered) {
        /* A thread that ends must not take its blocks with it. */
        (void)pthread_once(&tls_mem_exit_once, tls_mem_exit_key_create);
        k->registered = pthread_setspecific(tls_mem_exit_key, k) == 0;
        if (!k->registered) {
            free(h);
            return;
        }
    }
    f->next = k->head[c];
    k->head[c] = f;
    k->n[c]++;
    k->bytes += bytes;
}

void *
tls_mem_realloc(void *p, size_t n, const char *file, int line)
{
    struct tls_mem_header *h;
    void *q;

    if (p == NULL) {
        return tls_mem_malloc(n, file, line);
    }
    if (n == 0) {
        tls_mem_free(p, file, line);
        return NULL;
    }
    h = (struct tls_mem_header *)p - 1;
    if (h->cls < TLS_MEM_CLASSES && n <= tls_mem_class_size(h->cls)) {
        h->size = n;
        return p;
    }
    q = tls_mem_malloc(n, file, line);
    if (q == NULL) {
        return NULL;
    }
    memcpy(q, p, h->size < n ? h->size : n);
    tls_mem_free(p, file, line);
    return q;
}

bool
tls_mem_install(void)
{
#ifdef TLS_MEM_SANITIZED
    return false;
#else
    return CRYPTO_set_mem_functions(tls_mem_malloc, tls_mem_realloc, tls_mem_free) == 1;
#endif
}
