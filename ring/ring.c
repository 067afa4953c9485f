/*
 * Consistent-hash ring and rendezvous table: build, incremental rebuild,
 * lookup, successors, fingerprints (DESIGN §4). ring/SPEC.md is the
 * byte-exact contract this file implements; change one, change both.
 */
#include "ring/ring.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inlined so that key hashing in ring_lookup costs no call; xxHash 0.8 supports this mode. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define RING_XXH3_EMPTY     0x2d06800538d394c2ULL /* XXH3_64bits("", 0) */
#define RING_SLOT_BITS      20u                   /* SPEC §5: slot = top 20 bits of the key hash */
#define RING_NSLOTS         (1u << RING_SLOT_BITS)
#define RING_SLOT_SHIFT     (64u - RING_SLOT_BITS)
#define RING_GOLDEN         0x9e3779b97f4a7c15ULL /* SPEC §5: slot multiplier */
#define RING_INDEX_MAX_BITS 17u /* 512 KiB of index at most; 16 and 18 measured slower */
#define RING_TAG_LEN        64u
#define RING_DIGITS_MAX     10u   /* decimal digits of a uint32_t */
#define RING_SMALL_BUCKET   32u   /* insertion sort below, qsort above */
#define RING_SCAN_WINDOW    8u    /* points compared per step of a lookup; also the sentinels */
#define RING_FP_CHUNK_BYTES 4096u /* divides RING_NSLOTS * 4 */

struct ring {
    atomic_uint refs;
    struct ring_params params;
    struct member_set *members; /* owned; sorted by id */
    uint32_t nmembers;
    uint64_t membership_fp;
    uint64_t table_fp;
    /* RING_ALGO_RING */
    uint32_t npoints;
    unsigned index_shift; /* 64 minus the number of index bits */
    uint32_t *index;      /* owned; bucket b: first point with hash >= b << index_shift; +1 end */
    struct ring_point *points; /* owned; npoints sorted, then RING_SCAN_WINDOW sentinels */
    /* RING_ALGO_RENDEZVOUS */
    uint32_t nvirtual;
    uint32_t *virtual_first;  /* owned; nmembers + 1 offsets into virtual_hash */
    uint64_t *virtual_hash;   /* owned; nvirtual, XXH3("<id>#<k>") member by member */
    uint32_t *virtual_member; /* owned; nvirtual, member index of each */
    uint32_t *slot_owner;     /* owned; RING_NSLOTS member indexes; NULL when empty */
    uint16_t *slot_virtual;   /* owned; RING_NSLOTS, k of the winning "<id>#<k>" */
};

/* Hash and member side by side: a lookup's scan then brings the owner into cache too. */
struct ring_point {
    uint64_t hash;   /* XXH3_64bits("<id>#<i>"); UINT64_MAX in sentinels */
    uint32_t member; /* index into members */
};

int
ring_selftest(void)
{
    return XXH3_64bits("", 0) == RING_XXH3_EMPTY ? 0 : -1;
}

uint64_t
ring_key_hash(const char *key, size_t len)
{
    return XXH3_64bits(key, len);
}

/* SPEC §5: the splitmix64 finalizer (Stafford's Mix13) of VHASH xor SLOT_KEY. */
static inline uint64_t
ring_score(uint64_t slot_key, uint64_t vhash)
{
    uint64_t z = vhash ^ slot_key;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t
ring_slot_key(uint32_t slot)
{
    return (uint64_t)slot * RING_GOLDEN;
}

/*
 * Hashes "<id>#<I>" (SPEC §3). NAME holds the id followed by '#' at
 * NAME[IDLEN] and room for RING_DIGITS_MAX more bytes; snprintf would cost
 * more than the hash itself.
 */
static uint64_t
ring_name_hash(char *name, size_t idlen, uint32_t i)
{
    char digits[RING_DIGITS_MAX];
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    for (size_t j = 0; j < n; j++) {
        name[idlen + 1 + j] = digits[n - 1 - j];
    }
    return XXH3_64bits(name, idlen + 1 + n);
}

/* Returns a buffer big enough for "<id>#<uint32>" of any member of RING, or NULL. */
static char *
ring_name_alloc(const struct ring *ring)
{
    size_t longest = 0;

    for (uint32_t m = 0; m < ring->nmembers; m++) {
        size_t len = strlen(member_set_at(ring->members, m)->id);

        longest = len > longest ? len : longest;
    }
    return malloc(longest + 1 + RING_DIGITS_MAX);
}

/* Copies member M's id and the '#' into NAME; returns the id's length. */
static size_t
ring_name_start(const struct ring *ring, uint32_t m, char *name)
{
    const char *id = member_set_at(ring->members, m)->id;
    size_t len = strlen(id);

    memcpy(name, id, len);
    name[len] = '#';
    return len;
}

/* ---------------------------------------------------------------- fingerprints (SPEC §6) */

static size_t
ring_tag(const struct ring_params *params, char tag[RING_TAG_LEN])
{
    int n;

    if (params->algo == RING_ALGO_RING) {
        n = snprintf(tag, RING_TAG_LEN, "ring/v1;vnodes=%u", (unsigned)params->vnodes);
    } else {
        n = snprintf(tag, RING_TAG_LEN, "rendezvous/v1;slots=%u", RING_NSLOTS);
    }
    return (size_t)n;
}

static void
ring_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void
ring_put_u64le(uint8_t *p, uint64_t v)
{
    ring_put_u32le(p, (uint32_t)v);
    ring_put_u32le(p + 4, (uint32_t)(v >> 32));
}

static void
ring_fp_u32(XXH3_state_t *st, uint32_t v)
{
    uint8_t le[4];

    ring_put_u32le(le, v);
    XXH3_64bits_update(st, le, sizeof(le));
}

/* Feeds u32le(LEN) then the LEN bytes of S. */
static void
ring_fp_string(XXH3_state_t *st, const char *s, size_t len)
{
    ring_fp_u32(st, (uint32_t)len);
    XXH3_64bits_update(st, s, len);
}

static void
ring_fp_start(XXH3_state_t *st, const struct ring_params *params)
{
    char tag[RING_TAG_LEN];

    XXH3_64bits_reset(st);
    ring_fp_string(st, tag, ring_tag(params, tag));
}

static uint64_t
ring_membership_fp_compute(const struct ring *ring)
{
    XXH3_state_t st;

    ring_fp_start(&st, &ring->params);
    for (uint32_t m = 0; m < ring->nmembers; m++) {
        const struct member *mb = member_set_at(ring->members, m);

        ring_fp_string(&st, mb->id, strlen(mb->id));
        ring_fp_string(&st, mb->address, strlen(mb->address));
        ring_fp_u32(&st, mb->weight);
    }
    return XXH3_64bits_digest(&st);
}

static uint64_t
ring_table_fp_compute(const struct ring *ring)
{
    uint8_t buf[RING_FP_CHUNK_BYTES];
    const uint32_t chunk = sizeof(buf) / 12;
    XXH3_state_t st;

    ring_fp_start(&st, &ring->params);
    if (ring->params.algo == RING_ALGO_RING) {
        for (uint32_t i = 0; i < ring->npoints; i += chunk) {
            uint32_t n = ring->npoints - i < chunk ? ring->npoints - i : chunk;

            for (uint32_t j = 0; j < n; j++) {
                ring_put_u64le(&buf[j * 12], ring->points[i + j].hash);
                ring_put_u32le(&buf[j * 12 + 8], ring->points[i + j].member);
            }
            XXH3_64bits_update(&st, buf, (size_t)n * 12);
        }
    } else if (ring->slot_owner != NULL) {
        for (uint32_t s = 0; s < RING_NSLOTS; s += sizeof(buf) / 4) {
            for (uint32_t j = 0; j < sizeof(buf) / 4; j++) {
                ring_put_u32le(&buf[j * 4], ring->slot_owner[s + j]);
            }
            XXH3_64bits_update(&st, buf, sizeof(buf));
        }
    }
    return XXH3_64bits_digest(&st);
}

/* ---------------------------------------------------------------- life cycle */

static void
ring_free(struct ring *ring)
{
    member_set_destroy(ring->members);
    free(ring->index);
    free(ring->points);
    free(ring->virtual_first);
    free(ring->virtual_hash);
    free(ring->virtual_member);
    free(ring->slot_owner);
    free(ring->slot_virtual);
    free(ring);
}

static bool
ring_params_are_valid(const struct ring_params *params)
{
    if (params == NULL || (unsigned)params->algo >= RING_ALGO_COUNT) {
        return false;
    }
    return params->algo != RING_ALGO_RING ||
           (params->vnodes >= 1 && params->vnodes <= RING_MAX_VNODES);
}

/* Returns a ring with no table yet, owning MEMBERS (freed on failure too), or NULL. */
static struct ring *
ring_alloc(struct member_set *members, const struct ring_params *params)
{
    struct ring *ring;

    if (members == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (!ring_params_are_valid(params) || member_set_count(members) >= RING_NONE) {
        member_set_destroy(members);
        errno = EINVAL;
        return NULL;
    }
    ring = calloc(1, sizeof(*ring));
    if (ring == NULL) {
        member_set_destroy(members);
        return NULL;
    }
    atomic_init(&ring->refs, 1);
    ring->params = *params;
    ring->members = members;
    ring->nmembers = (uint32_t)member_set_count(members);
    ring->membership_fp = ring_membership_fp_compute(ring);
    return ring;
}

struct ring *
ring_ref(struct ring *ring)
{
    atomic_fetch_add_explicit(&ring->refs, 1, memory_order_relaxed);
    return ring;
}

void
ring_unref(struct ring *ring)
{
    if (ring == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&ring->refs, 1, memory_order_acq_rel) == 1) {
        ring_free(ring);
    }
}

/* ---------------------------------------------------------------- hash ring (SPEC §4) */

static unsigned
ring_index_bits(uint32_t npoints)
{
    unsigned bits = 1;

    /* About four points per bucket (eight at the cap), so one scan window mostly suffices. */
    while (bits < RING_INDEX_MAX_BITS && ((uint64_t)1 << (bits + 2)) < npoints) {
        bits++;
    }
    return bits;
}

static int
ring_point_cmp(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;

    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return (x->member > y->member) - (x->member < y->member);
}

/*
 * Sorts N points by hash, then member. The scatter left equal hashes in
 * member order, so a stable insertion sort on the hash alone is enough.
 */
static void
ring_bucket_sort(struct ring_point *points, uint32_t n)
{
    if (n > RING_SMALL_BUCKET) {
        qsort(points, n, sizeof(*points), ring_point_cmp);
        return;
    }
    for (uint32_t i = 1; i < n; i++) {
        struct ring_point p = points[i];
        uint32_t j = i;

        for (; j > 0 && points[j - 1].hash > p.hash; j--) {
            points[j] = points[j - 1];
        }
        points[j] = p;
    }
}

/* Writes every member's points into UNSORTED, member by member, i ascending. */
static int
ring_points_generate(const struct ring *ring, uint64_t *unsorted)
{
    char *name = ring_name_alloc(ring);
    uint32_t j = 0;

    if (name == NULL) {
        return -1;
    }
    for (uint32_t m = 0; m < ring->nmembers; m++) {
        size_t idlen = ring_name_start(ring, m, name);
        uint32_t n = ring->params.vnodes * member_set_at(ring->members, m)->weight;

        for (uint32_t i = 0; i < n; i++) {
            unsorted[j++] = ring_name_hash(name, idlen, i);
        }
    }
    free(name);
    return 0;
}

/*
 * Counting sort on the top index bits, which builds the index as it goes,
 * then a sort inside each bucket (a few points each on average).
 */
static void
ring_points_place(struct ring *ring, const uint64_t *unsorted)
{
    uint32_t nbuckets = (uint32_t)1 << (64 - ring->index_shift), j = 0;

    for (uint32_t i = 0; i < ring->npoints; i++) {
        ring->index[(unsorted[i] >> ring->index_shift) + 1]++;
    }
    for (uint32_t b = 1; b <= nbuckets; b++) {
        ring->index[b] += ring->index[b - 1];
    }
    /* index[b] serves as bucket b's write cursor, ending at bucket b + 1's start. */
    for (uint32_t m = 0; m < ring->nmembers; m++) {
        uint32_t n = ring->params.vnodes * member_set_at(ring->members, m)->weight;

        for (uint32_t i = 0; i < n; i++, j++) {
            uint32_t at = ring->index[unsorted[j] >> ring->index_shift]++;

            ring->points[at].hash = unsorted[j];
            ring->points[at].member = m;
        }
    }
    memmove(&ring->index[1], &ring->index[0], (size_t)nbuckets * sizeof(uint32_t));
    ring->index[0] = 0;
    for (uint32_t b = 0; b < nbuckets; b++) {
        uint32_t lo = ring->index[b];

        ring_bucket_sort(&ring->points[lo], ring->index[b + 1] - lo);
    }
}

static int
ring_points_build(struct ring *ring)
{
    uint64_t total = 0, *unsorted;
    int rc;

    for (uint32_t m = 0; m < ring->nmembers; m++) {
        total += (uint64_t)ring->params.vnodes * member_set_at(ring->members, m)->weight;
    }
    if (total == 0) {
        return 0;
    }
    if (total >= UINT32_MAX) {
        errno = ENOMEM;
        return -1;
    }
    ring->npoints = (uint32_t)total;
    ring->index_shift = 64 - ring_index_bits(ring->npoints);
    ring->index = calloc(((size_t)1 << (64 - ring->index_shift)) + 1, sizeof(uint32_t));
    ring->points = malloc((total + RING_SCAN_WINDOW) * sizeof(struct ring_point));
    unsorted = malloc(total * sizeof(uint64_t));
    if (ring->index == NULL || ring->points == NULL || unsorted == NULL) {
        free(unsorted);
        return -1;
    }
    for (uint32_t i = 0; i < RING_SCAN_WINDOW; i++) {
        ring->points[total + i].hash = UINT64_MAX;
        ring->points[total + i].member = RING_NONE;
    }
    rc = ring_points_generate(ring, unsorted);
    if (rc == 0) {
        ring_points_place(ring, unsorted);
    }
    free(unsorted);
    return rc;
}

/*
 * Returns the position of the first point with hash >= HASH, wrapping to 0.
 * The window may run past the bucket: later points are >= the next bucket's
 * start > HASH, so they never count, and the sentinels stop it at the end.
 * Counting without branches avoids the mispredicted exit of a scan loop.
 */
static inline uint32_t
ring_points_find(const struct ring *ring, uint64_t hash)
{
    uint32_t i = ring->index[hash >> ring->index_shift], n;

    do {
        const struct ring_point *p = &ring->points[i];

        n = 0;
        for (uint32_t j = 0; j < RING_SCAN_WINDOW; j++) {
            n += p[j].hash < hash;
        }
        i += n;
    } while (n == RING_SCAN_WINDOW);
    return i == ring->npoints ? 0 : i;
}

/* ---------------------------------------------------------------- rendezvous (SPEC §5) */

static int
ring_virtual_build(struct ring *ring)
{
    uint64_t total = 0;
    char *name;

    ring->virtual_first = malloc(((size_t)ring->nmembers + 1) * sizeof(uint32_t));
    if (ring->virtual_first == NULL) {
        return -1;
    }
    for (uint32_t m = 0; m < ring->nmembers; m++) {
        ring->virtual_first[m] = (uint32_t)total;
        total += member_set_at(ring->members, m)->weight;
    }
    if (total >= UINT32_MAX) {
        errno = ENOMEM;
        return -1;
    }
    ring->virtual_first[ring->nmembers] = (uint32_t)total;
    ring->nvirtual = (uint32_t)total;
    if (total == 0) {
        return 0;
    }
    ring->virtual_hash = malloc(total * sizeof(uint64_t));
    ring->virtual_member = malloc(total * sizeof(uint32_t));
    name = ring_name_alloc(ring);
    if (ring->virtual_hash == NULL || ring->virtual_member == NULL || name == NULL) {
        free(name);
        return -1;
    }
    for (uint32_t m = 0; m < ring->nmembers; m++) {
        size_t idlen = ring_name_start(ring, m, name);

        for (uint32_t k = ring->virtual_first[m]; k < ring->virtual_first[m + 1]; k++) {
            ring->virtual_hash[k] = ring_name_hash(name, idlen, k - ring->virtual_first[m]);
            ring->virtual_member[k] = m;
        }
    }
    free(name);
    return 0;
}

static int
ring_slots_alloc(struct ring *ring)
{
    ring->slot_owner = malloc(RING_NSLOTS * sizeof(uint32_t));
    ring->slot_virtual = malloc(RING_NSLOTS * sizeof(uint16_t));
    return ring->slot_owner == NULL || ring->slot_virtual == NULL ? -1 : 0;
}

/*
 * Scores SLOT against every virtual member. The first highest score wins:
 * virtual members are in member order, so ties go to the lower member index
 * (SPEC §5), and within a member to the lower k.
 */
static void
ring_slot_score(struct ring *ring, uint32_t slot)
{
    const uint64_t *vh = ring->virtual_hash;
    uint64_t key = ring_slot_key(slot), best = ring_score(key, vh[0]);
    uint32_t winner = 0, owner;

    for (uint32_t v = 1; v < ring->nvirtual; v++) {
        uint64_t s = ring_score(key, vh[v]);

        if (s > best) {
            best = s;
            winner = v;
        }
    }
    owner = ring->virtual_member[winner];
    ring->slot_owner[slot] = owner;
    ring->slot_virtual[slot] = (uint16_t)(winner - ring->virtual_first[owner]);
}

/* Returns member M's best score for SLOT_KEY and its k (the lowest k on a tie). */
static uint64_t
ring_member_score(const struct ring *ring, uint32_t m, uint64_t slot_key, uint16_t *k)
{
    uint32_t first = ring->virtual_first[m], end = ring->virtual_first[m + 1];
    uint64_t best = ring_score(slot_key, ring->virtual_hash[first]);

    *k = 0;
    for (uint32_t v = first + 1; v < end; v++) {
        uint64_t s = ring_score(slot_key, ring->virtual_hash[v]);

        if (s > best) {
            best = s;
            *k = (uint16_t)(v - first);
        }
    }
    return best;
}

static int
ring_slots_build(struct ring *ring)
{
    if (ring->nmembers == 0) {
        return 0;
    }
    if (ring_slots_alloc(ring) == -1) {
        return -1;
    }
    for (uint32_t s = 0; s < RING_NSLOTS; s++) {
        ring_slot_score(ring, s);
    }
    return 0;
}

/* What changed between two member sets (SPEC §5, "incremental update"). */
struct ring_diff {
    uint32_t *old_to_new; /* owned; prev->nmembers entries, RING_NONE when removed */
    uint32_t *added;      /* owned; new indexes of added members, ascending */
    uint32_t nadded;
    uint64_t nadded_virtual;
};

/*
 * Walks both sorted sets side by side. A weight change counts as removed and
 * added; an address change changes nothing in the table.
 */
static int
ring_diff_compute(const struct ring *prev, const struct ring *ring, struct ring_diff *diff)
{
    uint32_t i = 0, j = 0;

    diff->old_to_new = malloc(((size_t)prev->nmembers + 1) * sizeof(uint32_t));
    diff->added = malloc(((size_t)ring->nmembers + 1) * sizeof(uint32_t));
    if (diff->old_to_new == NULL || diff->added == NULL) {
        return -1;
    }
    while (i < prev->nmembers || j < ring->nmembers) {
        const struct member *a = i < prev->nmembers ? member_set_at(prev->members, i) : NULL;
        const struct member *b = j < ring->nmembers ? member_set_at(ring->members, j) : NULL;
        int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->id, b->id);

        if (c < 0) {
            diff->old_to_new[i++] = RING_NONE;
            continue;
        }
        if (c > 0 || a->weight != b->weight) {
            diff->added[diff->nadded++] = j;
            diff->nadded_virtual += b->weight;
        }
        if (c == 0) {
            diff->old_to_new[i++] = a->weight == b->weight ? j : RING_NONE;
        }
        j++;
    }
    return 0;
}

/* Lets the added members of DIFF challenge the owner of SLOT, which is kept from PREV. */
static void
ring_slot_challenge(struct ring *ring, const struct ring_diff *diff, uint32_t slot)
{
    uint64_t key = ring_slot_key(slot);
    uint32_t owner = ring->slot_owner[slot];
    uint16_t k = ring->slot_virtual[slot];
    uint64_t best = ring_score(key, ring->virtual_hash[ring->virtual_first[owner] + k]);

    for (uint32_t a = 0; a < diff->nadded; a++) {
        uint32_t m = diff->added[a];
        uint64_t s = ring_member_score(ring, m, key, &k);

        if (s > best || (s == best && m < owner)) {
            best = s;
            owner = m;
            ring->slot_owner[slot] = m;
            ring->slot_virtual[slot] = k;
        }
    }
}

/*
 * A slot whose owner stays keeps it unless an added member beats it; only a
 * slot whose owner left is scored over everyone. Relative order of the
 * members that stay is the same in both sets, so ties resolve as in a build.
 */
static void
ring_slots_update(struct ring *ring, const struct ring *prev, const struct ring_diff *diff)
{
    for (uint32_t s = 0; s < RING_NSLOTS; s++) {
        uint32_t owner = diff->old_to_new[prev->slot_owner[s]];

        if (owner == RING_NONE) {
            ring_slot_score(ring, s);
            continue;
        }
        ring->slot_owner[s] = owner;
        ring->slot_virtual[s] = prev->slot_virtual[s];
        if (diff->nadded > 0) {
            ring_slot_challenge(ring, diff, s);
        }
    }
}

static int
ring_slots_rebuild(struct ring *ring, const struct ring *prev)
{
    struct ring_diff diff = { 0 };
    int rc = -1;

    if (ring->nmembers == 0 || prev->slot_owner == NULL) {
        return ring_slots_build(ring);
    }
    if (ring_diff_compute(prev, ring, &diff) == 0) {
        /* Challenging costs nadded_virtual scores per slot, a full build nvirtual. */
        if (diff.nadded_virtual * 2 > ring->nvirtual) {
            rc = ring_slots_build(ring);
        } else if (ring_slots_alloc(ring) == 0) {
            ring_slots_update(ring, prev, &diff);
            rc = 0;
        }
    }
    free(diff.old_to_new);
    free(diff.added);
    return rc;
}

/* ---------------------------------------------------------------- build, lookup */

struct ring *
ring_build(struct member_set *members, const struct ring_params *params)
{
    struct ring *ring = ring_alloc(members, params);
    int rc;

    if (ring == NULL) {
        return NULL;
    }
    if (params->algo == RING_ALGO_RING) {
        rc = ring_points_build(ring);
    } else {
        rc = ring_virtual_build(ring);
        if (rc == 0) {
            rc = ring_slots_build(ring);
        }
    }
    if (rc == -1) {
        ring_free(ring);
        return NULL;
    }
    ring->table_fp = ring_table_fp_compute(ring);
    return ring;
}

struct ring *
ring_rebuild(const struct ring *prev, struct member_set *members)
{
    struct ring *ring;

    if (prev == NULL) {
        member_set_destroy(members);
        errno = EINVAL;
        return NULL;
    }
    if (prev->params.algo != RING_ALGO_RENDEZVOUS) {
        return ring_build(members, &prev->params);
    }
    ring = ring_alloc(members, &prev->params);
    if (ring == NULL) {
        return NULL;
    }
    if (ring_virtual_build(ring) == -1 || ring_slots_rebuild(ring, prev) == -1) {
        ring_free(ring);
        return NULL;
    }
    ring->table_fp = ring_table_fp_compute(ring);
    return ring;
}

const struct ring_params *
ring_params(const struct ring *ring)
{
    return &ring->params;
}

const struct member_set *
ring_members(const struct ring *ring)
{
    return ring->members;
}

uint32_t
ring_owner(const struct ring *ring, uint64_t hash)
{
    if (ring->params.algo == RING_ALGO_RENDEZVOUS) {
        return ring->slot_owner == NULL ? RING_NONE : ring->slot_owner[hash >> RING_SLOT_SHIFT];
    }
    return ring->npoints == 0 ? RING_NONE : ring->points[ring_points_find(ring, hash)].member;
}

const struct member *
ring_lookup(const struct ring *ring, const char *key, size_t len)
{
    uint32_t owner = ring_owner(ring, XXH3_64bits(key, len));

    return owner == RING_NONE ? NULL : member_set_at(ring->members, owner);
}

static bool
ring_is_listed(const uint32_t *out, size_t n, uint32_t m)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i] == m) {
            return true;
        }
    }
    return false;
}

/* Walks clockwise from HASH's owner; at most one lap. */
static size_t
ring_points_successors(const struct ring *ring, uint64_t hash, uint32_t *out, size_t max)
{
    uint32_t i = ring_points_find(ring, hash);
    size_t n = 0;

    for (uint32_t step = 0; step < ring->npoints && n < max && n < ring->nmembers; step++) {
        uint32_t m = ring->points[i].member;

        if (!ring_is_listed(out, n, m)) {
            out[n++] = m;
        }
        i = i + 1 == ring->npoints ? 0 : i + 1;
    }
    return n;
}

/*
 * The table gives the owner; the rest is repeated max-selection over the
 * members not yet listed, which is the order they would win the slot in as
 * the ones before them leave. Retry path only: O(MAX * nvirtual), no memory.
 */
static size_t
ring_slots_successors(const struct ring *ring, uint64_t hash, uint32_t *out, size_t max)
{
    uint32_t slot = (uint32_t)(hash >> RING_SLOT_SHIFT);
    uint64_t key = ring_slot_key(slot);
    size_t n = 0;

    out[n++] = ring->slot_owner[slot];
    while (n < max && n < ring->nmembers) {
        uint64_t best = 0;
        uint32_t winner = RING_NONE;

        for (uint32_t m = 0; m < ring->nmembers; m++) {
            uint16_t k;
            uint64_t s;

            if (ring_is_listed(out, n, m)) {
                continue;
            }
            s = ring_member_score(ring, m, key, &k);
            if (winner == RING_NONE || s > best) {
                best = s;
                winner = m;
            }
        }
        out[n++] = winner;
    }
    return n;
}

size_t
ring_successors(const struct ring *ring, uint64_t hash, uint32_t *out, size_t max)
{
    if (max == 0 || ring->nmembers == 0) {
        return 0;
    }
    if (ring->params.algo == RING_ALGO_RENDEZVOUS) {
        return ring_slots_successors(ring, hash, out, max);
    }
    return ring_points_successors(ring, hash, out, max);
}

/* ---------------------------------------------------------------- reporting */

uint64_t
ring_membership_fingerprint(const struct ring *ring)
{
    return ring->membership_fp;
}

uint64_t
ring_table_fingerprint(const struct ring *ring)
{
    return ring->table_fp;
}

void
ring_fingerprint_format(uint64_t fp, char out[RING_FINGERPRINT_LEN])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        out[i] = hex[(fp >> (60 - 4 * i)) & 0xf];
    }
    out[16] = '\0';
}

const char *
ring_algo_name(enum ring_algo algo)
{
    switch (algo) {
    case RING_ALGO_RING:
        return "ring";
    case RING_ALGO_RENDEZVOUS:
        return "rendezvous";
    case RING_ALGO_COUNT:
        break;
    }
    return "unknown";
}

size_t
ring_memory_bytes(const struct ring *ring)
{
    size_t bytes = sizeof(*ring);

    if (ring->index != NULL) {
        bytes += (((size_t)1 << (64 - ring->index_shift)) + 1) * sizeof(uint32_t);
    }
    if (ring->npoints > 0) {
        bytes += ((size_t)ring->npoints + RING_SCAN_WINDOW) * sizeof(struct ring_point);
    }
    if (ring->virtual_first != NULL) {
        bytes += ((size_t)ring->nmembers + 1) * sizeof(uint32_t);
    }
    bytes += (size_t)ring->nvirtual * (sizeof(uint64_t) + sizeof(uint32_t));
    if (ring->slot_owner != NULL) {
        bytes += (size_t)RING_NSLOTS * (sizeof(uint32_t) + sizeof(uint16_t));
    }
    return bytes;
}
