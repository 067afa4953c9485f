/*
 * test_consul_parse.c: Consul's /v1/health/service answer -> member set
 * (DESIGN §4, DISCOVERY §1.2). Every body is handed over as a heap copy of
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

#include "discovery/consul_parse.h"
#include "ring/member_set.h"

#define TEST_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Three instances of "activator" on two nodes in the exact shape of a real
 * Consul 1.16.2 answer (DISCOVERY §1.2, CAP): every field present, Meta
 * null, TaggedAddresses objects, Checks arrays, the second instance with an
 * empty Service.Address (so Node.Address applies) and a weight of 3.
 */
/* clang-format off */
static const char test_capture[] =
    "[{\"Node\":{\"ID\":\"570cfb54-d48b-09db-8fca-45570a8fb225\",\"Node\":\"ws-node-1\","
    "\"Address\":\"192.0.2.11\",\"Datacenter\":\"dc1\",\"TaggedAddresses\":{\"lan\":\"192.0.2.11\","
    "\"lan_ipv4\":\"192.0.2.11\",\"wan\":\"192.0.2.11\",\"wan_ipv4\":\"192.0.2.11\"},"
    "\"Meta\":{\"consul-network-segment\":\"\",\"consul-version\":\"1.16.2\"},\"CreateIndex\":8,"
    "\"ModifyIndex\":4472626},\"Service\":{\"ID\":\"svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b\","
    "\"Service\":\"activator\",\"Tags\":[\"noc\",\"svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b\"],"
    "\"Address\":\"192.0.2.11\",\"TaggedAddresses\":{\"lan_ipv4\":{\"Address\":\"192.0.2.11\","
    "\"Port\":39677},\"wan_ipv4\":{\"Address\":\"192.0.2.11\",\"Port\":39677}},\"Meta\":null,"
    "\"Port\":39677,\"Weights\":{\"Passing\":1,\"Warning\":1},\"EnableTagOverride\":false,"
    "\"Proxy\":{\"Mode\":\"\",\"MeshGateway\":{},\"Expose\":{}},\"Connect\":{},\"PeerName\":\"\","
    "\"CreateIndex\":5100618,\"ModifyIndex\":5100618},\"Checks\":[{\"Node\":\"ws-node-1\","
    "\"CheckID\":\"serfHealth\",\"Name\":\"Serf Health Status\",\"Status\":\"passing\","
    "\"Notes\":\"\",\"Output\":\"Agent alive and reachable\",\"ServiceID\":\"\","
    "\"ServiceName\":\"\",\"ServiceTags\":[],\"Type\":\"\",\"Interval\":\"\",\"Timeout\":\"\","
    "\"ExposedPort\":0,\"Definition\":{},\"CreateIndex\":4472623,\"ModifyIndex\":4472623},"
    "{\"Node\":\"ws-node-1\",\"CheckID\":\"service:svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b\","
    "\"Name\":\"Service 'activator' check\",\"Status\":\"passing\",\"Notes\":\"\","
    "\"Output\":\"HTTP GET http://192.0.2.11:39677/health: 200 OK Output: OK\","
    "\"ServiceID\":\"svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b\",\"ServiceName\":\"activator\","
    "\"ServiceTags\":[\"noc\",\"svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b\"],\"Type\":\"http\","
    "\"Interval\":\"10s\",\"Timeout\":\"1s\",\"ExposedPort\":0,\"Definition\":{},"
    "\"CreateIndex\":5100618,\"ModifyIndex\":5100678}]},"
    "{\"Node\":{\"ID\":\"570cfb54-d48b-09db-8fca-45570a8fb225\",\"Node\":\"ws-node-1\","
    "\"Address\":\"192.0.2.11\",\"Datacenter\":\"dc1\",\"TaggedAddresses\":{\"lan\":\"192.0.2.11\","
    "\"lan_ipv4\":\"192.0.2.11\",\"wan\":\"192.0.2.11\",\"wan_ipv4\":\"192.0.2.11\"},"
    "\"Meta\":{\"consul-network-segment\":\"\",\"consul-version\":\"1.16.2\"},\"CreateIndex\":8,"
    "\"ModifyIndex\":4472626},\"Service\":{\"ID\":\"svc-a31a1c88-0633-4e1b-ab74-418e7b39c7cd\","
    "\"Service\":\"activator\",\"Tags\":[\"\"],\"Address\":\"\",\"Meta\":null,\"Port\":20395,"
    "\"Weights\":{\"Passing\":3,\"Warning\":1},\"EnableTagOverride\":false,"
    "\"Proxy\":{\"Mode\":\"\",\"MeshGateway\":{},\"Expose\":{}},\"Connect\":{},\"PeerName\":\"\","
    "\"CreateIndex\":5100630,\"ModifyIndex\":5100630},\"Checks\":[{\"Node\":\"ws-node-1\","
    "\"CheckID\":\"serfHealth\",\"Name\":\"Serf Health Status\",\"Status\":\"passing\","
    "\"Notes\":\"\",\"Output\":\"Agent alive and reachable\",\"ServiceID\":\"\","
    "\"ServiceName\":\"\",\"ServiceTags\":[],\"Type\":\"\",\"Interval\":\"\",\"Timeout\":\"\","
    "\"ExposedPort\":0,\"Definition\":{},\"CreateIndex\":4472623,\"ModifyIndex\":4472623}]},"
    "{\"Node\":{\"ID\":\"0b8d8f5e-3c1a-4f0e-9d2b-6a7c5e4f3a21\",\"Node\":\"ws-node-2\","
    "\"Address\":\"192.0.2.12\",\"Datacenter\":\"dc1\",\"TaggedAddresses\":{\"lan\":\"192.0.2.12\","
    "\"lan_ipv4\":\"192.0.2.12\",\"wan\":\"192.0.2.12\",\"wan_ipv4\":\"192.0.2.12\"},"
    "\"Meta\":{\"consul-network-segment\":\"\",\"consul-version\":\"1.16.2\"},\"CreateIndex\":9,"
    "\"ModifyIndex\":4472700},\"Service\":{\"ID\":\"svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b\","
    "\"Service\":\"activator\",\"Tags\":[\"noc\"],\"Address\":\"192.0.2.12\","
    "\"TaggedAddresses\":{\"lan_ipv4\":{\"Address\":\"192.0.2.12\",\"Port\":39677},"
    "\"wan_ipv4\":{\"Address\":\"192.0.2.12\",\"Port\":39677}},\"Meta\":null,\"Port\":39677,"
    "\"Weights\":{\"Passing\":1,\"Warning\":1},\"EnableTagOverride\":false,"
    "\"Proxy\":{\"Mode\":\"\",\"MeshGateway\":{},\"Expose\":{}},\"Connect\":{},\"PeerName\":\"\","
    "\"CreateIndex\":5100640,\"ModifyIndex\":5100640},\"Checks\":[{\"Node\":\"ws-node-2\","
    "\"CheckID\":\"serfHealth\",\"Name\":\"Serf Health Status\",\"Status\":\"passing\","
    "\"Notes\":\"\",\"Output\":\"Agent alive and reachable\",\"ServiceID\":\"\","
    "\"ServiceName\":\"\",\"ServiceTags\":[],\"Type\":\"\",\"Interval\":\"\",\"Timeout\":\"\","
    "\"ExposedPort\":0,\"Definition\":{},\"CreateIndex\":4472690,\"ModifyIndex\":4472690}]}]";
/* clang-format on */

/* A valid Node and the start of a valid Service, in the tests' single-quoted JSON. */
#define TEST_NODE   "'Node':{'Node':'n1','Address':'10.0.0.1'}"
#define TEST_SVC_ID "'Service':{'ID':'web-1'"

/* Returns a heap copy of the LEN bytes of TEXT, no NUL after them. */
static char *
test_copy(const char *text, size_t len)
{
    char *copy = malloc(len == 0 ? 1 : len);

    assert_non_null(copy);
    memcpy(copy, text, len);
    return copy;
}

/* Parses the first LEN bytes of TEXT from an exact heap copy. */
static struct member_set *
test_parse_raw(const char *text, size_t len, const char **why)
{
    char *body = test_copy(text, len);
    struct member_set *set;

    *why = "(not set)";
    set = consul_parse_health(body, len, why);
    free(body);
    return set;
}

/* Parses SQ, JSON written with single quotes for double quotes (readable in C). */
static struct member_set *
test_parse(const char *sq, const char **why)
{
    size_t len = strlen(sq);
    char *text = test_copy(sq, len);
    struct member_set *set;

    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\'') {
            text[i] = '"';
        }
    }
    set = test_parse_raw(text, len, why);
    free(text);
    return set;
}

static struct member_set *
test_parse_ok(const char *sq)
{
    const char *why;
    struct member_set *set = test_parse(sq, &why);

    if (set == NULL) {
        fail_msg("refused (%s): %s", why, sq);
    }
    assert_null(why);
    return set;
}

static void
test_member_is(const struct member_set *set, size_t i, const char *id, const char *address,
               uint32_t weight)
{
    const struct member *m;

    assert_true(i < member_set_count(set));
    m = member_set_at(set, i);
    assert_string_equal(m->id, id);
    assert_string_equal(m->address, address);
    assert_int_equal(m->weight, weight);
}

/* A set of one member parsed from SQ must be (ID, ADDRESS, WEIGHT). */
static void
test_one_member(const char *sq, const char *id, const char *address, uint32_t weight)
{
    struct member_set *set = test_parse_ok(sq);

    assert_int_equal(member_set_count(set), 1);
    test_member_is(set, 0, id, address, weight);
    member_set_destroy(set);
}

static void
test_capture_gives_three_members(void **state)
{
    const char *why;
    struct member_set *set = test_parse_raw(test_capture, strlen(test_capture), &why);

    (void)state;
    assert_non_null(set);
    assert_null(why);
    assert_int_equal(member_set_count(set), 3);
    /* Same Service.ID on two nodes: two members, told apart by the node. */
    test_member_is(set, 0, "ws-node-1/svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b", "192.0.2.11:39677",
                   1);
    test_member_is(set, 1, "ws-node-1/svc-a31a1c88-0633-4e1b-ab74-418e7b39c7cd", "192.0.2.11:20395",
                   3);
    test_member_is(set, 2, "ws-node-2/svc-6b484ced-b392-44dc-aaa4-5186bf5bfb7b", "192.0.2.12:39677",
                   1);
    member_set_destroy(set);
}

/* Every cut of a valid answer is not JSON, and no cut reads past its end. */
static void
test_every_truncation_is_refused(void **state)
{
    (void)state;
    for (size_t len = 0; len < strlen(test_capture); len++) {
        const char *why;
        struct member_set *set = test_parse_raw(test_capture, len, &why);

        if (set != NULL) {
            fail_msg("a cut at %zu bytes was accepted", len);
        }
        assert_string_equal(why, "is not JSON");
    }
}

static void
test_empty_service_address_means_node_address(void **state)
{
    (void)state;
    test_one_member("[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'','Port':8080}}]",
                    "n1/web-1", "10.0.0.1:8080", 1);
    test_one_member("[{" TEST_NODE ",'Service':{'ID':'web-1','Port':8080}}]", "n1/web-1",
                    "10.0.0.1:8080", 1);
    test_one_member("[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'10.9.9.9','Port':8080}}]",
                    "n1/web-1", "10.9.9.9:8080", 1);
}

static void
test_host_names_are_kept(void **state)
{
    (void)state;
    test_one_member("[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'ip-10-0-0-7.ec2.internal',"
                    "'Port':443}}]",
                    "n1/web-1", "ip-10-0-0-7.ec2.internal:443", 1);
}

static void
test_ipv6_addresses_are_bracketed(void **state)
{
    (void)state;
    test_one_member("[{" TEST_NODE
                    ",'Service':{'ID':'web-1','Address':'2001:db8::1','Port':8080}}]",
                    "n1/web-1", "[2001:db8::1]:8080", 1);
    test_one_member("[{'Node':{'Node':'n6','Address':'fe80::1%eth0'},'Service':{'ID':'web-1',"
                    "'Address':'','Port':80}}]",
                    "n6/web-1", "[fe80::1%eth0]:80", 1);
    test_one_member("[{" TEST_NODE ",'Service':{'ID':'w','Address':'::ffff:192.0.2.1','Port':1}}]",
                    "n1/w", "[::ffff:192.0.2.1]:1", 1);
    test_one_member("[{" TEST_NODE ",'Service':{'ID':'w','Address':'::','Port':1}}]", "n1/w",
                    "[::]:1", 1);
}

static void
test_missing_weights_mean_1(void **state)
{
    (void)state;
    test_one_member("[{" TEST_NODE "," TEST_SVC_ID ",'Port':1}}]", "n1/web-1", "10.0.0.1:1", 1);
    test_one_member("[{" TEST_NODE "," TEST_SVC_ID ",'Port':1,'Weights':null}}]", "n1/web-1",
                    "10.0.0.1:1", 1);
    test_one_member("[{" TEST_NODE "," TEST_SVC_ID ",'Port':1,'Weights':{'Warning':5}}}]",
                    "n1/web-1", "10.0.0.1:1", 1);
}

static void
test_weights_and_ports_at_their_limits_are_kept(void **state)
{
    (void)state;
    test_one_member("[{" TEST_NODE "," TEST_SVC_ID ",'Port':65535,'Weights':{'Passing':3,"
                    "'Warning':0}}}]",
                    "n1/web-1", "10.0.0.1:65535", 3);
    test_one_member("[{" TEST_NODE "," TEST_SVC_ID ",'Port':1,'Weights':{'Passing':1000}}}]",
                    "n1/web-1", "10.0.0.1:1", 1000);
}

/* A host of 253 bytes, the longest DNS name, is kept (254 is refused, see the rows). */
static void
test_longest_host_is_kept(void **state)
{
    char host[254], body[400], address[260];

    (void)state;
    memset(host, 'h', 253);
    host[253] = '\0';
    snprintf(body, sizeof(body), "[{" TEST_NODE ",'Service':{'ID':'w','Address':'%s','Port':9}}]",
             host);
    snprintf(address, sizeof(address), "%s:9", host);
    test_one_member(body, "n1/w", address, 1);
}

/* Tags, Meta other than public_url, Checks and unknown fields change nothing. */
static void
test_other_fields_are_ignored(void **state)
{
    struct member_set *plain, *dressed;

    (void)state;
    plain = test_parse_ok("[{" TEST_NODE "," TEST_SVC_ID ",'Port':80}}]");
    dressed = test_parse_ok(
        "[{'Node':{'Node':'n1','Address':'10.0.0.1','Meta':{'rack':'r1'},'Future':[1,{}]},"
        "'Service':{'ID':'web-1','Tags':['blue','v2'],'Port':80,'Meta':{'publicurl':"
        "'wss://n1.example.com/"
        "','zone':'a'},'TaggedAddresses':{'lan_ipv4':{'address':'10.1.1.1','port':1}},"
        "'SocketPath':'','Future':null},'Checks':[{'Status':'critical'},{'Status':'bogus'}],"
        "'Extra':true}]");
    assert_true(member_set_equal(plain, dressed));
    member_set_destroy(plain);
    member_set_destroy(dressed);
}

/* Service.Meta.public_url becomes the member's public_url, trailing "/" dropped. */
static void
test_meta_public_url_is_kept(void **state)
{
    struct member_set *set = test_parse_ok(
        "[{" TEST_NODE ",'Service':{'ID':'web-1','Port':80,'Meta':{'public_url':"
        "'https://ws-1.example.com/','zone':'a'}}},"
        "{'Node':{'Node':'n2','Address':'10.0.0.2'},'Service':{'ID':'web-2','Port':80,'Meta':{"
        "'public_url':'http://[::1]:8081/chat'}}},"
        "{'Node':{'Node':'n3','Address':'10.0.0.3'},'Service':{'ID':'web-3','Port':80,'Meta':null}}"
        ","
        "{'Node':{'Node':'n4','Address':'10.0.0.4'},'Service':{'ID':'web-4','Port':80,'Meta':{}}}"
        "]");
    struct member_set *plain = test_parse_ok(
        "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80}},"
        "{'Node':{'Node':'n2','Address':'10.0.0.2'},'Service':{'ID':'web-2','Port':80}},"
        "{'Node':{'Node':'n3','Address':'10.0.0.3'},'Service':{'ID':'web-3','Port':80}},"
        "{'Node':{'Node':'n4','Address':'10.0.0.4'},'Service':{'ID':'web-4','Port':80}}]");

    (void)state;
    assert_int_equal(member_set_count(set), 4);
    assert_string_equal(member_set_at(set, 0)->public_url, "https://ws-1.example.com");
    assert_string_equal(member_set_at(set, 1)->public_url, "http://[::1]:8081/chat");
    assert_null(member_set_at(set, 2)->public_url);
    assert_null(member_set_at(set, 3)->public_url);
    /* A url is published (sets differ) but moves no key: the ring contract ignores it. */
    assert_false(member_set_equal(set, plain));
    assert_int_equal(member_set_set_public_url(plain, "n1/web-1", "https://ws-1.example.com"), 0);
    assert_int_equal(member_set_set_public_url(plain, "n2/web-2", "http://[::1]:8081/chat"), 0);
    assert_true(member_set_equal(set, plain));
    member_set_destroy(set);
    member_set_destroy(plain);
}

static void
test_empty_array_gives_empty_set(void **state)
{
    struct member_set *set = test_parse_ok(" [ ]\n");

    (void)state;
    assert_int_equal(member_set_count(set), 0);
    member_set_destroy(set);
}

/* All 24 orders of four entries give the same set. */
static void
test_order_does_not_matter(void **state)
{
    static const char *const entries[] = {
        "{'Node':{'Node':'n2','Address':'10.0.0.2'},'Service':{'ID':'web','Port':81}}",
        "{'Node':{'Node':'n1','Address':'10.0.0.1'},'Service':{'ID':'web','Port':80,"
        "'Weights':{'Passing':2,'Warning':1}}}",
        "{'Node':{'Node':'n1','Address':'10.0.0.1'},'Service':{'ID':'web-b','Address':'::1',"
        "'Port':82}}",
        "{'Node':{'Node':'N1','Address':'10.0.0.9'},'Service':{'ID':'web','Port':83}}",
    };
    struct member_set *first = NULL;

    (void)state;
    for (unsigned p = 0; p < 24; p++) {
        char body[1024] = "[";
        unsigned used = 0, rest = p;
        struct member_set *set;

        for (unsigned k = 4; k > 0; k--) {
            unsigned pick = rest % k, i = 0;

            rest /= k;
            for (;; i++) { /* the PICK-th entry not yet used */
                if (!(used & (1u << i)) && pick-- == 0) {
                    break;
                }
            }
            used |= 1u << i;
            strcat(body, entries[i]);
            strcat(body, k > 1 ? "," : "]");
        }
        set = test_parse_ok(body);
        if (first == NULL) {
            first = set;
            test_member_is(set, 0, "N1/web", "10.0.0.9:83", 1);
            test_member_is(set, 1, "n1/web", "10.0.0.1:80", 2);
            test_member_is(set, 2, "n1/web-b", "[::1]:82", 1);
            test_member_is(set, 3, "n2/web", "10.0.0.2:81", 1);
            continue;
        }
        assert_true(member_set_equal(first, set));
        member_set_destroy(set);
    }
    member_set_destroy(first);
}

struct test_row {
    const char *name;
    const char *body; /* single-quoted JSON (see test_parse) */
    const char *why;
};

/* clang-format off */
static const struct test_row test_rows[] = {
    { "refuses: not JSON", "HTTP/1.1 500 No cluster leader", "is not JSON" },
    { "refuses: empty body", "", "is not JSON" },
    { "refuses: truncated JSON", "[{" TEST_NODE ",'Service':{'ID':'web-1','Po", "is not JSON" },
    { "refuses: trailing bytes", "[] []", "is not JSON" },
    { "refuses: a repeated key", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Port':81}}]",
      "is not JSON" },
    { "refuses: a NUL escape", "[{'Node':{'Node':'n\\u0000'}}]", "is not JSON" },
    { "refuses: an object", "{}", "is not a JSON array" },
    { "refuses: null", "null", "is not a JSON array" },
    { "refuses: an entry that is not an object", "[[]]", "entry is not an object" },
    { "refuses: Node missing", "[{" TEST_SVC_ID ",'Port':80}}]", "entry has no Node object" },
    { "refuses: Node null", "[{'Node':null," TEST_SVC_ID ",'Port':80}}]",
      "entry has no Node object" },
    { "refuses: Node.Node missing", "[{'Node':{'Address':'10.0.0.1'}," TEST_SVC_ID ",'Port':80}}]",
      "Node.Node is missing or not a string" },
    { "refuses: Node.Node not a string", "[{'Node':{'Node':7}," TEST_SVC_ID ",'Port':80}}]",
      "Node.Node is missing or not a string" },
    { "refuses: Node.Node empty", "[{'Node':{'Node':''}," TEST_SVC_ID ",'Port':80}}]",
      "Node.Node is empty" },
    { "refuses: Node.Node with a control byte",
      "[{'Node':{'Node':'n1\\n','Address':'10.0.0.1'}," TEST_SVC_ID ",'Port':80}}]",
      "Node.Node has a control byte" },
    { "refuses: Service missing", "[{" TEST_NODE "}]", "entry has no Service object" },
    { "refuses: Service an array", "[{" TEST_NODE ",'Service':[]}]",
      "entry has no Service object" },
    { "refuses: Service.ID missing", "[{" TEST_NODE ",'Service':{'Port':80}}]",
      "Service.ID is missing or not a string" },
    { "refuses: Service.ID empty", "[{" TEST_NODE ",'Service':{'ID':'','Port':80}}]",
      "Service.ID is empty" },
    { "refuses: Service.ID with DEL", "[{" TEST_NODE ",'Service':{'ID':'w\\u007f','Port':80}}]",
      "Service.ID has a control byte" },
    { "refuses: Port missing", "[{" TEST_NODE "," TEST_SVC_ID "}}]",
      "Service.Port is not an integer in 1..65535" },
    { "refuses: Port 0", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':0}}]",
      "Service.Port is 0 (the service was registered without a port)" },
    { "refuses: Port -1", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':-1}}]",
      "Service.Port is not an integer in 1..65535" },
    { "refuses: Port 70000", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':70000}}]",
      "Service.Port is not an integer in 1..65535" },
    { "refuses: Port as a string", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':'80'}}]",
      "Service.Port is not an integer in 1..65535" },
    { "refuses: Port 80.0", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80.0}}]",
      "Service.Port is not an integer in 1..65535" },
    { "refuses: no address at all", "[{'Node':{'Node':'n1'}," TEST_SVC_ID ",'Port':80}}]",
      "entry has no address (Service.Address and Node.Address are empty)" },
    { "refuses: both addresses empty",
      "[{'Node':{'Node':'n1','Address':''},'Service':{'ID':'web-1','Address':'','Port':80}}]",
      "entry has no address (Service.Address and Node.Address are empty)" },
    { "refuses: Service.Address not a string",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':null,'Port':80}}]",
      "Service.Address is not a string" },
    { "refuses: Node.Address not a string",
      "[{'Node':{'Node':'n1','Address':[]},'Service':{'ID':'web-1','Port':80}}]",
      "Node.Address is not a string" },
    { "refuses: an address with a space",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'10.0.0.1 ','Port':80}}]",
      "address has a byte other than a letter, a digit or one of \".-_:%\"" },
    { "refuses: a bracketed address",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'[::1]','Port':80}}]",
      "address has a byte other than a letter, a digit or one of \".-_:%\"" },
    { "refuses: a URL as address",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'http://h/','Port':80}}]",
      "address has a byte other than a letter, a digit or one of \".-_:%\"" },
    { "refuses: a lone ':' as address (found by the fuzzer)",
      "[{'Node':{'Node':'n6','Address':':'},'Service':{'ID':'wen1','Port':8081}}]",
      "address has ':' or '%' but is not an IPv6 literal" },
    { "refuses: an address with ':' that is not IPv6",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'10.0.0.1:80','Port':80}}]",
      "address has ':' or '%' but is not an IPv6 literal" },
    { "refuses: a zone on an IPv4 address",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'10.0.0.1%eth0','Port':80}}]",
      "address has ':' or '%' but is not an IPv6 literal" },
    { "refuses: an empty IPv6 zone",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'fe80::1%','Port':80}}]",
      "address has ':' or '%' but is not an IPv6 literal" },
    { "refuses: an address of 254 bytes",
      "[{" TEST_NODE ",'Service':{'ID':'web-1','Address':'"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "','Port':80}}]",
      "address is longer than 253 bytes" },
    { "refuses: Weights not an object", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':1}}]",
      "Service.Weights is not an object" },
    { "refuses: weight 0", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':{'Passing':0}}}]",
      "Service.Weights.Passing is not an integer in 1..1000" },
    { "refuses: weight -1", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':{'Passing':-1}}}]",
      "Service.Weights.Passing is not an integer in 1..1000" },
    { "refuses: weight 1.5",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':{'Passing':1.5}}}]",
      "Service.Weights.Passing is not an integer in 1..1000" },
    { "refuses: weight 1001",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':{'Passing':1001}}}]",
      "Service.Weights.Passing is not an integer in 1..1000" },
    { "refuses: weight 100000",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':{'Passing':100000}}}]",
      "Service.Weights.Passing is not an integer in 1..1000" },
    { "refuses: weight null",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Weights':{'Passing':null}}}]",
      "Service.Weights.Passing is not an integer in 1..1000" },
    { "refuses: a duplicate (same node, same id)",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80}},{" TEST_NODE "," TEST_SVC_ID ",'Port':81}}]",
      "duplicate member id (same Node.Node and Service.ID)" },
    { "refuses: ids that meet across the '/'",
      "[{'Node':{'Node':'a/b','Address':'10.0.0.1'},'Service':{'ID':'c','Port':80}},"
      "{'Node':{'Node':'a','Address':'10.0.0.2'},'Service':{'ID':'b/c','Port':80}}]",
      "duplicate member id (same Node.Node and Service.ID)" },
    { "refuses: Meta not an object", "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Meta':[]}}]",
      "Service.Meta is not an object" },
    { "refuses: public_url not a string",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Meta':{'public_url':1}}}]",
      "Service.Meta.public_url is not a string" },
    { "refuses: a wss:// public_url",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Meta':{'public_url':'wss://h.example'}}}]",
      "Service.Meta.public_url is not an http:// or https:// URL (no query or fragment)" },
    { "refuses: a public_url with a query",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Meta':{'public_url':'https://h/a?b=1'}}}]",
      "Service.Meta.public_url is not an http:// or https:// URL (no query or fragment)" },
    { "refuses: a public_url with a space",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Meta':{'public_url':'https://h/a b'}}}]",
      "Service.Meta.public_url is not an http:// or https:// URL (no query or fragment)" },
    { "refuses: a public_url without a host",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80,'Meta':{'public_url':'https:///x'}}}]",
      "Service.Meta.public_url is not an http:// or https:// URL (no query or fragment)" },
    { "refuses: a good entry, then a bad one",
      "[{" TEST_NODE "," TEST_SVC_ID ",'Port':80}},{'Node':{'Node':'n2'},'Service':{}}]",
      "Service.ID is missing or not a string" },
};
/* clang-format on */

static void
test_refuses_row(void **state)
{
    const struct test_row *row = *state;
    const char *why;
    struct member_set *set = test_parse(row->body, &why);

    if (set != NULL) {
        fail_msg("accepted: %s", row->body);
    }
    assert_non_null(why);
    assert_string_equal(why, row->why);
}

/* A raw NUL inside the body ends nothing early: the parser goes by LEN. */
static void
test_nul_byte_in_body_is_refused(void **state)
{
    static const char body[] = "[]\0garbage";
    const char *why;

    (void)state;
    assert_null(test_parse_raw(body, sizeof(body) - 1, &why));
    assert_string_equal(why, "is not JSON");
    member_set_destroy(test_parse_raw(body, 2, &why)); /* the first two bytes alone are fine */
    assert_null(why);
}

int
main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_capture_gives_three_members),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_empty_service_address_means_node_address),
        cmocka_unit_test(test_host_names_are_kept),
        cmocka_unit_test(test_ipv6_addresses_are_bracketed),
        cmocka_unit_test(test_missing_weights_mean_1),
        cmocka_unit_test(test_weights_and_ports_at_their_limits_are_kept),
        cmocka_unit_test(test_longest_host_is_kept),
        cmocka_unit_test(test_other_fields_are_ignored),
        cmocka_unit_test(test_meta_public_url_is_kept),
        cmocka_unit_test(test_empty_array_gives_empty_set),
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_nul_byte_in_body_is_refused),
    };
    struct CMUnitTest tests[TEST_ARRAY_LEN(fixed) + TEST_ARRAY_LEN(test_rows)];

    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < TEST_ARRAY_LEN(test_rows); i++) {
        struct CMUnitTest *t = &tests[TEST_ARRAY_LEN(fixed) + i];

        memset(t, 0, sizeof(*t));
        t->name = test_rows[i].name;
        t->test_func = test_refuses_row;
        t->initial_state = (void *)&test_rows[i];
    }
    return cmocka_run_group_tests_name("consul_parse", tests, NULL, NULL);
}
