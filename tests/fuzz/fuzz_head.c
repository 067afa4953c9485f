/*
 * fuzz_head.c: libFuzzer target for proxy/head.c and proxy/key.c. Properties:
 * finding the end in two chunks (and byte by byte) agrees with one call;
 * parsing the whole input equals parsing just the head; a parsed head is
 * self-consistent; any key extracted fits its cap and holds no control byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "proxy/head.h"
#include "proxy/key.h"

#define FUZZ_KEY_CAP 24 /* small, so the over-cap path is reached */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_name_user[] = "user";
static char fuzz_name_user_id[] = "X-User-Id";
static char fuzz_name_uid[] = "uid";

static const struct conf_key_rule fuzz_rules[] = {
    { CONF_KEY_QUERY, fuzz_name_user, 4, 0 },
    { CONF_KEY_HEADER, fuzz_name_user_id, 9, 0 },
    { CONF_KEY_COOKIE, fuzz_name_uid, 3, 0 },
    { CONF_KEY_PATH, NULL, 0, 2 },
};

/* The end as found on a buffer that grows from SPLIT bytes to SIZE. */
static size_t
fuzz_find_end_split(const char *buf, size_t size, size_t split)
{
    size_t scanned = 0, end = head_find_end(buf, split, &scanned);

    if (end != 0) {
        return end;
    }
    return head_find_end(buf, size, &scanned);
}

/* The end as found on a buffer that grows one byte at a time. */
static size_t
fuzz_find_end_bytewise(const char *buf, size_t size)
{
    size_t scanned = 0;

    for (size_t i = 1; i <= size; i++) {
        size_t end = head_find_end(buf, i, &scanned);

        if (end != 0) {
            return end == i ? end : 0; /* found as soon as its last byte came, or wrong */
        }
    }
    return 0;
}

static void
fuzz_same_head(const struct head *a, const struct head *b)
{
    if (a->len != b->len || a->nheaders != b->nheaders || a->content_length != b->content_length ||
        a->chunked != b->chunked || a->upgrade_ws != b->upgrade_ws ||
        a->minor_version != b->minor_version || a->method != b->method ||
        a->target_len != b->target_len) {
        abort();
    }
}

/* A parsed head stays inside its LEN bytes and has one framing. */
static void
fuzz_check_head(const struct head *h, const char *buf)
{
    if (h->len > 0 &&
        (h->method != buf || h->target <= buf || h->target + h->target_len > buf + h->len)) {
        abort();
    }
    if (h->minor_version > 1 || h->content_length < -1 || (h->chunked && h->content_length >= 0)) {
        abort();
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct head_header *f = &h->headers[i];

        if (f->name_len == 0 || f->name < buf || f->value + f->value_len > buf + h->len ||
            memchr(f->value, '\r', f->value_len) != NULL ||
            memchr(f->value, '\n', f->value_len) != NULL ||
            memchr(f->value, '\0', f->value_len) != NULL) {
            abort();
        }
    }
}

static void
fuzz_check_key(const struct head *h)
{
    char key[FUZZ_KEY_CAP];
    size_t len = 12345;
    enum key_result r = key_extract(h, fuzz_rules, 4, key, sizeof(key), &len);

    if (r == KEY_FOUND) {
        if (len == 0 || len > sizeof(key)) {
            abort();
        }
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f) {
                abort();
            }
        }
    } else if (r != KEY_MISSING && r != KEY_BAD) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct head whole, cut;
    const char *buf = (const char *)data;
    size_t scanned = 0, split, end;
    enum head_result r;

    end = head_find_end(buf, size, &scanned);
    split = size == 0 ? 0 : ((size_t)data[0] * 31 + data[size - 1]) % (size + 1);
    if (fuzz_find_end_split(buf, size, split) != end || fuzz_find_end_bytewise(buf, size) != end) {
        abort();
    }
    r = head_parse(buf, size, &whole, NULL);
    if (end == 0) {
        if (r != HEAD_PARTIAL) {
            abort();
        }
        return 0;
    }
    if (r == HEAD_PARTIAL || head_parse(buf, end, &cut, NULL) != r) {
        abort();
    }
    if (r == HEAD_DONE) {
        fuzz_same_head(&whole, &cut);
        if (whole.len != end) {
            abort();
        }
        fuzz_check_head(&whole, buf);
        fuzz_check_key(&whole);
    }
    return 0;
}
