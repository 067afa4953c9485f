/* test_wsframe.c: the frame scanner and Close builder (RFC 6455 s5, proxy/wsframe.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/wsframe.h"

#define FIN  0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10
#define MASK 0x80

enum {
    OP_CONT = 0x0,
    OP_TEXT = 0x1,
    OP_BIN = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xa
};

/* A growing byte stream of frames; payload bytes are 'x' (masked frames: key 1 2 3 4). */
struct stream {
    uint8_t *buf; /* owned */
    size_t len;
};

static void
stream_add(struct stream *st, uint8_t b0, uint8_t mask, uint64_t n)
{
    size_t hlen = 2 + (n > 65535 ? 8 : n > 125 ? 2 : 0) + (mask ? 4 : 0);
    uint8_t *p;

    st->buf = realloc(st->buf, st->len + hlen + (size_t)n);
    assert_non_null(st->buf);
    p = st->buf + st->len;
    *p++ = b0;
    if (n > 65535) {
        *p++ = mask | 127;
        for (int i = 7; i >= 0; i--) {
            *p++ = (uint8_t)(n >> (8 * i));
        }
    } else if (n > 125) {
        *p++ = mask | 126;
        *p++ = (uint8_t)(n >> 8);
        *p++ = (uint8_t)n;
    } else {
        *p++ = mask | (uint8_t)n;
    }
    if (mask) {
        memcpy(p, "\x01\x02\x03\x04", 4);
        p += 4;
    }
    memset(p, 'x', (size_t)n);
    st->len += hlen + (size_t)n;
}

/*
 * Scans CHUNK (at offset BASE of the stream) with STOP, appending to ENDS the
 * stream offsets where a frame (STOP_FRAME) or a message (STOP_MESSAGE) ends.
 */
static void
scan_chunk(struct wsframe *s, const uint8_t *chunk, size_t len, size_t base, enum wsframe_stop stop,
           size_t *ends, size_t *nends)
{
    size_t off = 0;

    while (off < len) {
        size_t n = wsframe_scan(s, chunk + off, len - off, stop);

        assert_true(n > 0 && n <= len - off);
        off += n;
        if (off < len || (wsframe_at_frame_boundary(s) &&
                          (stop == WSFRAME_STOP_FRAME || (s->cur_fin && !s->cur_control)))) {
            ends[(*nends)++] = base + off;
        }
    }
}

/* Scans ST in pieces of at most STEP bytes (0: one piece), returning the ends found. */
static size_t
scan_stream(const struct stream *st, size_t step, enum wsframe_stop stop, size_t *ends)
{
    struct wsframe s;
    size_t nends = 0;

    wsframe_init(&s);
    if (step == 0) {
        step = st->len;
    }
    for (size_t off = 0; off < st->len; off += step) {
        size_t len = st->len - off < step ? st->len - off : step;
        uint8_t *copy = malloc(len); /* exactly the piece, so ASan sees over-reads */

        assert_non_null(copy);
        memcpy(copy, st->buf + off, len);
        scan_chunk(&s, copy, len, off, stop, ends, &nends);
        free(copy);
    }
    assert_false(s.bad);
    return nends;
}

static void
test_each_length_form_is_one_frame(void **state)
{
    static const uint64_t lengths[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000 };

    (void)state;
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        struct stream st = { NULL, 0 };
        size_t ends[4];
        size_t hlen;

        stream_add(&st, FIN | OP_BIN, 0, lengths[i]);
        hlen = st.len - (size_t)lengths[i];
        assert_int_equal(hlen, lengths[i] > 65535 ? 10 : lengths[i] > 125 ? 4 : 2);
        assert_int_equal(scan_stream(&st, 0, WSFRAME_STOP_FRAME, ends), 1);
        assert_int_equal(ends[0], st.len);
        assert_int_equal(scan_stream(&st, 0, WSFRAME_STOP_MESSAGE, ends), 1);
        assert_int_equal(ends[0], st.len);
        free(st.buf);
    }
}

static void
test_zero_length_frame_ends_after_its_header(void **state)
{
    static const uint8_t two[] = { FIN | OP_TEXT, 0, FIN | OP_PING, 0 };
    struct wsframe s;

    (void)state;
    wsframe_init(&s);
    assert_true(wsframe_at_message_boundary(&s));
    assert_int_equal(wsframe_scan(&s, two, sizeof(two), WSFRAME_STOP_FRAME), 2);
    assert_true(wsframe_at_frame_boundary(&s));
    assert_int_equal(wsframe_scan(&s, two + 2, 2, WSFRAME_STOP_MESSAGE), 2);
    assert_true(wsframe_at_message_boundary(&s));
    assert_true(s.cur_control); /* LEN came back because of a ping, not a message */
}

static void
test_large_64bit_length_is_skipped_by_count(void **state)
{
    static const uint8_t hdr[] = { FIN | OP_BIN, 127, 0, 0, 0, 1, 0, 0, 0, 5, 'a', 'b' };
    struct wsframe s;

    (void)state;
    wsframe_init(&s);
    assert_int_equal(wsframe_scan(&s, hdr, sizeof(hdr), WSFRAME_STOP_FRAME), sizeof(hdr));
    assert_true(s.in_payload);
    assert_int_equal(s.payload_left, (UINT64_C(1) << 32) + 5 - 2);
    assert_false(wsframe_at_frame_boundary(&s));
}

/* text(FIN=0) ping cont(FIN=0) pong cont(FIN=1) text(FIN=1): the fragmented message ends once. */
static struct stream
fragmented_stream(void)
{
    struct stream st = { NULL, 0 };

    stream_add(&st, OP_TEXT, 0, 3);
    stream_add(&st, FIN | OP_PING, 0, 4);
    stream_add(&st, OP_CONT, 0, 200);
    stream_add(&st, FIN | OP_PONG, MASK, 0);
    stream_add(&st, FIN | OP_CONT, 0, 5);
    stream_add(&st, FIN | OP_TEXT, 0, 1);
    return st;
}

static void
test_fragmented_message_ends_after_final_continuation(void **state)
{
    struct stream st = fragmented_stream();
    const size_t frame_ends[] = { 5, 11, 215, 221, 228, 231 };
    size_t ends[8], n;
    struct wsframe s;

    (void)state;
    n = scan_stream(&st, 0, WSFRAME_STOP_FRAME, ends);
    assert_int_equal(n, 6);
    assert_memory_equal(ends, frame_ends, sizeof(frame_ends));
    n = scan_stream(&st, 0, WSFRAME_STOP_MESSAGE, ends);
    assert_int_equal(n, 2);
    assert_int_equal(ends[0], 228);
    assert_int_equal(ends[1], 231);

    /* the ping is a frame boundary inside the message, not a message boundary */
    wsframe_init(&s);
    assert_int_equal(wsframe_scan(&s, st.buf, 11, WSFRAME_STOP_NONE), 11);
    assert_true(wsframe_at_frame_boundary(&s));
    assert_false(wsframe_at_message_boundary(&s));
    assert_true(s.fragmented);
    assert_int_equal(wsframe_scan(&s, st.buf + 11, st.len - 11, WSFRAME_STOP_MESSAGE), 228 - 11);
    assert_true(wsframe_at_message_boundary(&s));
    free(st.buf);
}

static void
test_every_split_gives_the_same_ends(void **state)
{
    struct stream st = fragmented_stream();
    size_t want_frames[8], want_msgs[8], got[8];
    size_t nframes, nmsgs;

    (void)state;
    stream_add(&st, FIN | RSV1 | OP_BIN, MASK, 130); /* permessage-deflate first frame */
    stream_add(&st, FIN | OP_CLOSE, 0, 2);
    nframes = scan_stream(&st, 0, WSFRAME_STOP_FRAME, want_frames);
    nmsgs = scan_stream(&st, 0, WSFRAME_STOP_MESSAGE, want_msgs);
    assert_int_equal(nframes, 8);
    assert_int_equal(nmsgs, 3);
    for (size_t step = 1; step <= st.len; step++) {
        assert_int_equal(scan_stream(&st, step, WSFRAME_STOP_FRAME, got), nframes);
        assert_memory_equal(got, want_frames, nframes * sizeof(got[0]));
        assert_int_equal(scan_stream(&st, step, WSFRAME_STOP_MESSAGE, got), nmsgs);
        assert_memory_equal(got, want_msgs, nmsgs * sizeof(got[0]));
    }
    /* two pieces, cut at every offset */
    for (size_t cut = 1; cut < st.len; cut++) {
        struct wsframe s;
        size_t n = 0;

        wsframe_init(&s);
        scan_chunk(&s, st.buf, cut, 0, WSFRAME_STOP_FRAME, got, &n);
        scan_chunk(&s, st.buf + cut, st.len - cut, cut, WSFRAME_STOP_FRAME, got, &n);
        assert_int_equal(n, nframes);
        assert_memory_equal(got, want_frames, nframes * sizeof(got[0]));
        assert_true(s.saw_close);
    }
    free(st.buf);
}

static void
test_masked_frame_counts_its_key(void **state)
{
    struct stream st = { NULL, 0 };
    size_t ends[2];

    (void)state;
    stream_add(&st, FIN | OP_TEXT, MASK, 300);
    assert_int_equal(st.len, 2 + 2 + 4 + 300);
    assert_int_equal(scan_stream(&st, 0, WSFRAME_STOP_FRAME, ends), 1);
    assert_int_equal(ends[0], st.len);
    free(st.buf);
}

/* clang-format off */
static const struct {
    const char *name;
    uint8_t bytes[12];
    size_t len;
    size_t bad_at; /* the stream is known bad once this many bytes were read */
} bad_streams[] = {
    { "RSV2",                      { FIN | RSV2 | OP_TEXT, 0 },                             2, 2 },
    { "RSV3",                      { FIN | RSV3 | OP_BIN, 0 },                              2, 2 },
    { "RSV1 on a continuation",    { OP_TEXT, 0, FIN | RSV1 | OP_CONT, 0 },                 4, 4 },
    { "RSV1 on a ping",            { FIN | RSV1 | OP_PING, 0 },                             2, 2 },
    { "opcode 3",                  { FIN | 0x3, 0 },                                        2, 2 },
    { "opcode 0xb",                { FIN | 0xb, 0 },                                        2, 2 },
    { "fragmented ping",           { OP_PING, 0 },                                          2, 2 },
    { "fragmented close",          { OP_CLOSE, 0 },                                         2, 2 },
    { "ping of 126",               { FIN | OP_PING, 126, 0, 126 },                          4, 2 },
    { "pong of 127",               { FIN | OP_PONG, 127 },                                  2, 2 },
    { "continuation first",        { FIN | OP_CONT, 0 },                                    2, 2 },
    { "text inside a message",     { OP_TEXT, 1, 'a', FIN | OP_TEXT, 0 },                   5, 5 },
    { "binary inside a message",   { OP_BIN, 0, FIN | OP_PING, 0, OP_BIN, 0 },              6, 6 },
    { "64-bit length MSB",         { FIN | OP_BIN, 127, 0x80, 0, 0, 0, 0, 0, 0, 0 },      10, 10 },
    { "continuation after FIN",    { OP_TEXT, 0, FIN | OP_CONT, 0, OP_CONT, 0 },            6, 6 },
};
/* clang-format on */

static void
test_bad_streams_are_flagged(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_streams) / sizeof(bad_streams[0]); i++) {
        struct wsframe whole, bytewise;
        uint8_t *copy = malloc(bad_streams[i].len);

        memcpy(copy, bad_streams[i].bytes, bad_streams[i].len);
        wsframe_init(&whole);
        assert_int_equal(wsframe_scan(&whole, copy, bad_streams[i].len, WSFRAME_STOP_NONE),
                         bad_streams[i].len);
        if (!whole.bad) {
            fail_msg("%s: not flagged bad", bad_streams[i].name);
        }
        assert_false(wsframe_at_frame_boundary(&whole));
        assert_false(wsframe_at_message_boundary(&whole));
        /* byte by byte it turns bad at a fixed byte, and stays bad */
        wsframe_init(&bytewise);
        for (size_t j = 0; j < bad_streams[i].len; j++) {
            assert_int_equal(wsframe_scan(&bytewise, copy + j, 1, WSFRAME_STOP_FRAME), 1);
            if (bytewise.bad != (j + 1 >= bad_streams[i].bad_at)) {
                fail_msg("%s: bad after %zu bytes, want %zu", bad_streams[i].name, j + 1,
                         bad_streams[i].bad_at);
            }
        }
        free(copy);
    }
}

static void
test_close_frame_sets_saw_close(void **state)
{
    static const uint8_t bytes[] = { FIN | OP_TEXT, 1, 'a', FIN | OP_CLOSE, 2, 0x03, 0xe8 };
    struct wsframe s;

    (void)state;
    wsframe_init(&s);
    assert_int_equal(wsframe_scan(&s, bytes, 3, WSFRAME_STOP_NONE), 3);
    assert_false(s.saw_close);
    assert_int_equal(wsframe_scan(&s, bytes + 3, 4, WSFRAME_STOP_MESSAGE), 4);
    assert_true(s.saw_close);
    assert_true(wsframe_at_message_boundary(&s));
}

static void
test_close_build_bytes(void **state)
{
    static const uint8_t restart[] = { 0x88, 0x11, 0x03, 0xf4, 's', 'e', 'r', 'v', 'i', 'c',
                                       'e',  ' ',  'r',  'e',  's', 't', 'a', 'r', 't' };
    static const uint8_t bare[] = { 0x88, 0x02, 0x03, 0xe9 };
    uint8_t out[WSFRAME_CLOSE_MAX];
    size_t n;

    (void)state;
    n = wsframe_close_build(out, 1012, "service restart");
    assert_int_equal(n, sizeof(restart));
    assert_memory_equal(out, restart, n);
    n = wsframe_close_build(out, 1001, NULL);
    assert_int_equal(n, sizeof(bare));
    assert_memory_equal(out, bare, n);
    assert_int_equal(wsframe_close_build(out, 1001, ""), 4);

    /* cut to WSFRAME_CLOSE_MAX - 4 bytes of reason */
    n = wsframe_close_build(out, 1012, "0123456789abcdefghijklmnopqrstuvwxyz");
    assert_int_equal(n, WSFRAME_CLOSE_MAX);
    assert_int_equal(out[1], WSFRAME_CLOSE_MAX - 2);
    assert_memory_equal(out + 4, "0123456789abcdefghijklmnopqr", WSFRAME_CLOSE_MAX - 4);
    /* ... but never inside a UTF-8 sequence: 27 ASCII bytes, then a 2-byte "é" */
    n = wsframe_close_build(out, 1012, "0123456789abcdefghijklmnopq\xc3\xa9");
    assert_int_equal(n, 4 + 27);
    /* and the frame scans as one valid control frame */
    struct wsframe s;
    wsframe_init(&s);
    assert_int_equal(wsframe_scan(&s, out, n, WSFRAME_STOP_FRAME), n);
    assert_true(wsframe_at_frame_boundary(&s));
    assert_true(s.saw_close);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_length_form_is_one_frame),
        cmocka_unit_test(test_zero_length_frame_ends_after_its_header),
        cmocka_unit_test(test_large_64bit_length_is_skipped_by_count),
        cmocka_unit_test(test_fragmented_message_ends_after_final_continuation),
        cmocka_unit_test(test_every_split_gives_the_same_ends),
        cmocka_unit_test(test_masked_frame_counts_its_key),
        cmocka_unit_test(test_bad_streams_are_flagged),
        cmocka_unit_test(test_close_frame_sets_saw_close),
        cmocka_unit_test(test_close_build_bytes),
    };

    return cmocka_run_group_tests_name("wsframe", tests, NULL, NULL);
}
