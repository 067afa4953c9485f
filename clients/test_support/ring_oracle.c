/*
 * ring_oracle: answers owners, successors and fingerprints from the C ring
 * (ring/ring.c) so that the Python and JavaScript ports can be compared with
 * it. Test-only; the suites compile it into a temporary directory:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I<repo> -o ring_oracle ring_oracle.c <every .c of <repo>/ring> -lxxhash
 *
 * Strings travel as lowercase hex (an empty line is the empty string), so any
 * byte can be tested. Input on stdin, one of:
 *
 *   hash                          then one hex string per line; prints XXH3_64bits of each
 *   ring ALGO VNODES NSUCC        ALGO "ring" or "rendezvous"; then
 *   N                             the number of members, then N lines
 *   IDHEX ADDRHEX WEIGHT          in any order; then one hex key per line until EOF
 *
 * For `ring` it prints "MEMBERSHIP_FP TABLE_FP", then per key
 * "KEYHASH OWNERHEX SUCC1HEX,SUCC2HEX,..." (up to NSUCC successors; "-" for none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ring/member_set.h"
#include "ring/ring.h"

static void
die(const char *what)
{
    fprintf(stderr, "ring_oracle: %s\n", what);
    exit(2);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    die("bad hex");
    return -1;
}

/* Decodes hex LINE (trailing newline allowed) in place; returns the byte count. */
static size_t
unhex(char *line)
{
    size_t len = strcspn(line, "\r\n"), n = 0;

    if (len % 2 != 0) {
        die("odd hex length");
    }
    for (size_t i = 0; i < len; i += 2) {
        line[n++] = (char)(hexval(line[i]) << 4 | hexval(line[i + 1]));
    }
    line[n] = '\0';
    return n;
}

static void
put_hex(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        printf("%02x", *p);
    }
}

static void
do_hash(void)
{
    char *line = NULL;
    size_t cap = 0;

    while (getline(&line, &cap, stdin) != -1) {
        size_t n = unhex(line);

        printf("%016llx\n", (unsigned long long)XXH3_64bits(line, n));
    }
    free(line);
}

static void
do_ring(const char *algo, unsigned vnodes, unsigned nsucc)
{
    struct ring_params params = { strcmp(algo, "rendezvous") == 0 ? RING_ALGO_RENDEZVOUS
                                                                  : RING_ALGO_RING,
                                  vnodes };
    struct member_set *set = member_set_create();
    char *line = NULL, fp[RING_FINGERPRINT_LEN], tfp[RING_FINGERPRINT_LEN];
    size_t cap = 0;
    unsigned n;
    uint32_t *succ = calloc(nsucc + 1, sizeof(*succ));
    struct ring *ring;

    if (set == NULL || succ == NULL || getline(&line, &cap, stdin) == -1 ||
        sscanf(line, "%u", &n) != 1) {
        die("bad member count");
    }
    for (unsigned i = 0; i < n; i++) {
        char *id, *addr, *w, *save = NULL;

        if (getline(&line, &cap, stdin) == -1) {
            die("missing member");
        }
        id = strtok_r(line, " \n", &save);
        addr = strtok_r(NULL, " \n", &save);
        w = strtok_r(NULL, " \n", &save);
        if (id == NULL || addr == NULL || w == NULL) {
            die("bad member line");
        }
        unhex(id);
        unhex(addr);
        if (member_set_add(set, id, addr, (uint32_t)strtoul(w, NULL, 10)) == -1) {
            die("member_set_add failed");
        }
    }
    ring = ring_build(set, &params);
    if (ring == NULL) {
        die("ring_build failed");
    }
    ring_fingerprint_format(ring_membership_fingerprint(ring), fp);
    ring_fingerprint_format(ring_table_fingerprint(ring), tfp);
    printf("%s %s\n", fp, tfp);
    while (getline(&line, &cap, stdin) != -1) {
        size_t len = unhex(line);
        uint64_t h = ring_key_hash(line, len);
        const struct member *m = ring_lookup(ring, line, len);
        size_t k = ring_successors(ring, h, succ, nsucc);

        printf("%016llx ", (unsigned long long)h);
        if (m == NULL) {
            printf("-");
        } else {
            put_hex(m->id);
        }
        printf(" ");
        for (size_t i = 0; i < k; i++) {
            printf(i == 0 ? "" : ",");
            put_hex(member_set_at(ring_members(ring), succ[i])->id);
        }
        printf(k == 0 ? "-\n" : "\n");
        if (k > 0 && (m == NULL || strcmp(member_set_at(ring_members(ring), succ[0])->id, m->id))) {
            die("successors[0] is not the owner");
        }
    }
    free(line);
    free(succ);
    ring_unref(ring);
}

int
main(void)
{
    char *line = NULL, algo[32];
    size_t cap = 0;
    unsigned vnodes, nsucc;

    if (ring_selftest() != 0) {
        die("XXH3 self-test failed");
    }
    if (getline(&line, &cap, stdin) == -1) {
        die("empty input");
    }
    if (strncmp(line, "hash", 4) == 0) {
        do_hash();
    } else if (sscanf(line, "ring %31s %u %u", algo, &vnodes, &nsucc) == 3) {
        do_ring(algo, vnodes, nsucc);
    } else {
        die("first line must be 'hash' or 'ring ALGO VNODES NSUCC'");
    }
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}
