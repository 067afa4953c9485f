/*
 * The sink every member source feeds (DESIGN §1): a callback that takes a new
 * member set. Nothing downstream knows which source produced it.
 */
#ifndef WSRING_DISCOVERY_SOURCE_H
#define WSRING_DISCOVERY_SOURCE_H

struct member_set;

/* Takes ownership of MEMBERS: the source's current, non-empty view. */
typedef void (*source_emit_fn)(struct member_set *members, void *arg);

#endif /* WSRING_DISCOVERY_SOURCE_H */
