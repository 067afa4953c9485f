/*
 * fuzz_consul_parse.c: libFuzzer target for discovery/consul_parse.c.
 * Properties: any input gives a set, or NULL with a phrase; a set is sorted
 * with unique ids "<node>/<service id>" free of control bytes, every weight
 * is 1..MEMBER_SET_MAX_WEIGHT, every address is "host:port" or "[v6]:port"
 * with a port 1..65535; parsing the same bytes again gives the same set.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/consul_parse.h"
#include "ring/member_set.h"
#include "tests/fuzz/fuzz_address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_id(const char *id)
{
    const char *slash = id[0] == '\0' ? NULL : strchr(id + 1, '/');

    if (slash == NULL || slash[1] == '\0') {
        abort(); /* "<node>/<id>", both parts non-empty */
    }
    for (const char *p = id; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            abort();
        }
    }
}

static void
fuzz_check_set(const struct member_set *set)
{
    size_t n = member_set_count(set);

    for (size_t i = 0; i < n; i++) {
        const struct member *m = member_set_at(set, i);

        if (m->weight < 1 || m->weight > MEMBER_SET_MAX_WEIGHT) {
            abort();
        }
        if (i > 0 && strcmp(member_set_at(set, i - 1)->id, m->id) >= 0) {
            abort(); /* sorted, and so unique */
        }
        fuzz_check_id(m->id);
        fuzz_check_address(m->address);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = "(not set)", *again_why = "(not set)";
    struct member_set *set = consul_parse_health((const char *)data, size, &why);
    struct member_set *again;

    if (set == NULL) {
        if (why == NULL || why[0] == '\0') {
            abort();
        }
        return 0;
    }
    if (why != NULL) {
        abort();
    }
    fuzz_check_set(set);
    again = consul_parse_health((const char *)data, size, &again_why);
    if (again == NULL || again_why != NULL || !member_set_equal(set, again)) {
        abort();
    }
    member_set_destroy(again);
    member_set_destroy(set);
    return 0;
}
