/*
 * Consul's health answer -> member set (DESIGN §4, DISCOVERY §1.2). Pure: no
 * I/O, no logging; the watch (discovery/consul.c) logs what goes wrong.
 */
#ifndef WSRING_DISCOVERY_CONSUL_PARSE_H
#define WSRING_DISCOVERY_CONSUL_PARSE_H

#include <stddef.h>

struct member_set;

/*
 * Parses LEN bytes of BODY, the answer of GET /v1/health/service/<name>, into a
 * new member set: one member per entry, id "<Node.Node>/<Service.ID>",
 * address Service.Address (falling back to Node.Address) with Service.Port
 * ("host:port", IPv6 as "[v6]:port"), weight Service.Weights.Passing (absent: 1).
 * Returns NULL with a static phrase in *WHY for anything that is not such an
 * answer (not JSON, not an array, an entry without Node.Node / Service.ID /
 * an address / a port in 1..65535, a weight that is not an integer in
 * 1..MEMBER_SET_MAX_WEIGHT, a duplicate id, ENOMEM). An empty array gives an
 * empty set (the caller decides what an empty answer means). Pure: no I/O.
 *
 * Details of the contract:
 * - BODY needs no NUL and is only read within LEN bytes. The whole body must
 *   be one JSON value (trailing bytes are refused); objects with a repeated
 *   key are refused too ("is not JSON"): Go's encoder never writes one, and
 *   parsers disagree on which copy wins.
 * - One bad entry refuses the whole answer, so the caller keeps its previous
 *   set; there is no partial result. *WHY names the field, not the entry.
 * - Node.Node and Service.ID are non-empty strings without control bytes.
 *   Ids are only ever compared bytewise: "a/b" + "/" + "c" and "a" + "/" +
 *   "b/c" are the same id, so such an answer is refused as a duplicate.
 * - An empty or absent Service.Address means Node.Address. The address is
 *   1..253 bytes of letters, digits and ".-_:%"; one with ':' or '%' must be
 *   an IPv6 literal (inet_pton, optional "%zone") and gets brackets; anything
 *   else (an IPv4 literal, a host name) is kept as is. Port 0 (registered
 *   without a port) is refused with its own phrase.
 * - Service.Weights absent or null means weight 1, and so does an absent
 *   Weights.Passing. Consul's agent refuses Passing < 1 at registration, so 0,
 *   negative or fractional means a broken answer. Consul allows up to 65535;
 *   a Passing above MEMBER_SET_MAX_WEIGHT is refused here all the same.
 * - Service.Meta.public_url, when present, is the member's public_url
 *   (redirect mode, DESIGN §10): a string that conf_value_public_url()
 *   accepts (http:// or https://, host, optional port and path), kept without
 *   trailing "/"s. Anything else there (not a string, another scheme) refuses
 *   the answer like a bad weight does. Service.Meta null or absent: no url.
 * - Everything else (Tags, the rest of Meta, TaggedAddresses, Checks,
 *   unknown fields) is ignored.
 * On success *WHY is set to NULL. The caller destroys the set.
 */
struct member_set *consul_parse_health(const char *body, size_t len, const char **why);

#endif /* WSRING_DISCOVERY_CONSUL_PARSE_H */
