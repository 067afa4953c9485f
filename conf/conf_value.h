/*
 * Value parsers shared by proxy.conf directives (DESIGN §9): duration, size,
 * unsigned number, flag, address, key rule. Pure: no I/O. Each takes LEN bytes
 * at S (no NUL needed) and returns NULL when fine, otherwise a static phrase
 * saying what is wrong ("is not a duration (use ms, s, m or h)"), which the
 * caller prefixes with file, line and the directive.
 */
#ifndef WSRING_CONF_CONF_VALUE_H
#define WSRING_CONF_CONF_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

#define CONF_VALUE_MAX_URL  1024u                 /* longest public_url */
#define CONF_VALUE_MAX_MSEC (24u * 3600u * 1000u) /* durations above 24h are typos */

/* Returned (this very pointer) when an allocation failed. */
extern const char conf_value_enomem[];

/* A decimal number (digits only, no sign) in MIN..MAX into *OUT. */
const char *conf_value_uint(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);
/*
 * A duration into *OUT_MS: digits and a unit "ms", "s", "m" or "h"; a bare
 * "0" is the only number allowed without a unit. At most CONF_VALUE_MAX_MSEC.
 */
const char *conf_value_msec(const char *s, size_t len, uint64_t *out_ms);
/* A size into *OUT: digits, then nothing (bytes), "k" (1024) or "m" (1024k); case-insensitive. */
const char *conf_value_size(const char *s, size_t len, uint64_t *out);
/* "on" or "off". */
const char *conf_value_flag(const char *s, size_t len, bool *out);
/*
 * "IPv4:port", "[IPv6]:port" or "hostname:port" (RFC 1123 labels) into *OUT,
 * port 1..65535. On success OUT->host is a new string the caller frees; on
 * failure *OUT is untouched.
 */
const char *conf_value_addr(const char *s, size_t len, struct conf_addr *out);
/*
 * "query:NAME", "header:NAME" (NAME an RFC 9110 token), "cookie:NAME" (a
 * token, RFC 6265), "path:N" (N >= 1) or "jwt:CLAIM" (CLAIM 1..255 visible
 * ASCII bytes) into *OUT. On success OUT->name is a
 * new string (NULL for path) the caller frees; on failure *OUT is untouched.
 */
const char *conf_value_key_rule(const char *s, size_t len, struct conf_key_rule *out);

/*
 * "http://HOST[:PORT]" or "https://HOST[:PORT]", with at most one trailing "/"
 * and no path, query or user part; HOST as in conf_value_addr(), PORT 1..65535
 * (without one, the scheme's own applies). On success *OUT is a new string
 * without the trailing "/" that the caller frees; on failure *OUT is untouched.
 */
const char *conf_value_base_url(const char *s, size_t len, char **out);

/*
 * A member's public_url (redirect mode, DESIGN §10): "http://HOST[:PORT][/PATH]"
 * or "https://...", HOST as in conf_value_addr(), PATH of RFC 3986 path bytes
 * (no query, fragment, user part or space), at most CONF_VALUE_MAX_URL bytes.
 * On success *OUT is a new string without trailing "/"s (the request target
 * that follows in a Location brings its own) that the caller frees; on
 * failure *OUT is untouched.
 */
const char *conf_value_public_url(const char *s, size_t len, char **out);

/* True when LEN >= 1 bytes at S form an RFC 9110 token (tchar only). */
bool conf_value_is_token(const char *s, size_t len);
/* True when S is an RFC 1123 host name: dot-separated labels of 1..63 letters, digits, hyphens. */
bool conf_value_is_hostname(const char *s, size_t len);
/* True when both name the same endpoint (IP literals compared as addresses, names ignoring case).
 */
bool conf_value_addr_equal(const struct conf_addr *a, const struct conf_addr *b);
/* Writes ADDR as "host:port" or "[v6]:port" into a new string, or returns NULL on ENOMEM. */
char *conf_value_addr_format(const struct conf_addr *addr);

#endif /* WSRING_CONF_CONF_VALUE_H */
