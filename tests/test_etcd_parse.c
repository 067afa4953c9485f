/*
 * test_etcd_parse.c: etcd v3 gateway answers -> member sets (DESIGN §11,
 * DISCOVERY §2, REAL-SERVERS §1). The payloads have the exact shape etcd
 * 3.4.23's gateway answered with (int64 as strings, base64 keys and values,
 * default fields omitted). Every body is a heap copy of exactly its bytes,
 * without a NUL, so ASan sees any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery/etcd_parse.h"
#include "ring/member_set.h"

#define PREFIX "/services/ws-backend/"
#define HDR                                                                                        \
    "\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":\"10276657743932975437\","
#define S(lit)  lit, sizeof(lit) - 1
#define HDR_END "\"raft_term\":\"2\"}"

/* A heap buffer holding LEN bytes of TEXT and no NUL. */
static char *
heap(const char *text, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);

    assert_non_null(p);
    memcpy(p, text, len);
    return p;
}

static char *
b64(const char *text)
{
    char *out = malloc(4 * ((strlen(text) + 2) / 3) + 1);

    assert_non_null(out);
    etcd_base64_encode((const unsigned char *)text, strlen(text), out);
    return out;
}

/* A kv object as the gateway writes it: base64 key and value, int64 strings. */
static char *
kv(const char *id, const char *value, const char *lease)
{
    char key[600];
    char *k, *v, *out = malloc(4096);

    snprintf(key, sizeof(key), PREFIX "%s", id);
    k = b64(key);
    v = b64(value);
    snprintf(out, 4096,
             "{\"key\":\"%s\",\"create_revision\":\"5\",\"mod_revision\":\"7\",\"version\":\"2\","
             "\"value\":\"%s\"%s%s%s}",
             k, v, lease ? ",\"lease\":\"" : "", lease ? lease : "", lease ? "\"" : "");
    free(k);
    free(v);
    return out;
}

static struct member_set *
range(const char *body, int64_t *rev, const char **why)
{
    char *copy = heap(body, strlen(body));
    struct member_set *set = etcd_parse_range(copy, strlen(body), PREFIX, rev, why);

    free(copy);
    return set;
}

static void
test_base64_round_trip_and_strictness(void **state)
{
    unsigned char out[64];
    char enc[64];

    (void)state;
    assert_int_equal(etcd_base64_encode((const unsigned char *)"/wsring/members/b", 17, enc), 24);
    assert_string_equal(enc, "L3dzcmluZy9tZW1iZXJzL2I=");
    assert_int_equal(etcd_base64_decode(enc, strlen(enc), out), 17);
    assert_string_equal((char *)out, "/wsring/members/b");
    assert_int_equal(etcd_base64_decode("", 0, out), 0);
    assert_int_equal(etcd_base64_decode("YQ==", 4, out), 1);
    assert_int_equal(etcd_base64_decode("YWI=", 4, out), 2);
    /* etcd refuses unpadded input: so do we */
    assert_int_equal(etcd_base64_decode("YQ", 2, out), -1);
    assert_int_equal(etcd_base64_decode("Y===", 4, out), -1);
    assert_int_equal(etcd_base64_decode("YQ=a", 4, out), -1);
    assert_int_equal(etcd_base64_decode("YQ==YQ==", 8, out), -1); /* padding only at the end */
    assert_int_equal(etcd_base64_decode("YR==", 4, out), -1);     /* non-canonical bits */
    assert_int_equal(etcd_base64_decode("Y-_a", 4, out), -1);     /* URL alphabet */
}

static void
test_range_of_three_members(void **state)
{
    char *a = kv("ws-a", "{\"Op\":0,\"Addr\":\"127.0.0.1:9001\",\"Metadata\":null}",
                 "7587878129417366532");
    char *b = kv("ws-b",
                 "{\"Op\":0,\"Addr\":\"10.0.0.2:9002\",\"Metadata\":{\"weight\":3,"
                 "\"public_url\":\"wss://b.example.com\",\"zone\":\"eu\"},\"Extra\":[1]}",
                 NULL);
    char *c = kv("ws-c", "{\"Addr\":\"[::1]:9003\",\"Metadata\":{\"weight\":\"2\"}}", NULL);
    char body[16384];
    const char *why = "x";
    int64_t rev = 0;
    struct member_set *set;
    const struct member *m;

    (void)state;
    /* out of order on purpose: the set sorts */
    snprintf(body, sizeof(body),
             "{" HDR "\"revision\":\"12\"," HDR_END ",\"kvs\":[%s,%s,%s],\"count\":\"3\"}", c, a,
             b);
    set = range(body, &rev, &why);
    assert_non_null(set);
    assert_null(why);
    assert_int_equal(rev, 12);
    assert_int_equal(member_set_count(set), 3);
    m = member_set_at(set, 0);
    assert_string_equal(m->id, "ws-a");
    assert_string_equal(m->address, "127.0.0.1:9001");
    assert_int_equal(m->weight, 1);
    assert_null(m->public_url);
    m = member_set_at(set, 1);
    assert_string_equal(m->id, "ws-b");
    assert_int_equal(m->weight, 3);
    assert_string_equal(m->public_url, "wss://b.example.com");
    m = member_set_at(set, 2);
    assert_string_equal(m->address, "[::1]:9003");
    assert_int_equal(m->weight, 2); /* a decimal string, as Spring writes it */
    member_set_destroy(set);
    free(a);
    free(b);
    free(c);
}

static void
test_empty_range_has_no_kvs(void **state)
{
    const char *why = "x";
    int64_t rev = 0;
    struct member_set *set = range("{" HDR "\"revision\":\"1\"," HDR_END "}", &rev, &why);

    (void)state;
    assert_non_null(set);
    assert_int_equal(member_set_count(set), 0);
    assert_int_equal(rev, 1);
    member_set_destroy(set);
    /* a bare number is accepted for int64 too (etcdctl -w json writes those) */
    set = range("{\"header\":{\"revision\":9223372036854775807}}", &rev, &why);
    assert_non_null(set);
    assert_int_equal(rev, INT64_MAX);
    member_set_destroy(set);
}

struct bad_range {
    const char *value; /* a member's JSON value, or NULL to use BODY */
    const char *body;
    const char *why;
};

static void
test_bad_ranges_are_refused(void **state)
{
    static const struct bad_range rows[] = {
        { "{\"Op\":1,\"Addr\":\"127.0.0.1:1\"}", NULL, "kv.value has an Op other than 0 (Add)" },
        { "{\"Op\":0}", NULL, "Addr is missing or not a string" },
        { "{\"Addr\":\"127.0.0.1\"}", NULL, "Addr is not \"host:port\" with a port in 1..65535" },
        { "{\"Addr\":\"127.0.0.1:0\"}", NULL, "Addr is not \"host:port\" with a port in 1..65535" },
        { "{\"Addr\":\"127.0.0.1:65536\"}", NULL,
          "Addr is not \"host:port\" with a port in 1..65535" },
        { "{\"Addr\":\":80\"}", NULL, "Addr is not \"host:port\" with a port in 1..65535" },
        { "{\"Addr\":\"::1:80\"}", NULL,
          "Addr's host has a byte other than a letter, a digit or one of \".-_\" (write IPv6 as "
          "[addr]:port)" },
        { "{\"Addr\":\"[zz]:80\"}", NULL, "Addr has a bad [IPv6] host" },
        { "{\"Addr\":\"a b:80\"}", NULL,
          "Addr's host has a byte other than a letter, a digit or one of \".-_\" (write IPv6 as "
          "[addr]:port)" },
        { "{\"Addr\":\"h:1\",\"Metadata\":{\"weight\":0}}", NULL,
          "Metadata.weight is not an integer in 1..1000" },
        { "{\"Addr\":\"h:1\",\"Metadata\":{\"weight\":1001}}", NULL,
          "Metadata.weight is not an integer in 1..1000" },
        { "{\"Addr\":\"h:1\",\"Metadata\":{\"weight\":\"2x\"}}", NULL,
          "Metadata.weight is not an integer in 1..1000" },
        { "{\"Addr\":\"h:1\",\"Metadata\":{\"weight\":1.5}}", NULL,
          "Metadata.weight is not an integer in 1..1000" },
        { "{\"Addr\":\"h:1\",\"Metadata\":{\"public_url\":7}}", NULL,
          "Metadata.public_url is not a string" },
        { "{\"Addr\":\"h:1\",\"Metadata\":{\"public_url\":\"a b\"}}", NULL,
          "Metadata.public_url has a space or a control byte" },
        { "{\"Addr\":\"h:1\",\"Metadata\":[]}", NULL, "kv.value's Metadata is not an object" },
        { "127.0.0.1:9001", NULL,
          "kv.value is not a JSON object (want {\"Op\":0,\"Addr\":\"host:port\",...})" },
        { NULL, "", "is not a JSON object" },
        { NULL, "[]", "is not a JSON object" },
        { NULL, "{\"kvs\":[]}", "no header object" },
        { NULL, "{\"header\":{\"revision\":\"-1\"}}", "header.revision is not a positive int64" },
        { NULL, "{\"header\":{\"revision\":\"4x\"}}", "header.revision is not a positive int64" },
        { NULL, "{\"header\":{\"revision\":\"99999999999999999999\"}}",
          "header.revision is not a positive int64" },
        { NULL, "{\"header\":{\"revision\":\"4\"},\"more\":true,\"kvs\":[]}",
          "is partial (\"more\":true)" },
        { NULL, "{\"header\":{\"revision\":\"4\"},\"kvs\":{}}", "kvs is not an array" },
        { NULL, "{\"header\":{\"revision\":\"4\"},\"kvs\":[{\"key\":\"L3dz\",\"value\":\"\"}]}",
          "kv.key is outside the prefix" },
        { NULL,
          "{\"header\":{\"revision\":\"4\"},\"kvs\":[{\"key\":\"L3NlcnZpY2VzL3dzLWJhY2tlbmQv\","
          "\"value\":\"e30=\"}]}",
          "kv.key is the prefix itself (no member id after it)" },
        { NULL,
          "{\"header\":{\"revision\":\"4\"},\"kvs\":[{\"key\":\"L3NlcnZpY2VzL3dzLWJhY2tlbmQvYQ\","
          "\"value\":\"e30=\"}]}",
          "kv.key is not base64 text" },
        { NULL,
          "{\"header\":{\"revision\":\"4\"},\"kvs\":[{\"key\":\"L3NlcnZpY2VzL3dzLWJhY2tlbmQvYQ==\","
          "\"value\":\"e30\"}]}",
          "kv.value is not base64 text" },
        { NULL,
          "{\"header\":{\"revision\":\"4\"},\"kvs\":[{\"key\":\"L3NlcnZpY2VzL3dzLWJhY2tlbmQvYQk=\","
          "\"value\":\"e30=\"}]}",
          "member id (the key after the prefix) has a control byte" },
        { NULL, "{\"header\":{\"revision\":\"4\"},\"kvs\":[7]}", "kv is not an object" },
        { NULL, "{\"header\":{\"revision\":\"4\"},\"header\":{\"revision\":\"5\"}}",
          "is not a JSON object" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char body[8192];
        const char *why = NULL;
        int64_t rev = 77;
        struct member_set *set;

        if (rows[i].value != NULL) {
            char *good = kv("ws-good", "{\"Addr\":\"127.0.0.1:9\"}", NULL);
            char *bad = kv("ws-bad", rows[i].value, NULL);

            snprintf(body, sizeof(body), "{\"header\":{\"revision\":\"4\"},\"kvs\":[%s,%s]}", good,
                     bad);
            free(good);
            free(bad);
        } else {
            snprintf(body, sizeof(body), "%s", rows[i].body);
        }
        set = range(body, &rev, &why);
        if (set != NULL || why == NULL || strcmp(why, rows[i].why) != 0) {
            fail_msg("row %zu (%s): got %s, want %s", i, body, why ? why : "(a set)", rows[i].why);
        }
        assert_int_equal(rev, 0);
    }
}

static void
test_long_id_is_refused(void **state)
{
    char id[600], *k, body[4096];
    const char *why = NULL;
    int64_t rev;

    (void)state;
    memset(id, 'x', 513);
    id[513] = '\0';
    k = kv(id, "{\"Addr\":\"h:1\"}", NULL);
    snprintf(body, sizeof(body), "{\"header\":{\"revision\":\"4\"},\"kvs\":[%s]}", k);
    assert_null(range(body, &rev, &why));
    assert_string_equal(why, "member id (the key after the prefix) is longer than 512 bytes");
    free(k);
    id[512] = '\0';
    k = kv(id, "{\"Addr\":\"h:1\"}", NULL);
    snprintf(body, sizeof(body), "{\"header\":{\"revision\":\"4\"},\"kvs\":[%s]}", k);
    member_set_destroy(range(body, &rev, &why));
    assert_null(why);
    free(k);
}

static int
watch(const char *line, const struct member_set *cur, struct etcd_watch_msg *msg, const char **why)
{
    char *copy = heap(line, strlen(line));
    int rc = etcd_parse_watch(copy, strlen(line), PREFIX, cur, msg, why);

    free(copy);
    return rc;
}

static struct member_set *
two_members(void)
{
    struct member_set *set = member_set_create();

    assert_int_equal(member_set_add(set, "ws-a", "127.0.0.1:9001", 1), 0);
    assert_int_equal(member_set_add(set, "ws-b", "127.0.0.1:9002", 1), 0);
    return set;
}

static void
test_watch_created_progress_and_canceled(void **state)
{
    struct etcd_watch_msg msg;
    const char *why = "x";
    struct member_set *cur = two_members();

    (void)state;
    assert_int_equal(watch("{\"result\":{" HDR "\"revision\":\"4\"," HDR_END ",\"created\":true}}",
                           cur, &msg, &why),
                     0);
    assert_int_equal(msg.kind, ETCD_WATCH_CREATED);
    assert_int_equal(msg.revision, 4);
    assert_null(msg.members);
    assert_int_equal(watch("{\"result\":{" HDR "\"revision\":\"9\"," HDR_END "}}", cur, &msg, &why),
                     0);
    assert_int_equal(msg.kind, ETCD_WATCH_PROGRESS);
    assert_int_equal(msg.revision, 9);
    /* a watch from a compacted revision: no revision in the header, compact_revision set */
    assert_int_equal(watch("{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
                           "\"raft_term\":\"2\"},\"canceled\":true,\"compact_revision\":\"6\"}}",
                           cur, &msg, &why),
                     0);
    assert_int_equal(msg.kind, ETCD_WATCH_CANCELED);
    assert_int_equal(msg.revision, 0);
    assert_int_equal(msg.compact_revision, 6);
    assert_int_equal(
        watch("{\"result\":{\"canceled\":true,\"cancel_reason\":\"x\"}}", cur, &msg, &why), 0);
    assert_int_equal(msg.kind, ETCD_WATCH_CANCELED);
    assert_int_equal(msg.compact_revision, 0);
    member_set_destroy(cur);
}

static void
test_watch_events_put_replace_delete(void **state)
{
    struct member_set *cur = two_members();
    char *c = kv("ws-c", "{\"Op\":0,\"Addr\":\"127.0.0.1:9003\",\"Metadata\":{\"weight\":2}}",
                 "7587878129417366532");
    char *b2 = kv("ws-b", "{\"Op\":0,\"Addr\":\"127.0.0.1:9222\"}", NULL);
    char *ka = b64(PREFIX "ws-a"), *kz = b64(PREFIX "ws-zz");
    char line[8192];
    struct etcd_watch_msg msg;
    const char *why = "x";

    (void)state;
    /* a PUT has no type; a DELETE carries only key and mod_revision (plus prev_kv) */
    snprintf(line, sizeof(line),
             "{\"result\":{" HDR "\"revision\":\"8\"," HDR_END
             ",\"events\":[{\"kv\":%s},{\"kv\":%s},"
             "{\"type\":\"DELETE\",\"kv\":{\"key\":\"%s\",\"mod_revision\":\"8\"},"
             "\"prev_kv\":{\"key\":\"%s\",\"value\":\"e30=\"}},"
             "{\"type\":\"DELETE\",\"kv\":{\"key\":\"%s\",\"mod_revision\":\"8\"}}]}}",
             c, b2, ka, ka, kz);
    assert_int_equal(watch(line, cur, &msg, &why), 0);
    assert_null(why);
    assert_int_equal(msg.kind, ETCD_WATCH_EVENTS);
    assert_int_equal(msg.revision, 8);
    assert_int_equal(msg.nevents, 4);
    assert_int_equal(member_set_count(msg.members), 2);
    assert_string_equal(member_set_at(msg.members, 0)->id, "ws-b");
    assert_string_equal(member_set_at(msg.members, 0)->address, "127.0.0.1:9222");
    assert_string_equal(member_set_at(msg.members, 1)->id, "ws-c");
    assert_int_equal(member_set_at(msg.members, 1)->weight, 2);
    /* CURRENT is untouched */
    assert_int_equal(member_set_count(cur), 2);
    assert_string_equal(member_set_at(cur, 1)->address, "127.0.0.1:9002");
    member_set_destroy(msg.members);

    /* one bad event refuses the whole message, nothing half-applied */
    snprintf(line, sizeof(line),
             "{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":[{\"kv\":%s},"
             "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3dz\"}}]}}",
             c);
    assert_int_equal(watch(line, cur, &msg, &why), -1);
    assert_string_equal(why, "kv.key is outside the prefix");
    assert_null(msg.members);
    free(c);
    free(b2);
    free(ka);
    free(kz);
    member_set_destroy(cur);
}

static void
test_watch_bad_lines(void **state)
{
    static const char *const rows[][2] = {
        { "", "is not a JSON object" },
        { "{\"result\":", "is not a JSON object" },
        { "{}", "has no result object" },
        { "{\"result\":7}", "has no result object" },
        { "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"x\"}}",
          "is an error from the gateway" },
        { "{\"result\":{\"header\":{\"revision\":\"x\"}}}",
          "header.revision is not a positive int64" },
        { "{\"result\":{\"events\":[{\"kv\":{}}]}}", "events without header.revision" },
        { "{\"result\":{\"header\":{\"revision\":\"3\"},\"events\":{}}}",
          "events is not an array" },
        { "{\"result\":{\"header\":{\"revision\":\"3\"},\"events\":[7]}}",
          "event is not an object" },
        { "{\"result\":{\"header\":{\"revision\":\"3\"},\"events\":[{\"type\":\"X\",\"kv\":{}}]}}",
          "event.type is not PUT or DELETE" },
        { "{\"result\":{\"header\":{\"revision\":\"3\"},\"events\":[{\"type\":\"DELETE\"}]}}",
          "event has no kv object" },
        { "{\"result\":{\"canceled\":true,\"compact_revision\":\"x\"}}",
          "compact_revision is not an int64" },
    };
    struct member_set *cur = two_members();

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct etcd_watch_msg msg;
        const char *why = NULL;

        if (watch(rows[i][0], cur, &msg, &why) != -1 || why == NULL ||
            strcmp(why, rows[i][1]) != 0) {
            fail_msg("row %zu (%s): got %s, want %s", i, rows[i][0], why ? why : "(ok)",
                     rows[i][1]);
        }
        assert_null(msg.members);
    }
    member_set_destroy(cur);
}

static void
test_error_and_token(void **state)
{
    static const char compacted[] =
        "{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"message\":"
        "\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}";
    static const char quoted[] = "{\"error\":\"a\\\"b\\nc\",\"code\":3}";
    char msg[128];
    const char *why = NULL;
    char *token;

    (void)state;
    assert_int_equal(etcd_parse_error(compacted, strlen(compacted), msg, sizeof(msg)), 11);
    assert_string_equal(msg, "etcdserver: mvcc: required revision has been compacted");
    assert_int_equal(etcd_parse_error(quoted, strlen(quoted), msg, sizeof(msg)), 3);
    assert_string_equal(msg, "a'b'c");
    assert_int_equal(etcd_parse_error(S("404 page not found"), msg, sizeof(msg)), -1);
    assert_int_equal(etcd_parse_error(S("{\"code\":\"x\"}"), msg, sizeof(msg)), -1);
    token = etcd_parse_token(S("{\"header\":{},\"token\":\"sGqcYlSEX.26\"}"), &why);
    assert_string_equal(token, "sGqcYlSEX.26");
    assert_null(why);
    free(token);
    assert_null(etcd_parse_token(S("{\"header\":{}}"), &why));
    assert_string_equal(why, "no token in the answer");
    assert_null(etcd_parse_token(S("{\"token\":\"a\\r\\nX: y\"}"), &why));
    assert_string_equal(why, "the token has a space or a control byte");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_round_trip_and_strictness),
        cmocka_unit_test(test_range_of_three_members),
        cmocka_unit_test(test_empty_range_has_no_kvs),
        cmocka_unit_test(test_bad_ranges_are_refused),
        cmocka_unit_test(test_long_id_is_refused),
        cmocka_unit_test(test_watch_created_progress_and_canceled),
        cmocka_unit_test(test_watch_events_put_replace_delete),
        cmocka_unit_test(test_watch_bad_lines),
        cmocka_unit_test(test_error_and_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
