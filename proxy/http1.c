/*
 * HTTP/1.1 message framing (DESIGN §10.1; RFC 9112 §6, §7). The body scanner
 * is a resumable byte state machine, so a body may arrive split at any byte;
 * the response-head parser finds CRLF CRLF and checks the complete head in
 * one pass, as head.c does for requests. Whatever two parsers could frame
 * two ways is HTTP1_BAD: a wrong end is a smuggled or lost message.
 */
#include "proxy/http1.h"

#include <string.h>

enum {
    HTTP1_MAX_LINE_BYTES = 4096,  /* a chunk-size or trailer line, CRLF excluded */
    HTTP1_MAX_SIZE_DIGITS = 15,   /* so a chunk size stays below 2^60 */
    HTTP1_MAX_HEAD_BYTES = 65536, /* a response head, final CRLF CRLF included */
};

/* Where in the RFC 9112 s7.1 chunk grammar the scanner is (struct http1_body.state). */
enum http1_chunk_state {
    HTTP1_CHUNK_SIZE = 0,        /* chunk-size: hex digits */
    HTTP1_CHUNK_SIZE_BWS,        /* BWS after the size: only ";" may follow */
    HTTP1_CHUNK_EXT_NAME_START,  /* after ";": BWS, then chunk-ext-name */
    HTTP1_CHUNK_EXT_NAME,        /* in chunk-ext-name */
    HTTP1_CHUNK_EXT_NAME_BWS,    /* BWS after a name: "=" or ";" must follow */
    HTTP1_CHUNK_EXT_VALUE_START, /* after "=": BWS, then a token or a quoted-string */
    HTTP1_CHUNK_EXT_TOKEN,       /* in a token chunk-ext-val */
    HTTP1_CHUNK_EXT_QUOTED,      /* in a quoted-string chunk-ext-val */
    HTTP1_CHUNK_EXT_QUOTED_PAIR, /* after a backslash in a quoted-string */
    HTTP1_CHUNK_EXT_VALUE_END,   /* after the closing quote */
    HTTP1_CHUNK_EXT_VALUE_BWS,   /* BWS after a value: only ";" may follow */
    HTTP1_CHUNK_SIZE_LF,         /* the LF ending the size line */
    HTTP1_CHUNK_DATA,            /* chunk-data; LEFT bytes to go */
    HTTP1_CHUNK_DATA_CR,         /* the CR after chunk-data */
    HTTP1_CHUNK_DATA_LF,         /* the LF after chunk-data */
    HTTP1_CHUNK_TRAILER_START,   /* a trailer line or the final CRLF starts */
    HTTP1_CHUNK_TRAILER_NAME,    /* in a trailer field-name */
    HTTP1_CHUNK_TRAILER_VALUE,   /* after the trailer's colon */
    HTTP1_CHUNK_TRAILER_LF,      /* the LF ending a trailer line */
    HTTP1_CHUNK_LAST_LF,         /* the LF of the final CRLF */
    HTTP1_CHUNK_DONE,            /* the body ended */
    HTTP1_CHUNK_BAD,             /* the body was malformed; stays so */
};

/* RFC 9110 s5.6.2: tchar, the bytes of a token. */
static bool
http1_is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
http1_hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* RFC 9110 s5.5: field-value bytes are HTAB, SP, VCHAR and obs-text. */
static bool
http1_is_field_byte(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* True in the states of a size or trailer line, whose bytes count towards the line limit. */
static bool
http1_chunk_in_line(uint8_t state)
{
    return state <= HTTP1_CHUNK_EXT_VALUE_BWS ||
           (state >= HTTP1_CHUNK_TRAILER_START && state <= HTTP1_CHUNK_TRAILER_VALUE);
}

void
http1_body_init(struct http1_body *b, enum http1_body_kind kind, uint64_t length)
{
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    b->left = kind == HTTP1_BODY_LENGTH ? length : 0;
    b->state = HTTP1_CHUNK_SIZE;
}

/* What may follow a chunk-ext-name (and the BWS after it). */
static uint8_t
http1_chunk_after_name(uint8_t c)
{
    return c == ' ' || c == '\t' ? HTTP1_CHUNK_EXT_NAME_BWS
           : c == '='            ? HTTP1_CHUNK_EXT_VALUE_START
           : c == ';'            ? HTTP1_CHUNK_EXT_NAME_START
                                 : HTTP1_CHUNK_BAD;
}

/* What may follow a chunk-ext-val. */
static uint8_t
http1_chunk_after_value(uint8_t c)
{
    return c == ' ' || c == '\t' ? HTTP1_CHUNK_EXT_VALUE_BWS
           : c == ';'            ? HTTP1_CHUNK_EXT_NAME_START
           : c == '\r'           ? HTTP1_CHUNK_SIZE_LF
                                 : HTTP1_CHUNK_BAD;
}

/*
 * The next state of the chunk grammar after byte C in state S (B holds the
 * size being read), or HTTP1_CHUNK_BAD. CHUNK_DATA is handled by the caller.
 * Chunk extensions (RFC 9112 s7.1.1) follow the ABNF exactly:
 * *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ), so a
 * quoted value is accepted, whitespace before CRLF is not.
 */
static uint8_t
http1_chunk_step(struct http1_body *b, uint8_t s, uint8_t c)
{
    bool ws = c == ' ' || c == '\t';
    int hex;

    switch (s) {
    case HTTP1_CHUNK_SIZE:
        hex = http1_hex_value(c);
        if (hex >= 0) {
            if (b->digits == HTTP1_MAX_SIZE_DIGITS) {
                return HTTP1_CHUNK_BAD;
            }
            b->digits++;
            b->left = b->left * 16 + (uint64_t)hex;
            return s;
        }
        if (b->digits == 0) {
            return HTTP1_CHUNK_BAD; /* an empty size, or whitespace before it */
        }
        return ws          ? HTTP1_CHUNK_SIZE_BWS
               : c == ';'  ? HTTP1_CHUNK_EXT_NAME_START
               : c == '\r' ? HTTP1_CHUNK_SIZE_LF
                           : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_SIZE_BWS:
    case HTTP1_CHUNK_EXT_VALUE_BWS:
        return ws ? s : c == ';' ? HTTP1_CHUNK_EXT_NAME_START : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_EXT_NAME_START:
        return ws ? s : http1_is_tchar(c) ? HTTP1_CHUNK_EXT_NAME : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_EXT_NAME:
        if (http1_is_tchar(c)) {
            return s;
        }
        return c == '\r' ? HTTP1_CHUNK_SIZE_LF : http1_chunk_after_name(c);
    case HTTP1_CHUNK_EXT_NAME_BWS:
        return http1_chunk_after_name(c);
    case HTTP1_CHUNK_EXT_VALUE_START:
        return ws                  ? s
               : c == '"'          ? HTTP1_CHUNK_EXT_QUOTED
               : http1_is_tchar(c) ? HTTP1_CHUNK_EXT_TOKEN
                                   : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_EXT_TOKEN:
        return http1_is_tchar(c) ? s : http1_chunk_after_value(c);
    case HTTP1_CHUNK_EXT_VALUE_END:
        return http1_chunk_after_value(c);
    case HTTP1_CHUNK_EXT_QUOTED:
        /* RFC 9110 s5.6.4: qdtext and quoted-pair; no CR or LF inside */
        return c == '"'                 ? HTTP1_CHUNK_EXT_VALUE_END
               : c == '\\'              ? HTTP1_CHUNK_EXT_QUOTED_PAIR
               : http1_is_field_byte(c) ? s
                                        : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_EXT_QUOTED_PAIR:
        return http1_is_field_byte(c) ? HTTP1_CHUNK_EXT_QUOTED : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_SIZE_LF:
        if (c != '\n') {
            return HTTP1_CHUNK_BAD;
        }
        b->line = 0;
        return b->left == 0 ? HTTP1_CHUNK_TRAILER_START : HTTP1_CHUNK_DATA;
    case HTTP1_CHUNK_DATA_CR:
        return c == '\r' ? HTTP1_CHUNK_DATA_LF : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_DATA_LF:
        if (c != '\n') {
            return HTTP1_CHUNK_BAD;
        }
        b->digits = 0;
        b->line = 0;
        return HTTP1_CHUNK_SIZE;
    case HTTP1_CHUNK_TRAILER_START:
        /* RFC 9112 s7.1.2: field lines as in a head; a leading SP/HTAB is obs-fold */
        return c == '\r'           ? HTTP1_CHUNK_LAST_LF
               : http1_is_tchar(c) ? HTTP1_CHUNK_TRAILER_NAME
                                   : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_TRAILER_NAME:
        return http1_is_tchar(c) ? s : c == ':' ? HTTP1_CHUNK_TRAILER_VALUE : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_TRAILER_VALUE:
        return c == '\r' ? HTTP1_CHUNK_TRAILER_LF : http1_is_field_byte(c) ? s : HTTP1_CHUNK_BAD;
    case HTTP1_CHUNK_TRAILER_LF:
        if (c != '\n') {
            return HTTP1_CHUNK_BAD;
        }
        b->line = 0;
        return HTTP1_CHUNK_TRAILER_START;
    case HTTP1_CHUNK_LAST_LF:
        return c == '\n' ? HTTP1_CHUNK_DONE : HTTP1_CHUNK_BAD;
    default:
        return HTTP1_CHUNK_BAD;
    }
}

/* The chunked body: RFC 9112 s7.1. On BAD, *USED is 0. */
static enum http1_result
http1_chunked_scan(struct http1_body *b, const uint8_t *buf, size_t len, size_t *used)
{
    size_t i = 0;
    uint8_t s = b->state;

    if (s == HTTP1_CHUNK_DONE) {
        *used = 0;
        return HTTP1_DONE;
    }
    while (i < len && s != HTTP1_CHUNK_BAD) {
        if (s == HTTP1_CHUNK_DATA) {
            size_t n = len - i;

            if ((uint64_t)n > b->left) {
                n = (size_t)b->left;
            }
            b->left -= n;
            i += n;
            if (b->left == 0) {
                s = HTTP1_CHUNK_DATA_CR;
            }
            continue;
        }
        if (http1_chunk_in_line(s) && buf[i] != '\r' && ++b->line > HTTP1_MAX_LINE_BYTES) {
            s = HTTP1_CHUNK_BAD;
            break;
        }
        s = http1_chunk_step(b, s, buf[i++]);
        if (s == HTTP1_CHUNK_DONE) {
            b->state = s;
            *used = i;
            return HTTP1_DONE;
        }
    }
    b->state = s;
    if (s == HTTP1_CHUNK_BAD) {
        *used = 0;
        return HTTP1_BAD;
    }
    *used = len;
    return HTTP1_MORE;
}

enum http1_result
http1_body_scan(struct http1_body *b, const uint8_t *buf, size_t len, size_t *used)
{
    switch (b->kind) {
    case HTTP1_BODY_NONE:
        *used = 0;
        return HTTP1_DONE;
    case HTTP1_BODY_LENGTH:
        if ((uint64_t)len >= b->left) {
            *used = (size_t)b->left;
            b->left = 0;
            return HTTP1_DONE;
        }
        b->left -= len;
        *used = len;
        return HTTP1_MORE;
    case HTTP1_BODY_CHUNKED:
        return http1_chunked_scan(b, buf, len, used);
    case HTTP1_BODY_UNTIL_CLOSE:
        *used = len;
        return HTTP1_MORE;
    }
    *used = 0;
    return HTTP1_BAD;
}

/* ---- response heads ---- */

/* A span of the head: [p, p + len). */
struct http1_span {
    const uint8_t *p; /* borrowed; into the caller's buffer */
    size_t len;
};

/* What the field lines said about framing and the connection. */
struct http1_fields {
    unsigned ncl; /* Content-Length values seen (all equal) */
    uint64_t content_length;
    unsigned nte;         /* Transfer-Encoding fields */
    unsigned nchunked;    /* "chunked" codings over all of them */
    bool te_last_chunked; /* the last coding so far is chunked */
    bool connection_close;
    bool connection_keep_alive;
};

static uint8_t
http1_lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* True when S equals LIT (lowercase) ignoring ASCII case. */
static bool
http1_span_is(struct http1_span s, const char *lit)
{
    size_t n = strlen(lit);

    if (s.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (http1_lower(s.p[i]) != (uint8_t)lit[i]) {
            return false;
        }
    }
    return true;
}

static struct http1_span
http1_span_trim(struct http1_span s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) {
        s.len--;
    }
    return s;
}

/* Cuts the next comma-separated element off *LIST, OWS trimmed (RFC 9110 s5.6.1). */
static struct http1_span
http1_list_next(struct http1_span *list)
{
    const uint8_t *comma = memchr(list->p, ',', list->len);
    struct http1_span e = { list->p, comma != NULL ? (size_t)(comma - list->p) : list->len };

    list->p += e.len;
    list->len -= e.len;
    if (list->len > 0) {
        list->p++; /* the comma */
        list->len--;
    }
    return http1_span_trim(e);
}

/*
 * RFC 9110 s8.6: 1*DIGIT; a list of equal values counts as one. Unlike in
 * real lists, an empty element is bad here.
 */
static bool
http1_parse_content_length(struct http1_span value, struct http1_fields *f)
{
    if (value.len == 0 || value.p[value.len - 1] == ',') {
        return false;
    }
    while (value.len > 0) {
        struct http1_span e = http1_list_next(&value);
        uint64_t n = 0;

        if (e.len == 0 || e.len > 18) { /* 18 digits cannot overflow */
            return false;
        }
        for (size_t i = 0; i < e.len; i++) {
            if (e.p[i] < '0' || e.p[i] > '9') {
                return false;
            }
            n = n * 10 + (uint64_t)(e.p[i] - '0');
        }
        if (f->ncl++ > 0 && n != f->content_length) {
            return false;
        }
        f->content_length = n;
    }
    return true;
}

/*
 * RFC 9112 s6.1: a list of transfer-codings, token [ ";" params ]; empty
 * elements are ignored (RFC 9110 s5.6.1). Chunked takes no parameters and
 * may be applied once.
 */
static bool
http1_parse_transfer_encoding(struct http1_span value, struct http1_fields *f)
{
    unsigned ncodings = 0;

    while (value.len > 0) {
        struct http1_span e = http1_list_next(&value);
        size_t n = 0;

        if (e.len == 0) {
            continue;
        }
        while (n < e.len && http1_is_tchar(e.p[n])) {
            n++;
        }
        if (n == 0 || (n < e.len && e.p[n] != ';' && e.p[n] != ' ' && e.p[n] != '\t')) {
            return false;
        }
        ncodings++;
        f->te_last_chunked = http1_span_is((struct http1_span){ e.p, n }, "chunked");
        if (f->te_last_chunked && (n < e.len || f->nchunked++ > 0)) {
            return false;
        }
    }
    return ncodings > 0;
}

/* RFC 9110 s7.6.1: the Connection options this parser acts on. */
static void
http1_parse_connection(struct http1_span value, struct http1_fields *f)
{
    while (value.len > 0) {
        struct http1_span e = http1_list_next(&value);

        if (http1_span_is(e, "close")) {
            f->connection_close = true;
        } else if (http1_span_is(e, "keep-alive")) {
            f->connection_keep_alive = true;
        }
    }
}

/* RFC 9112 s5: field-name ":" OWS field-value OWS, as head.c accepts them. */
static bool
http1_parse_field(struct http1_span line, struct http1_fields *f)
{
    size_t i = 0;
    struct http1_span name, value;

    while (i < line.len && http1_is_tchar(line.p[i])) {
        i++;
    }
    /* no name (also obs-fold), whitespace before the colon, no colon */
    if (i == 0 || i == line.len || line.p[i] != ':') {
        return false;
    }
    name = (struct http1_span){ line.p, i };
    value = (struct http1_span){ line.p + i + 1, line.len - i - 1 };
    for (size_t j = 0; j < value.len; j++) {
        if (!http1_is_field_byte(value.p[j])) {
            return false;
        }
    }
    value = http1_span_trim(value);
    if (http1_span_is(name, "content-length")) {
        return http1_parse_content_length(value, f);
    }
    if (http1_span_is(name, "transfer-encoding")) {
        f->nte++;
        return http1_parse_transfer_encoding(value, f);
    }
    if (http1_span_is(name, "connection")) {
        http1_parse_connection(value, f);
    }
    return true;
}

/*
 * RFC 9112 s4: HTTP-version SP 3DIGIT SP reason-phrase. The SP before an
 * empty reason is optional here: servers omit it and nothing can be misread.
 */
static bool
http1_parse_status_line(struct http1_span line, struct http1_response *r)
{
    const uint8_t *p = line.p;

    if (line.len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ' ||
        p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        return false;
    }
    if (line.len > 12 && p[12] != ' ') {
        return false;
    }
    for (size_t i = 13; i < line.len; i++) {
        if (!http1_is_field_byte(p[i])) {
            return false;
        }
    }
    r->minor_version = (unsigned)(p[7] - '0');
    r->status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
    return true;
}

/*
 * The length of the head (final CRLF CRLF included), 0 while incomplete, or
 * SIZE_MAX when a CR or LF is not part of a CRLF (RFC 9112 s2.2), which is
 * known before the head is complete.
 */
static size_t
http1_find_head_end(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n') {
            return SIZE_MAX;
        }
        if (buf[i] == '\n') {
            if (i == 0 || buf[i - 1] != '\r') {
                return SIZE_MAX;
            }
            if (i >= 3 && buf[i - 2] == '\n') {
                return i + 1;
            }
        }
    }
    return 0;
}

/* RFC 9112 s6.3: how the body after a parsed head is framed. */
static enum http1_result
http1_response_frame(struct http1_response *r, const struct http1_fields *f, bool request_head)
{
    if (f->nte > 0 && (f->ncl > 0 || r->minor_version == 0)) {
        /* s6.1/s6.3 rule 3: CL with TE, or TE in HTTP/1.0, is faulty framing */
        return HTTP1_BAD;
    }
    r->content_length = f->content_length;
    if (request_head || r->status < 200 || r->status == 204 || r->status == 304) {
        r->body = HTTP1_BODY_NONE; /* s6.3 rule 1 */
    } else if (f->nte > 0) {
        /* s6.3 rule 4: chunked not final means read until close, in a response */
        r->body = f->te_last_chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_UNTIL_CLOSE;
    } else if (f->ncl > 0) {
        r->body = f->content_length == 0 ? HTTP1_BODY_NONE : HTTP1_BODY_LENGTH;
    } else {
        r->body = HTTP1_BODY_UNTIL_CLOSE; /* s6.3 rule 8 */
    }
    /* RFC 9112 s9.3 */
    r->keep_alive = !f->connection_close && (r->minor_version > 0 || f->connection_keep_alive) &&
                    r->body != HTTP1_BODY_UNTIL_CLOSE && r->status != 101;
    return HTTP1_DONE;
}

enum http1_result
http1_response_parse(const uint8_t *buf, size_t len, bool request_head, struct http1_response *r)
{
    static const uint8_t version[] = "HTTP/1.";
    size_t end = http1_find_head_end(buf, len < HTTP1_MAX_HEAD_BYTES ? len : HTTP1_MAX_HEAD_BYTES);
    size_t pos = 0;
    struct http1_fields f = { 0 };

    memset(r, 0, sizeof(*r));
    /* what cannot become a status line is bad now, not after 64 KiB */
    if (end == SIZE_MAX) {
        return HTTP1_BAD;
    }
    for (size_t i = 0; i < len && i < sizeof(version) - 1; i++) {
        if (buf[i] != version[i]) {
            return HTTP1_BAD;
        }
    }
    if (end == 0) {
        return len >= HTTP1_MAX_HEAD_BYTES ? HTTP1_BAD : HTTP1_MORE;
    }
    /* line ends were checked: each CR starts a CRLF, and the head ends in an empty line */
    while (pos < end - 2) {
        const uint8_t *cr = memchr(buf + pos, '\r', end - pos);
        struct http1_span line = { buf + pos, (size_t)(cr - (buf + pos)) };

        if (pos == 0 ? !http1_parse_status_line(line, r) : !http1_parse_field(line, &f)) {
            return HTTP1_BAD;
        }
        pos += line.len + 2;
    }
    r->head_len = end;
    return http1_response_frame(r, &f, request_head);
}
