/* Value parsers for proxy.conf directives (DESIGN §9); see conf_value.h for the contracts. */
#include "conf/conf_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONF_VALUE_HOST_MAX  253 /* RFC 1035 s2.3.4, without the trailing dot */
#define CONF_VALUE_LABEL_MAX 63
#define CONF_VALUE_PATH_MAX  64 /* deepest path:N segment */

const char conf_value_enomem[] = "cannot allocate memory";

static const char conf_value_bad_addr[] =
    "is not an address (use IPv4:port, [IPv6]:port or host:port)";
static const char conf_value_bad_url[] = "is not a URL (use http://host:port or https://host:port)";
static const char conf_value_bad_rule[] =
    "is not a key rule (use query:NAME, header:NAME, cookie:NAME, path:N or jwt:CLAIM)";

static bool
conf_value_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads the leading digits of S (at most LEN) into *OUT, saturating at MAX + 1. Returns their
 * count. */
static size_t
conf_value_digits(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < len && conf_value_is_digit(s[i]); i++) {
        if (v <= max) {
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
    }
    *out = v > max ? max + 1 : v;
    return i;
}

const char *
conf_value_uint(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;

    /* Saturate below UINT64_MAX so that max + 1 cannot wrap. */
    if (len == 0 || conf_value_digits(s, len, UINT64_MAX / 16, &v) != len) {
        return "is not a number";
    }
    if (v < min || v > max) {
        return "is out of range";
    }
    *out = v;
    return NULL;
}

const char *
conf_value_msec(const char *s, size_t len, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 } };
    uint64_t v;
    size_t n = conf_value_digits(s, len, CONF_VALUE_MAX_MSEC, &v);

    if (n == 0) {
        return "is not a duration (use ms, s, m or h)";
    }
    if (n == len && v == 0) {
        *out_ms = 0; /* a bare "0" needs no unit */
        return NULL;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (len - n == strlen(units[i].unit) && memcmp(s + n, units[i].unit, len - n) == 0) {
            if (v > CONF_VALUE_MAX_MSEC / units[i].ms) {
                return "is longer than 24h";
            }
            *out_ms = v * units[i].ms;
            return NULL;
        }
    }
    return "is not a duration (use ms, s, m or h)";
}

const char *
conf_value_size(const char *s, size_t len, uint64_t *out)
{
    const uint64_t max = (uint64_t)1 << 40; /* far above any sane limit, far below overflow */
    uint64_t v, scale = 1;
    size_t n = conf_value_digits(s, len, max, &v);

    if (n + 1 == len && (s[n] == 'k' || s[n] == 'K')) {
        scale = 1024;
    } else if (n + 1 == len && (s[n] == 'm' || s[n] == 'M')) {
        scale = 1024 * 1024;
    } else if (n != len) {
        n = 0;
    }
    if (n == 0) {
        return "is not a size (use a number of bytes, k or m)";
    }
    if (v > max / scale) {
        return "is too large";
    }
    *out = v * scale;
    return NULL;
}

const char *
conf_value_flag(const char *s, size_t len, bool *out)
{
    if (len == 2 && memcmp(s, "on", 2) == 0) {
        *out = true;
        return NULL;
    }
    if (len == 3 && memcmp(s, "off", 3) == 0) {
        *out = false;
        return NULL;
    }
    return "is not on or off";
}

bool
conf_value_is_token(const char *s, size_t len)
{
    /* RFC 9110 s5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
     * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
    static const char punct[] = "!#$%&'*+-.^_`|~";

    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum =
            conf_value_is_digit((char)c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

        if (!alnum && (c == '\0' || strchr(punct, c) == NULL)) {
            return false;
        }
    }
    return true;
}

/* True when S holds 1..63 letters, digits and inner hyphens (RFC 1123 s2.1). */
static bool
conf_value_is_label(const char *s, size_t len)
{
    if (len == 0 || len > CONF_VALUE_LABEL_MAX || s[0] == '-' || s[len - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!conf_value_is_digit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            c != '-') {
            return false;
        }
    }
    return true;
}

bool
conf_value_is_hostname(const char *s, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > CONF_VALUE_HOST_MAX) {
        return false;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!conf_value_is_label(s + start, i - start)) {
                return false;
            }
            start = i + 1;
        }
    }
    return true;
}

/* Parses the port after the last colon: 1..5 digits, 1..65535. */
static const char *
conf_value_port(const char *s, size_t len, uint16_t *out)
{
    uint64_t v;

    if (len > 5 || conf_value_uint(s, len, 1, 65535, &v) != NULL) {
        return "has a bad port (use 1..65535)";
    }
    *out = (uint16_t)v;
    return NULL;
}

/* Checks HOST (LEN bytes, no brackets) as an IPv6 literal (BRACKETED) or IPv4 literal or name. */
static const char *
conf_value_host(const char *host, size_t len, bool bracketed)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned char bin[sizeof(struct in6_addr)];
    size_t i;

    if (bracketed) {
        if (len == 0 || len >= sizeof(buf)) {
            return "has a bad IPv6 address";
        }
        memcpy(buf, host, len);
        buf[len] = '\0';
        return inet_pton(AF_INET6, buf, bin) == 1 ? NULL : "has a bad IPv6 address";
    }
    if (memchr(host, ':', len) != NULL) {
        return "has an IPv6 address without [ ] around it";
    }
    for (i = 0; i < len && (conf_value_is_digit(host[i]) || host[i] == '.'); i++) {
    }
    if (len > 0 && i == len) { /* only digits and dots: an IPv4 literal, never a name */
        if (len >= sizeof(buf)) {
            return "has a bad IPv4 address";
        }
        memcpy(buf, host, len);
        buf[len] = '\0';
        return inet_pton(AF_INET, buf, bin) == 1 ? NULL : "has a bad IPv4 address";
    }
    return conf_value_is_hostname(host, len) ? NULL : "has a bad host name";
}

const char *
conf_value_addr(const char *s, size_t len, struct conf_addr *out)
{
    const char *colon = NULL, *host = s, *what;
    size_t host_len;
    bool bracketed = len > 0 && s[0] == '[';
    uint16_t port;
    char *copy;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == ':') {
            colon = s + i;
        }
    }
    if (colon == NULL) {
        return conf_value_bad_addr;
    }
    host_len = (size_t)(colon - s);
    if (bracketed) {
        if (host_len < 2 || s[host_len - 1] != ']') {
            return conf_value_bad_addr;
        }
        host++;
        host_len -= 2;
    }
    what = conf_value_host(host, host_len, bracketed);
    if (what == NULL) {
        what = conf_value_port(colon + 1, len - (size_t)(colon + 1 - s), &port);
    }
    if (what != NULL) {
        return what;
    }
    copy = strndup(host, host_len);
    if (copy == NULL) {
        return conf_value_enomem;
    }
    out->host = copy;
    out->port = port;
    return NULL;
}

/* Checks S (LEN bytes) as "HOST" or "HOST:PORT", HOST as in conf_value_addr(). */
static const char *
conf_value_authority(const char *s, size_t len)
{
    const char *host = s, *port = NULL, *close;
    size_t host_len = len;
    bool bracketed = len > 0 && s[0] == '[';
    uint16_t n;
    const char *what;

    if (bracketed) {
        close = memchr(s, ']', len);
        if (close == NULL || (close + 1 < s + len && close[1] != ':')) {
            return conf_value_bad_url;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        port = close + 1 < s + len ? close + 2 : NULL;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (s[i] == ':') {
                port = s + i + 1;
                host_len = i;
            }
        }
    }
    what = conf_value_host(host, host_len, bracketed);
    if (what == NULL && port != NULL) {
        what = conf_value_port(port, (size_t)(s + len - port), &n);
    }
    return what;
}

const char *
conf_value_base_url(const char *s, size_t len, char **out)
{
    size_t skip, end = len;
    const char *what;
    char *copy;

    if (len > 7 && memcmp(s, "http://", 7) == 0) {
        skip = 7;
    } else if (len > 8 && memcmp(s, "https://", 8) == 0) {
        skip = 8;
    } else {
        return conf_value_bad_url;
    }
    if (s[end - 1] == '/') {
        end--;
    }
    if (memchr(s + skip, '/', end - skip) != NULL) {
        return "has a path (use http://host:port or https://host:port)";
    }
    what = conf_value_authority(s + skip, end - skip);
    if (what != NULL) {
        return what;
    }
    copy = strndup(s, end);
    if (copy == NULL) {
        return conf_value_enomem;
    }
    *out = copy;
    return NULL;
}

/* RFC 3986 path bytes: unreserved, sub-delims, ":", "@", "/" and "%" (of a %XX escape). */
static bool
conf_value_is_path_byte(char c)
{
    return conf_value_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=:@/%", c) != NULL);
}

const char *
conf_value_public_url(const char *s, size_t len, char **out)
{
    size_t skip, end = len, slash;
    const char *what, *path;
    char *copy;

    if (len > 7 && memcmp(s, "http://", 7) == 0) {
        skip = 7;
    } else if (len > 8 && memcmp(s, "https://", 8) == 0) {
        skip = 8;
    } else {
        return "is not an http:// or https:// URL";
    }
    if (len > CONF_VALUE_MAX_URL) {
        return "is longer than 1024 bytes";
    }
    path = memchr(s + skip, '/', len - skip);
    slash = path == NULL ? len : (size_t)(path - s);
    what = conf_value_authority(s + skip, slash - skip);
    if (what != NULL) {
        return what;
    }
    for (size_t i = slash; i < len; i++) {
        if (!conf_value_is_path_byte(s[i])) {
            return "has a byte that does not belong in a URL path (no query, fragment or space)";
        }
        if (s[i] == '%' && (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                            !isxdigit((unsigned char)s[i + 2]))) {
            return "has a \"%\" that is not a %XX escape";
        }
    }
    while (end > slash && s[end - 1] == '/') {
        end--; /* the request target brings its own "/" */
    }
    copy = strndup(s, end);
    if (copy == NULL) {
        return conf_value_enomem;
    }
    *out = copy;
    return NULL;
}

/* RFC 3986 query characters less "&", "=" (separators) and "%" (names are matched undecoded). */
static bool
conf_value_is_query_name(const char *s, size_t len)
{
    static const char punct[] = "-._~!$'()*+,;:@/?";

    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!conf_value_is_digit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            (c == '\0' || strchr(punct, c) == NULL)) {
            return false;
        }
    }
    return true;
}

/* A JWT claim name (RFC 7519 s4: any string; we take the visible ASCII ones, "sub",
 * "https://x/uid"). */
static bool
conf_value_is_claim_name(const char *s, size_t len)
{
    if (len == 0 || len > 255) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* Returns the key source S starts with ("query:" ...), setting *PREFIX_LEN, or the count. */
static enum conf_key_source
conf_value_key_source(const char *s, size_t len, size_t *prefix_len)
{
    static const char *const prefixes[CONF_KEY_SOURCE_COUNT] = {
        [CONF_KEY_QUERY] = "query:", [CONF_KEY_HEADER] = "header:", [CONF_KEY_COOKIE] = "cookie:",
        [CONF_KEY_PATH] = "path:",   [CONF_KEY_JWT] = "jwt:",
    };

    for (int i = 0; i < CONF_KEY_SOURCE_COUNT; i++) {
        size_t n = strlen(prefixes[i]);

        if (len >= n && memcmp(s, prefixes[i], n) == 0) {
            *prefix_len = n;
            return (enum conf_key_source)i;
        }
    }
    return CONF_KEY_SOURCE_COUNT;
}

const char *
conf_value_key_rule(const char *s, size_t len, struct conf_key_rule *out)
{
    size_t n = 0;
    enum conf_key_source source = conf_value_key_source(s, len, &n);
    const char *name = s + n;
    size_t name_len = len - n;
    uint64_t segment = 0;
    char *copy = NULL;

    switch (source) {
    case CONF_KEY_QUERY:
        if (!conf_value_is_query_name(name, name_len)) {
            return "has a bad query parameter name";
        }
        break;
    case CONF_KEY_HEADER:
    case CONF_KEY_COOKIE:
        if (!conf_value_is_token(name, name_len)) {
            return "has a bad name (use an RFC 9110 token)";
        }
        break;
    case CONF_KEY_PATH:
        if (conf_value_uint(name, name_len, 1, CONF_VALUE_PATH_MAX, &segment) != NULL) {
            return "has a bad path segment (use 1..64)";
        }
        break;
    case CONF_KEY_JWT:
        if (!conf_value_is_claim_name(name, name_len)) {
            return "has a bad claim name (use 1..255 visible ASCII characters)";
        }
        break;
    default:
        return conf_value_bad_rule;
    }
    if (source != CONF_KEY_PATH) {
        copy = strndup(name, name_len);
        if (copy == NULL) {
            return conf_value_enomem;
        }
    }
    out->source = source;
    out->name = copy;
    out->name_len = copy == NULL ? 0 : name_len;
    out->segment = (unsigned)segment;
    return NULL;
}

/* Fills BIN with HOST as an address of FAMILY; false when it is not one. */
static bool
conf_value_host_bin(const char *host, int family, unsigned char bin[sizeof(struct in6_addr)])
{
    memset(bin, 0, sizeof(struct in6_addr));
    return inet_pton(family, host, bin) == 1;
}

bool
conf_value_addr_equal(const struct conf_addr *a, const struct conf_addr *b)
{
    static const int families[] = { AF_INET, AF_INET6 };
    unsigned char ba[sizeof(struct in6_addr)], bb[sizeof(struct in6_addr)];

    if (a->host == NULL || b->host == NULL) {
        return a->host == b->host;
    }
    if (a->port != b->port) {
        return false;
    }
    for (size_t i = 0; i < 2; i++) {
        bool ia = conf_value_host_bin(a->host, families[i], ba);
        bool ib = conf_value_host_bin(b->host, families[i], bb);

        if (ia || ib) {
            return ia && ib && memcmp(ba, bb, sizeof(ba)) == 0;
        }
    }
    return strcasecmp(a->host, b->host) == 0;
}

char *
conf_value_addr_format(const struct conf_addr *addr)
{
    bool v6 = strchr(addr->host, ':') != NULL;
    size_t size = strlen(addr->host) + sizeof("[]:65535");
    char *text = malloc(size);

    if (text != NULL) {
        snprintf(text, size, v6 ? "[%s]:%u" : "%s:%u", addr->host, (unsigned)addr->port);
    }
    return text;
}
