/*
 * fuzz_wsframe.c: libFuzzer target for proxy/wsframe.c. Properties: scanning
 * in one call finds the same frame and message ends as scanning byte by byte,
 * both end in the same state, and no returned offset exceeds the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Byte by byte: marks in FRAME_END[i] / MSG_END[i] that a frame / message ends at offset i. */
static void
fuzz_scan_bytewise(struct wsframe *s, const uint8_t *data, size_t size, uint8_t *frame_end,
                   uint8_t *msg_end)
{
    wsframe_init(s);
    for (size_t i = 0; i < size; i++) {
        if (wsframe_scan(s, data + i, 1, WSFRAME_STOP_FRAME) != 1) {
            abort();
        }
        frame_end[i + 1] = wsframe_at_frame_boundary(s);
        msg_end[i + 1] = frame_end[i + 1] && s->cur_fin && !s->cur_control;
        if (wsframe_at_message_boundary(s) && !frame_end[i + 1]) {
            abort();
        }
    }
}

/*
 * In as few calls as STOP allows: every end found must be marked in ENDS, and
 * as many must be found as are marked. MESSAGE says which kind STOP finds.
 */
static void
fuzz_scan_whole(struct wsframe *s, const uint8_t *data, size_t size, enum wsframe_stop stop,
                const uint8_t *ends)
{
    size_t off = 0, found = 0, marked = 0;

    wsframe_init(s);
    while (off < size) {
        size_t n = wsframe_scan(s, data + off, size - off, stop);

        if (n == 0 || n > size - off) {
            abort();
        }
        off += n;
        if (off < size || (wsframe_at_frame_boundary(s) &&
                           (stop == WSFRAME_STOP_FRAME || (s->cur_fin && !s->cur_control)))) {
            if (!ends[off]) {
                abort();
            }
            found++;
        }
    }
    for (size_t i = 1; i <= size; i++) {
        marked += ends[i];
    }
    if (found != marked) {
        abort();
    }
}

static void
fuzz_same_state(const struct wsframe *a, const struct wsframe *b)
{
    if (a->hdr_len != b->hdr_len || memcmp(a->hdr, b->hdr, a->hdr_len) != 0 ||
        a->payload_left != b->payload_left || a->in_payload != b->in_payload ||
        a->fragmented != b->fragmented || a->cur_fin != b->cur_fin ||
        a->cur_control != b->cur_control || a->saw_close != b->saw_close || a->bad != b->bad) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *frame_end = calloc(size + 1, 1), *msg_end = calloc(size + 1, 1);
    struct wsframe bytewise, whole;

    if (frame_end == NULL || msg_end == NULL) {
        abort();
    }
    fuzz_scan_bytewise(&bytewise, data, size, frame_end, msg_end);
    fuzz_scan_whole(&whole, data, size, WSFRAME_STOP_FRAME, frame_end);
    fuzz_same_state(&bytewise, &whole);
    fuzz_scan_whole(&whole, data, size, WSFRAME_STOP_MESSAGE, msg_end);
    fuzz_same_state(&bytewise, &whole);
    wsframe_init(&whole);
    if (wsframe_scan(&whole, data, size, WSFRAME_STOP_NONE) != size) {
        abort();
    }
    fuzz_same_state(&bytewise, &whole);
    free(frame_end);
    free(msg_end);
    return 0;
}
