/*
 * Consistent-hash ring: build, lookup, fingerprints, sharing (DESIGN §4, ring/SPEC.md).
 * Pure code: no I/O, no libevent. A built ring is immutable and may be read by
 * any number of threads at once; ring_ref/ring_unref are atomic.
 */
#ifndef WSRING_RING_RING_H
#define WSRING_RING_RING_H

#include <stddef.h>
#include <stdint.h>

#include "ring/member_set.h"

#define RING_DEFAULT_VNODES  1000u
#define RING_MAX_VNODES      10000u
#define RING_NONE            UINT32_MAX /* "no member": the ring is empty */
#define RING_FINGERPRINT_LEN 17         /* 16 lowercase hex digits and a NUL */

enum ring_algo {
    RING_ALGO_RING = 0,   /* "hash ring": vnodes points per unit of weight */
    RING_ALGO_RENDEZVOUS, /* "hash rendezvous": 2^20-slot precomputed table */
    RING_ALGO_COUNT       /* must stay last */
};

struct ring_params {
    enum ring_algo algo;
    uint32_t
        vnodes; /* points per unit of weight; used by RING_ALGO_RING only, 1..RING_MAX_VNODES */
};

struct ring;

/* Checks XXH3_64bits("") == 0x2d06800538d394c2. Returns 0, or -1: refuse to run. */
int ring_selftest(void);
/* The key hash every lookup uses: XXH3_64bits(KEY, LEN). */
uint64_t ring_key_hash(const char *key, size_t len);

/*
 * Builds a ring over MEMBERS (which may be empty) with PARAMS. Takes
 * ownership of MEMBERS, also on failure. Returns NULL on ENOMEM or EINVAL
 * (bad params). The result has one reference.
 */
struct ring *ring_build(struct member_set *members, const struct ring_params *params);
/*
 * Builds the ring for MEMBERS with PREV's params, reusing PREV's work where it
 * can (rendezvous: only the slots a changed member can affect are scored).
 * The result is identical to ring_build(MEMBERS, params). Takes ownership of
 * MEMBERS, also on failure; PREV is only read. Returns NULL on ENOMEM.
 */
struct ring *ring_rebuild(const struct ring *prev, struct member_set *members);
/* Adds a reference and returns RING. */
struct ring *ring_ref(struct ring *ring);
/* Drops a reference; frees on the last. Accepts NULL. */
void ring_unref(struct ring *ring);

const struct ring_params *ring_params(const struct ring *ring);
/* The members, sorted by id; borrowed, lives as long as RING. */
const struct member_set *ring_members(const struct ring *ring);

/* Returns the index (in ring_members) of the owner of HASH, or RING_NONE if empty. Never allocates.
 */
uint32_t ring_owner(const struct ring *ring, uint64_t hash);
/* Returns KEY's owner, or NULL when the ring is empty. Never allocates. */
const struct member *ring_lookup(const struct ring *ring, const char *key, size_t len);
/*
 * Writes up to MAX distinct member indexes in preference order for HASH into
 * OUT: the owner first, then each next distinct member (clockwise for `ring`,
 * by descending score for `rendezvous`), i.e. where the key moves when the
 * ones before it leave. Returns how many were written. Never allocates.
 */
size_t ring_successors(const struct ring *ring, uint64_t hash, uint32_t *out, size_t max);

/* Fingerprint of the algorithm tag and the member set (ids, addresses, weights). */
uint64_t ring_membership_fingerprint(const struct ring *ring);
/* Fingerprint of the built table: equal membership but different table = a version bug. */
uint64_t ring_table_fingerprint(const struct ring *ring);
/* Writes FP as 16 lowercase hex digits into OUT. */
void ring_fingerprint_format(uint64_t fp, char out[RING_FINGERPRINT_LEN]);
/* Returns the bytes RING allocated for its table (points, index, slots); members not counted. */
size_t ring_memory_bytes(const struct ring *ring);
/* The algorithm's name as proxy.conf spells it: "ring" or "rendezvous". */
const char *ring_algo_name(enum ring_algo algo);

#endif /* WSRING_RING_RING_H */
