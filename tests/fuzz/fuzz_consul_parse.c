/*
 * fuzz_consul_parse.c: libFuzzer target for discovery/consul_parse.c.
 * Properties: any input gives a set, or NULL with a phrase; a set is sorted
 * with unique ids "<node>/<service id>" free of control bytes, every weight
 * is 1..MEMBER_SET_MAX_WEIGHT, every address is "host:port" or "[v6]:port"
 * with a port 1..65535; parsing the same bytes again gives the same set.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/consul_parse.h"
#include "ring/member_set.h"

/* What consul_parse lets into a host. */
#define FUZZ_HOST_BYTES "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%"

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

/* True when the LEN bytes at HOST are an IPv6 literal with an optional non-empty "%zone". */
static bool
fuzz_is_ipv6(const char *host, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    struct in6_addr bin;
    const char *zone = memchr(host, '%', len);
    size_t addr_len = zone == NULL ? len : (size_t)(zone - host);

    if (addr_len >= sizeof(text) || (zone != NULL && addr_len + 1 == len)) {
        return false;
    }
    memcpy(text, host, addr_len);
    text[addr_len] = '\0';
    return inet_pton(AF_INET6, text, &bin) == 1;
}

static void
fuzz_check_address(const char *address)
{
    const char *colon = strrchr(address, ':');
    size_t host_len, digits;
    long port;

    if (address[0] == '\0' || colon == NULL || colon == address) {
        abort();
    }
    host_len = (size_t)(colon - address);
    if (address[0] == '[') {
        if (host_len < 4 || address[host_len - 1] != ']' ||
            !fuzz_is_ipv6(address + 1, host_len - 2)) {
            abort(); /* brackets go around IPv6 literals only */
        }
        address++;
        host_len -= 2;
    } else if (memchr(address, ':', host_len) != NULL || memchr(address, '%', host_len) != NULL) {
        abort(); /* an IPv6 literal must be bracketed */
    }
    if (host_len > 253 || strspn(address, FUZZ_HOST_BYTES) < host_len) {
        abort();
    }
    digits = strspn(colon + 1, "0123456789");
    port = strtol(colon + 1, NULL, 10);
    if (digits == 0 || colon[1 + digits] != '\0' || colon[1] == '0' || port < 1 || port > 65535) {
        abort();
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
