/* Close reasons -> label, status, phrase (one table: proxy/close_reason.h). */
#include "proxy/close.h"

#include <stddef.h>

struct close_row {
    const char *label;
    int status;
    const char *phrase;
};

static const struct close_row close_rows[CLOSE_REASON_COUNT] = {
#define CLOSE_REASON(name, label, status, phrase) { label, status, phrase },
#include "proxy/close_reason.h"
#undef CLOSE_REASON
};

const char *
close_reason_label(enum close_reason reason)
{
    return close_rows[reason].label;
}

int
close_reason_status(enum close_reason reason, const char **phrase)
{
    *phrase = close_rows[reason].phrase;
    return close_rows[reason].status;
}
