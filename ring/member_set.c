/* A ring's members, sorted bytewise by id and duplicate-free (DESIGN §4, ring/SPEC.md §2). */
#include "ring/member_set.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct member_set {
    size_t nmembers;
    size_t cap;
    struct member *members; /* owned; nmembers used of cap, sorted by id */
};

struct member_set *
member_set_create(void)
{
    return calloc(1, sizeof(struct member_set));
}

static void
member_set_member_free(struct member *m)
{
    free(m->id);
    m->id = NULL;
    free(m->address);
    m->address = NULL;
    free(m->public_url);
    m->public_url = NULL;
}

void
member_set_destroy(struct member_set *set)
{
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->nmembers; i++) {
        member_set_member_free(&set->members[i]);
    }
    free(set->members);
    free(set);
}

/*
 * Orders ids as SPEC.md §2 says: memcmp over the common bytes, then the
 * shorter first. Same result as strcmp (which compares unsigned chars), but
 * written out so the rule is visible where the order is made.
 */
static int
member_set_id_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c != 0) {
        return c;
    }
    return (alen > blen) - (alen < blen);
}

/* Returns the index of the first member whose id is >= ID; sets *FOUND when equal. */
static size_t
member_set_search(const struct member_set *set, const char *id, bool *found)
{
    size_t lo = 0, hi = set->nmembers, len = strlen(id);

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *mid_id = set->members[mid].id;
        int c = member_set_id_cmp(mid_id, strlen(mid_id), id, len);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int
member_set_reserve(struct member_set *set)
{
    struct member *grown;
    size_t cap;

    if (set->nmembers < set->cap) {
        return 0;
    }
    cap = set->cap == 0 ? 8 : set->cap * 2;
    if (cap > SIZE_MAX / sizeof(struct member)) {
        errno = ENOMEM;
        return -1;
    }
    grown = realloc(set->members, cap * sizeof(struct member));
    if (grown == NULL) {
        return -1;
    }
    set->members = grown;
    set->cap = cap;
    return 0;
}

int
member_set_add(struct member_set *set, const char *id, const char *address, uint32_t weight)
{
    struct member m;
    bool found;
    size_t at;

    if (set == NULL || id == NULL || address == NULL || id[0] == '\0' || address[0] == '\0' ||
        weight == 0 || weight > MEMBER_SET_MAX_WEIGHT) {
        errno = EINVAL;
        return -1;
    }
    at = member_set_search(set, id, &found);
    if (found) {
        errno = EEXIST;
        return -1;
    }
    if (member_set_reserve(set) == -1) {
        return -1;
    }
    m.id = strdup(id);
    m.address = strdup(address);
    m.weight = weight;
    m.public_url = NULL;
    if (m.id == NULL || m.address == NULL) {
        member_set_member_free(&m);
        errno = ENOMEM;
        return -1;
    }
    memmove(&set->members[at + 1], &set->members[at], (set->nmembers - at) * sizeof(struct member));
    set->members[at] = m;
    set->nmembers++;
    return 0;
}

int
member_set_set_public_url(struct member_set *set, const char *id, const char *url)
{
    long at = member_set_find(set, id);
    char *copy = NULL;

    if (at < 0) {
        errno = ENOENT;
        return -1;
    }
    if (url != NULL && (copy = strdup(url)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    free(set->members[at].public_url);
    set->members[at].public_url = copy;
    return 0;
}

/* NULL-safe string equality: two absent values are equal. */
static bool
member_set_same_text(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

struct member_set *
member_set_copy(const struct member_set *set)
{
    struct member_set *copy = member_set_create();

    if (copy == NULL) {
        return NULL;
    }
    if (set->nmembers > 0) {
        copy->members = calloc(set->nmembers, sizeof(struct member));
        if (copy->members == NULL) {
            free(copy);
            return NULL;
        }
        copy->cap = set->nmembers;
    }
    for (size_t i = 0; i < set->nmembers; i++) {
        struct member *to = &copy->members[i];

        /* Counted before the copies so that destroy frees a half-made member too. */
        copy->nmembers++;
        to->id = strdup(set->members[i].id);
        to->address = strdup(set->members[i].address);
        to->weight = set->members[i].weight;
        to->public_url =
            set->members[i].public_url != NULL ? strdup(set->members[i].public_url) : NULL;
        if (to->id == NULL || to->address == NULL ||
            (to->public_url == NULL && set->members[i].public_url != NULL)) {
            member_set_destroy(copy);
            errno = ENOMEM;
            return NULL;
        }
    }
    return copy;
}

size_t
member_set_count(const struct member_set *set)
{
    return set->nmembers;
}

const struct member *
member_set_at(const struct member_set *set, size_t i)
{
    return &set->members[i];
}

long
member_set_find(const struct member_set *set, const char *id)
{
    bool found;
    size_t at = member_set_search(set, id, &found);

    return found ? (long)at : -1;
}

bool
member_set_equal(const struct member_set *a, const struct member_set *b)
{
    if (a->nmembers != b->nmembers) {
        return false;
    }
    for (size_t i = 0; i < a->nmembers; i++) {
        const struct member *x = &a->members[i], *y = &b->members[i];

        if (x->weight != y->weight || strcmp(x->id, y->id) != 0 ||
            strcmp(x->address, y->address) != 0 ||
            !member_set_same_text(x->public_url, y->public_url)) {
            return false;
        }
    }
    return true;
}
