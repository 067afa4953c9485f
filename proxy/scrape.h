/*
 * GET /metrics: asks every worker for a snapshot of its counters on its own
 * thread, waits for all of them on the main base, sums, answers. Requests
 * that arrive meanwhile share the scrape in flight. Main thread only.
 */
#ifndef WSRING_PROXY_SCRAPE_H
#define WSRING_PROXY_SCRAPE_H

struct event_base;
struct evhttp_request;
struct metrics_main;
struct worker;
struct scrape;

/* Fills what only the main thread knows (ring, discovery, reloads). */
typedef void (*scrape_main_fn)(struct metrics_main *m, void *arg);

/* WORKERS (NWORKERS of them) outlive the scrape. Returns NULL on ENOMEM. */
struct scrape *scrape_create(struct event_base *base, struct worker *const *workers,
                             unsigned nworkers, scrape_main_fn fill, void *arg);
/* Accepts NULL; unanswered requests get a 503. */
void scrape_destroy(struct scrape *s);
/* Answers REQ with the exposition text once every worker has reported. */
void scrape_request(struct evhttp_request *req, void *arg);

#endif /* WSRING_PROXY_SCRAPE_H */
