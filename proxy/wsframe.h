/*
 * WebSocket frame-boundary scanner for the server->client direction (RFC 6455
 * s5.2, DESIGN §3 step 5) and the Close-frame builder. Pure: reads frame
 * headers only, skips payloads, never allocates, never copies payload.
 */
#ifndef WSRING_PROXY_WSFRAME_H
#define WSRING_PROXY_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSFRAME_CLOSE_MAX 32 /* a Close frame with a 2-byte code and a short reason */

enum wsframe_stop {
    WSFRAME_STOP_NONE = 0, /* consume everything */
    WSFRAME_STOP_FRAME,    /* stop right after the first frame end */
    WSFRAME_STOP_MESSAGE   /* stop right after the first message end (a data FIN frame, outside a
                              fragmented message) */
};

struct wsframe {
    uint8_t hdr[14];          /* header bytes of the frame being read, while incomplete */
    uint8_t hdr_len;          /* bytes in hdr; 0 at a frame boundary or inside a payload */
    uint64_t payload_left;    /* payload bytes of the current frame still to skip */
    unsigned in_payload : 1;  /* the header is done, payload_left bytes follow */
    unsigned fragmented : 1;  /* inside a data message whose FIN has not come */
    unsigned cur_fin : 1;     /* the current frame's FIN bit */
    unsigned cur_control : 1; /* the current frame is a control frame (opcode >= 8) */
    unsigned saw_close : 1;   /* the peer sent a Close frame */
    unsigned bad : 1;         /* not a valid frame stream: boundaries are unknown from here on */
};

void wsframe_init(struct wsframe *s);
/*
 * Scans LEN bytes of BUF. With WSFRAME_STOP_NONE returns LEN. Otherwise
 * returns the offset just past the first frame (or message) end within BUF,
 * or LEN if none ends there. Once s->bad is set, returns LEN and finds nothing.
 */
size_t wsframe_scan(struct wsframe *s, const uint8_t *buf, size_t len, enum wsframe_stop stop);
/* True between frames (no header or payload pending). */
bool wsframe_at_frame_boundary(const struct wsframe *s);
/* True between frames and outside any fragmented data message: a Close may go in here. */
bool wsframe_at_message_boundary(const struct wsframe *s);
/*
 * Writes an unmasked (server->client) Close frame with CODE and REASON (at
 * most WSFRAME_CLOSE_MAX - 4 bytes, cut if longer) into OUT. Returns its length.
 */
size_t wsframe_close_build(uint8_t out[WSFRAME_CLOSE_MAX], uint16_t code, const char *reason);

#endif /* WSRING_PROXY_WSFRAME_H */
