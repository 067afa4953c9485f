/*
 * libcurl's multi interface driven by a libevent base (DESIGN §1): curl tells
 * us which sockets and which timeout to watch (CURLMOPT_SOCKETFUNCTION,
 * CURLMOPT_TIMERFUNCTION); we call curl_multi_socket_action() when they fire.
 * No extra thread, no polling loop.
 */
#ifndef WSRING_DISCOVERY_CURL_EVENT_H
#define WSRING_DISCOVERY_CURL_EVENT_H

#include <curl/curl.h>

struct event_base;
struct curl_event;

/* Called when EASY finished with RESULT; the handle is already out of the multi. */
typedef void (*curl_event_done_fn)(CURL *easy, CURLcode result, void *arg);

/* Returns a new glue on BASE, or NULL. curl_global_init() must have run. */
struct curl_event *curl_event_create(struct event_base *base);
/* Removes every transfer (without calling their done callbacks) and frees. Accepts NULL. */
void curl_event_destroy(struct curl_event *ce);
/* Starts EASY (owned by the caller); DONE(ARG) runs when it ends. Returns 0 or -1. */
int curl_event_add(struct curl_event *ce, CURL *easy, curl_event_done_fn done, void *arg);
/* Stops EASY if it is running, without calling its done callback. */
void curl_event_remove(struct curl_event *ce, CURL *easy);

#endif /* WSRING_DISCOVERY_CURL_EVENT_H */
