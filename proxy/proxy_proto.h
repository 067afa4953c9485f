/*
 * The PROXY protocol, v1 (text) and v2 (binary), as haproxy's
 * proxy-protocol.txt specifies it (DESIGN §12): a pure parser for the header
 * an L4 balancer puts in front of a connection, and a writer for the header
 * wsring puts in front of its backend connections (`send_proxy`). No I/O, no
 * allocation.
 */
#ifndef WSRING_PROXY_PROXY_PROTO_H
#define WSRING_PROXY_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_PROTO_V1_MAX      107  /* spec 2.1: the longest v1 line, CRLF included */
#define PROXY_PROTO_V2_FIXED    16   /* signature, version/command, family, length */
#define PROXY_PROTO_V2_MAX_BODY 2048 /* addresses + TLVs we accept (the spec allows 65535) */
#define PROXY_PROTO_MAX_LEN     (PROXY_PROTO_V2_FIXED + PROXY_PROTO_V2_MAX_BODY)
#define PROXY_PROTO_WRITE_MAX   108 /* enough for proxy_proto_write() in either version */

enum proxy_proto_result {
    PROXY_PROTO_DONE = 0, /* a complete, valid header of out->len bytes */
    PROXY_PROTO_PARTIAL,  /* valid so far: read more (every byte given belongs to the header) */
    PROXY_PROTO_BAD       /* not a PROXY header, or a malformed one: close without an answer */
};

struct proxy_proto_header {
    size_t len;       /* bytes of the header; what follows is the client's own stream */
    unsigned version; /* 1 or 2 */
    bool has_addr;    /* false for v2 LOCAL, v1 UNKNOWN and v2 AF_UNSPEC: use the real peer */
    struct sockaddr_storage src; /* the client, when has_addr (AF_INET or AF_INET6) */
    struct sockaddr_storage dst; /* the address the client connected to, when has_addr */
    socklen_t addr_len;          /* of src and dst, when has_addr */
};

/*
 * Parses the LEN bytes at BUF (no NUL needed) as the start of a PROXY v1 or v2
 * header. On PROXY_PROTO_DONE fills *OUT. v1: "PROXY TCP4|TCP6 SRC DST SPORT
 * DPORT\r\n" with single spaces, strict address and port syntax (no leading
 * zeros), or "PROXY UNKNOWN ...\r\n"; at most PROXY_PROTO_V1_MAX bytes. v2:
 * the 12-byte signature, version 2, command LOCAL or PROXY, family AF_UNSPEC,
 * AF_INET or AF_INET6 over STREAM (UNIX and DGRAM are refused), a length that
 * holds the family's addresses and at most PROXY_PROTO_V2_MAX_BODY, and
 * well-formed TLVs, which are skipped. PROXY_PROTO_PARTIAL promises that the
 * bytes so far are all header bytes (none of the client's stream).
 */
enum proxy_proto_result proxy_proto_parse(const uint8_t *buf, size_t len,
                                          struct proxy_proto_header *out);

enum proxy_proto_version {
    PROXY_PROTO_SEND_V1 = 1,
    PROXY_PROTO_SEND_V2 = 2
};

/*
 * Writes a PROXY header of VERSION for a TCP connection from SRC to DST into
 * OUT (PROXY_PROTO_WRITE_MAX bytes). An AF_INET address beside an AF_INET6
 * one is written as its IPv4-mapped IPv6 form. A family other than AF_INET
 * or AF_INET6 gives "PROXY UNKNOWN\r\n" (v1) or a LOCAL header (v2). Returns
 * the bytes written.
 */
size_t proxy_proto_write(enum proxy_proto_version version, const struct sockaddr *src,
                         const struct sockaddr *dst, uint8_t out[PROXY_PROTO_WRITE_MAX]);

#endif /* WSRING_PROXY_PROXY_PROTO_H */
