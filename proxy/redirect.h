/*
 * Redirect mode (DESIGN §10): a request on a `route PATH redirect` path is
 * answered by wsring itself with `307 Temporary Redirect` to the owner's
 * public_url, the request target kept. Worker thread only.
 */
#ifndef WSRING_PROXY_REDIRECT_H
#define WSRING_PROXY_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct head;

/*
 * Writes into OUT (CAP bytes) the 307 answer whose Location is PUBLIC_URL
 * followed by the path and query of TARGET (TARGET_LEN bytes; an absolute-form
 * target loses its scheme and authority), with "Connection: close" when
 * CLOSE. Returns the length, or 0 when CAP is too small. Pure.
 */
size_t redirect_format(char *out, size_t cap, const char *public_url, const char *target,
                       size_t target_len, bool close);

/*
 * Called with C's request head parsed and routed (c->cand[0] is the member it
 * would be proxied to): when the path's route is `redirect` and that member
 * has a public_url, answers 307 and returns true (C may be gone: the caller
 * returns at once). Returns false to proxy as usual.
 */
bool redirect_answer(struct conn *c, const struct head *head);

#endif /* WSRING_PROXY_REDIRECT_H */
