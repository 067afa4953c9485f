/* One `event=... key=value` line per event on stderr, unbuffered (DESIGN §6). */
#ifndef WSRING_PROXY_LOG_H
#define WSRING_PROXY_LOG_H

#include <stddef.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
    LOG_LEVEL_COUNT /* must stay last */
};

/* Lines above LEVEL are dropped. Set once at start-up, before threads. */
void log_set_level(enum log_level level);
/*
 * Writes "level=L EVENT_AND_FIELDS\n" to stderr in one write(2), so lines
 * from several threads never interleave. FMT should start with "event=".
 */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copies SRC into BUF (CAP bytes) as the inside of a logfmt "..." value:
 * quotes and backslashes escaped, control bytes as '?', cut to fit. Returns BUF.
 */
const char *log_escape(const char *src, char *buf, size_t cap);

#endif /* WSRING_PROXY_LOG_H */
