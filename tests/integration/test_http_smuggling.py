"""Request smuggling (DESIGN §3 step 1): the 3,000-odd mutations of tests/smuggling_corpus.py,
shaped as public scanners send them, each get a 400 from wsring or reach the backend as exactly
one request with one unambiguous framing that the backend reads as wsring did."""
import concurrent.futures
import re
import socket
import sys

from helpers import HERE
from raw_http import RawBackend, connect, parse_head, read_response

sys.path.insert(0, str(HERE.parent))
import smuggling_corpus  # noqa: E402  (tests/, beside the unit tests)

TCHARS = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FRAMING = (b"content-length", b"transfer-encoding")


def respond(method, target, fields, body):
    return [b"HTTP/1.1 200 OK\r\nX-Req: " + target.encode() + b"\r\nContent-Length: 2\r\n\r\nok"]


def framing_of(head):
    """The one framing field of a forwarded head, (name, value) or None; asserts that no parser
    could frame it another way: CRLF line ends only, token names with no space before the colon,
    no control bytes, no '_' spelling of a framing name, at most one framing field, a Content-Length
    of digits, a Transfer-Encoding of exactly chunked."""
    lines = head[:-4].split(b"\r\n")
    assert all(b"\r" not in ln and b"\n" not in ln for ln in lines), head
    found = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and TCHARS.fullmatch(name), f"bad field line {line!r}"
        assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value), f"control byte in {line!r}"
        lower = name.lower()
        assert lower.replace(b"_", b"-") not in FRAMING or lower in FRAMING, f"alias {name!r}"
        if lower in FRAMING:
            found.append((lower, value.strip(b" ")))
    assert len(found) <= 1, f"more than one framing field: {found}"
    if not found:
        return None
    name, value = found[0]
    if name == b"content-length":
        assert re.fullmatch(rb"[0-9]+", value), value
    else:
        assert value.lower() == b"chunked", value
    return found[0]


def send_one(port, item):
    """(name, payload, status of the first answer)."""
    name, payload = item
    s, r = connect(port, timeout=5)
    with s:
        try:
            s.sendall(payload)
        except OSError:
            pass  # wsring may answer 400 and close before taking it all
        try:
            _i, head, _b, _c = read_response(r)
        except (EOFError, socket.timeout, ConnectionError) as e:
            return name, payload, f"no answer: {e!r}"
        status = int(head.split(b" ")[1])
        if status == 400:
            assert b"\r\nConnection: close\r\n" in head, (name, head)
        return name, payload, status


def test_smuggling_corpus_gets_400_or_one_unambiguous_request(env):
    corpus = smuggling_corpus.corpus()
    assert len(corpus) > 3000
    backend = RawBackend(respond)
    try:
        proxy = env.wsring(f"key query:user\nbackend raw 127.0.0.1:{backend.port}\n")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda it: send_one(proxy.port, it), corpus))
    finally:
        backend.close()
    odd = [(n, st) for n, _p, st in results if st not in (200, 400)]
    assert not odd, f"{len(odd)} answers neither 200 nor 400, first: {odd[:5]}"
    by_id = {}
    for _n, head, body in backend.requests:
        _line, fields = parse_head(head)
        # every request the backend read was framed and forwarded by wsring: one X-Wsring-Key
        keys = [v for n, v in fields if n == "x-wsring-key"]
        assert len(keys) == 1, f"a request wsring did not frame reached the backend: {head!r}"
        m = re.search(rb"[?&]id=(\d+) ", head)
        if m:
            by_id.setdefault(int(m.group(1)), []).append((head, body))
    assert backend.garbage == [], backend.garbage[:3]
    accepted = 0
    for i, (name, payload, status) in enumerate(results):
        got = by_id.get(i, [])
        if status == 400:
            assert got == [], f"{name}: answered 400 but reached the backend"
            continue
        accepted += 1
        assert len(got) == 1, f"{name}: answered 200 after {len(got)} requests reached the backend"
        head, body = got[0]
        try:
            framing = framing_of(head)
        except AssertionError as e:
            raise AssertionError(f"{name}: ambiguous forwarded head: {e}\n{head!r}") from None
        sent = payload[payload.index(b"\r\n\r\n") + 4:]
        assert sent.startswith(body), f"{name}: the backend's body is not what the client sent"
        if framing is None:
            assert body == b"", name
        elif framing[0] == b"content-length":
            assert len(body) == int(framing[1]), name
    # the corpus is mostly hostile: most must be refused, and the plain shapes must pass
    assert accepted < len(corpus) // 4, accepted
    names = {n for n, _p, st in results if st == 200}
    assert {"te/case-transfer-encoding-chunked", "te/ws-trailing", "body/chunk-ok",
            "body/chunk-trailers", "te.cl/name-prefix"} <= names, sorted(names)[:50]
    print(f"{len(corpus)} mutations: {accepted} forwarded unambiguously, "
          f"{len(corpus) - accepted} refused with 400")
