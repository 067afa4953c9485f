/* What every member source shares (discovery/source.h). */
#include "discovery/source.h"

#include <stdlib.h>

uint64_t
source_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned failures)
{
    uint64_t d = base_ms;

    for (unsigned i = 1; i < failures && d < cap_ms; i++) {
        d *= 2;
    }
    if (d > cap_ms) {
        d = cap_ms;
    }
    return d / 2 + (uint64_t)rand() % (d / 2 + 1);
}
