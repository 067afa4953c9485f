/* test_member_set.c: the sorted, duplicate-free member list under every ring (DESIGN §4). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ring/member_set.h"

static struct member_set *
test_set_of(const char *const *ids, size_t n)
{
    struct member_set *set = member_set_create();

    assert_non_null(set);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(member_set_add(set, ids[i], "127.0.0.1:9000", 1), 0);
    }
    return set;
}

static void
test_members_come_out_sorted_by_id(void **state)
{
    static const char *const ids[] = { "ws-c", "ws-a", "ws-b" };
    struct member_set *set = test_set_of(ids, 3);

    (void)state;
    assert_int_equal(member_set_count(set), 3);
    assert_string_equal(member_set_at(set, 0)->id, "ws-a");
    assert_string_equal(member_set_at(set, 1)->id, "ws-b");
    assert_string_equal(member_set_at(set, 2)->id, "ws-c");
    member_set_destroy(set);
}

static void
test_order_is_bytewise_with_shorter_prefix_first(void **state)
{
    /* Unsigned bytes: uppercase before lowercase, '/' before 'b', UTF-8 and 0xff last. */
    static const char *const ids[] = { "ab", "\xff", "a", "\xc3\xa9-1", "Z", "a/b", "\x7f", "B" };
    static const char *const sorted[] = {
        "B", "Z", "a", "a/b", "ab", "\x7f", "\xc3\xa9-1", "\xff"
    };
    struct member_set *set = test_set_of(ids, 8);

    (void)state;
    for (size_t i = 0; i < 8; i++) {
        assert_string_equal(member_set_at(set, i)->id, sorted[i]);
    }
    member_set_destroy(set);
}

static void
test_duplicate_id_is_refused_with_eexist(void **state)
{
    static const char *const ids[] = { "ws-a", "ws-b" };
    struct member_set *set = test_set_of(ids, 2);

    (void)state;
    errno = 0;
    assert_int_equal(member_set_add(set, "ws-a", "10.0.0.1:1", 3), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(member_set_count(set), 2);
    assert_string_equal(member_set_at(set, 0)->address, "127.0.0.1:9000");
    assert_int_equal(member_set_at(set, 0)->weight, 1);
    member_set_destroy(set);
}

static void
test_bad_member_is_refused_with_einval(void **state)
{
    struct member_set *set = member_set_create();
    struct {
        const char *id;
        const char *address;
        uint32_t weight;
    } bad[] = {
        { "", "127.0.0.1:1", 1 },     { "ws-a", "", 1 },
        { NULL, "127.0.0.1:1", 1 },   { "ws-a", NULL, 1 },
        { "ws-a", "127.0.0.1:1", 0 }, { "ws-a", "127.0.0.1:1", MEMBER_SET_MAX_WEIGHT + 1 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(member_set_add(set, bad[i].id, bad[i].address, bad[i].weight), -1);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(member_set_count(set), 0);
    assert_int_equal(member_set_add(set, "ws-a", "127.0.0.1:1", MEMBER_SET_MAX_WEIGHT), 0);
    member_set_destroy(set);
}

static void
test_add_copies_the_strings(void **state)
{
    struct member_set *set = member_set_create();
    char id[] = "ws-a", address[] = "127.0.0.1:9001";

    (void)state;
    assert_int_equal(member_set_add(set, id, address, 2), 0);
    id[0] = 'X';
    address[0] = 'X';
    assert_string_equal(member_set_at(set, 0)->id, "ws-a");
    assert_string_equal(member_set_at(set, 0)->address, "127.0.0.1:9001");
    assert_int_equal(member_set_at(set, 0)->weight, 2);
    member_set_destroy(set);
}

static void
test_find_returns_the_index_or_minus_one(void **state)
{
    static const char *const ids[] = { "ws-c", "ws-a", "ws-b" };
    struct member_set *set = test_set_of(ids, 3);

    (void)state;
    assert_int_equal(member_set_find(set, "ws-a"), 0);
    assert_int_equal(member_set_find(set, "ws-c"), 2);
    assert_int_equal(member_set_find(set, "ws"), -1);
    assert_int_equal(member_set_find(set, "ws-a "), -1);
    assert_int_equal(member_set_find(set, "ws-d"), -1);
    member_set_destroy(set);
}

static void
test_copy_is_deep_and_equal(void **state)
{
    static const char *const ids[] = { "ws-b", "ws-a" };
    struct member_set *set = test_set_of(ids, 2), *copy = member_set_copy(set);

    (void)state;
    assert_non_null(copy);
    assert_true(member_set_equal(set, copy));
    assert_ptr_not_equal(member_set_at(set, 0)->id, member_set_at(copy, 0)->id);
    member_set_destroy(set);
    /* The copy outlives its source. */
    assert_string_equal(member_set_at(copy, 1)->id, "ws-b");
    assert_int_equal(member_set_add(copy, "ws-c", "127.0.0.1:1", 1), 0);
    member_set_destroy(copy);
}

static void
test_equal_compares_ids_addresses_and_weights(void **state)
{
    struct member_set *a = member_set_create(), *b = member_set_create();

    (void)state;
    assert_true(member_set_equal(a, b));
    assert_int_equal(member_set_add(a, "ws-a", "127.0.0.1:1", 1), 0);
    assert_false(member_set_equal(a, b));
    assert_int_equal(member_set_add(b, "ws-a", "127.0.0.1:2", 1), 0);
    assert_false(member_set_equal(a, b)); /* address differs */
    member_set_destroy(b);
    b = member_set_create();
    assert_int_equal(member_set_add(b, "ws-a", "127.0.0.1:1", 2), 0);
    assert_false(member_set_equal(a, b)); /* weight differs */
    member_set_destroy(b);
    b = member_set_create();
    assert_int_equal(member_set_add(b, "ws-b", "127.0.0.1:1", 1), 0);
    assert_false(member_set_equal(a, b)); /* id differs */
    member_set_destroy(b);
    b = member_set_copy(a);
    assert_true(member_set_equal(a, b));
    member_set_destroy(a);
    member_set_destroy(b);
}

static void
test_public_url_is_copied_compared_and_outside_the_ring(void **state)
{
    struct member_set *a = member_set_create(), *b;

    (void)state;
    assert_int_equal(member_set_add(a, "ws-a", "127.0.0.1:1", 1), 0);
    assert_null(member_set_at(a, 0)->public_url);
    assert_int_equal(member_set_set_public_url(a, "ws-x", "https://x"), -1);
    assert_int_equal(errno, ENOENT);
    b = member_set_copy(a);
    assert_int_equal(member_set_set_public_url(a, "ws-a", "https://a.example/"), 0);
    assert_false(member_set_equal(a, b)); /* a publish must carry the new url */
    member_set_destroy(b);
    b = member_set_copy(a);
    assert_string_equal(member_set_at(b, 0)->public_url, "https://a.example/");
    assert_ptr_not_equal(member_set_at(b, 0)->public_url, member_set_at(a, 0)->public_url);
    assert_true(member_set_equal(a, b));
    assert_int_equal(member_set_set_public_url(b, "ws-a", NULL), 0);
    assert_null(member_set_at(b, 0)->public_url);
    member_set_destroy(a);
    member_set_destroy(b);
}

static void
test_empty_set_is_valid(void **state)
{
    struct member_set *set = member_set_create(), *copy;

    (void)state;
    assert_int_equal(member_set_count(set), 0);
    assert_int_equal(member_set_find(set, "ws-a"), -1);
    copy = member_set_copy(set);
    assert_non_null(copy);
    assert_int_equal(member_set_count(copy), 0);
    assert_true(member_set_equal(set, copy));
    member_set_destroy(copy);
    member_set_destroy(set);
    member_set_destroy(NULL);
}

static void
test_many_members_in_random_order_stay_sorted(void **state)
{
    struct member_set *set = member_set_create();
    uint64_t x = 7;
    char id[32];

    (void)state;
    /* A fixed permutation of 0..999 (997 is prime to 1000). */
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "node-%u/ws", (i * 997 + 13) % 1000);
        assert_int_equal(member_set_add(set, id, "10.0.0.1:80", 1 + (unsigned)(x++ % 5)), 0);
    }
    assert_int_equal(member_set_count(set), 1000);
    for (size_t i = 1; i < 1000; i++) {
        assert_true(strcmp(member_set_at(set, i - 1)->id, member_set_at(set, i)->id) < 0);
    }
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "node-%u/ws", i);
        assert_string_equal(member_set_at(set, (size_t)member_set_find(set, id))->id, id);
    }
    member_set_destroy(set);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_come_out_sorted_by_id),
        cmocka_unit_test(test_order_is_bytewise_with_shorter_prefix_first),
        cmocka_unit_test(test_duplicate_id_is_refused_with_eexist),
        cmocka_unit_test(test_bad_member_is_refused_with_einval),
        cmocka_unit_test(test_add_copies_the_strings),
        cmocka_unit_test(test_find_returns_the_index_or_minus_one),
        cmocka_unit_test(test_copy_is_deep_and_equal),
        cmocka_unit_test(test_equal_compares_ids_addresses_and_weights),
        cmocka_unit_test(test_public_url_is_copied_compared_and_outside_the_ring),
        cmocka_unit_test(test_empty_set_is_valid),
        cmocka_unit_test(test_many_members_in_random_order_stay_sorted),
    };

    return cmocka_run_group_tests_name("member_set", tests, NULL, NULL);
}
