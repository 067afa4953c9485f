/*
 * test_state_file.c: the saved member set (DESIGN §11): a round trip keeps
 * ids, addresses, weights and public_urls; the write leaves no temporary file;
 * every kind of bad file is refused with a message naming the path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "discovery/state_file.h"
#include "ring/member_set.h"

static char dir[] = "/tmp/wsring-test-state-XXXXXX";

static int
setup(void **state)
{
    (void)state;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_round_trip(void **state)
{
    struct member_set *set = member_set_create(), *back;
    char path[256], tmp[300], err[512] = "";

    (void)state;
    path_of(path, sizeof(path), "members.json");
    assert_int_equal(member_set_add(set, "ws-b", "[::1]:9002", 3), 0);
    assert_int_equal(member_set_add(set, "ws-a", "127.0.0.1:9001", 1), 0);
    assert_int_equal(member_set_add(set, "id \"quoted\"", "h:1", 1000), 0);
    assert_int_equal(member_set_set_public_url(set, "ws-b", "wss://b.example.com/x"), 0);
    assert_int_equal(state_file_write(path, set, "etcd", err, sizeof(err)), 0);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1); /* renamed away */
    back = state_file_read(path, err, sizeof(err));
    assert_non_null(back);
    assert_true(member_set_equal(set, back));
    assert_string_equal(member_set_at(back, member_set_find(back, "ws-b"))->public_url,
                        "wss://b.example.com/x");
    member_set_destroy(back);
    /* overwritten in place by the next write */
    member_set_destroy(set);
    set = member_set_create();
    assert_int_equal(state_file_write(path, set, "consul", err, sizeof(err)), 0);
    back = state_file_read(path, err, sizeof(err));
    assert_non_null(back);
    assert_int_equal(member_set_count(back), 0);
    member_set_destroy(back);
    member_set_destroy(set);
}

static void
test_write_failure(void **state)
{
    struct member_set *set = member_set_create();
    char path[256], err[512] = "";

    (void)state;
    path_of(path, sizeof(path), "no-such-dir/members.json");
    assert_int_equal(state_file_write(path, set, "etcd", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no-such-dir/members.json.tmp."));
    assert_non_null(strstr(err, "No such file or directory"));
    member_set_destroy(set);
}

static void
test_bad_files(void **state)
{
    static const char *const rows[][2] = {
        { "", "members.json: " },
        { "[", "members.json: " },
        { "{\"members\":[]}", "not a wsring state file of version 1" },
        { "{\"version\":2,\"members\":[]}", "not a wsring state file of version 1" },
        { "{\"version\":1}", "no members array" },
        { "{\"version\":1,\"members\":{}}", "no members array" },
        { "{\"version\":1,\"members\":[7]}",
          "a member is not {id, address, weight[, public_url]}" },
        { "{\"version\":1,\"members\":[{\"id\":\"a\",\"address\":\"h:1\"}]}",
          "a member is not {id, address, weight[, public_url]}" },
        { "{\"version\":1,\"members\":[{\"id\":\"a\",\"address\":\"h:1\",\"weight\":1,"
          "\"public_url\":5}]}",
          "a member is not {id, address, weight[, public_url]}" },
        { "{\"version\":1,\"members\":[{\"id\":\"a\",\"address\":\"h:1\",\"weight\":1001}]}",
          "a member has a NUL byte or a weight outside 1..1000" },
        /* jansson refuses a NUL inside a string before we see it */
        { "{\"version\":1,\"members\":[{\"id\":\"a\\u0000b\",\"address\":\"h:1\",\"weight\":1}]}",
          "is not allowed" },
        { "{\"version\":1,\"members\":[{\"id\":\"\",\"address\":\"h:1\",\"weight\":1}]}",
          "a member has an empty id or address" },
        { "{\"version\":1,\"members\":[{\"id\":\"a\",\"address\":\"h:1\",\"weight\":1},"
          "{\"id\":\"a\",\"address\":\"h:2\",\"weight\":1}]}",
          "duplicate member id" },
        { "{\"version\":1,\"version\":1,\"members\":[]}", "members.json: " },
    };
    char path[256], err[512];

    (void)state;
    path_of(path, sizeof(path), "members.json");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        write_text(path, rows[i][0]);
        err[0] = '\0';
        if (state_file_read(path, err, sizeof(err)) != NULL || strstr(err, rows[i][1]) == NULL ||
            strstr(err, path) != err) {
            fail_msg("row %zu (%s): got \"%s\", want \"%s\"", i, rows[i][0], err, rows[i][1]);
        }
    }
    path_of(path, sizeof(path), "absent.json");
    assert_null(state_file_read(path, err, sizeof(err)));
    assert_non_null(strstr(err, "absent.json"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_bad_files),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
