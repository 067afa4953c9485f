/* The sd_notify protocol: one datagram on the unix socket named by $NOTIFY_SOCKET. */
#include "proxy/notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len;
    ssize_t n;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@')) {
        return 0;
    }
    len = strlen(path);
    if (len >= sizeof(sa.sun_path)) {
        return -1;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0'; /* abstract namespace */
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }
    n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
    return n == -1 ? -1 : 0;
}
