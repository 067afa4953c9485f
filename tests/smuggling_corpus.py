#!/usr/bin/python3
"""A deterministic corpus of HTTP/1.1 request-smuggling mutations (DESIGN §3 step 1).

The families follow what public scanners send (smuggler.py's exhaustive set, the
Transfer-Encoding obfuscations of the request-smuggling research): every byte 0x00-0x20 and
0x7f-0xff at six places of the Transfer-Encoding line, case, whitespace, tabs, vertical tab,
NUL, comma lists, duplicates, quoted values, look-alike names and values, line folding, bare CR
and LF; then Content-Length mutations and malformed chunked bodies. Each framing line is sent
in three shapes: CL.TE (the body ends early if TE wins), TE.CL (it ends late if CL wins) and TE
alone. Written from the RFC 9112 grammar and the scanners' categories, not copied.

    corpus()                 -> [(name, request bytes)], the same on every run
    python3 smuggling_corpus.py --count
    python3 smuggling_corpus.py --head DIR --http1 DIR --records FILE
        writes the libFuzzer seeds for fuzz_head (whole requests) and fuzz_http1 (chunked
        bodies and response heads with its 3-byte prefix), and FILE for the unit test
        (records: 4-byte little-endian name length, the name, 4-byte length, the request).
"""
import argparse
import hashlib
import os
import struct

NAME = "Transfer-Encoding"
VALUE = "chunked"

# bytes scanners put around and inside the framing line: controls, SP, DEL and obs-text
ODD_BYTES = list(range(0x00, 0x21)) + list(range(0x7f, 0x100))


def te_lines():
    """(name, framing line bytes; may hold several lines) for the Transfer-Encoding family."""
    out = []
    for b in ODD_BYTES:
        c = bytes([b])
        out += [
            (f"prefix-{b:02x}", c + b"Transfer-Encoding: chunked"),
            (f"before-colon-{b:02x}", b"Transfer-Encoding" + c + b": chunked"),
            (f"after-colon-{b:02x}", b"Transfer-Encoding:" + c + b"chunked"),
            (f"suffix-{b:02x}", b"Transfer-Encoding: chunked" + c),
            (f"in-name-{b:02x}", b"Transfer-" + c + b"Encoding: chunked"),
            (f"in-value-{b:02x}", b"Transfer-Encoding: chun" + c + b"ked"),
        ]
    cases = []
    for name in ("transfer-encoding", "TRANSFER-ENCODING", "TrAnSfEr-EnCoDiNg", "Transfer-encoding"):
        for value in ("chunked", "CHUNKED", "ChUnKeD", "Chunked"):
            cases.append((f"case-{name}-{value}", f"{name}: {value}"))
    cases += [
        ("ws-none", "Transfer-Encoding:chunked"),
        ("ws-two", "Transfer-Encoding:  chunked"),
        ("ws-many", "Transfer-Encoding:        chunked"),
        ("ws-trailing", "Transfer-Encoding: chunked "),
        ("ws-trailing-many", "Transfer-Encoding: chunked      "),
        ("ws-before-colon", "Transfer-Encoding : chunked"),
        ("ws-before-colon-none", "Transfer-Encoding :chunked"),
        ("tab-value", "Transfer-Encoding:\tchunked"),
        ("tab-both", "Transfer-Encoding\t:\tchunked"),
        ("tab-trailing", "Transfer-Encoding: chunked\t"),
        ("vt-value", "Transfer-Encoding:\x0bchunked"),
        ("ff-value", "Transfer-Encoding:\x0cchunked"),
        ("nul-value", "Transfer-Encoding: \x00chunked"),
        ("nul-name", "Transfer-Encoding\x00: chunked"),
        ("space-join", "Transfer Encoding: chunked"),
        ("smashed", "Transfer Encoding:chunked"),
        ("under-join", "Transfer_Encoding: chunked"),
        ("under-join-upper", "TRANSFER_ENCODING: chunked"),
        ("dot-join", "Transfer.Encoding: chunked"),
        ("list-chunked-identity", "Transfer-Encoding: chunked, identity"),
        ("list-identity-chunked", "Transfer-Encoding: identity, chunked"),
        ("list-chunked-chunked", "Transfer-Encoding: chunked, chunked"),
        ("list-gzip-chunked", "Transfer-Encoding: gzip, chunked"),
        ("list-chunked-gzip", "Transfer-Encoding: chunked, gzip"),
        ("list-chunked-cow", "Transfer-Encoding: chunked, cow"),
        ("list-cow-chunked", "Transfer-Encoding: cow, chunked"),
        ("list-trailing-comma", "Transfer-Encoding: chunked,"),
        ("list-leading-comma", "Transfer-Encoding: ,chunked"),
        ("list-empty-elements", "Transfer-Encoding: , , chunked"),
        ("list-no-space", "Transfer-Encoding: identity,chunked"),
        ("nested", "Transfer-Encoding: cow chunked bar"),
        ("param", "Transfer-Encoding: chunked;q=1.0"),
        ("param-space", "Transfer-Encoding: chunked ;"),
        ("quoted", 'Transfer-Encoding: "chunked"'),
        ("aposed", "Transfer-Encoding: 'chunked'"),
        ("lazygrep", "Transfer-Encoding: chunk"),
        ("x-chunked", "Transfer-Encoding: x-chunked"),
        ("xchunked", "Transfer-Encoding: xchunked"),
        ("chunkedx", "Transfer-Encoding: chunkedx"),
        ("chunked-false", "Transfer-Encoding: chunked-false"),
        ("identity", "Transfer-Encoding: identity"),
        ("gzip", "Transfer-Encoding: gzip"),
        ("empty", "Transfer-Encoding:"),
        ("empty-space", "Transfer-Encoding: "),
        ("name-plural", "Transfer-Encodings: chunked"),
        ("name-suffix", "Transfer-Encoding-X: chunked"),
        ("name-prefix", "X-Transfer-Encoding: chunked"),
        ("content-encoding", "Content-Encoding: chunked"),
        ("te-hop", "TE: chunked"),
        ("utf8-value", "Transfer-Encoding: ch\u00f9nked"),
        ("utf8-name", "Transf\u00e9r-Encoding: chunked"),
        ("dup-chunked-identity", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"),
        ("dup-cow-chunked", "Transfer-Encoding: cow\r\nTransfer-Encoding: chunked"),
        ("dup-chunked-chunked", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
        ("dup-case", "Transfer-Encoding: chunked\r\ntransfer-encoding: chunked"),
        ("dup-empty", "Transfer-Encoding: chunked\r\nTransfer-Encoding:"),
        ("dup-under", "Transfer-Encoding: chunked\r\nTransfer_Encoding: identity"),
        ("fold-value", "Transfer-Encoding:\r\n chunked"),
        ("fold-tab", "Transfer-Encoding:\r\n\tchunked"),
        ("fold-list", "Transfer-Encoding: identity\r\n , chunked"),
        ("fold-after", "Transfer-Encoding: chunked\r\n , identity"),
        ("fold-line", "X: x\r\n Transfer-Encoding: chunked"),
        ("fold-name", " Transfer-Encoding: chunked"),
        ("bare-cr-before", "X:X\rTransfer-Encoding: chunked"),
        ("bare-lf-before", "X:X\nTransfer-Encoding: chunked"),
        ("bare-cr-after", "Transfer-Encoding: chunked\r"),
        ("bare-lf-after", "Transfer-Encoding: chunked\nX: y"),
        ("cr-in-name", "Transfer\r-Encoding: chunked"),
        ("lf-in-name", "Transfer\n-Encoding: chunked"),
        ("crlf-value", "Transfer-Encoding: \r\nchunked"),
        ("colon-twice", "Transfer-Encoding:: chunked"),
        ("no-colon", "Transfer-Encoding chunked"),
    ]
    return out + [(n, v.encode("utf-8")) for n, v in cases]


def cl_lines():
    """(name, line) Content-Length mutations, sent with and without a Transfer-Encoding."""
    cases = [
        ("cl-dup-same", "Content-Length: 5\r\nContent-Length: 5"),
        ("cl-dup-diff", "Content-Length: 5\r\nContent-Length: 6"),
        ("cl-list", "Content-Length: 5, 5"),
        ("cl-list-diff", "Content-Length: 5, 6"),
        ("cl-plus", "Content-Length: +5"),
        ("cl-minus", "Content-Length: -5"),
        ("cl-hex", "Content-Length: 0x5"),
        ("cl-space-inside", "Content-Length: 5 5"),
        ("cl-empty", "Content-Length:"),
        ("cl-letters", "Content-Length: five"),
        ("cl-tab", "Content-Length:\t5"),
        ("cl-before-colon", "Content-Length : 5"),
        ("cl-under", "Content_Length: 5"),
        ("cl-fold", "Content-Length:\r\n 5"),
        ("cl-huge", "Content-Length: 99999999999999999999999"),
        ("cl-float", "Content-Length: 5.0"),
        ("cl-quoted", 'Content-Length: "5"'),
        ("cl-vt", "Content-Length:\x0b5"),
        ("cl-nul", "Content-Length: 5\x00"),
    ]
    return [(n, v.encode()) for n, v in cases]


# chunked bodies (after a valid "Transfer-Encoding: chunked" head)
CHUNKED_BODIES = [
    ("chunk-ok", b"5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext", b"5;a=b\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-quoted", b'5;a="b;c"\r\nhello\r\n0\r\n\r\n'),
    ("chunk-trailers", b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n"),
    ("chunk-upper-hex", b"A\r\n0123456789\r\n0\r\n\r\n"),
    ("chunk-leading-zeros", b"0005\r\nhello\r\n0000\r\n\r\n"),
    ("chunk-size-space-before", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-space-after", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-tab-after", b"5\t\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-plus", b"+5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-minus", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-letters", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-empty", b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-wrap", b"FFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-bare-lf", b"5\nhello\r\n0\r\n\r\n"),
    ("chunk-size-bare-cr", b"5\rhello\r\n0\r\n\r\n"),
    ("chunk-data-long", b"5\r\nhelloXX\r\n0\r\n\r\n"),
    ("chunk-data-short", b"5\r\nhell\r\n0\r\n\r\n"),
    ("chunk-data-bare-lf", b"5\r\nhello\n0\r\n\r\n"),
    ("chunk-last-bare-lf", b"5\r\nhello\r\n0\n\n"),
    ("chunk-trailer-fold", b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
    ("chunk-trailer-bare-lf", b"5\r\nhello\r\n0\r\nX-T: a\n\r\n"),
    ("chunk-trailer-no-colon", b"5\r\nhello\r\n0\r\nX-T a\r\n\r\n"),
    ("chunk-trailer-space-name", b"5\r\nhello\r\n0\r\nX-T : a\r\n\r\n"),
    ("chunk-ext-bare-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-nul", b"5;a=\x00\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-space-end", b"5;a=b \r\nhello\r\n0\r\n\r\n"),
]

SMUGGLED = b"GPOST /smuggled?user=evil HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"


def request(i, lines, body):
    """A POST whose head carries LINES (bytes, CRLF-joined) before Host, then BODY."""
    return (b"POST /smuggle?user=u%d&id=%d HTTP/1.1\r\n" % (i % 50, i) + lines
            + b"\r\nHost: h\r\nX-Scanner: wsring-corpus\r\n\r\n" + body)


def corpus():
    """[(name, request bytes)], deterministic; each request's target carries its index."""
    out = []
    for name, line in te_lines():
        # CL.TE: CL covers "0\r\n\r\nG..."; read as chunked, a smuggled request follows
        body = b"0\r\n\r\n" + SMUGGLED
        out.append(("cl.te/" + name, line + b"\r\nContent-Length: %d" % len(body), body))
        # TE.CL: CL covers only the size line; read as chunked, the request is longer
        body = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
        out.append(("te.cl/" + name, line + b"\r\nContent-Length: 4", body))
        # TE alone: a valid chunked body, and a smuggled request if the TE is not honoured
        out.append(("te/" + name, line, b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED))
    for name, line in cl_lines():
        out.append(("cl/" + name, line, b"hello" + SMUGGLED))
        out.append(("cl+te/" + name, line + b"\r\nTransfer-Encoding: chunked",
                    b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED))
    for name, body in CHUNKED_BODIES:
        out.append(("body/" + name, b"Transfer-Encoding: chunked", body))
    return [(name, request(i, lines, body)) for i, (name, lines, body) in enumerate(out)]


def response_heads():
    """Response heads carrying the framing mutations, for the http1 response parser."""
    out = []
    for name, line in te_lines() + cl_lines():
        out.append(("resp/" + name, b"HTTP/1.1 200 OK\r\n" + line
                    + b"\r\nServer: x\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
    return out


def write_seeds(directory, items):
    os.makedirs(directory, exist_ok=True)
    for data in items:
        path = os.path.join(directory, "smuggling-" + hashlib.sha1(data).hexdigest())
        with open(path, "wb") as f:
            f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", action="store_true", help="print how many requests there are")
    ap.add_argument("--head", help="directory for fuzz_head seeds")
    ap.add_argument("--http1", help="directory for fuzz_http1 seeds")
    ap.add_argument("--records", help="file of length-prefixed requests for the unit test")
    args = ap.parse_args()
    reqs = corpus()
    if args.count:
        print(len(reqs))
    if args.head:
        write_seeds(args.head, [r for _n, r in reqs])
    if args.http1:
        # fuzz_http1 input: body kind (2 = chunked, 1 = length), length, split, then bytes
        bodies = [bytes([2, 0, 7]) + b for _n, b in CHUNKED_BODIES]
        bodies += [bytes([1, 5, 3]) + r for _n, r in response_heads()]
        write_seeds(args.http1, bodies)
    if args.records:
        tmp = args.records + ".tmp"
        with open(tmp, "wb") as f:
            for n, r in reqs:
                f.write(struct.pack("<I", len(n)) + n.encode() + struct.pack("<I", len(r)) + r)
        os.replace(tmp, args.records)


if __name__ == "__main__":
    main()
