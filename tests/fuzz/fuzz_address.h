/*
 * What a member source's parser promises about an address, checked by the
 * fuzz targets of the Consul and ZooKeeper parsers: "host:port" or
 * "[IPv6]:port", host bytes as discovery/source.c lets through, port 1..65535.
 */
#ifndef WSRING_TESTS_FUZZ_ADDRESS_H
#define WSRING_TESTS_FUZZ_ADDRESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* What the parsers let into a host. */
#define FUZZ_HOST_BYTES "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%"

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

#endif /* WSRING_TESTS_FUZZ_ADDRESS_H */
