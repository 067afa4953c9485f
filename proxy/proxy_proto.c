/*
 * PROXY protocol v1/v2 parser and writer (DESIGN §12). The byte layout is
 * haproxy's proxy-protocol.txt; "spec N" below cites its sections.
 */
#include "proxy/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define PROXY_PROTO_V2_CMD_LOC 0x0
#define PROXY_PROTO_V2_CMD_PRX 0x1
#define PROXY_PROTO_V2_UNSPEC  0x00
#define PROXY_PROTO_V2_TCP4    0x11
#define PROXY_PROTO_V2_TCP6    0x21
#define PROXY_PROTO_V2_LEN4    12 /* two IPv4 addresses, two ports */
#define PROXY_PROTO_V2_LEN6    36 /* two IPv6 addresses, two ports */

/* spec 2.2: the 12-byte v2 signature */
static const uint8_t proxy_proto_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                             0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char proxy_proto_v1_prefix[] = "PROXY ";

/* ---- v1 ------------------------------------------------------------------ */

/* A byte range of the v1 line. */
struct proxy_proto_span {
    const char *p; /* borrowed */
    size_t len;
};

/* Cuts the next space-separated word off *REST; a word followed by two spaces leaves "" next. */
static struct proxy_proto_span
proxy_proto_word(struct proxy_proto_span *rest)
{
    struct proxy_proto_span w = { rest->p, 0 };

    while (w.len < rest->len && rest->p[w.len] != ' ') {
        w.len++;
    }
    rest->p += w.len;
    rest->len -= w.len;
    if (rest->len > 0) { /* the single space */
        rest->p++;
        rest->len--;
    }
    return w;
}

static bool
proxy_proto_span_is(struct proxy_proto_span s, const char *word)
{
    return s.len == strlen(word) && memcmp(s.p, word, s.len) == 0;
}

/* A decimal port 0..65535 without sign or leading zeros (spec 2.1). */
static bool
proxy_proto_v1_port(struct proxy_proto_span s, uint16_t *port)
{
    unsigned v = 0;

    if (s.len == 0 || s.len > 5 || (s.len > 1 && s.p[0] == '0')) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(s.p[i] - '0');
    }
    if (v > 65535) {
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

/* An address of FAMILY into SA (port set apart). inet_pton refuses leading zeros in IPv4. */
static bool
proxy_proto_v1_addr(struct proxy_proto_span s, int family, struct sockaddr_storage *sa)
{
    char text[INET6_ADDRSTRLEN];

    if (s.len == 0 || s.len >= sizeof(text)) {
        return false;
    }
    memcpy(text, s.p, s.len);
    text[s.len] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->ss_family = (sa_family_t)family;
    if (family == AF_INET) {
        return inet_pton(AF_INET, text, &((struct sockaddr_in *)sa)->sin_addr) == 1;
    }
    return inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1;
}

static void
proxy_proto_set_port(struct sockaddr_storage *sa, uint16_t port)
{
    if (sa->ss_family == AF_INET) {
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
    }
}

/* The line without its CRLF, after "PROXY ". */
static enum proxy_proto_result
proxy_proto_v1_line(struct proxy_proto_span rest, struct proxy_proto_header *out)
{
    struct proxy_proto_span proto = proxy_proto_word(&rest), src, dst, sport, dport;
    uint16_t sp, dp;
    int family;

    if (proxy_proto_span_is(proto, "UNKNOWN")) {
        out->has_addr = false; /* spec 2.1: the rest of an UNKNOWN line is ignored */
        return PROXY_PROTO_DONE;
    }
    if (proxy_proto_span_is(proto, "TCP4")) {
        family = AF_INET;
    } else if (proxy_proto_span_is(proto, "TCP6")) {
        family = AF_INET6;
    } else {
        return PROXY_PROTO_BAD;
    }
    src = proxy_proto_word(&rest);
    dst = proxy_proto_word(&rest);
    sport = proxy_proto_word(&rest);
    dport = rest; /* the last word: it must hold no space, so it is all of the rest */
    if (!proxy_proto_v1_addr(src, family, &out->src) ||
        !proxy_proto_v1_addr(dst, family, &out->dst) || !proxy_proto_v1_port(sport, &sp) ||
        !proxy_proto_v1_port(dport, &dp)) {
        return PROXY_PROTO_BAD;
    }
    proxy_proto_set_port(&out->src, sp);
    proxy_proto_set_port(&out->dst, dp);
    out->has_addr = true;
    out->addr_len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return PROXY_PROTO_DONE;
}

static enum proxy_proto_result
proxy_proto_v1(const uint8_t *buf, size_t len, struct proxy_proto_header *out)
{
    size_t prefix = sizeof(proxy_proto_v1_prefix) - 1;
    size_t n = len < PROXY_PROTO_V1_MAX ? len : PROXY_PROTO_V1_MAX;

    if (memcmp(buf, proxy_proto_v1_prefix, len < prefix ? len : prefix) != 0) {
        return PROXY_PROTO_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r' && i + 1 == PROXY_PROTO_V1_MAX) {
            return PROXY_PROTO_BAD; /* its LF would be byte 108 (found by fuzz_proxy_proto) */
        }
        if (buf[i] == '\r' && i + 1 < len) {
            struct proxy_proto_span rest = { (const char *)buf + prefix, i - prefix };

            if (buf[i + 1] != '\n' || i < prefix) {
                return PROXY_PROTO_BAD;
            }
            out->version = 1;
            out->len = i + 2;
            return proxy_proto_v1_line(rest, out);
        }
        if ((buf[i] < 0x20 || buf[i] > 0x7e) && buf[i] != '\r') {
            return PROXY_PROTO_BAD; /* a bare LF, a control byte, non-ASCII */
        }
    }
    /* Below the limit the CRLF may still come; at it, the line is too long. */
    return len < PROXY_PROTO_V1_MAX ? PROXY_PROTO_PARTIAL : PROXY_PROTO_BAD;
}

/* ---- v2 ------------------------------------------------------------------ */

/* spec 2.2.7: TLVs of 1 type byte, 2 length bytes (big-endian), the value; all must fit. */
static bool
proxy_proto_v2_tlvs_fit(const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t tlv;

        if (len < 3) {
            return false;
        }
        tlv = 3 + ((size_t)p[1] << 8 | p[2]);
        if (tlv > len) {
            return false;
        }
        p += tlv;
        len -= tlv;
    }
    return true;
}

/* The addresses of a PROXY command over TCP4 or TCP6 at BODY (BODY_LEN bytes, already bounded). */
static enum proxy_proto_result
proxy_proto_v2_addrs(uint8_t fam, const uint8_t *body, size_t body_len,
                     struct proxy_proto_header *out)
{
    size_t alen = fam == PROXY_PROTO_V2_TCP4 ? PROXY_PROTO_V2_LEN4 : PROXY_PROTO_V2_LEN6;
    size_t ip = (alen - 4) / 2;
    uint16_t sport = (uint16_t)(body[2 * ip] << 8 | body[2 * ip + 1]);
    uint16_t dport = (uint16_t)(body[2 * ip + 2] << 8 | body[2 * ip + 3]);

    if (!proxy_proto_v2_tlvs_fit(body + alen, body_len - alen)) {
        return PROXY_PROTO_BAD;
    }
    memset(&out->src, 0, sizeof(out->src));
    memset(&out->dst, 0, sizeof(out->dst));
    if (fam == PROXY_PROTO_V2_TCP4) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src,
                           *d = (struct sockaddr_in *)&out->dst;

        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, body, 4);
        memcpy(&d->sin_addr, body + 4, 4);
        s->sin_port = htons(sport);
        d->sin_port = htons(dport);
        out->addr_len = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;

        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, body, 16);
        memcpy(&d->sin6_addr, body + 16, 16);
        s->sin6_port = htons(sport);
        d->sin6_port = htons(dport);
        out->addr_len = sizeof(*s);
    }
    out->has_addr = true;
    return PROXY_PROTO_DONE;
}

static enum proxy_proto_result
proxy_proto_v2(const uint8_t *buf, size_t len, struct proxy_proto_header *out)
{
    size_t sig = sizeof(proxy_proto_sig), body_len;
    uint8_t cmd, fam;

    if (memcmp(buf, proxy_proto_sig, len < sig ? len : sig) != 0) {
        return PROXY_PROTO_BAD;
    }
    /* spec 2.2: the high nibble of byte 13 is the version (2), the low one the command */
    if (len > 12 && ((buf[12] >> 4) != 2 || (buf[12] & 0x0F) > PROXY_PROTO_V2_CMD_PRX)) {
        return PROXY_PROTO_BAD;
    }
    if (len < PROXY_PROTO_V2_FIXED) {
        return PROXY_PROTO_PARTIAL;
    }
    cmd = buf[12] & 0x0F;
    fam = buf[13];
    body_len = (size_t)buf[14] << 8 | buf[15];
    if (body_len > PROXY_PROTO_V2_MAX_BODY) {
        return PROXY_PROTO_BAD;
    }
    if (cmd == PROXY_PROTO_V2_CMD_PRX &&
        !(fam == PROXY_PROTO_V2_UNSPEC ||
          (fam == PROXY_PROTO_V2_TCP4 && body_len >= PROXY_PROTO_V2_LEN4) ||
          (fam == PROXY_PROTO_V2_TCP6 && body_len >= PROXY_PROTO_V2_LEN6))) {
        return PROXY_PROTO_BAD; /* UNIX, DGRAM, an unknown family, or addresses cut short */
    }
    if (len < PROXY_PROTO_V2_FIXED + body_len) {
        return PROXY_PROTO_PARTIAL;
    }
    out->version = 2;
    out->len = PROXY_PROTO_V2_FIXED + body_len;
    out->has_addr = false;
    /* spec 2.2: LOCAL ignores the family and its block; so does PROXY over AF_UNSPEC */
    if (cmd == PROXY_PROTO_V2_CMD_LOC || fam == PROXY_PROTO_V2_UNSPEC) {
        return PROXY_PROTO_DONE;
    }
    return proxy_proto_v2_addrs(fam, buf + PROXY_PROTO_V2_FIXED, body_len, out);
}

enum proxy_proto_result
proxy_proto_parse(const uint8_t *buf, size_t len, struct proxy_proto_header *out)
{
    if (len == 0) {
        return PROXY_PROTO_PARTIAL;
    }
    if (buf[0] == 'P') {
        return proxy_proto_v1(buf, len, out);
    }
    if (buf[0] == proxy_proto_sig[0]) {
        return proxy_proto_v2(buf, len, out);
    }
    return PROXY_PROTO_BAD;
}

/* ---- writer -------------------------------------------------------------- */

/* SA as IPv6 (an IPv4 one mapped, RFC 4291 s2.5.5.2) into ADDR and its port into *PORT. */
static void
proxy_proto_as_v6(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        memset(addr, 0, 10);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        memcpy(addr, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
    }
}

static bool
proxy_proto_is_inet(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

size_t
proxy_proto_write(enum proxy_proto_version version, const struct sockaddr *src,
                  const struct sockaddr *dst, uint8_t out[PROXY_PROTO_WRITE_MAX])
{
    bool inet = proxy_proto_is_inet(src) && proxy_proto_is_inet(dst);
    bool four = inet && src->sa_family == AF_INET && dst->sa_family == AF_INET;
    uint8_t s6[16], d6[16];
    uint16_t sport = 0, dport = 0;
    size_t n = sizeof(proxy_proto_sig);

    if (inet) {
        proxy_proto_as_v6(src, s6, &sport);
        proxy_proto_as_v6(dst, d6, &dport);
    }
    if (version == PROXY_PROTO_SEND_V1) {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        int len;

        if (!inet) {
            memcpy(out, "PROXY UNKNOWN\r\n", 15);
            return 15;
        }
        inet_ntop(four ? AF_INET : AF_INET6, four ? (const void *)(s6 + 12) : s6, s, sizeof(s));
        inet_ntop(four ? AF_INET : AF_INET6, four ? (const void *)(d6 + 12) : d6, d, sizeof(d));
        len = snprintf((char *)out, PROXY_PROTO_WRITE_MAX, "PROXY %s %s %s %u %u\r\n",
                       four ? "TCP4" : "TCP6", s, d, sport, dport);
        return (size_t)len;
    }
    memcpy(out, proxy_proto_sig, n);
    out[n++] = inet ? 0x21 : 0x20; /* version 2; PROXY, or LOCAL when there is nothing to say */
    out[n++] = !inet ? PROXY_PROTO_V2_UNSPEC : four ? PROXY_PROTO_V2_TCP4 : PROXY_PROTO_V2_TCP6;
    out[n++] = 0;
    out[n++] = !inet ? 0 : four ? PROXY_PROTO_V2_LEN4 : PROXY_PROTO_V2_LEN6;
    if (inet) {
        size_t ip = four ? 4 : 16;

        memcpy(out + n, four ? s6 + 12 : s6, ip);
        memcpy(out + n + ip, four ? d6 + 12 : d6, ip);
        n += 2 * ip;
        out[n++] = (uint8_t)(sport >> 8);
        out[n++] = (uint8_t)sport;
        out[n++] = (uint8_t)(dport >> 8);
        out[n++] = (uint8_t)dport;
    }
    return n;
}
