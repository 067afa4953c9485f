/* Close reasons: the enum and its labels and HTTP answers (from proxy/close_reason.h). */
#ifndef WSRING_PROXY_CLOSE_H
#define WSRING_PROXY_CLOSE_H

enum close_reason {
#define CLOSE_REASON(name, label, status, phrase) CLOSE_##name,
#include "proxy/close_reason.h"
#undef CLOSE_REASON
    CLOSE_REASON_COUNT /* must stay last */
};

/* The metric/log label, e.g. "bad_head". */
const char *close_reason_label(enum close_reason reason);
/* The HTTP status to answer with (0: none) and its reason phrase in *PHRASE. */
int close_reason_status(enum close_reason reason, const char **phrase);

#endif /* WSRING_PROXY_CLOSE_H */
