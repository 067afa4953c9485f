/*
 * fuzz_etcd_parse.c: libFuzzer target for discovery/etcd_parse.c.
 * The input is read as a range answer and as a watch line (applied to the
 * range's set, or to a fixed set). Properties: a set or NULL with a phrase,
 * never both; a set is sorted with unique non-empty ids free of control
 * bytes, weights 1..MEMBER_SET_MAX_WEIGHT, addresses ending in ":port";
 * a revision is positive on success and 0 on failure; the same bytes parse
 * to the same set again; base64 decodes what it encodes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/etcd_parse.h"
#include "ring/member_set.h"

#define FUZZ_PREFIX "/services/ws-backend/"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_set(const struct member_set *set)
{
    for (size_t i = 0; i < member_set_count(set); i++) {
        const struct member *m = member_set_at(set, i);
        const char *colon = strrchr(m->address, ':');

        if (m->weight < 1 || m->weight > MEMBER_SET_MAX_WEIGHT || m->id[0] == '\0' ||
            strlen(m->id) > ETCD_PARSE_MAX_ID || colon == NULL || colon[1] == '\0') {
            abort();
        }
        for (const char *p = m->id; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                abort();
            }
        }
        if (i > 0 && strcmp(member_set_at(set, i - 1)->id, m->id) >= 0) {
            abort();
        }
    }
}

static void
fuzz_base64(const uint8_t *data, size_t size)
{
    size_t n = size > 300 ? 300 : size;
    char enc[404];
    unsigned char dec[304];

    if (etcd_base64_encode(data, n, enc) != 4 * ((n + 2) / 3) ||
        etcd_base64_decode(enc, strlen(enc), dec) != (long)n || memcmp(dec, data, n) != 0) {
        abort();
    }
    if (etcd_base64_decode((const char *)data, n, dec) > (long)(3 * n / 4)) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = "(not set)";
    int64_t rev = -1, again_rev = -1;
    struct member_set *set = etcd_parse_range((const char *)data, size, FUZZ_PREFIX, &rev, &why);
    struct member_set *base = set, *again;
    struct etcd_watch_msg msg;
    char text[64];

    if ((set == NULL) == (why == NULL) || (set == NULL && rev != 0) || (set != NULL && rev <= 0)) {
        abort();
    }
    if (set != NULL) {
        fuzz_check_set(set);
        again = etcd_parse_range((const char *)data, size, FUZZ_PREFIX, &again_rev, &why);
        if (again == NULL || again_rev != rev || !member_set_equal(set, again)) {
            abort();
        }
        member_set_destroy(again);
    } else {
        base = member_set_create();
        if (base == NULL || member_set_add(base, "ws-a", "127.0.0.1:1", 1) != 0) {
            abort();
        }
    }
    if (etcd_parse_watch((const char *)data, size, FUZZ_PREFIX, base, &msg, &why) == 0) {
        if (why != NULL || (msg.kind == ETCD_WATCH_EVENTS) != (msg.members != NULL)) {
            abort();
        }
        if (msg.members != NULL) {
            fuzz_check_set(msg.members);
        }
        member_set_destroy(msg.members);
    } else if (why == NULL || msg.members != NULL) {
        abort();
    }
    etcd_parse_error((const char *)data, size, text, sizeof(text));
    free(etcd_parse_token((const char *)data, size, &why));
    fuzz_base64(data, size);
    member_set_destroy(base);
    return 0;
}
