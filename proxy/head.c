/*
 * Strict HTTP/1.1 request-head parser (DESIGN §3 step 1, RFC 9110/9112).
 * head_find_end() finds the first CRLF CRLF; head_parse() then checks the
 * complete head in one pass. Anything two HTTP parsers could read two ways
 * (the request-smuggling shapes) is HEAD_BAD.
 */
#include "proxy/head.h"

#include <string.h>

/* A line of the head: [p, p + len), its CRLF excluded. */
struct head_line {
    const char *p; /* borrowed; into the caller's buffer */
    size_t len;
};

/* What the field pass has seen so far, for the checks that span fields. */
struct head_seen {
    unsigned ncl;   /* Content-Length fields */
    unsigned nte;   /* Transfer-Encoding fields */
    unsigned nhost; /* Host fields */
    unsigned upgrade_websocket : 1;
    unsigned connection_upgrade : 1;
};

/* RFC 9110 s5.6.2: tchar, the bytes of a token (methods, field names). */
static bool
head_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static unsigned char
head_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* True when the LEN bytes at A equal LIT (lowercase) ignoring ASCII case. */
static bool
head_equal_nocase(const char *a, size_t len, const char *lit)
{
    size_t n = strlen(lit);

    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (head_lower((unsigned char)a[i]) != head_lower((unsigned char)lit[i])) {
            return false;
        }
    }
    return true;
}

size_t
head_find_end(const char *buf, size_t len, size_t *scanned)
{
    /* Every LF before *SCANNED was checked with the three bytes before it. */
    size_t i = *scanned < 3 ? 3 : *scanned;

    while (i < len) {
        const char *lf = memchr(buf + i, '\n', len - i);

        if (lf == NULL) {
            break;
        }
        i = (size_t)(lf - buf);
        if (buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            *scanned = i; /* a repeated call finds the same end */
            return i + 1;
        }
        i++;
    }
    *scanned = len;
    return 0;
}

const struct head_header *
head_find(const struct head *head, const char *name, size_t name_len)
{
    for (size_t i = 0; i < head->nheaders; i++) {
        const struct head_header *h = &head->headers[i];

        if (h->name_len != name_len) {
            continue;
        }
        size_t j = 0;
        while (j < name_len &&
               head_lower((unsigned char)h->name[j]) == head_lower((unsigned char)name[j])) {
            j++;
        }
        if (j == name_len) {
            return h;
        }
    }
    return NULL;
}

/* RFC 9112 s2.2: every CR must start a CRLF and every LF must end one. */
static const char *
head_check_line_ends(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r' && (i + 1 == len || buf[i + 1] != '\n')) {
            return "bare CR";
        }
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r')) {
            return "bare LF";
        }
    }
    return NULL;
}

/* Cuts the next line off [*POS, END); line ends were checked, so a CR is a CRLF. */
static struct head_line
head_next_line(const char *buf, size_t *pos, size_t end)
{
    struct head_line line = { buf + *pos, 0 };
    const char *cr = memchr(line.p, '\r', end - *pos);

    line.len = cr != NULL ? (size_t)(cr - line.p) : end - *pos;
    *pos += line.len + 2;
    return line;
}

/* RFC 9112 s3.2.3: "host:port", only for CONNECT. */
static bool
head_is_authority_form(const char *t, size_t len)
{
    size_t colon = len, digits;

    for (size_t i = 0; i < len; i++) {
        if (t[i] == '/' || t[i] == '?' || t[i] == '#' || t[i] == '@') {
            return false;
        }
        if (t[i] == ':') {
            colon = i;
        }
    }
    if (colon == 0 || colon == len) {
        return false;
    }
    digits = len - colon - 1;
    if (digits == 0 || digits > 5) {
        return false;
    }
    for (size_t i = colon + 1; i < len; i++) {
        if (t[i] < '0' || t[i] > '9') {
            return false;
        }
    }
    return true;
}

/* RFC 9112 s3.2.2: an http or https URI with a non-empty authority. */
static bool
head_is_absolute_form(const char *t, size_t len)
{
    size_t skip;

    if (len > 7 && head_equal_nocase(t, 7, "http://")) {
        skip = 7;
    } else if (len > 8 && head_equal_nocase(t, 8, "https://")) {
        skip = 8;
    } else {
        return false;
    }
    return t[skip] != '/' && t[skip] != '?' && t[skip] != '#';
}

/* RFC 9112 s3.2: the four request-target forms, each with the methods it allows. */
static const char *
head_check_target(const struct head *head)
{
    const char *t = head->target;
    size_t len = head->target_len;
    bool connect = head->method_len == 7 && memcmp(head->method, "CONNECT", 7) == 0;
    bool options = head->method_len == 7 && memcmp(head->method, "OPTIONS", 7) == 0;

    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e) {
            return "invalid byte in request-target";
        }
    }
    if (connect) {
        return head_is_authority_form(t, len) ? NULL : "invalid request-target for CONNECT";
    }
    if (t[0] == '/' || head_is_absolute_form(t, len)) {
        return NULL;
    }
    if (len == 1 && t[0] == '*' && options) {
        return NULL;
    }
    return "invalid request-target";
}

/* RFC 9112 s3: method SP request-target SP HTTP-version, one SP each. */
static const char *
head_parse_request_line(struct head_line line, struct head *head)
{
    size_t i = 0, start;

    if (line.len == 0) {
        return "empty request line";
    }
    while (i < line.len && head_is_tchar((unsigned char)line.p[i])) {
        i++;
    }
    if (i == 0 || (i < line.len && line.p[i] != ' ')) {
        return "invalid method";
    }
    head->method = line.p;
    head->method_len = i;
    start = ++i;
    while (i < line.len && line.p[i] != ' ') {
        i++;
    }
    if (i >= line.len || i == start) {
        return "malformed request line";
    }
    head->target = line.p + start;
    head->target_len = i - start;
    i++;
    if (line.len - i != 8 || memcmp(line.p + i, "HTTP/1.", 7) != 0 ||
        (line.p[i + 7] != '0' && line.p[i + 7] != '1')) {
        return "unsupported HTTP version";
    }
    head->minor_version = (unsigned)(line.p[i + 7] - '0');
    return head_check_target(head);
}

/* A field's name spelled with '_' for '-' (CGI/WSGI servers fold them together). */
static bool
head_is_framing_alias(const struct head_header *h)
{
    char name[sizeof("transfer-encoding")];

    if (h->name_len >= sizeof(name) || memchr(h->name, '_', h->name_len) == NULL) {
        return false;
    }
    for (size_t i = 0; i < h->name_len; i++) {
        name[i] = h->name[i] == '_' ? '-' : h->name[i];
    }
    return head_equal_nocase(name, h->name_len, "content-length") ||
           head_equal_nocase(name, h->name_len, "transfer-encoding");
}

/*
 * RFC 9112 s5: field-name ":" OWS field-value OWS. Stores the field in H.
 * *HTAB tells whether an HTAB occurs anywhere in the raw value.
 */
static const char *
head_parse_field(struct head_line line, struct head_header *h, bool *htab)
{
    size_t i = 0, end;

    if (line.p[0] == ' ' || line.p[0] == '\t') {
        return "obs-fold";
    }
    while (i < line.len && head_is_tchar((unsigned char)line.p[i])) {
        i++;
    }
    if (i == line.len) {
        return "header without colon";
    }
    if (line.p[i] != ':') {
        return line.p[i] == ' ' || line.p[i] == '\t' ? "whitespace before colon"
                                                     : "invalid header name";
    }
    if (i == 0) {
        return "empty header name";
    }
    h->name = line.p;
    h->name_len = i;
    *htab = false;
    for (size_t j = i + 1; j < line.len; j++) {
        unsigned char c = (unsigned char)line.p[j];

        if (c == '\t') {
            *htab = true;
        } else if (c < 0x20 || c == 0x7f) {
            return "invalid byte in header value";
        }
    }
    i++;
    end = line.len;
    while (i < end && (line.p[i] == ' ' || line.p[i] == '\t')) {
        i++;
    }
    while (end > i && (line.p[end - 1] == ' ' || line.p[end - 1] == '\t')) {
        end--;
    }
    h->value = line.p + i;
    h->value_len = end - i;
    return NULL;
}

/* RFC 9110 s8.6: Content-Length = 1*DIGIT; it must fit an int64_t. */
static const char *
head_parse_content_length(const struct head_header *h, int64_t *out)
{
    int64_t n = 0;

    if (h->value_len == 0) {
        return "invalid Content-Length";
    }
    for (size_t i = 0; i < h->value_len; i++) {
        int d = h->value[i] - '0';

        if (d < 0 || d > 9) {
            return "invalid Content-Length";
        }
        if (n > (INT64_MAX - d) / 10) {
            return "Content-Length too large";
        }
        n = n * 10 + d;
    }
    *out = n;
    return NULL;
}

bool
head_list_has(const struct head_header *h, const char *token)
{
    size_t i = 0;

    while (i < h->value_len) {
        size_t start, end;

        while (i < h->value_len && (h->value[i] == ' ' || h->value[i] == '\t')) {
            i++;
        }
        start = i;
        while (i < h->value_len && h->value[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && (h->value[end - 1] == ' ' || h->value[end - 1] == '\t')) {
            end--;
        }
        if (head_equal_nocase(h->value + start, end - start, token)) {
            return true;
        }
        i++;
    }
    return false;
}

/* RFC 9110 s7.2 / RFC 3986 s3.2.2: uri-host [":" port], or empty. */
static bool
head_is_host_value(const struct head_header *h)
{
    for (size_t i = 0; i < h->value_len; i++) {
        unsigned char c = (unsigned char)h->value[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr("-._~!$&'()*+,;=%:[]", c) != NULL))) {
            return false;
        }
    }
    return true;
}

/* Checks one stored field against the rules that name it; fills SEEN and HEAD. */
static const char *
head_check_field(const struct head_header *h, struct head *head, struct head_seen *seen)
{
    if (head_is_framing_alias(h)) {
        return "underscore in framing header name";
    }
    if (head_equal_nocase(h->name, h->name_len, "content-length")) {
        return seen->ncl++ > 0 ? "duplicate Content-Length"
                               : head_parse_content_length(h, &head->content_length);
    }
    if (head_equal_nocase(h->name, h->name_len, "transfer-encoding")) {
        if (seen->nte++ > 0) {
            return "duplicate Transfer-Encoding";
        }
        /* DESIGN §3: no coding but a lone chunked, so framing has one reading */
        return head_equal_nocase(h->value, h->value_len, "chunked")
                   ? NULL
                   : "Transfer-Encoding other than chunked";
    }
    if (head_equal_nocase(h->name, h->name_len, "host")) {
        if (seen->nhost++ > 0) {
            return "duplicate Host";
        }
        return head_is_host_value(h) ? NULL : "invalid Host";
    }
    if (head_equal_nocase(h->name, h->name_len, "upgrade") && head_list_has(h, "websocket")) {
        seen->upgrade_websocket = 1;
    }
    if (head_equal_nocase(h->name, h->name_len, "connection") && head_list_has(h, "upgrade")) {
        seen->connection_upgrade = 1;
    }
    return NULL;
}

/* Reads field lines up to the empty line, checking each as it is stored. */
static const char *
head_parse_fields(const char *buf, size_t pos, struct head *head, struct head_seen *seen)
{
    for (;;) {
        struct head_line line = head_next_line(buf, &pos, head->len);
        struct head_header *h = &head->headers[head->nheaders];
        const char *what;
        bool htab;

        if (line.len == 0) {
            return NULL;
        }
        if (head->nheaders == HEAD_MAX_HEADERS) {
            return "too many headers";
        }
        what = head_parse_field(line, h, &htab);
        if (what != NULL) {
            return what;
        }
        head->nheaders++;
        what = head_check_field(h, head, seen);
        if (what != NULL) {
            return what;
        }
        /* Framing fields take SP only: an HTAB is read as OWS by some parsers, not others. */
        if (htab && (head_equal_nocase(h->name, h->name_len, "content-length") ||
                     head_equal_nocase(h->name, h->name_len, "transfer-encoding"))) {
            return "tab in framing header";
        }
    }
}

/* The checks that need the whole head: one framing, Host, Upgrade. */
static const char *
head_check_message(struct head *head, const struct head_seen *seen)
{
    if (seen->ncl > 0 && seen->nte > 0) {
        return "Content-Length with Transfer-Encoding";
    }
    /* RFC 9112 s6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing */
    if (seen->nte > 0 && head->minor_version == 0) {
        return "Transfer-Encoding in HTTP/1.0";
    }
    if (seen->nhost == 0 && head->minor_version == 1) {
        return "missing Host";
    }
    head->chunked = seen->nte > 0;
    /* RFC 9110 s7.8: Upgrade in an HTTP/1.0 request is ignored */
    head->upgrade_ws =
        seen->upgrade_websocket && seen->connection_upgrade && head->minor_version == 1;
    return NULL;
}

enum head_result
head_parse(const char *buf, size_t len, struct head *head, const char **why)
{
    size_t scanned = 0, end = head_find_end(buf, len, &scanned), pos = 0;
    struct head_seen seen = { 0 };
    const char *what;

    if (end == 0) {
        return HEAD_PARTIAL;
    }
    memset(head, 0, offsetof(struct head, headers));
    head->nheaders = 0;
    head->len = end;
    head->content_length = -1;
    head->chunked = 0;
    head->upgrade_ws = 0;
    what = head_check_line_ends(buf, end);
    if (what == NULL) {
        what = head_parse_request_line(head_next_line(buf, &pos, end), head);
    }
    if (what == NULL) {
        what = head_parse_fields(buf, pos, head, &seen);
    }
    if (what == NULL) {
        what = head_check_message(head, &seen);
    }
    if (what != NULL) {
        if (why != NULL) {
            *why = what;
        }
        return HEAD_BAD;
    }
    return HEAD_DONE;
}
