/*
 * fuzz_zk_parse.c: libFuzzer target for discovery/zk_parse.c.
 * Properties: any input adds exactly one member or returns a phrase and
 * leaves the set as it was; an added member has an id of 1..1024 bytes free
 * of control bytes, a weight 1..MEMBER_SET_MAX_WEIGHT, an address
 * "host:port" or "[v6]:port" with a port 1..65535, and a public_url that is
 * NULL or "http(s)://" + visible ASCII; the same bytes parsed again give the
 * same member, and a second copy of them is refused as a duplicate.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/zk_parse.h"
#include "ring/member_set.h"
#include "tests/fuzz/fuzz_address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_member(const struct member *m)
{
    size_t id_len = strlen(m->id);

    if (id_len == 0 || id_len > ZK_PARSE_MAX_ID) {
        abort();
    }
    for (const char *p = m->id; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            abort();
        }
    }
    if (m->weight < 1 || m->weight > MEMBER_SET_MAX_WEIGHT) {
        abort();
    }
    fuzz_check_address(m->address);
    if (m->public_url != NULL) {
        const char *u = m->public_url;
        size_t len = strlen(u);

        if (len > ZK_PARSE_MAX_URL ||
            (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)) {
            abort();
        }
        for (size_t i = 0; i < len; i++) {
            if (u[i] < 0x21 || u[i] > 0x7e) {
                abort(); /* would split the Location header */
            }
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct member_set *set = member_set_create(), *again = member_set_create();
    const char *why;

    if (set == NULL || again == NULL) {
        abort();
    }
    why = zk_parse_member((const char *)data, size, set);
    if (why != NULL) {
        if (why[0] == '\0' || member_set_count(set) != 0) {
            abort(); /* a refusal says why and adds nothing */
        }
    } else {
        if (member_set_count(set) != 1) {
            abort();
        }
        fuzz_check_member(member_set_at(set, 0));
        if (zk_parse_member((const char *)data, size, again) != NULL ||
            !member_set_equal(set, again)) {
            abort(); /* deterministic */
        }
        why = zk_parse_member((const char *)data, size, set);
        if (why == NULL || member_set_count(set) != 1 || !member_set_equal(set, again)) {
            abort(); /* the same id twice is refused, the set unchanged */
        }
    }
    member_set_destroy(again);
    member_set_destroy(set);
    return 0;
}
