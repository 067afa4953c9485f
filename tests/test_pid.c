/*
 * proxy/pid.c: getpid() answers from a cache (OpenSSL asks on every random
 * draw), and the answer is never stale: the kernel's pid, in a forked child too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void
test_getpid_is_the_kernels_pid(void **state)
{
    (void)state;
    assert_int_equal(getpid(), (pid_t)syscall(SYS_getpid));
    assert_int_equal(getpid(), (pid_t)syscall(SYS_getpid)); /* from the cache this time */
}

static void
test_a_forked_child_sees_its_own_pid(void **state)
{
    pid_t parent, child;
    int status;

    (void)state;
    parent = getpid(); /* cached before the fork */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        _exit(getpid() == (pid_t)syscall(SYS_getpid) && getpid() != parent ? 0 : 1);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(getpid(), parent);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getpid_is_the_kernels_pid),
        cmocka_unit_test(test_a_forked_child_sees_its_own_pid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
