/*
 * proxy.conf -> struct conf (DESIGN §9, STYLE "The config directive-table pattern").
 *
 * Syntax: one directive per line, `name arg...`, words separated by spaces,
 * tabs or CRs (so CRLF files work). `#` starts a comment wherever it appears;
 * there is no quoting, so no word can hold a space or a `#`. A line may not be
 * longer than CONF_LINE_MAX bytes and the file may hold no control byte but
 * tab, CR and LF. A block is `name args... {` (the `{` is the last word), its
 * lines, and `}` alone on a line; blocks do not nest. No block directive exists
 * yet, so a well-formed block is refused by name after the syntax pass.
 *
 * Parsing runs in two passes over the text. The syntax pass checks bytes,
 * line lengths and braces, so an unterminated block, a stray `}` or a nested
 * block is reported even when its name is unknown. The directive pass then
 * feeds each line to the table; finally every directive not seen is set from
 * the table's default text by the same setter. A missing `listen` is reported
 * on the file's last line (line 1 for an empty file).
 */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>
#include <unistd.h>

#include "conf/conf_value.h"
#include "ring/member_set.h"

#define ARRAY_LEN(a)     (sizeof(a) / sizeof((a)[0]))
#define CONF_LINE_MAX    4096        /* bytes per line, without its LF */
#define CONF_MAX_ARGS    8           /* words kept per line; the rest are only counted */
#define CONF_FILE_MAX    (16u << 20) /* conf_load refuses larger files */
#define CONF_QUOTE_MAX   100         /* bytes of user text quoted in a message */
#define CONF_WORKERS_MAX 64

/* Parses ARGS into FIELD. Returns NULL, or what is wrong ("is not a duration"). */
typedef const char *(*conf_set_fn)(void *field, char **args, int nargs);

enum conf_directive_flag {
    CONF_REPEATABLE = 1 << 0, /* may appear many times; its setter appends (conf_add_*) */
    CONF_REQUIRED = 1 << 1,   /* must appear at least once (no default) */
};

struct conf_directive {
    const char *name;
    int min_args, max_args;
    conf_set_fn set;
    size_t offset;        /* of the field in struct conf; conf_add_* get the whole conf (0) */
    const char *fallback; /* default, parsed by set() like user input; NULL: none */
    unsigned flags;       /* enum conf_directive_flag */
};

struct conf_words {
    char buf[CONF_LINE_MAX + 1]; /* the line, each word NUL-terminated in place */
    char *args[CONF_MAX_ARGS];   /* borrowed, into buf */
    int nargs;                   /* every word, also those past CONF_MAX_ARGS */
    int open_at;                 /* index of the first "{" word, or -1 */
    int close_at;                /* index of the first "}" word, or -1 */
};

struct conf_cursor {
    const char *text; /* borrowed */
    size_t len;
    size_t pos;    /* start of the next line */
    unsigned line; /* number of the line last returned, 1-based */
};

static const char *conf_add_listen(void *field, char **args, int nargs);
static const char *conf_set_admin(void *field, char **args, int nargs);
static const char *conf_set_workers(void *field, char **args, int nargs);
static const char *conf_add_key(void *field, char **args, int nargs);
static const char *conf_set_key_missing(void *field, char **args, int nargs);
static const char *conf_set_hash(void *field, char **args, int nargs);
static const char *conf_set_vnodes(void *field, char **args, int nargs);
static const char *conf_set_flag(void *field, char **args, int nargs);
static const char *conf_set_msec(void *field, char **args, int nargs);
static const char *conf_set_timeout(void *field, char **args, int nargs);
static const char *conf_set_head_bytes(void *field, char **args, int nargs);
static const char *conf_set_key_bytes(void *field, char **args, int nargs);
static const char *conf_set_discovery(void *field, char **args, int nargs);
static const char *conf_add_backend(void *field, char **args, int nargs);

#define FIELD(f) offsetof(struct conf, f)
#define WHOLE    0 /* conf_add_* append to arrays and see the whole struct conf */
#define REP      CONF_REPEATABLE
#define REQ      CONF_REQUIRED

/* clang-format off */
static const struct conf_directive conf_directives[] = {
    /* name               args  parser                field                         default           flags */
    { "listen",            1, 1, conf_add_listen,       WHOLE,                        NULL,             REP | REQ },
    { "admin",             1, 1, conf_set_admin,        FIELD(admin),                 "127.0.0.1:9090", 0 },
    { "workers",           1, 1, conf_set_workers,      FIELD(workers),               "auto",           0 },
    { "key",               1, 1, conf_add_key,          WHOLE,                        "query:user",     REP },
    { "key_missing",       1, 1, conf_set_key_missing,  FIELD(key_missing),           "reject",         0 },
    { "hash",              1, 1, conf_set_hash,         FIELD(ring.algo),             "ring",           0 },
    { "vnodes",            1, 1, conf_set_vnodes,       FIELD(ring.vnodes),           "1000",           0 },
    { "retry_next",        1, 1, conf_set_flag,         FIELD(retry_next),            "on",             0 },
    { "down_hold",         1, 1, conf_set_msec,         FIELD(down_hold_ms),          "10s",            0 },
    { "connect_timeout",   1, 1, conf_set_timeout,      FIELD(connect_timeout_ms),    "3s",             0 },
    { "handshake_timeout", 1, 1, conf_set_timeout,      FIELD(handshake_timeout_ms),  "10s",            0 },
    { "max_head_bytes",    1, 1, conf_set_head_bytes,   FIELD(max_head_bytes),        "16k",            0 },
    { "max_key_bytes",     1, 1, conf_set_key_bytes,    FIELD(max_key_bytes),         "256",            0 },
    { "discovery",         1, 1, conf_set_discovery,    FIELD(discovery),             "static",         0 },
    { "backend",           2, 4, conf_add_backend,      WHOLE,                        NULL,             REP },
};
/* clang-format on */

/* The range texts in the messages below. */
_Static_assert(RING_MAX_VNODES == 10000, "update the vnodes message");
_Static_assert(MEMBER_SET_MAX_WEIGHT == 1000, "update the backend weight message");

struct conf_parser {
    const char *file;                          /* borrowed; for messages */
    unsigned line;                             /* of the line being read */
    struct conf *conf;                         /* owned until conf_parse() returns it */
    char *err;                                 /* CONF_ERR_LEN bytes */
    unsigned seen[ARRAY_LEN(conf_directives)]; /* line of the first use; 0 = not seen */
};

/* ---- setters ------------------------------------------------------------- */

/* Grows *ARRAY of N elements of SIZE by one zeroed element. Returns it, or NULL on ENOMEM. */
static void *
conf_append(void **array, size_t n, size_t size)
{
    char *grown = realloc(*array, (n + 1) * size);

    if (grown == NULL) {
        return NULL;
    }
    *array = grown;
    memset(grown + n * size, 0, size);
    return grown + n * size;
}

static const char *
conf_add_listen(void *field, char **args, int nargs)
{
    struct conf *conf = field;
    struct conf_addr addr, *slot;
    const char *what = conf_value_addr(args[0], strlen(args[0]), &addr);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        if (conf_value_addr_equal(&conf->listen[i], &addr)) {
            free(addr.host);
            return "is a duplicate";
        }
    }
    slot = conf_append((void **)&conf->listen, conf->nlisten, sizeof(*slot));
    if (slot == NULL) {
        free(addr.host);
        return conf_value_enomem;
    }
    *slot = addr;
    conf->nlisten++;
    return NULL;
}

static const char *
conf_set_admin(void *field, char **args, int nargs)
{
    struct conf_addr *admin = field;

    (void)nargs;
    if (strcmp(args[0], "off") == 0) {
        admin->host = NULL;
        admin->port = 0;
        return NULL;
    }
    return conf_value_addr(args[0], strlen(args[0]), admin);
}

static const char *
conf_set_workers(void *field, char **args, int nargs)
{
    uint64_t n = 0;

    (void)nargs;
    if (strcmp(args[0], "auto") != 0 &&
        conf_value_uint(args[0], strlen(args[0]), 1, CONF_WORKERS_MAX, &n) != NULL) {
        return "is not auto or a number in 1..64";
    }
    *(unsigned *)field = (unsigned)n;
    return NULL;
}

static bool
conf_key_rule_equal(const struct conf_key_rule *a, const struct conf_key_rule *b)
{
    if (a->source != b->source) {
        return false;
    }
    switch (a->source) {
    case CONF_KEY_PATH:
        return a->segment == b->segment;
    case CONF_KEY_HEADER: /* RFC 9110 s5.1: field names are case-insensitive */
        return strcasecmp(a->name, b->name) == 0;
    default:
        return strcmp(a->name, b->name) == 0;
    }
}

static const char *
conf_add_key(void *field, char **args, int nargs)
{
    struct conf *conf = field;
    struct conf_key_rule rule, *slot;
    const char *what = conf_value_key_rule(args[0], strlen(args[0]), &rule);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    for (size_t i = 0; i < conf->nkeys; i++) {
        if (conf_key_rule_equal(&conf->keys[i], &rule)) {
            free(rule.name);
            return "is a duplicate";
        }
    }
    slot = conf_append((void **)&conf->keys, conf->nkeys, sizeof(*slot));
    if (slot == NULL) {
        free(rule.name);
        return conf_value_enomem;
    }
    *slot = rule;
    conf->nkeys++;
    return NULL;
}

/* Returns the index of WORD in NAMES (N of them), or -1. */
static int
conf_pick(const char *word, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(word, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static const char *
conf_set_key_missing(void *field, char **args, int nargs)
{
    static const char *const names[] = {
        [CONF_KEY_MISSING_REJECT] = "reject",
        [CONF_KEY_MISSING_CLIENT_IP] = "client_ip",
    };
    int i = conf_pick(args[0], names, (int)ARRAY_LEN(names));

    (void)nargs;
    if (i < 0) {
        return "is not reject or client_ip";
    }
    *(enum conf_key_missing *)field = (enum conf_key_missing)i;
    return NULL;
}

static const char *
conf_set_hash(void *field, char **args, int nargs)
{
    static const char *const names[RING_ALGO_COUNT] = {
        [RING_ALGO_RING] = "ring",
        [RING_ALGO_RENDEZVOUS] = "rendezvous",
    };
    int i = conf_pick(args[0], names, RING_ALGO_COUNT);

    (void)nargs;
    if (i < 0) {
        return "is not ring or rendezvous";
    }
    *(enum ring_algo *)field = (enum ring_algo)i;
    return NULL;
}

static const char *
conf_set_vnodes(void *field, char **args, int nargs)
{
    uint64_t n;

    (void)nargs;
    if (conf_value_uint(args[0], strlen(args[0]), 1, RING_MAX_VNODES, &n) != NULL) {
        return "is not a number in 1..10000";
    }
    *(uint32_t *)field = (uint32_t)n;
    return NULL;
}

static const char *
conf_set_flag(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_value_flag(args[0], strlen(args[0]), field);
}

static const char *
conf_set_msec(void *field, char **args, int nargs)
{
    (void)nargs;
    return conf_value_msec(args[0], strlen(args[0]), field);
}

/* A duration that must not be 0: an expired-at-once timer is never what is meant. */
static const char *
conf_set_timeout(void *field, char **args, int nargs)
{
    uint64_t ms;
    const char *what = conf_value_msec(args[0], strlen(args[0]), &ms);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    if (ms == 0) {
        return "must be longer than 0";
    }
    *(uint64_t *)field = ms;
    return NULL;
}

static const char *
conf_set_head_bytes(void *field, char **args, int nargs)
{
    uint64_t n;
    const char *what = conf_value_size(args[0], strlen(args[0]), &n);

    (void)nargs;
    if (what != NULL) {
        return what;
    }
    if (n < 1024 || n > 1024 * 1024) {
        return "is not a size in 1k..1m";
    }
    *(size_t *)field = (size_t)n;
    return NULL;
}

static const char *
conf_set_key_bytes(void *field, char **args, int nargs)
{
    uint64_t n;

    (void)nargs;
    if (conf_value_uint(args[0], strlen(args[0]), 1, 4096, &n) != NULL) {
        return "is not a number in 1..4096";
    }
    *(size_t *)field = (size_t)n;
    return NULL;
}

static const char *
conf_set_discovery(void *field, char **args, int nargs)
{
    static const char *const names[CONF_DISCOVERY_COUNT] = {
        [CONF_DISCOVERY_STATIC] = "static",
    };
    int i = conf_pick(args[0], names, CONF_DISCOVERY_COUNT);

    (void)nargs;
    if (i < 0) {
        return "is not a supported source (use static)";
    }
    *(enum conf_discovery *)field = (enum conf_discovery)i;
    return NULL;
}

/* A member id: 1 or more visible ASCII bytes (it shows up in logs, JSON and headers). */
static bool
conf_is_member_id(const char *id)
{
    if (id[0] == '\0') {
        return false;
    }
    for (const char *c = id; *c != '\0'; c++) {
        if (*c < 0x21 || *c > 0x7e) {
            return false;
        }
    }
    return true;
}

/* Parses backend's optional "weight N" (ARGS from the third word, NARGS of them) into *WEIGHT. */
static const char *
conf_backend_weight(char **args, int nargs, uint32_t *weight)
{
    uint64_t n;

    *weight = 1;
    if (nargs == 0) {
        return NULL;
    }
    if (nargs != 2 || strcmp(args[0], "weight") != 0) {
        return "has words after the address other than \"weight N\"";
    }
    if (conf_value_uint(args[1], strlen(args[1]), 1, MEMBER_SET_MAX_WEIGHT, &n) != NULL) {
        return "has a weight that is not a number in 1..1000";
    }
    *weight = (uint32_t)n;
    return NULL;
}

static const char *
conf_add_backend(void *field, char **args, int nargs)
{
    struct conf *conf = field;
    struct conf_backend b = { 0 }, *slot;
    const char *what;

    if (!conf_is_member_id(args[0])) {
        return "has a bad id (use visible ASCII characters)";
    }
    for (size_t i = 0; i < conf->nbackends; i++) {
        if (strcmp(conf->backends[i].id, args[0]) == 0) {
            return "has a duplicate id";
        }
    }
    what = conf_value_addr(args[1], strlen(args[1]), &b.addr);
    if (what == NULL) {
        what = conf_backend_weight(args + 2, nargs - 2, &b.weight);
    }
    if (what != NULL) {
        free(b.addr.host);
        return what;
    }
    b.id = strdup(args[0]);
    b.address = conf_value_addr_format(&b.addr);
    slot = conf_append((void **)&conf->backends, conf->nbackends, sizeof(*slot));
    if (b.id == NULL || b.address == NULL || slot == NULL) {
        free(b.id);
        free(b.address);
        free(b.addr.host);
        return conf_value_enomem;
    }
    *slot = b;
    conf->nbackends++;
    return NULL;
}

/* ---- lines, words and messages ------------------------------------------- */

static int conf_error(struct conf_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes "FILE:LINE: " and the message into p->err. Returns -1. */
static int
conf_error(struct conf_parser *p, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->err, CONF_ERR_LEN, "%s:%u: ", p->file, p->line);

    if (n >= 0 && n < CONF_ERR_LEN) {
        va_start(ap, fmt);
        vsnprintf(p->err + n, CONF_ERR_LEN - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Writes the NARGS words of ARGS joined by spaces into OUT, cut to CONF_QUOTE_MAX bytes + "...". */
static void
conf_quote(char *const *args, int nargs, char out[CONF_QUOTE_MAX + 4])
{
    size_t n = 0;

    out[0] = '\0';
    for (int i = 0; i < nargs && i < CONF_MAX_ARGS && n <= CONF_QUOTE_MAX; i++) {
        n += (size_t)snprintf(out + n, CONF_QUOTE_MAX + 1 - n, "%s%s", i > 0 ? " " : "", args[i]);
    }
    if (n > CONF_QUOTE_MAX || nargs > CONF_MAX_ARGS) {
        strcpy(out + (n > CONF_QUOTE_MAX ? CONF_QUOTE_MAX : n), "...");
    }
}

/* Sets *START and *LEN to the next line (without its LF). Returns false at the end of the text. */
static bool
conf_next_line(struct conf_cursor *c, const char **start, size_t *len)
{
    const char *lf;

    if (c->pos >= c->len) {
        return false;
    }
    *start = c->text + c->pos;
    lf = memchr(*start, '\n', c->len - c->pos);
    *len = lf == NULL ? c->len - c->pos : (size_t)(lf - *start);
    c->pos += *len + 1;
    c->line++;
    return true;
}

static bool
conf_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Splits LINE (LEN <= CONF_LINE_MAX bytes) into W's words, dropping a "#" comment. */
static void
conf_split(struct conf_words *w, const char *line, size_t len)
{
    char *c = w->buf, *end;

    memcpy(w->buf, line, len);
    w->buf[len] = '\0';
    end = memchr(w->buf, '#', len);
    if (end != NULL) {
        *end = '\0';
    }
    w->nargs = 0;
    w->open_at = w->close_at = -1;
    for (;;) {
        while (conf_is_space(*c)) {
            c++;
        }
        if (*c == '\0') {
            return;
        }
        if (w->nargs < CONF_MAX_ARGS) {
            w->args[w->nargs] = c;
        }
        if (w->open_at < 0 && c[0] == '{' && (c[1] == '\0' || conf_is_space(c[1]))) {
            w->open_at = w->nargs;
        }
        if (w->close_at < 0 && c[0] == '}' && (c[1] == '\0' || conf_is_space(c[1]))) {
            w->close_at = w->nargs;
        }
        w->nargs++;
        while (*c != '\0' && !conf_is_space(*c)) {
            c++;
        }
        if (*c != '\0') {
            *c++ = '\0';
        }
    }
}

/* Checks LINE's bytes: no control byte but tab and CR, at most CONF_LINE_MAX of them. */
static int
conf_check_bytes(struct conf_parser *p, const char *line, size_t len)
{
    if (len > CONF_LINE_MAX) {
        return conf_error(p, "line is longer than %d bytes", CONF_LINE_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            return conf_error(p, "control byte 0x%02x (only tab, CR and LF may appear)", c);
        }
    }
    return 0;
}

/* Checks where W's braces stand. OPEN_LINE is the line of the open block's "{", or 0. */
static int
conf_check_braces(struct conf_parser *p, const struct conf_words *w, unsigned open_line,
                  const char *open_name)
{
    char name[CONF_QUOTE_MAX + 4];

    if (w->close_at >= 0) {
        if (w->nargs != 1) {
            return conf_error(p, "\"}\" must be alone on its line");
        }
        if (open_line == 0) {
            return conf_error(p, "stray \"}\" (no block is open)");
        }
    }
    if (w->open_at >= 0) {
        if (w->open_at != w->nargs - 1) {
            return conf_error(p, "\"{\" must be the last word on its line");
        }
        if (w->open_at == 0) {
            return conf_error(p, "\"{\" needs a block name before it");
        }
        if (open_line != 0) {
            conf_quote(w->args, 1, name);
            return conf_error(p, "nested block \"%s\" (block \"%s\" from line %u is still open)",
                              name, open_name, open_line);
        }
    }
    return 0;
}

/*
 * The syntax pass: bytes, line lengths and braces, before any directive is
 * looked at. Leaves p->line on the last line.
 */
static int
conf_check_syntax(struct conf_parser *p, struct conf_words *w, const char *text, size_t len)
{
    struct conf_cursor cur = { .text = text, .len = len };
    char open_name[CONF_QUOTE_MAX + 4] = "";
    unsigned open_line = 0;
    const char *line;
    size_t n;

    while (conf_next_line(&cur, &line, &n)) {
        p->line = cur.line;
        if (conf_check_bytes(p, line, n) != 0) {
            return -1;
        }
        conf_split(w, line, n);
        if (conf_check_braces(p, w, open_line, open_name) != 0) {
            return -1;
        }
        if (w->open_at >= 0) {
            open_line = cur.line;
            conf_quote(w->args, 1, open_name);
        } else if (w->close_at >= 0) {
            open_line = 0;
        }
    }
    if (open_line != 0) {
        p->line = open_line;
        return conf_error(p, "unterminated block \"%s\" (no \"}\")", open_name);
    }
    p->line = cur.line > 0 ? cur.line : 1;
    return 0;
}

/* ---- directives ---------------------------------------------------------- */

static const struct conf_directive *
conf_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(conf_directives); i++) {
        if (strcmp(conf_directives[i].name, name) == 0) {
            return &conf_directives[i];
        }
    }
    return NULL;
}

static int
conf_error_nargs(struct conf_parser *p, const struct conf_directive *d, int got)
{
    if (d->min_args == d->max_args) {
        return conf_error(p, "\"%s\" takes %d argument%s, got %d", d->name, d->min_args,
                          d->min_args == 1 ? "" : "s", got);
    }
    return conf_error(p, "\"%s\" takes %d to %d arguments, got %d", d->name, d->min_args,
                      d->max_args, got);
}

/* Runs D's setter on ARGS (NARGS words, the directive's name first) and words its complaint. */
static int
conf_set(struct conf_parser *p, const struct conf_directive *d, char **args, int nargs)
{
    char text[CONF_QUOTE_MAX + 4];
    const char *what = d->set((char *)p->conf + d->offset, args + 1, nargs - 1);

    if (what == NULL) {
        return 0;
    }
    if (what == conf_value_enomem) {
        return conf_error(p, "%s", what);
    }
    conf_quote(args, nargs, text);
    return conf_error(p, "\"%s\" %s", text, what);
}

/* Applies one line's words W (at least one) to p->conf. */
static int
conf_apply(struct conf_parser *p, struct conf_words *w)
{
    const struct conf_directive *d = conf_find(w->args[0]);
    char name[CONF_QUOTE_MAX + 4];
    size_t i;

    conf_quote(w->args, 1, name);
    if (w->open_at >= 0) {
        if (d != NULL) {
            return conf_error(p, "\"%s\" does not take a block", d->name);
        }
        return conf_error(p, "unknown block \"%s\"", name);
    }
    if (d == NULL) {
        return conf_error(p, "unknown directive \"%s\"", name);
    }
    if (w->nargs - 1 < d->min_args || w->nargs - 1 > d->max_args) {
        return conf_error_nargs(p, d, w->nargs - 1);
    }
    i = (size_t)(d - conf_directives);
    if (!(d->flags & CONF_REPEATABLE) && p->seen[i] != 0) {
        return conf_error(p, "\"%s\" is a duplicate (first on line %u)", d->name, p->seen[i]);
    }
    if (p->seen[i] == 0) {
        p->seen[i] = p->line;
    }
    return conf_set(p, d, w->args, w->nargs);
}

/* The directive pass over every line; the syntax pass has vetted bytes and braces. */
static int
conf_apply_lines(struct conf_parser *p, struct conf_words *w, const char *text, size_t len)
{
    struct conf_cursor cur = { .text = text, .len = len };
    const char *line;
    size_t n;

    while (conf_next_line(&cur, &line, &n)) {
        p->line = cur.line;
        conf_split(w, line, n);
        if (w->nargs == 0 || w->close_at == 0) {
            continue;
        }
        if (conf_apply(p, w) != 0) {
            return -1;
        }
    }
    p->line = cur.line > 0 ? cur.line : 1;
    return 0;
}

/* After the last line: the required directives, then each default through its own setter. */
static int
conf_finish(struct conf_parser *p)
{
    for (size_t i = 0; i < ARRAY_LEN(conf_directives); i++) {
        const struct conf_directive *d = &conf_directives[i];
        char word[32];
        char *args[2] = { (char *)d->name, word };

        if (p->seen[i] != 0) {
            continue;
        }
        if (d->flags & CONF_REQUIRED) {
            return conf_error(p, "no \"%s\" directive (at least one is required)", d->name);
        }
        if (d->fallback == NULL) {
            continue;
        }
        snprintf(word, sizeof(word), "%s", d->fallback);
        if (conf_set(p, d, args, 2) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- public -------------------------------------------------------------- */

struct conf *
conf_parse(const char *file, const char *text, size_t len, char err[CONF_ERR_LEN])
{
    struct conf_parser p = { .file = file, .err = err };
    struct conf_words *w = malloc(sizeof(*w)); /* 4 KiB: keep it off small thread stacks */

    err[0] = '\0';
    if (w == NULL) {
        conf_error(&p, "%s", conf_value_enomem);
        return NULL;
    }
    if (conf_check_syntax(&p, w, text, len) != 0) {
        goto fail;
    }
    p.conf = calloc(1, sizeof(*p.conf));
    if (p.conf == NULL || (p.conf->file = strdup(file)) == NULL) {
        conf_error(&p, "%s", conf_value_enomem);
        goto fail;
    }
    if (conf_apply_lines(&p, w, text, len) != 0 || conf_finish(&p) != 0) {
        goto fail;
    }
    free(w);
    return p.conf;
fail:
    free(w);
    conf_destroy(p.conf);
    return NULL;
}

/* Reads all of FD into a new buffer *TEXT of *LEN bytes. Returns 0, or -1 with errno. */
static int
conf_read_all(int fd, char **text, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);

    while (buf != NULL) {
        ssize_t got;

        if (n == cap) {
            char *grown = cap >= CONF_FILE_MAX ? NULL : realloc(buf, cap * 2);

            if (grown == NULL) {
                errno = cap >= CONF_FILE_MAX ? EFBIG : ENOMEM;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        got = read(fd, buf + n, cap - n);
        if (got == 0) {
            *text = buf;
            *len = n;
            return 0;
        }
        if (got < 0 && errno != EINTR) {
            break;
        }
        n += got > 0 ? (size_t)got : 0;
    }
    free(buf);
    return -1;
}

struct conf *
conf_load(const char *file, char err[CONF_ERR_LEN])
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    char *text = NULL, why[128];
    size_t len = 0;
    struct conf *conf;

    if (fd == -1 || conf_read_all(fd, &text, &len) != 0) {
        int e = errno;

        if (fd != -1) {
            close(fd);
        }
        snprintf(err, CONF_ERR_LEN, "%s: cannot read: %s", file, strerror_r(e, why, sizeof(why)));
        return NULL;
    }
    close(fd);
    conf = conf_parse(file, text, len, err);
    free(text);
    return conf;
}

void
conf_destroy(struct conf *conf)
{
    if (conf == NULL) {
        return;
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        free(conf->listen[i].host);
    }
    for (size_t i = 0; i < conf->nkeys; i++) {
        free(conf->keys[i].name);
    }
    for (size_t i = 0; i < conf->nbackends; i++) {
        free(conf->backends[i].id);
        free(conf->backends[i].addr.host);
        free(conf->backends[i].address);
    }
    free(conf->listen);
    free(conf->keys);
    free(conf->backends);
    free(conf->admin.host);
    free(conf->file);
    free(conf);
}

static const char *conf_names[ARRAY_LEN(conf_directives) + 1];
static once_flag conf_names_once = ONCE_FLAG_INIT;

static void
conf_names_fill(void)
{
    for (size_t i = 0; i < ARRAY_LEN(conf_directives); i++) {
        conf_names[i] = conf_directives[i].name;
    }
    conf_names[ARRAY_LEN(conf_directives)] = NULL;
}

const char *const *
conf_directive_names(void)
{
    call_once(&conf_names_once, conf_names_fill);
    return conf_names;
}

struct member_set *
conf_static_members(const struct conf *conf)
{
    struct member_set *set = member_set_create();

    for (size_t i = 0; set != NULL && i < conf->nbackends; i++) {
        const struct conf_backend *b = &conf->backends[i];

        if (member_set_add(set, b->id, b->address, b->weight) != 0) {
            member_set_destroy(set);
            set = NULL;
        }
    }
    return set;
}
