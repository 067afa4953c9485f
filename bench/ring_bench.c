/*
 * ring_bench: lookup cost (key hashing included), build time and memory of
 * both ring algorithms at 10, 100 and 1000 members, and the cost of a
 * one-member change through ring_rebuild for rendezvous (DESIGN §4).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ring/member_set.h"
#include "ring/ring.h"

#define RING_BENCH_NKEYS    (4u << 20)
#define RING_BENCH_KEY_LEN  24         /* "user-" and up to 16 hex digits, NUL */
#define RING_BENCH_SLICE    (1u << 18) /* keys per timed slice; the fastest slice counts */
#define RING_BENCH_ROUNDS   3          /* passes over all keys */
#define RING_BENCH_NCHANGES 5          /* rebuilds timed per change kind; the median counts */

struct ring_bench_keys {
    char (*text)[RING_BENCH_KEY_LEN]; /* owned; NKEYS keys */
    size_t *len;                      /* owned; length of each */
};

/*
 * This thread's CPU time: the machine is shared (builds, fuzzers), and time
 * spent preempted says nothing about the ring. Cache damage done by
 * neighbours still shows; the best-slice rule below softens that.
 */
static double
ring_bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* splitmix64: a fixed, seeded key stream so every run measures the same keys. */
static uint64_t
ring_bench_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
ring_bench_keys_make(struct ring_bench_keys *keys)
{
    uint64_t seed = 42;

    keys->text = malloc(RING_BENCH_NKEYS * sizeof(*keys->text));
    keys->len = malloc(RING_BENCH_NKEYS * sizeof(*keys->len));
    if (keys->text == NULL || keys->len == NULL) {
        return -1;
    }
    for (size_t i = 0; i < RING_BENCH_NKEYS; i++) {
        /* User ids of varying length, as real ones are. */
        uint64_t r = ring_bench_next(&seed);
        int n = snprintf(keys->text[i], RING_BENCH_KEY_LEN, "user-%" PRIx64, r >> (r & 31));

        keys->len[i] = (size_t)n;
    }
    return 0;
}

/* Returns members "node-<i>/ws", i = 0..N-1 but not SKIP, weight 1; NULL on ENOMEM. */
static struct member_set *
ring_bench_members(unsigned n, unsigned skip)
{
    struct member_set *set = member_set_create();
    char id[64], address[64];

    for (unsigned i = 0; set != NULL && i < n; i++) {
        if (i == skip) {
            continue;
        }
        snprintf(id, sizeof(id), "node-%u/ws", i);
        snprintf(address, sizeof(address), "10.0.%u.%u:8080", i / 250, i % 250 + 1);
        if (member_set_add(set, id, address, 1) == -1) {
            member_set_destroy(set);
            return NULL;
        }
    }
    return set;
}

/*
 * Times lookups in slices of RING_BENCH_SLICE keys and keeps the fastest
 * slice, so that a preemption or a neighbour's burst does not count.
 */
static double
ring_bench_lookup_ns(const struct ring *ring, const struct ring_bench_keys *keys)
{
    double best = 0;
    uintptr_t sink = 0;

    for (int r = 0; r < RING_BENCH_ROUNDS; r++) {
        for (size_t from = 0; from < RING_BENCH_NKEYS; from += RING_BENCH_SLICE) {
            double t0 = ring_bench_now_ns(), ns;

            for (size_t i = from; i < from + RING_BENCH_SLICE; i++) {
                sink += (uintptr_t)ring_lookup(ring, keys->text[i], keys->len[i]);
            }
            ns = (ring_bench_now_ns() - t0) / RING_BENCH_SLICE;
            best = best == 0 || ns < best ? ns : best;
        }
    }
    /* Keeps the loop from being optimized away. */
    if (sink == 1) {
        printf("#");
    }
    return best;
}

static int
ring_bench_double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Times PREV -> N members with member SKIP left out (or one added when SKIP == N). */
static double
ring_bench_change_ms(const struct ring *prev, unsigned n, unsigned skip)
{
    double ms[RING_BENCH_NCHANGES];

    for (int r = 0; r < RING_BENCH_NCHANGES; r++) {
        struct member_set *set = ring_bench_members(n, skip);
        double t0 = ring_bench_now_ns();
        struct ring *next = ring_rebuild(prev, set);

        ms[r] = (ring_bench_now_ns() - t0) / 1e6;
        if (next == NULL) {
            return -1;
        }
        ring_unref(next);
    }
    qsort(ms, RING_BENCH_NCHANGES, sizeof(ms[0]), ring_bench_double_cmp);
    return ms[RING_BENCH_NCHANGES / 2];
}

static int
ring_bench_run(enum ring_algo algo, unsigned n, const struct ring_bench_keys *keys)
{
    struct ring_params params = { .algo = algo, .vnodes = RING_DEFAULT_VNODES };
    struct member_set *set = ring_bench_members(n, n);
    double t0 = ring_bench_now_ns(), build_ms;
    struct ring *ring = ring_build(set, &params);

    build_ms = (ring_bench_now_ns() - t0) / 1e6;
    if (ring == NULL) {
        return -1;
    }
    printf("%-10s N=%-4u lookup %6.1f ns/op  build %8.1f ms  memory %9zu bytes",
           ring_algo_name(algo), n, ring_bench_lookup_ns(ring, keys), build_ms,
           ring_memory_bytes(ring));
    if (algo == RING_ALGO_RENDEZVOUS) {
        /* Add: the n members plus node-<n>; remove: all but node-<n/2>. */
        printf("  add one %6.2f ms  remove one %6.2f ms", ring_bench_change_ms(ring, n + 1, n + 1),
               ring_bench_change_ms(ring, n, n / 2));
    }
    printf("\n");
    ring_unref(ring);
    return 0;
}

int
main(void)
{
    static const unsigned sizes[] = { 10, 100, 1000 };
    struct ring_bench_keys keys;

    if (ring_selftest() == -1 || ring_bench_keys_make(&keys) == -1) {
        fprintf(stderr, "ring_bench: self-test or key allocation failed\n");
        return 1;
    }
    printf("thread CPU time; %u keys, vnodes %u, best %u-key slice of %d passes; rebuild = "
           "median of %d\n",
           RING_BENCH_NKEYS, RING_DEFAULT_VNODES, RING_BENCH_SLICE, RING_BENCH_ROUNDS,
           RING_BENCH_NCHANGES);
    for (int algo = RING_ALGO_RING; algo < RING_ALGO_COUNT; algo++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            if (ring_bench_run((enum ring_algo)algo, sizes[i], &keys) == -1) {
                fprintf(stderr, "ring_bench: build failed\n");
                return 1;
            }
        }
    }
    free(keys.text);
    free(keys.len);
    return 0;
}
