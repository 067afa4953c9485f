/* What every member source shares (discovery/source.h). */
#include "discovery/source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCE_MAX_HOST 253 /* the longest DNS name; every IP literal is shorter */

uint64_t
source_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned failures)
{
    uint64_t d = base_ms;

    for (unsigned i = 1; i < failures && d < cap_ms; i++) {
        d *= 2;
    }
    if (d > cap_ms) {
        d = cap_ms;
    }
    return d / 2 + (uint64_t)rand() % (d / 2 + 1);
}

/* Letters, digits, '.', '-', '_' (host names), ':' (IPv6) and '%' (an IPv6 zone). */
static bool
source_is_host_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr(".-_:%", c) != NULL);
}

/*
 * True when the LEN bytes at HOST (host bytes only, see above) are an IPv6
 * literal, optionally with a "%zone" (RFC 6874) of letters, digits, '.', '-', '_'.
 */
static bool
source_is_ipv6(const char *host, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    const char *zone = memchr(host, '%', len);
    size_t addr_len = zone == NULL ? len : (size_t)(zone - host);
    size_t zone_len = zone == NULL ? 0 : len - addr_len - 1;
    struct in6_addr bin;

    if (addr_len >= sizeof(text)) {
        return false;
    }
    if (zone != NULL && (zone_len == 0 || memchr(zone + 1, '%', zone_len) != NULL ||
                         memchr(zone + 1, ':', zone_len) != NULL)) {
        return false;
    }
    memcpy(text, host, addr_len);
    text[addr_len] = '\0';
    return inet_pton(AF_INET6, text, &bin) == 1;
}

const char *
source_address_make(const char *host, size_t len, unsigned port, char **address)
{
    size_t size;
    bool v6;

    if (len > SOURCE_MAX_HOST) {
        return "address is longer than 253 bytes";
    }
    for (size_t i = 0; i < len; i++) {
        if (!source_is_host_byte(host[i])) {
            return "address has a byte other than a letter, a digit or one of \".-_:%\"";
        }
    }
    v6 = memchr(host, ':', len) != NULL || memchr(host, '%', len) != NULL;
    if (v6 && !source_is_ipv6(host, len)) {
        return "address has ':' or '%' but is not an IPv6 literal";
    }
    size = len + sizeof("[]:65535");
    *address = malloc(size);
    if (*address == NULL) {
        return "out of memory";
    }
    snprintf(*address, size, v6 ? "[%.*s]:%u" : "%.*s:%u", (int)len, host, port);
    return NULL;
}
