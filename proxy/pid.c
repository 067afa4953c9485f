/*
 * getpid() without a syscall, for the whole process. OpenSSL 3 asks for the
 * pid each time one of its DRBGs draws random bytes (fork detection): six
 * syscalls per TLS handshake, about 2% of a wss session's CPU where a syscall
 * costs 1 us. glibc stopped caching the pid in 2.25. wsring never forks; a
 * fork through glibc would reset the cache (pthread_atfork) all the same.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static pid_t pid_cached; /* 0: ask the kernel */

pid_t
getpid(void)
{
    pid_t pid = __atomic_load_n(&pid_cached, __ATOMIC_RELAXED);

    if (pid == 0) {
        pid = (pid_t)syscall(SYS_getpid);
        __atomic_store_n(&pid_cached, pid, __ATOMIC_RELAXED);
    }
    return pid;
}

static void
pid_forget(void)
{
    __atomic_store_n(&pid_cached, 0, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void
pid_watch_forks(void)
{
    pthread_atfork(NULL, NULL, pid_forget);
}
