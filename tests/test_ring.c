/* test_ring.c: the ring contract users and backends rely on (DESIGN §4, ring/SPEC.md). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "ring/member_set.h"
#include "ring/ring.h"

#define TEST_NKEYS      100000u /* keys per property test */
#define TEST_NSLOTS     (1u << 20)
#define TEST_SLOT_SHIFT 44
#define TEST_KEY_LEN    32

struct test_member {
    const char *id;
    const char *address;
    uint32_t weight;
};

/* One SPEC.md §7 vector: members, fingerprints and the owners of test_spec_keys. */
struct test_vector {
    const char *name;
    size_t nmembers;
    struct test_member members[5];
    uint64_t ring_membership_fp;
    uint64_t ring_table_fp;
    uint64_t rendezvous_membership_fp;
    uint64_t rendezvous_table_fp;
    const char *ring_owner[20];
    const char *rendezvous_owner[20];
};

/* A point as SPEC.md §4 describes it, for the independent reference below. */
struct test_point {
    uint64_t hash;
    uint32_t member;
};

static const char *const test_spec_keys[20] = {
    "",        "alice",   "bob",     "user-0",  "user-1",
    "user-2",  "user-3",  "user-4",  "user-5",  "user-6",
    "user-7",  "user-8",  "user-9",  "user-10", "user-11",
    "user-12", "user-13", "user-14", "user-15", "\xc3\xa9t\xc3\xa9",
};

/* Pasted from ring/SPEC.md §7; generated once from this implementation, checked by a port. */
static const struct test_vector test_vectors[] = {
    { "three",
      3,
      {
          { "ws-a", "127.0.0.1:9001", 1 },
          { "ws-b", "127.0.0.1:9002", 1 },
          { "ws-c", "127.0.0.1:9003", 1 },
      },
      0x2d83b53ed5d1ef47ULL,
      0x38c15f65815a3776ULL,
      0xe983e94e57e3ebe3ULL,
      0x861cd0358d2cd920ULL,
      {
          "ws-a", "ws-c", "ws-c", "ws-a", "ws-a", "ws-b", "ws-c", "ws-a", "ws-a", "ws-b",
          "ws-a", "ws-a", "ws-c", "ws-a", "ws-c", "ws-b", "ws-a", "ws-b", "ws-c", "ws-c",
      },
      {
          "ws-a", "ws-a", "ws-b", "ws-c", "ws-a", "ws-c", "ws-b", "ws-c", "ws-b", "ws-b",
          "ws-b", "ws-c", "ws-b", "ws-c", "ws-b", "ws-a", "ws-b", "ws-c", "ws-b", "ws-b",
      } },
    { "weighted",
      3,
      {
          { "node-1/ws-1", "10.0.0.1:8080", 1 },
          { "node-2/ws-2", "10.0.0.2:8080", 2 },
          { "node-3/ws-3", "10.0.0.3:8080", 3 },
      },
      0xb27bb215cc3bb626ULL,
      0xe2d0b0218f6411abULL,
      0x81740fc7c532de17ULL,
      0x703a87eeb5b4f44dULL,
      {
          "node-3/ws-3", "node-3/ws-3", "node-2/ws-2", "node-2/ws-2", "node-1/ws-1",
          "node-2/ws-2", "node-2/ws-2", "node-2/ws-2", "node-3/ws-3", "node-2/ws-2",
          "node-3/ws-3", "node-3/ws-3", "node-3/ws-3", "node-2/ws-2", "node-2/ws-2",
          "node-2/ws-2", "node-3/ws-3", "node-3/ws-3", "node-3/ws-3", "node-3/ws-3",
      },
      {
          "node-1/ws-1", "node-2/ws-2", "node-3/ws-3", "node-3/ws-3", "node-2/ws-2",
          "node-3/ws-3", "node-3/ws-3", "node-1/ws-1", "node-2/ws-2", "node-3/ws-3",
          "node-2/ws-2", "node-2/ws-2", "node-3/ws-3", "node-2/ws-2", "node-3/ws-3",
          "node-3/ws-3", "node-3/ws-3", "node-2/ws-2", "node-2/ws-2", "node-1/ws-1",
      } },
    { "bytewise",
      5,
      {
          { "ab", "[2001:db8::1]:443", 1 },
          { "a", "192.0.2.1:80", 1 },
          { "\xc3\xa9-1", "192.0.2.9:80", 1 },
          { "Z", "192.0.2.3:80", 2 },
          { "a/b", "192.0.2.2:80", 1 },
      },
      0x796b4cf34f546ffeULL,
      0x18e447cd1f92d916ULL,
      0xe7ccf7384594f644ULL,
      0xb5c3cd7b00a829d7ULL,
      {
          "ab",         "Z",  "Z",   "ab",         "ab", "Z",          "Z",
          "ab",         "Z",  "a/b", "\xc3\xa9-1", "Z",  "\xc3\xa9-1", "\xc3\xa9-1",
          "\xc3\xa9-1", "ab", "a/b", "a/b",        "ab", "Z",
      },
      {
          "Z",   "\xc3\xa9-1", "ab", "a/b", "Z",   "Z", "\xc3\xa9-1",
          "a/b", "Z",          "Z",  "Z",   "Z",   "Z", "\xc3\xa9-1",
          "a/b", "\xc3\xa9-1", "a",  "ab",  "a/b", "Z",
      } },
};

static const struct ring_params test_ring = { .algo = RING_ALGO_RING,
                                              .vnodes = RING_DEFAULT_VNODES };
static const struct ring_params test_rendezvous = { .algo = RING_ALGO_RENDEZVOUS,
                                                    .vnodes = RING_DEFAULT_VNODES };
static const struct ring_params *const test_algos[] = { &test_ring, &test_rendezvous };

/* splitmix64: fixed seeds make every property test see the same keys and orders. */
static uint64_t
test_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Writes the I-th test key ("user-<16 hex digits>") into KEY; returns its length. */
static size_t
test_key(uint32_t i, char key[TEST_KEY_LEN])
{
    uint64_t state = 0x5eed0000ULL + i;

    return (size_t)snprintf(key, TEST_KEY_LEN, "user-%016llx",
                            (unsigned long long)test_next(&state));
}

static uint32_t
test_owner_of_key(const struct ring *ring, uint32_t i)
{
    char key[TEST_KEY_LEN];
    size_t len = test_key(i, key);

    return ring_owner(ring, ring_key_hash(key, len));
}

/*
 * Returns members "node-<i>/ws" for i in 0..N-1 except SKIP, weight 1 (or
 * WEIGHTS[i]), added in an order shuffled by ORDER_SEED (0: in order).
 */
static struct member_set *
test_set_of(unsigned n, unsigned skip, const uint32_t *weights, uint64_t order_seed)
{
    struct member_set *set = member_set_create();
    unsigned order[1000];

    assert_true(n <= 1000);
    for (unsigned i = 0; i < n; i++) {
        order[i] = i;
    }
    for (unsigned i = n; order_seed != 0 && i > 1; i--) {
        unsigned j = (unsigned)(test_next(&order_seed) % i), t = order[i - 1];

        order[i - 1] = order[j];
        order[j] = t;
    }
    for (unsigned i = 0; i < n; i++) {
        char id[32], address[32];

        if (order[i] == skip) {
            continue;
        }
        snprintf(id, sizeof(id), "node-%u/ws", order[i]);
        snprintf(address, sizeof(address), "10.0.%u.%u:8080", order[i] / 200, order[i] % 200);
        assert_int_equal(member_set_add(set, id, address, weights == NULL ? 1 : weights[order[i]]),
                         0);
    }
    return set;
}

static struct ring *
test_build(struct member_set *set, const struct ring_params *params)
{
    struct ring *ring = ring_build(set, params);

    assert_non_null(ring);
    return ring;
}

static struct member_set *
test_set_of_members(const struct test_member *members, size_t n)
{
    struct member_set *set = member_set_create();

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(member_set_add(set, members[i].id, members[i].address, members[i].weight),
                         0);
    }
    return set;
}

/* Member id of INDEX in RING, for readable assertions. */
static const char *
test_id(const struct ring *ring, uint32_t index)
{
    assert_true(index < member_set_count(ring_members(ring)));
    return member_set_at(ring_members(ring), index)->id;
}

/* ------------------------------------------------ an independent reading of SPEC.md */

static uint64_t
test_ref_name_hash(const char *id, uint32_t i)
{
    char name[128];
    int len = snprintf(name, sizeof(name), "%s#%u", id, i);

    return XXH3_64bits(name, (size_t)len);
}

static int
test_ref_point_cmp(const void *a, const void *b)
{
    const struct test_point *x = a, *y = b;

    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return (x->member > y->member) - (x->member < y->member);
}

/* SPEC §4: every point of every member, sorted by hash then member index. */
static struct test_point *
test_ref_points(const struct member_set *set, uint32_t vnodes, size_t *npoints)
{
    size_t n = 0, cap = 0;
    struct test_point *points;

    for (size_t m = 0; m < member_set_count(set); m++) {
        cap += (size_t)vnodes * member_set_at(set, m)->weight;
    }
    points = malloc((cap + 1) * sizeof(*points));
    assert_non_null(points);
    for (size_t m = 0; m < member_set_count(set); m++) {
        for (uint32_t i = 0; i < vnodes * member_set_at(set, m)->weight; i++) {
            points[n].hash = test_ref_name_hash(member_set_at(set, m)->id, i);
            points[n++].member = (uint32_t)m;
        }
    }
    qsort(points, n, sizeof(*points), test_ref_point_cmp);
    *npoints = n;
    return points;
}

static uint32_t
test_ref_ring_owner(const struct test_point *points, size_t npoints, uint64_t hash)
{
    size_t lo = 0, hi = npoints;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (points[mid].hash < hash) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return points[lo == npoints ? 0 : lo].member;
}

/* SPEC §5: splitmix64's finalizer over (virtual hash xor slot * golden). */
static uint64_t
test_ref_score(uint32_t slot, uint64_t vhash)
{
    uint64_t z = vhash ^ ((uint64_t)slot * 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t
test_ref_rendezvous_owner(const struct member_set *set, uint64_t hash)
{
    uint32_t slot = (uint32_t)(hash >> TEST_SLOT_SHIFT), owner = 0;
    uint64_t best = 0;
    bool any = false;

    for (uint32_t m = 0; m < member_set_count(set); m++) {
        for (uint32_t k = 0; k < member_set_at(set, m)->weight; k++) {
            uint64_t s = test_ref_score(slot, test_ref_name_hash(member_set_at(set, m)->id, k));

            if (!any || s > best) {
                any = true;
                best = s;
                owner = m;
            }
        }
    }
    return owner;
}

/*
 * Exact key-space share of every member of a `ring`: the arc ending at each
 * point (wrapping) belongs to that point's member. Also checks that the
 * ring's owner of every point's own hash is that point's member.
 */
static void
test_ring_shares(const struct ring *ring, double *share)
{
    const struct member_set *set = ring_members(ring);
    size_t npoints;
    struct test_point *points = test_ref_points(set, ring_params(ring)->vnodes, &npoints);

    for (size_t m = 0; m < member_set_count(set); m++) {
        share[m] = 0;
    }
    for (size_t i = 0; i < npoints; i++) {
        uint64_t arc = points[i].hash - points[i == 0 ? npoints - 1 : i - 1].hash;

        share[points[i].member] += (double)arc / 18446744073709551616.0;
        if (i + 1 == npoints || points[i + 1].hash != points[i].hash) {
            assert_int_equal(ring_owner(ring, points[i].hash),
                             test_ref_ring_owner(points, npoints, points[i].hash));
        }
    }
    free(points);
}

/* Exact key-space share of every member of a `rendezvous` table: its slot count. */
static void
test_rendezvous_shares(const struct ring *ring, double *share)
{
    size_t n = member_set_count(ring_members(ring));

    for (size_t m = 0; m < n; m++) {
        share[m] = 0;
    }
    for (uint32_t s = 0; s < TEST_NSLOTS; s++) {
        share[ring_owner(ring, (uint64_t)s << TEST_SLOT_SHIFT)] += 1.0 / TEST_NSLOTS;
    }
}

static void
test_shares(const struct ring *ring, double *share)
{
    if (ring_params(ring)->algo == RING_ALGO_RING) {
        test_ring_shares(ring, share);
    } else {
        test_rendezvous_shares(ring, share);
    }
}

/* Every slot's owner, then the table fingerprint: both must agree. */
static void
test_assert_same_table(const struct ring *a, const struct ring *b)
{
    for (uint32_t s = 0; s < TEST_NSLOTS; s++) {
        uint64_t h = (uint64_t)s << TEST_SLOT_SHIFT;

        if (ring_owner(a, h) != ring_owner(b, h)) {
            fail_msg("slot %u: %u != %u", s, ring_owner(a, h), ring_owner(b, h));
        }
    }
    assert_true(member_set_equal(ring_members(a), ring_members(b)));
    assert_true(ring_membership_fingerprint(a) == ring_membership_fingerprint(b));
    assert_true(ring_table_fingerprint(a) == ring_table_fingerprint(b));
}

/* ------------------------------------------------ tests */

static void
test_selftest_accepts_this_xxhash(void **state)
{
    (void)state;
    assert_int_equal(ring_selftest(), 0);
    assert_true(ring_key_hash("", 0) == 0x2d06800538d394c2ULL);
    assert_true(ring_key_hash("alice", 5) == 0x4da10dd61a0116b0ULL);
}

static void
test_spec_vectors_give_the_documented_owners_and_fingerprints(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof(test_vectors) / sizeof(test_vectors[0]); v++) {
        const struct test_vector *tv = &test_vectors[v];
        struct ring *r = test_build(test_set_of_members(tv->members, tv->nmembers), &test_ring);
        struct ring *z =
            test_build(test_set_of_members(tv->members, tv->nmembers), &test_rendezvous);

        assert_true(ring_membership_fingerprint(r) == tv->ring_membership_fp);
        assert_true(ring_table_fingerprint(r) == tv->ring_table_fp);
        assert_true(ring_membership_fingerprint(z) == tv->rendezvous_membership_fp);
        assert_true(ring_table_fingerprint(z) == tv->rendezvous_table_fp);
        for (size_t k = 0; k < 20; k++) {
            const char *key = test_spec_keys[k];

            assert_string_equal(ring_lookup(r, key, strlen(key))->id, tv->ring_owner[k]);
            assert_string_equal(ring_lookup(z, key, strlen(key))->id, tv->rendezvous_owner[k]);
        }
        ring_unref(r);
        ring_unref(z);
    }
}

static void
test_owners_match_a_plain_reading_of_the_spec(void **state)
{
    static const uint32_t weights[] = { 1, 3, 1, 2, 1, 5, 1 };
    struct ring_params few = { .algo = RING_ALGO_RING, .vnodes = 37 };
    struct ring *r = test_build(test_set_of(7, 7, weights, 1), &few);
    struct ring *z = test_build(test_set_of(7, 7, weights, 2), &test_rendezvous);
    size_t npoints;
    struct test_point *points = test_ref_points(ring_members(r), few.vnodes, &npoints);

    (void)state;
    assert_int_equal(npoints, 37 * 14);
    for (uint32_t i = 0; i < 20000; i++) {
        char key[TEST_KEY_LEN];
        uint64_t h = ring_key_hash(key, test_key(i, key));

        assert_int_equal(ring_owner(r, h), test_ref_ring_owner(points, npoints, h));
        assert_int_equal(ring_owner(z, h), test_ref_rendezvous_owner(ring_members(z), h));
    }
    /* The wrap: past the last point, and exactly on the first and last. */
    assert_int_equal(ring_owner(r, UINT64_MAX), points[0].member);
    assert_int_equal(ring_owner(r, points[npoints - 1].hash + 1), points[0].member);
    assert_int_equal(ring_owner(r, points[0].hash), points[0].member);
    assert_int_equal(ring_owner(r, 0), points[0].member);
    free(points);
    ring_unref(r);
    ring_unref(z);
}

static void
test_empty_ring_has_no_owner(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *ring = test_build(member_set_create(), test_algos[a]);
        uint32_t out[4];

        assert_int_equal(member_set_count(ring_members(ring)), 0);
        assert_null(ring_lookup(ring, "alice", 5));
        assert_int_equal(ring_owner(ring, 0), RING_NONE);
        assert_int_equal(ring_owner(ring, UINT64_MAX), RING_NONE);
        assert_int_equal(ring_successors(ring, 42, out, 4), 0);
        assert_true(ring_table_fingerprint(ring) ==
                    (a == 0 ? 0x8346e09bfffaa517ULL : 0x2e69f9ea9fd1950aULL));
        assert_true(ring_membership_fingerprint(ring) == ring_table_fingerprint(ring));
        ring_unref(ring);
    }
}

static void
test_owner_ignores_discovery_order(void **state)
{
    static const uint32_t weights[] = { 1, 2, 1, 1, 3, 1, 1, 1, 2, 1 };

    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *base = test_build(test_set_of(10, 10, weights, 0), test_algos[a]);

        for (uint64_t seed = 1; seed <= 3; seed++) {
            struct ring *other = test_build(test_set_of(10, 10, weights, seed), test_algos[a]);

            assert_true(ring_membership_fingerprint(base) == ring_membership_fingerprint(other));
            assert_true(ring_table_fingerprint(base) == ring_table_fingerprint(other));
            for (uint32_t i = 0; i < TEST_NKEYS; i++) {
                assert_int_equal(test_owner_of_key(base, i), test_owner_of_key(other, i));
            }
            ring_unref(other);
        }
        ring_unref(base);
    }
}

static void
test_adding_an_eleventh_member_moves_about_a_eleventh_to_it(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *ten = test_build(test_set_of(11, 10, NULL, 5), test_algos[a]);
        struct ring *eleven = test_build(test_set_of(11, 11, NULL, 6), test_algos[a]);
        uint32_t moved = 0;

        for (uint32_t i = 0; i < TEST_NKEYS; i++) {
            const char *before = test_id(ten, test_owner_of_key(ten, i));
            const char *after = test_id(eleven, test_owner_of_key(eleven, i));

            if (strcmp(before, after) != 0) {
                assert_string_equal(after, "node-10/ws");
                moved++;
            }
        }
        print_message("%s: adding 1 to 10 moved %.4f of keys (1/11 = %.4f)\n",
                      ring_algo_name(test_algos[a]->algo), (double)moved / TEST_NKEYS, 1.0 / 11);
        assert_true(moved >= 0.7 / 11 * TEST_NKEYS && moved <= 1.3 / 11 * TEST_NKEYS);
        ring_unref(ten);
        ring_unref(eleven);
    }
}

static void
test_removing_a_member_moves_only_its_keys_and_readding_restores_all(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *all = test_build(test_set_of(10, 10, NULL, 0), test_algos[a]);
        struct ring *less = test_build(test_set_of(10, 3, NULL, 0), test_algos[a]);
        struct ring *again = test_build(test_set_of(10, 10, NULL, 9), test_algos[a]);

        for (uint32_t i = 0; i < TEST_NKEYS; i++) {
            const char *before = test_id(all, test_owner_of_key(all, i));

            if (strcmp(before, "node-3/ws") != 0) {
                assert_string_equal(test_id(less, test_owner_of_key(less, i)), before);
            }
            assert_int_equal(test_owner_of_key(again, i), test_owner_of_key(all, i));
        }
        assert_true(ring_table_fingerprint(again) == ring_table_fingerprint(all));
        ring_unref(all);
        ring_unref(less);
        ring_unref(again);
    }
}

/* Peak/mean of exact key-space shares with 100 equal members and default vnodes. */
static void
test_assert_balance(const struct ring_params *params, double limit)
{
    struct ring *ring = test_build(test_set_of(100, 100, NULL, 0), params);
    double share[100], peak = 0;

    test_shares(ring, share);
    for (int m = 0; m < 100; m++) {
        peak = share[m] > peak ? share[m] : peak;
    }
    print_message("%s: 100 members, key-space peak/mean %.4f (limit %.2f)\n",
                  ring_algo_name(params->algo), peak * 100, limit);
    assert_true(peak * 100 <= limit);
    ring_unref(ring);
}

static void
test_ring_busiest_of_100_holds_at_most_1_15_of_the_mean(void **state)
{
    (void)state;
    test_assert_balance(&test_ring, 1.15);
}

static void
test_rendezvous_busiest_of_100_holds_at_most_1_08_of_the_mean(void **state)
{
    (void)state;
    test_assert_balance(&test_rendezvous, 1.08);
}

static void
test_weights_1_2_3_share_the_key_space_1_2_3(void **state)
{
    static const uint32_t weights[] = { 1, 2, 3 };

    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *ring = test_build(test_set_of(3, 3, weights, 0), test_algos[a]);
        double share[3];

        test_shares(ring, share);
        print_message("%s: weights 1:2:3 get %.4f %.4f %.4f\n", ring_algo_name(test_algos[a]->algo),
                      share[0], share[1], share[2]);
        for (int m = 0; m < 3; m++) {
            double want = weights[m] / 6.0;

            assert_true(share[m] >= 0.9 * want && share[m] <= 1.1 * want);
        }
        ring_unref(ring);
    }
}

static void
test_successors_are_distinct_and_where_keys_go_when_owners_leave(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *ring = test_build(test_set_of(10, 10, NULL, 0), test_algos[a]);
        struct ring *without[10];

        for (unsigned m = 0; m < 10; m++) {
            without[m] = test_build(test_set_of(10, m, NULL, 0), test_algos[a]);
        }
        for (uint32_t i = 0; i < 20000; i++) {
            char key[TEST_KEY_LEN];
            uint64_t h = ring_key_hash(key, test_key(i, key));
            uint32_t out[12];
            size_t n = ring_successors(ring, h, out, 12);
            const struct ring *next = without[out[0]];

            assert_int_equal(n, 10);
            assert_int_equal(out[0], ring_owner(ring, h));
            assert_int_not_equal(out[1], out[0]);
            for (size_t x = 0; x < n; x++) {
                for (size_t y = x + 1; y < n; y++) {
                    assert_int_not_equal(out[x], out[y]);
                }
            }
            /* successors[1] is exactly the owner once the owner is gone. */
            assert_string_equal(test_id(ring, out[1]), test_id(next, ring_owner(next, h)));
            assert_int_equal(ring_successors(ring, h, out, 1), 1);
            assert_int_equal(out[0], ring_owner(ring, h));
        }
        for (unsigned m = 0; m < 10; m++) {
            ring_unref(without[m]);
        }
        ring_unref(ring);
    }
}

/* Rebuilds from PREV's members to NEXT and checks it against a build from scratch. */
static void
test_assert_rebuild_equals_build(const struct ring *prev, struct member_set *next)
{
    struct member_set *copy = member_set_copy(next);
    struct ring *rebuilt = ring_rebuild(prev, next);
    struct ring *built = test_build(copy, ring_params(prev));

    assert_non_null(rebuilt);
    test_assert_same_table(rebuilt, built);
    ring_unref(rebuilt);
    ring_unref(built);
}

static void
test_rendezvous_rebuild_equals_a_build_from_scratch(void **state)
{
    static const uint32_t weights[] = { 1, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 1 };
    static const uint32_t reweighted[] = { 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 4, 1 };
    struct ring *prev = test_build(test_set_of(10, 10, weights, 0), &test_rendezvous);
    struct member_set *set;

    (void)state;
    /* One member added, one removed, one weight changed. */
    test_assert_rebuild_equals_build(prev, test_set_of(11, 11, weights, 0));
    test_assert_rebuild_equals_build(prev, test_set_of(10, 4, weights, 0));
    test_assert_rebuild_equals_build(prev, test_set_of(10, 10, reweighted, 0));
    /* Several at once: node-0 removed, node-4 reweighted, node-10 and node-11 added. */
    set = test_set_of(12, 0, reweighted, 0);
    test_assert_rebuild_equals_build(prev, set);
    /* An address change moves nothing. */
    set = test_set_of(10, 1, weights, 0);
    assert_int_equal(member_set_add(set, "node-1/ws", "10.9.9.9:1", weights[1]), 0);
    test_assert_rebuild_equals_build(prev, set);
    /* To and from empty, and a change too big to be worth doing incrementally. */
    test_assert_rebuild_equals_build(prev, member_set_create());
    ring_unref(prev);
    prev = test_build(member_set_create(), &test_rendezvous);
    test_assert_rebuild_equals_build(prev, test_set_of(3, 3, weights, 0));
    ring_unref(prev);
    prev = test_build(test_set_of(2, 2, NULL, 0), &test_rendezvous);
    test_assert_rebuild_equals_build(prev, test_set_of(12, 1, weights, 0));
    ring_unref(prev);
}

static void
test_rendezvous_rebuild_chain_stays_equal_to_builds(void **state)
{
    struct ring *ring = test_build(test_set_of(20, 20, NULL, 0), &test_rendezvous);
    uint64_t seed = 77;

    (void)state;
    /* A random walk of single changes, each step rebuilt from the last rebuilt ring. */
    for (int step = 0; step < 8; step++) {
        unsigned skip = (unsigned)(test_next(&seed) % 24);
        struct member_set *set = test_set_of(24, skip, NULL, 0);
        struct ring *next = ring_rebuild(ring, member_set_copy(set));
        struct ring *built = test_build(set, &test_rendezvous);

        assert_non_null(next);
        test_assert_same_table(next, built);
        ring_unref(built);
        ring_unref(ring);
        ring = next;
    }
    ring_unref(ring);
}

static void
test_ring_rebuild_equals_a_build_from_scratch(void **state)
{
    struct ring_params few = { .algo = RING_ALGO_RING, .vnodes = 50 };
    struct ring *prev = test_build(test_set_of(10, 10, NULL, 0), &few);
    struct member_set *next = test_set_of(11, 2, NULL, 0), *copy = member_set_copy(next);
    struct ring *rebuilt = ring_rebuild(prev, next), *built = test_build(copy, &few);

    (void)state;
    assert_non_null(rebuilt);
    assert_int_equal(ring_params(rebuilt)->vnodes, 50);
    assert_true(ring_table_fingerprint(rebuilt) == ring_table_fingerprint(built));
    for (uint32_t i = 0; i < TEST_NKEYS; i += 7) {
        assert_int_equal(test_owner_of_key(rebuilt, i), test_owner_of_key(built, i));
    }
    ring_unref(prev);
    ring_unref(rebuilt);
    ring_unref(built);
}

static void
test_address_change_alters_membership_but_not_table_fingerprint(void **state)
{
    static const struct test_member before[] = { { "ws-a", "127.0.0.1:9001", 1 },
                                                 { "ws-b", "127.0.0.1:9002", 1 } };
    static const struct test_member moved[] = { { "ws-a", "127.0.0.1:9001", 1 },
                                                { "ws-b", "127.0.0.1:9999", 1 } };
    static const struct test_member heavier[] = { { "ws-a", "127.0.0.1:9001", 1 },
                                                  { "ws-b", "127.0.0.1:9002", 2 } };

    (void)state;
    for (size_t a = 0; a < 2; a++) {
        struct ring *r0 = test_build(test_set_of_members(before, 2), test_algos[a]);
        struct ring *r1 = test_build(test_set_of_members(moved, 2), test_algos[a]);
        struct ring *r2 = test_build(test_set_of_members(heavier, 2), test_algos[a]);

        assert_true(ring_membership_fingerprint(r0) != ring_membership_fingerprint(r1));
        assert_true(ring_table_fingerprint(r0) == ring_table_fingerprint(r1));
        assert_true(ring_membership_fingerprint(r0) != ring_membership_fingerprint(r2));
        assert_true(ring_table_fingerprint(r0) != ring_table_fingerprint(r2));
        ring_unref(r0);
        ring_unref(r1);
        ring_unref(r2);
    }
}

static void
test_vnodes_is_part_of_the_ring_fingerprints_only(void **state)
{
    struct ring_params r500 = { .algo = RING_ALGO_RING, .vnodes = 500 };
    struct ring_params z500 = { .algo = RING_ALGO_RENDEZVOUS, .vnodes = 500 };
    struct ring *r0 = test_build(test_set_of(3, 3, NULL, 0), &test_ring);
    struct ring *r1 = test_build(test_set_of(3, 3, NULL, 0), &r500);
    struct ring *z0 = test_build(test_set_of(3, 3, NULL, 0), &test_rendezvous);
    struct ring *z1 = test_build(test_set_of(3, 3, NULL, 0), &z500);

    (void)state;
    assert_true(ring_membership_fingerprint(r0) != ring_membership_fingerprint(r1));
    assert_true(ring_membership_fingerprint(z0) == ring_membership_fingerprint(z1));
    assert_true(ring_table_fingerprint(z0) == ring_table_fingerprint(z1));
    assert_true(ring_membership_fingerprint(r0) != ring_membership_fingerprint(z0));
    ring_unref(r0);
    ring_unref(r1);
    ring_unref(z0);
    ring_unref(z1);
}

static void
test_bad_params_are_refused_with_einval(void **state)
{
    struct ring_params bad[] = {
        { .algo = RING_ALGO_RING, .vnodes = 0 },
        { .algo = RING_ALGO_RING, .vnodes = RING_MAX_VNODES + 1 },
        { .algo = RING_ALGO_COUNT, .vnodes = 100 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        /* The members are freed even so: ASan's leak check would say otherwise. */
        assert_null(ring_build(test_set_of(3, 3, NULL, 0), &bad[i]));
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_null(ring_build(test_set_of(3, 3, NULL, 0), NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(ring_rebuild(NULL, test_set_of(3, 3, NULL, 0)));
    assert_int_equal(errno, EINVAL);
}

static void
test_references_keep_the_ring_alive(void **state)
{
    struct ring *ring = test_build(test_set_of(3, 3, NULL, 0), &test_ring);

    (void)state;
    assert_ptr_equal(ring_ref(ring), ring);
    ring_unref(ring);
    assert_non_null(ring_lookup(ring, "alice", 5));
    ring_unref(ring);
    ring_unref(NULL);
}

static void
test_fingerprints_format_as_16_hex_digits_and_algos_have_names(void **state)
{
    char out[RING_FINGERPRINT_LEN];

    (void)state;
    ring_fingerprint_format(0x2d83b53ed5d1ef47ULL, out);
    assert_string_equal(out, "2d83b53ed5d1ef47");
    ring_fingerprint_format(0x1ULL, out);
    assert_string_equal(out, "0000000000000001");
    assert_string_equal(ring_algo_name(RING_ALGO_RING), "ring");
    assert_string_equal(ring_algo_name(RING_ALGO_RENDEZVOUS), "rendezvous");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selftest_accepts_this_xxhash),
        cmocka_unit_test(test_spec_vectors_give_the_documented_owners_and_fingerprints),
        cmocka_unit_test(test_owners_match_a_plain_reading_of_the_spec),
        cmocka_unit_test(test_empty_ring_has_no_owner),
        cmocka_unit_test(test_owner_ignores_discovery_order),
        cmocka_unit_test(test_adding_an_eleventh_member_moves_about_a_eleventh_to_it),
        cmocka_unit_test(test_removing_a_member_moves_only_its_keys_and_readding_restores_all),
        cmocka_unit_test(test_ring_busiest_of_100_holds_at_most_1_15_of_the_mean),
        cmocka_unit_test(test_rendezvous_busiest_of_100_holds_at_most_1_08_of_the_mean),
        cmocka_unit_test(test_weights_1_2_3_share_the_key_space_1_2_3),
        cmocka_unit_test(test_successors_are_distinct_and_where_keys_go_when_owners_leave),
        cmocka_unit_test(test_rendezvous_rebuild_equals_a_build_from_scratch),
        cmocka_unit_test(test_rendezvous_rebuild_chain_stays_equal_to_builds),
        cmocka_unit_test(test_ring_rebuild_equals_a_build_from_scratch),
        cmocka_unit_test(test_address_change_alters_membership_but_not_table_fingerprint),
        cmocka_unit_test(test_vnodes_is_part_of_the_ring_fingerprints_only),
        cmocka_unit_test(test_bad_params_are_refused_with_einval),
        cmocka_unit_test(test_references_keep_the_ring_alive),
        cmocka_unit_test(test_fingerprints_format_as_16_hex_digits_and_algos_have_names),
    };

    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
