/*
 * fuzz_proxy_proto.c: libFuzzer target for proxy/proxy_proto.c. Properties:
 * a parsed header is no longer than the input; every proper prefix of it is
 * PARTIAL (the conn reads it in any pieces and never past its end); bytes
 * after it do not change the result; what send_proxy would write for its
 * addresses parses back to the same addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_same_addrs(const struct proxy_proto_header *a, const struct proxy_proto_header *b)
{
    if (a->has_addr != b->has_addr ||
        (a->has_addr && (a->addr_len != b->addr_len || memcmp(&a->src, &b->src, a->addr_len) != 0 ||
                         memcmp(&a->dst, &b->dst, a->addr_len) != 0))) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_proto_header h, again;
    uint8_t *copy;
    uint8_t out[PROXY_PROTO_WRITE_MAX];

    if (proxy_proto_parse(data, size, &h) != PROXY_PROTO_DONE) {
        return 0;
    }
    if (h.len == 0 || h.len > size || h.len > PROXY_PROTO_MAX_LEN) {
        abort();
    }
    copy = malloc(h.len); /* exactly the header: ASan sees any read past it */
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, h.len);
    if (proxy_proto_parse(copy, h.len, &again) != PROXY_PROTO_DONE || again.len != h.len) {
        abort();
    }
    fuzz_same_addrs(&h, &again);
    for (size_t n = 0; n < h.len; n++) {
        if (proxy_proto_parse(copy, n, &again) != PROXY_PROTO_PARTIAL) {
            abort();
        }
    }
    free(copy);
    if (h.has_addr) {
        for (int v = PROXY_PROTO_SEND_V1; v <= PROXY_PROTO_SEND_V2; v++) {
            size_t n = proxy_proto_write((enum proxy_proto_version)v, (struct sockaddr *)&h.src,
                                         (struct sockaddr *)&h.dst, out);

            if (proxy_proto_parse(out, n, &again) != PROXY_PROTO_DONE || again.len != n) {
                abort();
            }
            fuzz_same_addrs(&h, &again);
        }
    }
    return 0;
}
