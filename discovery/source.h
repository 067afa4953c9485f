/*
 * The sink every member source feeds (DESIGN §1): a callback that takes a new
 * member set. Nothing downstream knows which source produced it.
 */
#ifndef WSRING_DISCOVERY_SOURCE_H
#define WSRING_DISCOVERY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

struct member_set;

/* Takes ownership of MEMBERS: the source's current, non-empty view. */
typedef void (*source_emit_fn)(struct member_set *members, void *arg);

/*
 * The error back-off every source uses (DISCOVERY §1.5 rule 5): BASE_MS
 * doubled per failure after the first, capped at CAP_MS, then jittered into
 * [d/2, d] so that a fleet of proxies does not retry in step.
 */
uint64_t source_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned failures);

/*
 * Checks the LEN host bytes at HOST as a source gave them (a DNS name, an IPv4
 * literal or an IPv6 literal with an optional "%zone") and sets *ADDRESS to a
 * new "host:port", or "[host]:port" for IPv6. Returns NULL, or what is wrong
 * ("address has ':' or '%' but is not an IPv6 literal", "out of memory").
 */
const char *source_address_make(const char *host, size_t len, unsigned port, char **address);

#endif /* WSRING_DISCOVERY_SOURCE_H */
