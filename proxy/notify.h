/* sd_notify(3) without libsystemd: READY=1, RELOADING=1, STOPPING=1 to $NOTIFY_SOCKET (DESIGN §6).
 */
#ifndef WSRING_PROXY_NOTIFY_H
#define WSRING_PROXY_NOTIFY_H

/*
 * Sends STATE (e.g. "READY=1") as one datagram to $NOTIFY_SOCKET (a path, or
 * "@name" in the abstract namespace). Does nothing without the variable.
 * Returns 0, or -1 if sending failed.
 */
int notify_send(const char *state);

#endif /* WSRING_PROXY_NOTIFY_H */
