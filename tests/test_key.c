/* test_key.c: routing-key rules over a parsed head (DESIGN §3 step 2, proxy/key.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "proxy/head.h"
#include "proxy/key.h"

#define TEST_KEY_CAP 16

/* A rule list written as text: "query:user", "header:X-User-Id", "cookie:uid", "path:2". */
struct test_rules {
    struct conf_key_rule rule[4];
    char names[4][32];
    size_t n;
};

static void
rules_add(struct test_rules *r, const char *spec)
{
    struct conf_key_rule *k = &r->rule[r->n];
    const char *colon = strchr(spec, ':');

    assert_non_null(colon);
    assert_true(r->n < 4 && strlen(colon + 1) < sizeof(r->names[0]));
    memset(k, 0, sizeof(*k));
    if (strncmp(spec, "path:", 5) == 0) {
        k->source = CONF_KEY_PATH;
        k->segment = (unsigned)strtoul(colon + 1, NULL, 10);
    } else {
        k->source = strncmp(spec, "query:", 6) == 0    ? CONF_KEY_QUERY
                    : strncmp(spec, "header:", 7) == 0 ? CONF_KEY_HEADER
                                                       : CONF_KEY_COOKIE;
        strcpy(r->names[r->n], colon + 1);
        k->name = r->names[r->n];
        k->name_len = strlen(k->name);
    }
    r->n++;
}

struct test_case {
    const char *rules;  /* space-separated rule specs */
    const char *target; /* request-target */
    const char *fields; /* extra header lines, each ending in \r\n */
    enum key_result want;
    const char *key; /* expected key when KEY_FOUND */
};

/* Builds the head as a heap copy of exactly its bytes, parses it and extracts the key. */
static void
run_case(const struct test_case *c, size_t index)
{
    static struct head head;
    struct test_rules rules = { .n = 0 };
    char text[2048], spec[64], *out = malloc(TEST_KEY_CAP);
    const char *p = c->rules;
    int len =
        snprintf(text, sizeof(text), "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n", c->target, c->fields);
    char *buf = malloc((size_t)len);
    size_t out_len = 99;
    enum key_result r;

    assert_true(len > 0 && (size_t)len < sizeof(text) && buf != NULL && out != NULL);
    memcpy(buf, text, (size_t)len);
    while (*p != '\0') {
        size_t n = strcspn(p, " ");

        memcpy(spec, p, n);
        spec[n] = '\0';
        rules_add(&rules, spec);
        p += n + (p[n] == ' ');
    }
    if (head_parse(buf, (size_t)len, &head, NULL) != HEAD_DONE) {
        fail_msg("case %zu: head does not parse", index);
    }
    r = key_extract(&head, rules.rule, rules.n, out, TEST_KEY_CAP, &out_len);
    if (r != c->want) {
        fail_msg("case %zu (%s on %s): got %d, want %d", index, c->rules, c->target, r, c->want);
    }
    if (r == KEY_FOUND) {
        if (out_len != strlen(c->key) || memcmp(out, c->key, out_len) != 0) {
            fail_msg("case %zu: got \"%.*s\", want \"%s\"", index, (int)out_len, out, c->key);
        }
    } else {
        assert_int_equal(out_len, 0);
    }
    free(buf);
    free(out);
}

static void
run_cases(const struct test_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        run_case(&cases[i], i);
    }
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void
test_query_rule(void **state)
{
    /* clang-format off */
    static const struct test_case cases[] = {
        { "query:user", "/chat?user=alice",                 "", KEY_FOUND,   "alice" },
        { "query:user", "/chat?a=1&user=bob&c=3",           "", KEY_FOUND,   "bob" },
        { "query:user", "/chat?user=first&user=second",     "", KEY_FOUND,   "first" },
        { "query:user", "/chat?xuser=1&user=2",             "", KEY_FOUND,   "2" },
        { "query:user", "/chat?user_id=1&user=2",           "", KEY_FOUND,   "2" },
        { "query:user", "/chat?User=1",                     "", KEY_MISSING, NULL },
        { "query:user", "/chat?us%65r=1",                   "", KEY_MISSING, NULL },
        { "query:user", "/chat?user=a+b%20c%2Bd",           "", KEY_FOUND,   "a b c+d" },
        { "query:user", "/chat?user=%c3%a9",                "", KEY_FOUND,   "\xc3\xa9" },
        { "query:user", "/chat?user=a=b",                   "", KEY_FOUND,   "a=b" },
        { "query:user", "/chat?user=bob#user=eve",          "", KEY_FOUND,   "bob" },
        { "query:user", "/chat#?user=eve",                  "", KEY_MISSING, NULL },
        { "query:user", "/chat?a=1?user=x",                 "", KEY_MISSING, NULL },
        { "query:user", "/chat/user=x",                     "", KEY_MISSING, NULL },
        { "query:user", "/chat?user",                       "", KEY_MISSING, NULL },
        { "query:user", "/chat?user=",                      "", KEY_MISSING, NULL },
        { "query:user", "/chat?user=&user=x",               "", KEY_MISSING, NULL },
        { "query:user", "/chat?&&user=x&&",                 "", KEY_FOUND,   "x" },
        { "query:user", "http://example.com/c?user=abs",    "", KEY_FOUND,   "abs" },
        /* bad escapes and control bytes after decoding */
        { "query:user", "/chat?user=%4",                    "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=ab%",                   "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=%zz",                   "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=%4g",                   "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=a%0d%0aX-Evil:1",       "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=%00",                   "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=%7f",                   "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=%09",                   "", KEY_BAD,     NULL },
        /* the cap (16) counts decoded bytes */
        { "query:user", "/chat?user=0123456789abcdef",      "", KEY_FOUND,   "0123456789abcdef" },
        { "query:user", "/chat?user=0123456789abcdefg",     "", KEY_BAD,     NULL },
        { "query:user", "/chat?user=%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41", "",
          KEY_FOUND, "AAAAAAAAAAAAAAAA" },
    };
    /* clang-format on */

    (void)state;
    RUN(cases);
}

static void
test_header_rule(void **state)
{
    /* clang-format off */
    static const struct test_case cases[] = {
        { "header:X-User-Id", "/", "x-user-id:   u42  \r\n",               KEY_FOUND,   "u42" },
        { "header:X-User-Id", "/", "X-User-Id: a\r\nX-User-Id: b\r\n",     KEY_FOUND,   "a" },
        { "header:X-User-Id", "/", "X-User-Id: a%20b+c\r\n",               KEY_FOUND,   "a%20b+c" },
        { "header:X-User-Id", "/", "X-User-Idx: a\r\n",                    KEY_MISSING, NULL },
        { "header:X-User-Id", "/", "X-User-Id:\r\nX-User-Id: b\r\n",       KEY_MISSING, NULL },
        { "header:X-User-Id", "/", "X-User-Id: a\tb\r\n",                  KEY_BAD,     NULL },
        { "header:X-User-Id", "/", "X-User-Id: \xc3\xa9\r\n",              KEY_FOUND,   "\xc3\xa9" },
        { "header:X-User-Id", "/", "X-User-Id: 0123456789abcdefX\r\n",     KEY_BAD,     NULL },
    };
    /* clang-format on */

    (void)state;
    RUN(cases);
}

static void
test_cookie_rule(void **state)
{
    /* clang-format off */
    static const struct test_case cases[] = {
        { "cookie:uid", "/", "Cookie: uid=u1\r\n",                          KEY_FOUND,   "u1" },
        { "cookie:uid", "/", "Cookie: a=1; uid=u2; b=3\r\n",                KEY_FOUND,   "u2" },
        { "cookie:uid", "/", "Cookie: xuid=1; uidx=2; uid=u3\r\n",          KEY_FOUND,   "u3" },
        { "cookie:uid", "/", "Cookie: a=1\r\nX: y\r\ncookie: uid=u4\r\n",   KEY_FOUND,   "u4" },
        { "cookie:uid", "/", "Cookie: uid=first\r\nCookie: uid=second\r\n", KEY_FOUND,   "first" },
        { "cookie:uid", "/", "Cookie: uid=\"quoted\"\r\n",                  KEY_FOUND,   "quoted" },
        { "cookie:uid", "/", "Cookie: uid=\"\r\n",                          KEY_FOUND,   "\"" },
        { "cookie:uid", "/", "Cookie: uid=\"\"\r\n",                        KEY_MISSING, NULL },
        { "cookie:uid", "/", "Cookie: uid=a%20b\r\n",                       KEY_FOUND,   "a%20b" },
        { "cookie:uid", "/", "Cookie: uid=a=b\r\n",                         KEY_FOUND,   "a=b" },
        { "cookie:uid", "/", "Cookie: uid;uid=x\r\n",                       KEY_FOUND,   "x" },
        { "cookie:uid", "/", "Cookie: UID=x\r\n",                           KEY_MISSING, NULL },
        { "cookie:uid", "/", "Cookie: uid=\r\n",                            KEY_MISSING, NULL },
        { "cookie:uid", "/", "Cookie: a=1;uid=tight\r\n",                   KEY_FOUND,   "tight" },
        { "cookie:uid", "/", "Cookies: uid=x\r\n",                          KEY_MISSING, NULL },
        { "cookie:uid", "/", "X-Cookie: uid=x\r\n",                         KEY_MISSING, NULL },
        { "cookie:uid", "/", "Cookie: uid=0123456789abcdef0\r\n",           KEY_BAD,     NULL },
    };
    /* clang-format on */

    (void)state;
    RUN(cases);
}

static void
test_path_rule(void **state)
{
    /* clang-format off */
    static const struct test_case cases[] = {
        { "path:1", "/a/b/c",                       "", KEY_FOUND,   "a" },
        { "path:2", "/a/b/c",                       "", KEY_FOUND,   "b" },
        { "path:3", "/a/b/c?x=1",                   "", KEY_FOUND,   "c" },
        { "path:4", "/a/b/c",                       "", KEY_MISSING, NULL },
        { "path:4", "/a/b/c/",                      "", KEY_MISSING, NULL },
        { "path:9", "/",                            "", KEY_MISSING, NULL },
        { "path:1", "/",                            "", KEY_MISSING, NULL },
        { "path:2", "/a//c",                        "", KEY_MISSING, NULL },
        { "path:2", "/a/%75ser%20x+y",              "", KEY_FOUND,   "user x+y" },
        { "path:2", "/a/b%2fc",                     "", KEY_FOUND,   "b/c" },
        { "path:2", "/a/b%2",                       "", KEY_BAD,     NULL },
        { "path:2", "/a/%0a",                       "", KEY_BAD,     NULL },
        { "path:2", "/a/b#frag",                    "", KEY_FOUND,   "b" },
        { "path:1", "http://example.com/u/v",       "", KEY_FOUND,   "u" },
        { "path:2", "HTTPS://example.com:8443/u/v", "", KEY_FOUND,   "v" },
        { "path:1", "http://example.com",           "", KEY_MISSING, NULL },
        { "path:1", "http://example.com?x=/a",      "", KEY_MISSING, NULL },
        { "path:0", "/a",                           "", KEY_MISSING, NULL },
        { "path:1", "/0123456789abcdef0",           "", KEY_BAD,     NULL },
    };
    /* clang-format on */

    (void)state;
    RUN(cases);
}

static void
test_first_matching_rule_wins(void **state)
{
    /* clang-format off */
    static const struct test_case cases[] = {
        { "query:user header:X-User-Id cookie:uid path:2", "/a/p?user=q",
          "X-User-Id: h\r\nCookie: uid=c\r\n",          KEY_FOUND,   "q" },
        { "query:user header:X-User-Id cookie:uid path:2", "/a/p?user=",
          "X-User-Id: h\r\nCookie: uid=c\r\n",          KEY_FOUND,   "h" },
        { "query:user header:X-User-Id cookie:uid path:2", "/a/p",
          "X-User-Id:\r\nCookie: uid=c\r\n",            KEY_FOUND,   "c" },
        { "query:user header:X-User-Id cookie:uid path:2", "/a/p",
          "Cookie: uid=\"\"\r\n",                       KEY_FOUND,   "p" },
        { "query:user header:X-User-Id cookie:uid path:2", "/a",
          "",                                           KEY_MISSING, NULL },
        /* a bad match stops the search: it is a 400, not a fall-through */
        { "query:user header:X-User-Id", "/?user=%0d",
          "X-User-Id: h\r\n",                           KEY_BAD,     NULL },
        { "", "/?user=x",                     "",       KEY_MISSING, NULL },
    };
    /* clang-format on */

    (void)state;
    RUN(cases);
}

static void
test_other_target_forms_have_no_key(void **state)
{
    static const char text[] = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char connect[] = "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n";
    static struct head head;
    struct test_rules rules = { .n = 0 };
    char out[TEST_KEY_CAP];
    size_t out_len = 1;
    char *buf = malloc(sizeof(connect));

    (void)state;
    rules_add(&rules, "query:user");
    rules_add(&rules, "path:1");
    memcpy(buf, text, sizeof(text) - 1);
    assert_int_equal(head_parse(buf, sizeof(text) - 1, &head, NULL), HEAD_DONE);
    assert_int_equal(key_extract(&head, rules.rule, rules.n, out, sizeof(out), &out_len),
                     KEY_MISSING);
    memcpy(buf, connect, sizeof(connect) - 1);
    assert_int_equal(head_parse(buf, sizeof(connect) - 1, &head, NULL), HEAD_DONE);
    assert_int_equal(key_extract(&head, rules.rule, rules.n, out, sizeof(out), &out_len),
                     KEY_MISSING);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_rule),
        cmocka_unit_test(test_header_rule),
        cmocka_unit_test(test_cookie_rule),
        cmocka_unit_test(test_path_rule),
        cmocka_unit_test(test_first_matching_rule_wins),
        cmocka_unit_test(test_other_target_forms_have_no_key),
    };

    return cmocka_run_group_tests_name("key", tests, NULL, NULL);
}
