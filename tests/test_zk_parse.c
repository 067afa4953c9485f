/*
 * test_zk_parse.c: a ZooKeeper member node's data (a Curator ServiceInstance)
 * -> one member (DESIGN §11). Every input is handed over as a heap copy of
 * exactly its bytes, without a NUL, so ASan sees any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery/zk_parse.h"
#include "ring/member_set.h"

#define TEST_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * What Curator 5's JsonInstanceSerializer writes for
 * ServiceInstance.builder().name("ws-backend").address("192.0.2.21").port(9001)
 * with a Map payload: every field present, sslPort null, a uriSpec.
 */
/* clang-format off */
static const char test_curator[] =
    "{\"name\":\"ws-backend\",\"id\":\"0f6b1a4c-3b51-4f65-9d7c-9f0a3c6a6c2e\","
    "\"address\":\"192.0.2.21\",\"port\":9001,\"sslPort\":null,"
    "\"payload\":{\"metadata\":{\"weight\":3}},\"registrationTimeUTC\":1732579200123,"
    "\"serviceType\":\"DYNAMIC\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":true},"
    "{\"value\":\"://\",\"variable\":false},{\"value\":\"address\",\"variable\":true},"
    "{\"value\":\":\",\"variable\":false},{\"value\":\"port\",\"variable\":true}]},"
    "\"enabled\":true}";

/*
 * What Spring Cloud Zookeeper's ZookeeperServiceRegistry writes: a
 * ZookeeperInstance payload with "@class", string-valued metadata (so the
 * weight is "2"), no uriSpec value set, a host name address.
 */
static const char test_spring[] =
    "{\"name\":\"chat-ws\",\"id\":\"c7d4f0a2-8e6b-4b9e-a1f3-5e2d9c0b7a11\","
    "\"address\":\"chat-ws-7d9f8.pod.cluster.local\",\"port\":8080,\"sslPort\":null,"
    "\"payload\":{\"@class\":\"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance\","
    "\"id\":\"chat-ws-1\",\"name\":\"chat-ws\",\"metadata\":{\"instance_status\":\"UP\","
    "\"weight\":\"2\",\"public_url\":\"https://chat-7.example.com\"}},"
    "\"registrationTimeUTC\":1732579200456,\"serviceType\":\"DYNAMIC\",\"uriSpec\":"
    "{\"parts\":[{\"value\":\"scheme\",\"variable\":true},{\"value\":\"://\",\"variable\":false},"
    "{\"value\":\"address\",\"variable\":true},{\"value\":\":\",\"variable\":false},"
    "{\"value\":\"port\",\"variable\":true}]}}";
/* clang-format on */

/* Parses a heap copy of exactly LEN bytes of DATA into SET. */
static const char *
test_parse_raw(const char *data, size_t len, struct member_set *set)
{
    char *copy = malloc(len > 0 ? len : 1);
    const char *why;

    assert_non_null(copy);
    memcpy(copy, data, len);
    why = zk_parse_member(copy, len, set);
    free(copy);
    return why;
}

/* Single quotes in SQ stand for double quotes, to keep the tables readable. */
static const char *
test_parse(const char *sq, struct member_set *set)
{
    size_t len = strlen(sq);
    char *text = malloc(len + 1);
    const char *why;

    assert_non_null(text);
    for (size_t i = 0; i <= len; i++) {
        text[i] = sq[i] == '\'' ? '"' : sq[i];
    }
    why = test_parse_raw(text, len, set);
    free(text);
    return why;
}

/* SQ must give exactly the member (ID, ADDRESS, WEIGHT, URL). */
static void
test_one(const char *sq, const char *id, const char *address, uint32_t weight, const char *url)
{
    struct member_set *set = member_set_create();
    const char *why = test_parse(sq, set);
    const struct member *m;

    if (why != NULL) {
        fail_msg("refused (%s): %s", why, sq);
    }
    assert_int_equal(member_set_count(set), 1);
    m = member_set_at(set, 0);
    assert_string_equal(m->id, id);
    assert_string_equal(m->address, address);
    assert_int_equal(m->weight, weight);
    if (url == NULL) {
        assert_null(m->public_url);
    } else {
        assert_non_null(m->public_url);
        assert_string_equal(m->public_url, url);
    }
    member_set_destroy(set);
}

static void
test_curator_instance(void **state)
{
    struct member_set *set = member_set_create();

    (void)state;
    assert_null(test_parse_raw(test_curator, strlen(test_curator), set));
    assert_int_equal(member_set_count(set), 1);
    assert_string_equal(member_set_at(set, 0)->id, "0f6b1a4c-3b51-4f65-9d7c-9f0a3c6a6c2e");
    assert_string_equal(member_set_at(set, 0)->address, "192.0.2.21:9001");
    assert_int_equal(member_set_at(set, 0)->weight, 3);
    assert_null(member_set_at(set, 0)->public_url);
    member_set_destroy(set);
}

static void
test_spring_instance(void **state)
{
    struct member_set *set = member_set_create();

    (void)state;
    assert_null(test_parse_raw(test_spring, strlen(test_spring), set));
    assert_int_equal(member_set_count(set), 1);
    assert_string_equal(member_set_at(set, 0)->id, "c7d4f0a2-8e6b-4b9e-a1f3-5e2d9c0b7a11");
    assert_string_equal(member_set_at(set, 0)->address, "chat-ws-7d9f8.pod.cluster.local:8080");
    assert_int_equal(member_set_at(set, 0)->weight, 2);
    assert_string_equal(member_set_at(set, 0)->public_url, "https://chat-7.example.com");
    member_set_destroy(set);
}

/* Members of one set come out sorted by id whatever order the nodes were read in. */
static void
test_three_nodes_sorted_and_duplicate_refused(void **state)
{
    struct member_set *set = member_set_create();

    (void)state;
    assert_null(test_parse("{'id':'ws-c','address':'127.0.0.1','port':3}", set));
    assert_null(test_parse("{'id':'ws-a','address':'127.0.0.1','port':1}", set));
    assert_null(test_parse("{'id':'ws-b','address':'127.0.0.1','port':2}", set));
    assert_string_equal(
        test_parse("{'id':'ws-b','address':'127.0.0.9','port':9,'payload':{'metadata':{"
                   "'public_url':'http://x'}}}",
                   set),
        "duplicate member id (another node has the same JSON id)");
    assert_int_equal(member_set_count(set), 3);
    assert_string_equal(member_set_at(set, 0)->id, "ws-a");
    assert_string_equal(member_set_at(set, 1)->id, "ws-b");
    assert_string_equal(member_set_at(set, 1)->address, "127.0.0.1:2"); /* the first one stays */
    assert_null(member_set_at(set, 1)->public_url);
    assert_string_equal(member_set_at(set, 2)->id, "ws-c");
    member_set_destroy(set);
}

static void
test_accepted_shapes(void **state)
{
    (void)state;
    /* the minimum: id, address, port */
    test_one("{'id':'a','address':'10.0.0.1','port':1}", "a", "10.0.0.1:1", 1, NULL);
    test_one("{'id':'a','address':'10.0.0.1','port':65535}", "a", "10.0.0.1:65535", 1, NULL);
    /* IPv6 literals get brackets, a zone is kept */
    test_one("{'id':'v6','address':'2001:db8::7','port':9001}", "v6", "[2001:db8::7]:9001", 1,
             NULL);
    test_one("{'id':'v6','address':'::1','port':80}", "v6", "[::1]:80", 1, NULL);
    test_one("{'id':'v6','address':'fe80::1%eth0','port':80}", "v6", "[fe80::1%eth0]:80", 1, NULL);
    /* payload absent, null, a string (Curator's payload type is the application's), no metadata */
    test_one("{'id':'a','address':'h','port':1,'payload':null}", "a", "h:1", 1, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':'blob'}", "a", "h:1", 1, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':[1,2]}", "a", "h:1", 1, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':{}}", "a", "h:1", 1, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':null}}", "a", "h:1", 1, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{}}}", "a", "h:1", 1, NULL);
    /* weights: integer, decimal string, null, bounds */
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{'weight':1000}}}", "a", "h:1",
             1000, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{'weight':'1000'}}}", "a",
             "h:1", 1000, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{'weight':'007'}}}", "a",
             "h:1", 7, NULL);
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{'weight':null}}}", "a", "h:1",
             1, NULL);
    /* sslPort next to port is ignored; unknown fields too */
    test_one("{'id':'a','address':'h','port':1,'sslPort':443,'x':{'y':[]},'enabled':false}", "a",
             "h:1", 1, NULL);
    /* public_url: http or https, null means none */
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{'public_url':'http://h:1/p?q'"
             "}}}",
             "a", "h:1", 1, "http://h:1/p?q");
    test_one("{'id':'a','address':'h','port':1,'payload':{'metadata':{'public_url':null}}}", "a",
             "h:1", 1, NULL);
    /* ids: anything visible, UTF-8 too, up to 1024 bytes */
    test_one("{'id':'n\\u00e9/1 x','address':'h','port':1}", "n\xc3\xa9/1 x", "h:1", 1, NULL);
}

static void
test_long_id_and_url_limits(void **state)
{
    char text[8192], id[1100], url[2100];
    struct member_set *set = member_set_create();

    (void)state;
    memset(id, 'i', 1024);
    id[1024] = '\0';
    snprintf(text, sizeof(text), "{'id':'%s','address':'h','port':1}", id);
    assert_null(test_parse(text, set));
    snprintf(text, sizeof(text), "{'id':'%si','address':'h','port':1}", id);
    assert_string_equal(test_parse(text, set), "id is longer than 1024 bytes");
    memcpy(url, "https://", 8);
    memset(url + 8, 'u', 2040);
    url[2048] = '\0';
    snprintf(text, sizeof(text),
             "{'id':'b','address':'h','port':1,'payload':{'metadata':{'public_url':'%s'}}}", url);
    assert_null(test_parse(text, set));
    snprintf(text, sizeof(text),
             "{'id':'c','address':'h','port':1,'payload':{'metadata':{'public_url':'%su'}}}", url);
    assert_string_equal(test_parse(text, set),
                        "payload.metadata.public_url is not an http:// or "
                        "https:// URL of visible ASCII (at most 2048 bytes)");
    assert_int_equal(member_set_count(set), 2);
    member_set_destroy(set);
}

struct test_refusal {
    const char *sq;
    const char *why;
};

#define BADW "payload.metadata.weight is not an integer in 1..1000 (a number or a decimal string)"
#define BADU                                                                                       \
    "payload.metadata.public_url is not an http:// or https:// URL of visible ASCII (at most "     \
    "2048 bytes)"
#define MD(x) "{'id':'a','address':'h','port':1,'payload':{'metadata':" x "}}"

/* clang-format off */
static const struct test_refusal test_refusals[] = {
    { "", "is not JSON" },
    { "{", "is not JSON" },
    { "{'id':'a','address':'h','port':1} x", "is not JSON" },
    { "{'id':'a','id':'b','address':'h','port':1}", "is not JSON" },
    { "[]", "is not a JSON object" },
    { "null", "is not a JSON object" },
    { "'id'", "is not a JSON object" },
    { "{'address':'h','port':1}", "id is missing or not a string" },
    { "{'id':7,'address':'h','port':1}", "id is missing or not a string" },
    { "{'id':null,'address':'h','port':1}", "id is missing or not a string" },
    { "{'id':'','address':'h','port':1}", "id is empty" },
    { "{'id':'a\\nb','address':'h','port':1}", "id has a control byte" },
    { "{'id':'a\\u0000b','address':'h','port':1}", "is not JSON" }, /* jansson refuses NUL */
    { "{'id':'a\\u007f','address':'h','port':1}", "id has a control byte" },
    { "{'id':'a','port':1}", "address is missing, empty or not a string" },
    { "{'id':'a','address':'','port':1}", "address is missing, empty or not a string" },
    { "{'id':'a','address':5,'port':1}", "address is missing, empty or not a string" },
    { "{'id':'a','address':'h h','port':1}", "address has a byte other than a letter, a digit or one of \".-_:%\"" },
    { "{'id':'a','address':'[::1]','port':1}", "address has a byte other than a letter, a digit or one of \".-_:%\"" },
    { "{'id':'a','address':'h\\r\\nX: y','port':1}", "address has a byte other than a letter, a digit or one of \".-_:%\"" },
    { "{'id':'a','address':'h:80','port':1}", "address has ':' or '%' but is not an IPv6 literal" },
    { "{'id':'a','address':'fe80::1%','port':1}", "address has ':' or '%' but is not an IPv6 literal" },
    { "{'id':'a','address':'10.0.0.1%eth0','port':1}", "address has ':' or '%' but is not an IPv6 literal" },
    { "{'id':'a','address':'h'}", "port is missing" },
    { "{'id':'a','address':'h','port':null}", "port is missing" },
    { "{'id':'a','address':'h','port':null,'sslPort':443}", "port is missing (only an sslPort; wsring connects in plain TCP)" },
    { "{'id':'a','address':'h','port':0}", "port is not an integer in 1..65535" },
    { "{'id':'a','address':'h','port':65536}", "port is not an integer in 1..65535" },
    { "{'id':'a','address':'h','port':-1}", "port is not an integer in 1..65535" },
    { "{'id':'a','address':'h','port':80.0}", "port is not an integer in 1..65535" },
    { "{'id':'a','address':'h','port':'80'}", "port is not an integer in 1..65535" },
    { "{'id':'a','address':'h','port':1,'payload':{'metadata':'weight=2'}}", "payload.metadata is not an object" },
    { "{'id':'a','address':'h','port':1,'payload':{'metadata':[]}}", "payload.metadata is not an object" },
    { MD("{'weight':0}"), BADW },
    { MD("{'weight':1001}"), BADW },
    { MD("{'weight':-2}"), BADW },
    { MD("{'weight':2.5}"), BADW },
    { MD("{'weight':'2.5'}"), BADW },
    { MD("{'weight':''}"), BADW },
    { MD("{'weight':' 2'}"), BADW },
    { MD("{'weight':'+2'}"), BADW },
    { MD("{'weight':'0'}"), BADW },
    { MD("{'weight':'1001'}"), BADW },
    { MD("{'weight':'99999999999999999999'}"), BADW },
    { MD("{'weight':true}"), BADW },
    { MD("{'weight':{}}"), BADW },
    { MD("{'public_url':'ftp://h'}"), BADU },
    { MD("{'public_url':'http://'}"), BADU },
    { MD("{'public_url':'https://'}"), BADU },
    { MD("{'public_url':'//h/x'}"), BADU },
    { MD("{'public_url':'http://h/a b'}"), BADU },
    { MD("{'public_url':'http://h/\\r\\nSet-Cookie: x'}"), BADU },
    { MD("{'public_url':'http://h/\\u00e9'}"), BADU },
    { MD("{'public_url':7}"), BADU },
};
/* clang-format on */

static void
test_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < TEST_ARRAY_LEN(test_refusals); i++) {
        struct member_set *set = member_set_create();
        const char *why = test_parse(test_refusals[i].sq, set);

        if (why == NULL || strcmp(why, test_refusals[i].why) != 0) {
            fail_msg("row %zu %s: want \"%s\", got \"%s\"", i, test_refusals[i].sq,
                     test_refusals[i].why, why != NULL ? why : "(accepted)");
        }
        assert_int_equal(member_set_count(set), 0);
        member_set_destroy(set);
    }
}

/* Every cut of a valid instance is refused, and no cut reads past its end. */
static void
test_every_truncation_is_refused(void **state)
{
    (void)state;
    for (size_t len = 0; len < strlen(test_spring); len++) {
        struct member_set *set = member_set_create();
        const char *why = test_parse_raw(test_spring, len, set);

        if (why == NULL) {
            fail_msg("a cut at %zu bytes was accepted", len);
        }
        assert_string_equal(why, "is not JSON");
        assert_int_equal(member_set_count(set), 0);
        member_set_destroy(set);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curator_instance),
        cmocka_unit_test(test_spring_instance),
        cmocka_unit_test(test_three_nodes_sorted_and_duplicate_refused),
        cmocka_unit_test(test_accepted_shapes),
        cmocka_unit_test(test_long_id_and_url_limits),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_every_truncation_is_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
