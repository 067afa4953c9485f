/*
 * WebSocket frame-boundary scanner (RFC 6455 s5.2, DESIGN §3 step 5) and the
 * Close-frame builder. Header bytes are collected one at a time, so a header
 * split anywhere across calls reads the same; payloads are skipped by count.
 *
 * After a frame ends, cur_fin and cur_control keep describing that frame
 * until the next header's first two bytes arrive, so a caller that got LEN
 * back can tell whether a message ended exactly there.
 */
#include "proxy/wsframe.h"

#include <string.h>

enum wsframe_opcode {
    WSFRAME_CONTINUATION = 0x0,
    WSFRAME_TEXT = 0x1,
    WSFRAME_BINARY = 0x2,
    WSFRAME_CLOSE = 0x8,
    WSFRAME_PING = 0x9,
    WSFRAME_PONG = 0xa
};

#define WSFRAME_FIN  0x80
#define WSFRAME_RSV1 0x40
#define WSFRAME_RSV  0x70 /* RSV1..RSV3 */
#define WSFRAME_MASK 0x80

void
wsframe_init(struct wsframe *s)
{
    memset(s, 0, sizeof(*s));
}

bool
wsframe_at_frame_boundary(const struct wsframe *s)
{
    return !s->bad && s->hdr_len == 0 && !s->in_payload;
}

bool
wsframe_at_message_boundary(const struct wsframe *s)
{
    return wsframe_at_frame_boundary(s) && !s->fragmented;
}

/* Header length announced by the first two bytes: ext. length and mask key included. */
static size_t
wsframe_header_len(const uint8_t hdr[2])
{
    size_t n = 2;

    if ((hdr[1] & 0x7f) == 126) {
        n += 2;
    } else if ((hdr[1] & 0x7f) == 127) {
        n += 8;
    }
    return (hdr[1] & WSFRAME_MASK) ? n + 4 : n;
}

/* Checks the first two header bytes against RFC 6455 s5.2-5.5 and the message state. */
static bool
wsframe_check_start(struct wsframe *s)
{
    unsigned op = s->hdr[0] & 0x0f;
    bool fin = s->hdr[0] & WSFRAME_FIN;
    unsigned rsv = s->hdr[0] & WSFRAME_RSV;

    s->cur_fin = fin;
    s->cur_control = op >= WSFRAME_CLOSE;
    switch (op) {
    case WSFRAME_CONTINUATION:
        /* RFC 7692 s6.1: RSV1 marks the first frame of a compressed message only */
        return s->fragmented && rsv == 0;
    case WSFRAME_TEXT:
    case WSFRAME_BINARY:
        return !s->fragmented && (rsv & ~WSFRAME_RSV1) == 0;
    case WSFRAME_CLOSE:
    case WSFRAME_PING:
    case WSFRAME_PONG:
        /* RFC 6455 s5.5: control frames are not fragmented and carry <= 125 bytes */
        if (!fin || rsv != 0 || (s->hdr[1] & 0x7f) > 125) {
            return false;
        }
        s->saw_close |= op == WSFRAME_CLOSE;
        return true;
    default:
        return false; /* reserved opcodes */
    }
}

/* The header is complete: sets up the payload. Returns false on a bad length. */
static bool
wsframe_start_payload(struct wsframe *s)
{
    uint64_t n = s->hdr[1] & 0x7f;

    if (n == 126) {
        n = (uint64_t)s->hdr[2] << 8 | s->hdr[3];
    } else if (n == 127) {
        n = 0;
        for (int i = 2; i < 10; i++) {
            n = n << 8 | s->hdr[i];
        }
        if (n >> 63) {
            return false; /* RFC 6455 s5.2: the most significant bit must be 0 */
        }
    }
    if (!s->cur_control) {
        s->fragmented = !s->cur_fin;
    }
    s->hdr_len = 0;
    s->payload_left = n;
    s->in_payload = n > 0;
    return true;
}

/* Takes one header byte. Returns true when it completed a frame with no payload. */
static bool
wsframe_header_byte(struct wsframe *s, uint8_t c)
{
    s->hdr[s->hdr_len++] = c;
    if (s->hdr_len == 2 && !wsframe_check_start(s)) {
        s->bad = 1;
        return false;
    }
    if (s->hdr_len < 2 || s->hdr_len < wsframe_header_len(s->hdr)) {
        return false;
    }
    if (!wsframe_start_payload(s)) {
        s->bad = 1;
        return false;
    }
    return !s->in_payload;
}

static bool
wsframe_stops(const struct wsframe *s, enum wsframe_stop stop)
{
    switch (stop) {
    case WSFRAME_STOP_FRAME:
        return true;
    case WSFRAME_STOP_MESSAGE:
        /* a control frame between fragments does not end the message */
        return s->cur_fin && !s->cur_control;
    case WSFRAME_STOP_NONE:
        break;
    }
    return false;
}

size_t
wsframe_scan(struct wsframe *s, const uint8_t *buf, size_t len, enum wsframe_stop stop)
{
    size_t pos = 0;

    while (pos < len && !s->bad) {
        bool ended;

        if (s->in_payload) {
            uint64_t take = len - pos < s->payload_left ? len - pos : s->payload_left;

            pos += (size_t)take;
            s->payload_left -= take;
            ended = s->payload_left == 0;
            s->in_payload = !ended;
        } else {
            ended = wsframe_header_byte(s, buf[pos++]);
        }
        if (ended && wsframe_stops(s, stop)) {
            return pos;
        }
    }
    return len;
}

size_t
wsframe_close_build(uint8_t out[WSFRAME_CLOSE_MAX], uint16_t code, const char *reason)
{
    size_t rlen = reason != NULL ? strnlen(reason, WSFRAME_CLOSE_MAX - 3) : 0;

    if (rlen > WSFRAME_CLOSE_MAX - 4) {
        rlen = WSFRAME_CLOSE_MAX - 4;
        /* RFC 6455 s7.1.6: the reason is UTF-8, so never cut inside a sequence */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xc0) == 0x80) {
            rlen--;
        }
    }
    out[0] = WSFRAME_FIN | WSFRAME_CLOSE;
    out[1] = (uint8_t)(2 + rlen);
    out[2] = (uint8_t)(code >> 8);
    out[3] = (uint8_t)code;
    if (rlen > 0) {
        memcpy(out + 4, reason, rlen);
    }
    return 4 + rlen;
}
