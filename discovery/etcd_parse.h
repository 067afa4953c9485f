/*
 * etcd v3 JSON gateway answers -> member sets (DESIGN §11, DISCOVERY §2,
 * REAL-SERVERS §1). Pure: no I/O, no logging; discovery/etcd.c logs.
 *
 * Members are keys under a prefix written in etcd's endpoints.Manager format:
 * value {"Op":0,"Addr":"host:port","Metadata":{"weight":N,"public_url":"..."}},
 * member id = the key after the prefix. Keys and values travel base64-encoded
 * (standard alphabet, padded); int64 fields are JSON strings ("revision":"4"),
 * though a bare number is accepted too; fields with default values are
 * omitted (no "kvs" on an empty range, no "type" on a PUT event).
 */
#ifndef WSRING_DISCOVERY_ETCD_PARSE_H
#define WSRING_DISCOVERY_ETCD_PARSE_H

#include <stddef.h>
#include <stdint.h>

struct member_set;

#define ETCD_PARSE_MAX_ID 512 /* bytes of a member id (the key after the prefix) */

enum etcd_watch_kind {
    ETCD_WATCH_CREATED = 0, /* {"result":{"created":true,...}}: the watch is in place */
    ETCD_WATCH_EVENTS,      /* {"result":{"events":[...]}}: members changed */
    ETCD_WATCH_PROGRESS,    /* {"result":{"header":{...}}}: a progress notification */
    ETCD_WATCH_CANCELED     /* {"result":{"canceled":true,...}}: re-list (compaction or not) */
};

/* One message of the watch stream, parsed. */
struct etcd_watch_msg {
    enum etcd_watch_kind kind;
    int64_t revision;           /* header.revision; 0 when absent (a canceled watch has none) */
    int64_t compact_revision;   /* CANCELED: the compaction that ended it; 0 when not compacted */
    struct member_set *members; /* EVENTS: CURRENT with the events applied (caller frees) */
    size_t nevents;
};

/*
 * Encodes LEN bytes of IN as standard padded base64 into OUT (room for
 * 4 * ((LEN + 2) / 3) + 1 bytes, NUL-terminated). Returns the length written.
 */
size_t etcd_base64_encode(const unsigned char *in, size_t len, char *out);
/*
 * Decodes the standard padded base64 text IN (LEN bytes) into OUT (room for
 * 3 * LEN / 4 + 1 bytes; NUL-terminated after the data). Returns the decoded
 * length, or -1 for anything not strictly such text (etcd refuses unpadded
 * input too).
 */
long etcd_base64_decode(const char *in, size_t len, unsigned char *out);

/*
 * Parses the answer of POST /v3/kv/range over PREFIX into a new member set
 * and *REVISION (header.revision, the store revision to watch from + 1).
 * Returns NULL with a static phrase in *WHY for anything else: not JSON, no
 * header.revision, "more":true (a partial answer), a key outside PREFIX or
 * equal to it, an id with a control byte or longer than ETCD_PARSE_MAX_ID, a
 * value that is not the endpoints format (Op other than 0, Addr not
 * "host:port" with a port 1..65535, weight not an integer 1..1000 or such a
 * decimal string, public_url not a string), bad base64. One bad key refuses
 * the whole answer: the caller keeps its previous set. *WHY is NULL on success.
 */
struct member_set *etcd_parse_range(const char *body, size_t len, const char *prefix,
                                    int64_t *revision, const char **why);

/*
 * Parses one line of the watch stream (without its '\n'). For EVENTS, the
 * events are applied in order to a copy of CURRENT (a PUT adds or replaces
 * the member, a DELETE removes it; a DELETE of an unknown key is no change).
 * Returns 0, or -1 with a static phrase in *WHY: not JSON, a gateway error
 * object ({"error":...}), no "result", a bad event (as for etcd_parse_range).
 */
int etcd_parse_watch(const char *line, size_t len, const char *prefix,
                     const struct member_set *current, struct etcd_watch_msg *msg,
                     const char **why);

/*
 * An error answer of the gateway, {"error":"...","message":"...","code":N}:
 * returns the gRPC code N (11 = compacted, 16 = unauthenticated) and copies
 * the message (control bytes and '"' replaced) into MSG. Returns -1 when
 * BODY is no such object.
 */
int etcd_parse_error(const char *body, size_t len, char *msg, size_t msg_len);

/*
 * The answer of POST /v3/auth/authenticate: returns a new copy of "token"
 * (visible ASCII only), or NULL with a phrase in *WHY.
 */
char *etcd_parse_token(const char *body, size_t len, const char **why);

#endif /* WSRING_DISCOVERY_ETCD_PARSE_H */
