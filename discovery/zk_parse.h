/*
 * One ZooKeeper member node -> one member (DESIGN §11). Backends register the
 * way Apache Curator's ServiceDiscovery does: an ephemeral node
 * <path>/<id> whose data is the JSON of a Curator ServiceInstance. Pure: no
 * I/O, no logging; the watch (discovery/zookeeper.c) logs what goes wrong.
 */
#ifndef WSRING_DISCOVERY_ZK_PARSE_H
#define WSRING_DISCOVERY_ZK_PARSE_H

#include <stddef.h>

struct member_set;

#define ZK_PARSE_MAX_ID  1024 /* longest JSON id accepted as a member id */
#define ZK_PARSE_MAX_URL 2048 /* longest payload.metadata.public_url */

/* The phrase zk_parse_member returns when memory ran out (compare the pointer). */
extern const char zk_parse_enomem[];

/*
 * Parses LEN bytes of DATA, a Curator ServiceInstance such as
 *   {"name":"ws-backend","id":"a1b2","address":"10.0.0.5","port":9001,"sslPort":null,
 *    "payload":{"@class":"...ZookeeperInstance","id":"app-1","name":"app",
 *               "metadata":{"weight":"2","public_url":"https://ws5.example.com"}},
 *    "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}
 * and adds it to SET: member id = "id", address "address:port" ("[v6]:port"
 * for an IPv6 literal), weight payload.metadata.weight (a JSON integer or a
 * decimal string, as Spring Cloud Zookeeper writes its string metadata;
 * absent -> 1), public_url payload.metadata.public_url when present.
 * Returns NULL on success, or a static phrase saying what is wrong; SET is
 * then unchanged, except after zk_parse_enomem, when the caller must drop
 * SET (it may hold the member without its public_url):
 * - DATA must be one JSON object (no trailing bytes, no repeated key).
 * - "id": 1..ZK_PARSE_MAX_ID bytes without control bytes; a second node with
 *   an id already in SET is refused as a duplicate.
 * - "address": 1..253 bytes of letters, digits and ".-_:%"; one with ':' or
 *   '%' must be an IPv6 literal (optional "%zone").
 * - "port": an integer 1..65535. wsring connects in plain TCP, so "sslPort"
 *   alone (port null) is refused; sslPort is otherwise ignored.
 * - "payload" absent, null or not an object (Curator's payload type is the
 *   application's) means no metadata; so does an absent or null "metadata".
 * - weight: 1..1000 as a JSON integer or a string of 1 to 4 decimal digits.
 * - public_url: a string "http://..." or "https://..." of visible ASCII,
 *   at most ZK_PARSE_MAX_URL bytes; null means none.
 * "name", "sslPort", "registrationTimeUTC", "serviceType", "uriSpec",
 * "enabled" and unknown fields are ignored: the watched path names the
 * service.
 */
const char *zk_parse_member(const char *data, size_t len, struct member_set *set);

#endif /* WSRING_DISCOVERY_ZK_PARSE_H */
