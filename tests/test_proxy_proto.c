/* test_proxy_proto.c: the PROXY protocol v1/v2 parser and writer (DESIGN §12, proxy/proxy_proto.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/proxy_proto.h"

#define V2SIG "\r\n\r\n\0\r\nQUIT\n"

/* Parses a heap copy of exactly LEN bytes, so ASan sees a one-byte over-read. */
static enum proxy_proto_result
parse_exact(const void *bytes, size_t len, struct proxy_proto_header *out)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    enum proxy_proto_result r;

    assert_non_null(copy);
    memcpy(copy, bytes, len);
    r = proxy_proto_parse(copy, len, out);
    free(copy);
    return r;
}

/* The header's address SA as "ip port". */
static const char *
addr_text(const struct sockaddr_storage *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s %u", ip, ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s %u", ip, ntohs(in6->sin6_port));
    }
    return buf;
}

struct good_row {
    const char *bytes;
    size_t len;
    size_t header_len; /* bytes that belong to the header; the rest is the client's */
    unsigned version;
    const char *src; /* "ip port", or NULL for no address (LOCAL, UNKNOWN, UNSPEC) */
    const char *dst;
};

#define GOOD(bytes, header_len, version, src, dst)                                                 \
    {                                                                                              \
        bytes, sizeof(bytes) - 1, header_len, version, src, dst                                    \
    }

/* clang-format off */
static const struct good_row good_rows[] = {
    GOOD("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n", 45, 1, "192.0.2.1 56324", "198.51.100.2 443"),
    GOOD("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n", 44, 1, "2001:db8::1 65535", "2001:db8::2 0"),
    GOOD("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", 37, 1, "::ffff:192.0.2.1 1", "::1 2"),
    GOOD("PROXY UNKNOWN\r\n", 15, 1, NULL, NULL),
    GOOD("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nX", 59, 1, NULL, NULL),
    /* v2 PROXY TCP4, 12 address bytes */
    GOOD(V2SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\xdc\x04\x01\xbb" "GET", 28, 2, "192.0.2.1 56324", "198.51.100.2 443"),
    /* v2 PROXY TCP6 */
    GOOD(V2SIG "\x21\x21\x00\x24"
         "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
         "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" "\x00\x50\x1f\x90", 52, 2,
         "2001:db8::1 80", "2001:db8::2 8080"),
    /* v2 TCP4 with two TLVs (ALPN "h2", a NOOP of 0 bytes), skipped */
    GOOD(V2SIG "\x21\x11\x00\x14" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02" "\x00\x01\x00\x02"
         "\x01\x00\x02h2" "\x04\x00\x00", 36, 2, "10.0.0.1 1", "10.0.0.2 2"),
    /* v2 LOCAL (a balancer's health check): no address, the body skipped */
    GOOD(V2SIG "\x20\x00\x00\x00", 16, 2, NULL, NULL),
    GOOD(V2SIG "\x20\x11\x00\x03" "abc", 19, 2, NULL, NULL),
    /* v2 PROXY over AF_UNSPEC: no address either */
    GOOD(V2SIG "\x21\x00\x00\x00", 16, 2, NULL, NULL),
};
/* clang-format on */

static void
test_valid_headers_give_addresses_and_length(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        const struct good_row *row = &good_rows[i];
        struct proxy_proto_header h;
        char buf[96];

        memset(&h, 0xa5, sizeof(h));
        print_message("good row %zu\n", i);
        assert_int_equal(parse_exact(row->bytes, row->len, &h), PROXY_PROTO_DONE);
        assert_int_equal(h.len, row->header_len);
        assert_int_equal(h.version, row->version);
        assert_int_equal(h.has_addr, row->src != NULL);
        if (row->src != NULL) {
            assert_string_equal(addr_text(&h.src, buf, sizeof(buf)), row->src);
            assert_string_equal(addr_text(&h.dst, buf, sizeof(buf)), row->dst);
            assert_int_equal(h.addr_len, h.src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                                    : sizeof(struct sockaddr_in6));
        }
    }
}

/* Every proper prefix of a valid header is PARTIAL: it may be read in any number of pieces. */
static void
test_every_prefix_is_partial(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        const struct good_row *row = &good_rows[i];

        for (size_t n = 0; n < row->header_len; n++) {
            struct proxy_proto_header h;

            assert_int_equal(parse_exact(row->bytes, n, &h), PROXY_PROTO_PARTIAL);
        }
    }
}

struct bad_row {
    const char *what;
    const char *bytes;
    size_t len;
};

#define BAD(what, bytes)                                                                           \
    {                                                                                              \
        what, bytes, sizeof(bytes) - 1                                                             \
    }

/* clang-format off */
static const struct bad_row bad_rows[] = {
    BAD("no header: the HTTP head itself", "GET / HTTP/1.1\r\n\r\n"),
    BAD("no header: a TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    BAD("v1: lowercase prefix", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    BAD("v1: prefix without its space", "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    BAD("v1: unknown protocol", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    BAD("v1: bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
    BAD("v1: CR not followed by LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"),
    BAD("v1: two spaces", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
    BAD("v1: trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
    BAD("v1: missing port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
    BAD("v1: port out of range", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
    BAD("v1: port with a leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
    BAD("v1: port with a sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"),
    BAD("v1: IPv4 octet out of range", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
    BAD("v1: IPv4 with three parts", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
    BAD("v1: IPv6 address under TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n"),
    BAD("v1: IPv4 address under TCP6", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"),
    BAD("v1: a bracketed IPv6", "PROXY TCP6 [::1] [::1] 1 2\r\n"),
    BAD("v1: a control byte", "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
    BAD("v1: non-ASCII", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xc3\xa9\r\n"),
    BAD("v1: empty line after the prefix", "PROXY \r\n"),
    BAD("v1: 107 bytes without CRLF",
        "PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123"),
    BAD("v2: signature with one wrong byte", "\r\n\r\n\0\r\nQUIt\n\x21\x11\x00\x0c"),
    BAD("v2: version 1 in the high nibble", V2SIG "\x11\x11\x00\x0c"),
    BAD("v2: command 2", V2SIG "\x22\x11\x00\x0c"),
    BAD("v2: TCP4 with 11 address bytes", V2SIG "\x21\x11\x00\x0b"),
    BAD("v2: TCP6 with 35 address bytes", V2SIG "\x21\x21\x00\x23"),
    BAD("v2: UNIX family", V2SIG "\x21\x31\x00\xd8"),
    BAD("v2: UDP over IPv4", V2SIG "\x21\x12\x00\x0c"),
    BAD("v2: unknown family", V2SIG "\x21\x41\x00\x0c"),
    BAD("v2: length over the limit", V2SIG "\x21\x11\x08\x01"),
    BAD("v2: length 65535", V2SIG "\x20\x00\xff\xff"),
    BAD("v2: a TLV cut short", V2SIG "\x21\x11\x00\x0e" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02" "\x00\x01\x00\x02" "\x01\x00"),
    BAD("v2: a TLV longer than the block", V2SIG "\x21\x11\x00\x10" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02" "\x00\x01\x00\x02" "\x01\x00\x05x"),
};
/* clang-format on */

static void
test_malformed_headers_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        struct proxy_proto_header h;

        print_message("bad row %zu: %s\n", i, bad_rows[i].what);
        assert_int_equal(parse_exact(bad_rows[i].bytes, bad_rows[i].len, &h), PROXY_PROTO_BAD);
    }
}

/* A malformed start is refused as soon as it shows, not after waiting for more bytes. */
static void
test_bad_start_is_refused_early(void **state)
{
    struct proxy_proto_header h;

    (void)state;
    assert_int_equal(parse_exact("G", 1, &h), PROXY_PROTO_BAD);
    assert_int_equal(parse_exact("PROXX", 5, &h), PROXY_PROTO_BAD);
    assert_int_equal(parse_exact("\r\n\r\n\0\r\nQ", 8, &h), PROXY_PROTO_PARTIAL);
    assert_int_equal(parse_exact("\r\n\r\n\0\r\nX", 8, &h), PROXY_PROTO_BAD);
    assert_int_equal(parse_exact(V2SIG "\x31", 13, &h), PROXY_PROTO_BAD);
    /* v1: the limit is the whole line, CRLF included */
    assert_int_equal(
        parse_exact("PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901"
                    "2345678901234567890123456789012345678901",
                    106, &h),
        PROXY_PROTO_PARTIAL);
}

/* The longest v1 line (spec 2.1: UNKNOWN with two full IPv6 addresses, 107 bytes) is accepted. */
static void
test_v1_longest_line(void **state)
{
    char line[PROXY_PROTO_V1_MAX + 2];
    struct proxy_proto_header h;
    int n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 65535\r\n",
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

    (void)state;
    assert_int_equal(n, PROXY_PROTO_V1_MAX);
    assert_int_equal(parse_exact(line, (size_t)n, &h), PROXY_PROTO_DONE);
    assert_int_equal(h.len, PROXY_PROTO_V1_MAX);
    /* one byte longer: refused whole, and already when its CR is the 107th byte */
    n = snprintf(line, sizeof(line), "PROXY UNKNOWN  %s %s 65535 65535\r\n",
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_int_equal(n, PROXY_PROTO_V1_MAX + 1);
    assert_int_equal(parse_exact(line, (size_t)n, &h), PROXY_PROTO_BAD);
    assert_int_equal(parse_exact(line, PROXY_PROTO_V1_MAX, &h), PROXY_PROTO_BAD); /* ends in CR */
    memset(line, 'W', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 2); /* a 108-byte line: CR 107th, LF 108th */
    assert_int_equal(parse_exact(line, 108, &h), PROXY_PROTO_BAD);
}

/* What send_proxy writes parses back to the same addresses, in both versions. */
static void
test_write_round_trips(void **state)
{
    struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(40000) };
    struct sockaddr_in d4 = { .sin_family = AF_INET, .sin_port = htons(8080) };
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(1) };
    uint8_t out[PROXY_PROTO_WRITE_MAX];
    struct proxy_proto_header h;
    char buf[96];
    size_t n;

    (void)state;
    inet_pton(AF_INET, "203.0.113.7", &s4.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &d4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::7", &s6.sin6_addr);

    n = proxy_proto_write(PROXY_PROTO_SEND_V1, (struct sockaddr *)&s4, (struct sockaddr *)&d4, out);
    assert_memory_equal(out, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 8080\r\n", n);
    n = proxy_proto_write(PROXY_PROTO_SEND_V2, (struct sockaddr *)&s4, (struct sockaddr *)&d4, out);
    assert_int_equal(n, 28);
    assert_int_equal(parse_exact(out, n, &h), PROXY_PROTO_DONE);
    assert_string_equal(addr_text(&h.src, buf, sizeof(buf)), "203.0.113.7 40000");
    assert_string_equal(addr_text(&h.dst, buf, sizeof(buf)), "127.0.0.1 8080");

    /* mixed families: the IPv4 side is written IPv4-mapped */
    n = proxy_proto_write(PROXY_PROTO_SEND_V1, (struct sockaddr *)&s6, (struct sockaddr *)&d4, out);
    assert_memory_equal(out, "PROXY TCP6 2001:db8::7 ::ffff:127.0.0.1 1 8080\r\n", n);
    n = proxy_proto_write(PROXY_PROTO_SEND_V2, (struct sockaddr *)&s6, (struct sockaddr *)&d4, out);
    assert_int_equal(n, 52);
    assert_int_equal(parse_exact(out, n, &h), PROXY_PROTO_DONE);
    assert_string_equal(addr_text(&h.src, buf, sizeof(buf)), "2001:db8::7 1");
    assert_string_equal(addr_text(&h.dst, buf, sizeof(buf)), "::ffff:127.0.0.1 8080");
}

/* A peer that is not IP (a UNIX socket) is sent as UNKNOWN / LOCAL: the backend uses its own. */
static void
test_write_non_inet_says_nothing(void **state)
{
    struct sockaddr_in d4 = { .sin_family = AF_INET };
    struct sockaddr un = { .sa_family = AF_UNIX };
    uint8_t out[PROXY_PROTO_WRITE_MAX];
    struct proxy_proto_header h;
    size_t n;

    (void)state;
    n = proxy_proto_write(PROXY_PROTO_SEND_V1, &un, (struct sockaddr *)&d4, out);
    assert_memory_equal(out, "PROXY UNKNOWN\r\n", n);
    n = proxy_proto_write(PROXY_PROTO_SEND_V2, &un, (struct sockaddr *)&d4, out);
    assert_int_equal(n, 16);
    assert_int_equal(parse_exact(out, n, &h), PROXY_PROTO_DONE);
    assert_false(h.has_addr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_headers_give_addresses_and_length),
        cmocka_unit_test(test_every_prefix_is_partial),
        cmocka_unit_test(test_malformed_headers_are_refused),
        cmocka_unit_test(test_bad_start_is_refused_early),
        cmocka_unit_test(test_v1_longest_line),
        cmocka_unit_test(test_write_round_trips),
        cmocka_unit_test(test_write_non_inet_says_nothing),
    };

    return cmocka_run_group_tests_name("proxy_proto", tests, NULL, NULL);
}
