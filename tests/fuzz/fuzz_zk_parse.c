/*
 * fuzz_zk_parse.c: libFuzzer target for discovery/zk_parse.c.
 * Properties: any input adds exactly one member or returns a phrase and
 * leaves the set as it was; an added member has an id of 1..1024 bytes free
 * of control bytes, a weight 1..MEMBER_SET_MAX_WEIGHT, an address
 * "host:port" or "[v6]:port" with a port 1..65535, and a public_url that is
 * NULL or "http(s)://" + visible ASCII; the same bytes parsed again give the
 * same member, and a second copy of them is refused as a duplicate.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/zk_parse.h"
#include "ring/member_set.h"

/* What zk_parse lets into a host. */
#define FUZZ_HOST_BYTES "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
