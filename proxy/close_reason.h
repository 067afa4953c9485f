/*
 * The close reasons of a connection: one row each, expanded into the enum,
 * metric labels and HTTP answers (proxy/close.h). No include guard: it is
 * meant to be included several times with different CLOSE_REASON macros.
 */
/* clang-format off */
/*           name            label             status  phrase */
CLOSE_REASON(DONE,           "done",           0,      NULL)
CLOSE_REASON(CLIENT_EOF,     "client_eof",     0,      NULL)
CLOSE_REASON(CLIENT_ERROR,   "client_error",   0,      NULL)
CLOSE_REASON(BACKEND_ERROR,  "backend_error",  0,      NULL)
CLOSE_REASON(HANDSHAKE_TIMEOUT, "handshake_timeout", 0, NULL)
CLOSE_REASON(TLS_HANDSHAKE,  "tls_handshake",  0,      NULL)
CLOSE_REASON(PLAIN_HTTP,     "plain_http",     400,    "Bad Request")
CLOSE_REASON(BAD_HEAD,       "bad_head",       400,    "Bad Request")
CLOSE_REASON(BAD_KEY,        "bad_key",        400,    "Bad Request")
CLOSE_REASON(BAD_PROXY,      "bad_proxy",      0,      NULL)
CLOSE_REASON(BAD_TOKEN,      "bad_token",      401,    "Unauthorized")
CLOSE_REASON(NO_KEY,         "no_key",         400,    "Bad Request")
CLOSE_REASON(HEAD_TOO_LARGE, "head_too_large", 431,    "Request Header Fields Too Large")
CLOSE_REASON(RING_EMPTY,     "ring_empty",     503,    "Service Unavailable")
CLOSE_REASON(NO_BACKEND,     "no_backend",     502,    "Bad Gateway")
CLOSE_REASON(NO_MEMORY,      "no_memory",      503,    "Service Unavailable")
CLOSE_REASON(SHUTDOWN,       "shutdown",       0,      NULL)
CLOSE_REASON(MIGRATED,       "migrated",       0,      NULL)
CLOSE_REASON(DRAINED,        "drained",        0,      NULL)
/* clang-format on */
