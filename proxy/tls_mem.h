/*
 * OpenSSL's memory (DESIGN §12): a full handshake allocates and frees about
 * a hundred blocks, a few of them 2-22 KiB (handshake and record buffers),
 * and glibc serves most of them from its shared bins: its per-thread cache
 * keeps only seven blocks of a size, none over 1 KiB. tls_mem keeps freed
 * blocks per thread, by size class, for the next handshake, with no lock:
 * 2.5% less CPU per wss session (paired A/B, issue #10).
 */
#ifndef WSRING_PROXY_TLS_MEM_H
#define WSRING_PROXY_TLS_MEM_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_MEM_KEEP_MAX   (64 * 1024)       /* bytes: larger blocks are rare and go back at once */
#define TLS_MEM_KEEP_BYTES (2 * 1024 * 1024) /* what one thread keeps at most, headers included */
#define TLS_MEM_KEEP_SMALL 256               /* blocks of one class up to 1 KiB one thread keeps */
#define TLS_MEM_KEEP_LARGE 32                /* blocks of one larger class */

#if defined(__SANITIZE_ADDRESS__)
#define TLS_MEM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TLS_MEM_SANITIZED 1
#endif
#endif

/*
 * Has OpenSSL allocate through tls_mem. Must come before OpenSSL allocates
 * anything (first thing in main). Returns false when it came too late, or in
 * a sanitizer build, where it is left out so ASan sees every OpenSSL block.
 */
bool tls_mem_install(void);

/* OpenSSL's allocation functions, as tls_mem_install() hands them over. */
void *tls_mem_malloc(size_t n, const char *file, int line);
void *tls_mem_realloc(void *p, size_t n, const char *file, int line);
void tls_mem_free(void *p, const char *file, int line);

/* The bytes the calling thread keeps, headers included (for tests). */
size_t tls_mem_kept(void);
/* Frees the blocks the calling thread keeps (also done when a thread ends). */
void tls_mem_release(void);

#endif /* WSRING_PROXY_TLS_MEM_H */
