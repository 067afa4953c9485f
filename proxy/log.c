/* Log lines on stderr: one write(2) per line (DESIGN §6). */
#include "proxy/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static enum log_level log_level_max = LOG_INFO;

static const char *const log_level_names[LOG_LEVEL_COUNT] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
    log_level_max = level;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n, m;

    if (level > log_level_max) {
        return;
    }
    n = snprintf(line, sizeof(line), "level=%s ", log_level_names[level]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    n += m;
    if ((size_t)n > sizeof(line) - 2) {
        n = (int)sizeof(line) - 2; /* cut, but keep the newline */
    }
    line[n++] = '\n';
    /* stderr is unbuffered anyway; one write keeps concurrent lines whole. */
    if (write(STDERR_FILENO, line, (size_t)n) == -1) {
        return;
    }
}

const char *
log_escape(const char *src, char *buf, size_t cap)
{
    size_t n = 0;

    for (; *src != '\0' && n + 3 < cap; src++) {
        if (*src == '"' || *src == '\\') {
            buf[n++] = '\\';
            buf[n++] = *src;
        } else {
            buf[n++] = (unsigned char)*src < 0x20 || *src == 0x7f ? '?' : *src;
        }
    }
    buf[n] = '\0';
    return buf;
}
