/* A ring's members: a list of (id, address, weight) kept sorted bytewise by id, ids unique (DESIGN
 * §4). */
#ifndef WSRING_RING_MEMBER_SET_H
#define WSRING_RING_MEMBER_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBER_SET_MAX_WEIGHT 1000u /* keeps vnodes * weight and rendezvous work bounded */

struct member {
    char *id;        /* owned; NUL-terminated, compared with memcmp over its bytes */
    char *address;   /* owned; "host:port" or "[v6addr]:port" as the source gave it */
    uint32_t weight; /* 1 .. MEMBER_SET_MAX_WEIGHT */
    char *
        public_url; /* owned or NULL; where clients reach it directly (redirect mode, DESIGN §10) */
};

struct member_set;

/* Returns an empty set, or NULL on ENOMEM. */
struct member_set *member_set_create(void);
/* Frees SET and every member string. Accepts NULL. */
void member_set_destroy(struct member_set *set);
/*
 * Copies ID and ADDRESS into SET, keeping it sorted by id. Returns 0, or -1
 * with errno EEXIST (ID already present), EINVAL (empty ID or ADDRESS, weight
 * 0 or above MEMBER_SET_MAX_WEIGHT) or ENOMEM; SET is unchanged on failure.
 */
int member_set_add(struct member_set *set, const char *id, const char *address, uint32_t weight);
/*
 * Sets the public_url of the member with ID (NULL clears it). Not part of the
 * ring contract: it never changes the fingerprint or an owner. Returns 0, or
 * -1 with errno ENOENT (no such member) or ENOMEM.
 */
int member_set_set_public_url(struct member_set *set, const char *id, const char *url);
/* Returns a deep copy, or NULL on ENOMEM. */
struct member_set *member_set_copy(const struct member_set *set);
size_t member_set_count(const struct member_set *set);
/* Returns the I-th member in id order; I must be < member_set_count(). */
const struct member *member_set_at(const struct member_set *set, size_t i);
/* Returns the index of the member with ID, or -1. */
long member_set_find(const struct member_set *set, const char *id);
/* True when both sets hold the same ids, addresses, weights and public_urls. */
bool member_set_equal(const struct member_set *a, const struct member_set *b);

#endif /* WSRING_RING_MEMBER_SET_H */
