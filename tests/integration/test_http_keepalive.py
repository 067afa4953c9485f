"""Issue #8, correctness: per-request HTTP/1.1 routing on keep-alive client connections (DESIGN
§3, §10.1) with real pooled clients (Python requests, Node fetch), stock and raw backends."""
import hashlib
import json
import re
import subprocess
import time

import pytest
import requests

from helpers import HERE, NODE, http_get
from raw_http import RawBackend, connect, dechunk, parse_head, read_response


def node_backends(env, names):
    """Node keep-alive backends (backend_node_http.js): [(name, port)]."""
    out = []
    for name in names:
        proc = env.spawn(f"backend-{name}", [NODE, str(HERE / "backend_node_http.js"), name, "0"],
                         stdout=subprocess.PIPE)
        out.append((name, env.read_ready(proc)))
    return out


def accepted(proxy):
    """wsring_connections_accepted_total from /metrics: client connections accepted so far."""
    status, body = http_get(proxy.admin_port, "/metrics")
    assert status == 200
    m = re.search(rb"^wsring_connections_accepted_total (\d+)$", body, re.M)
    assert m, body[:500]
    return int(m.group(1))


def owners_of(proxy, users):
    """The owner of every user, from one POST /lookup (the admin port's batch answer)."""
    r = requests.post(f"http://127.0.0.1:{proxy.admin_port}/lookup", data=json.dumps(users),
                      timeout=10)
    assert r.status_code == 200, r.text[:300]
    answer = r.json()
    assert [a["key"] for a in answer] == users
    return {a["key"]: a["owner"] for a in answer}


def jobs_for(n, users):
    """N requests spread over USERS: every third a POST with a body unique to it, else a GET."""
    return [{"i": i, "user": users[(i * 7) % len(users)],
             "body": "" if i % 3 else f"msg {i} " + "x" * (i % 200)} for i in range(n)]


def check_answers(jobs, answers, owners):
    """Every answer is 200 from the user's owner, for its own request (in order), byte-exact."""
    assert len(answers) == len(jobs)
    wrong = []
    for job, (status, text) in zip(jobs, answers):
        rep = json.loads(text) if status == 200 else {}
        body = job["body"].encode()
        want = {"backend": owners[job["user"]], "key": job["user"], "len": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "method": "POST" if body else "GET"}
        got = {k: rep.get(k) for k in want}
        if status != 200 or got != want or not rep["url"].startswith(f"/send/{job['i']}?"):
            wrong.append((job["i"], status, got, want, rep.get("url")))
    assert not wrong, f"{len(wrong)} wrong answers, first: {wrong[:3]}"


@pytest.fixture
def keepalive_proxy(env):
    backends = node_backends(env, ("ka-a", "ka-b", "ka-c"))
    proxy = env.wsring("key query:user\n" + "".join(
        f"backend {n} 127.0.0.1:{p}\n" for n, p in backends))
    users = [f"user-{i}" for i in range(1000)]
    owners = owners_of(proxy, users)
    assert set(owners.values()) == {n for n, _ in backends}
    return proxy, users, owners


def test_python_requests_session_reuses_one_connection_for_5000_requests(keepalive_proxy):
    proxy, users, owners = keepalive_proxy
    jobs = jobs_for(5000, users)
    before = accepted(proxy)
    answers = []
    with requests.Session() as s:
        for job in jobs:
            url = f"http://127.0.0.1:{proxy.port}/send/{job['i']}"
            params = {"user": job["user"]}
            r = (s.post(url, params=params, data=job["body"].encode(), timeout=10) if job["body"]
                 else s.get(url, params=params, timeout=10))
            answers.append((r.status_code, r.content))
    check_answers(jobs, answers, owners)
    # one pooled connection carried all 5,000 requests for 1,000 users
    assert accepted(proxy) - before == 1


def test_node_fetch_reuses_its_pool_for_5000_requests(keepalive_proxy, tmp_path):
    proxy, users, owners = keepalive_proxy
    jobs = jobs_for(5000, users)
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    lanes = 4
    before = accepted(proxy)
    r = subprocess.run([NODE, str(HERE / "fetch_client.js"), str(proxy.port), str(path),
                        str(lanes)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert [o["i"] for o in out] == list(range(len(jobs)))
    check_answers(jobs, [(o["status"], o["text"]) for o in out], owners)
    # undici reuses its pooled connections: a few per concurrent lane (it may open a spare
    # while a finished response is being released), never one per request
    opened = accepted(proxy) - before
    assert 1 <= opened <= 4 * lanes, f"{opened} client connections for {len(jobs)} requests"


# ---- raw bytes: bodies, interim answers, no-body answers, pipelining (raw_http.RawBackend) ----

MIB = 1 << 20


def blob(n, seed):
    """N deterministic bytes, different for each SEED."""
    out, block = bytearray(), hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def chunked(data, sizes, trailers=b""):
    """DATA as a chunked body in chunks of the given SIZES (cycled), then TRAILERS lines."""
    out, i, k = b"", 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        k += 1
        piece = data[i:i + n]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        i += n
    return out + b"0\r\n" + trailers + b"\r\n"


def answer(target, status=b"200 OK", fields=b"", body=b""):
    """A backend answer naming the request it belongs to (X-Req)."""
    return (b"HTTP/1.1 " + status + b"\r\nX-Req: " + target.encode() + b"\r\n" + fields
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


BIG_RESPONSE = blob(MIB, "response")
RESPONSE_TRAILERS = b"X-Checksum: " + hashlib.sha256(BIG_RESPONSE).hexdigest().encode() + \
    b"\r\nX-Extra:  spaced  value \r\n"


def scripted(method, target, fields, body):
    """The answers of the raw-bytes tests, by path."""
    path = target.split("?")[0]
    if path == "/echo":
        return [answer(target, body=body)]
    if path == "/chunked":  # 1 MiB chunked answer with trailers, in odd chunk sizes
        return [b"HTTP/1.1 200 OK\r\nX-Req: " + target.encode() + b"\r\nTransfer-Encoding: chunked"
                b"\r\n\r\n" + chunked(BIG_RESPONSE, [1, 4093, 65536, 17], RESPONSE_TRAILERS)]
    if path == "/head":
        return [b"HTTP/1.1 200 OK\r\nX-Req: " + target.encode() + b"\r\nContent-Length: 1048576"
                b"\r\n\r\n"]
    if path == "/204":
        return [b"HTTP/1.1 204 No Content\r\nX-Req: " + target.encode() + b"\r\n\r\n"]
    if path == "/304":  # a 304 may announce the length of the representation it stands for
        return [b"HTTP/1.1 304 Not Modified\r\nX-Req: " + target.encode() + b"\r\nETag: \"v1\"\r\n"
                b"Content-Length: 100\r\n\r\n"]
    if path == "/backend-closes":
        return [answer(target, fields=b"Connection: close\r\n", body=b"bye"), "close"]
    if path == "/close-delimited":
        return [b"HTTP/1.1 200 OK\r\nX-Req: " + target.encode() + b"\r\n\r\n" + BIG_RESPONSE,
                "close"]
    if path == "/answer-then-fin":  # keep-alive in words, but the FIN comes with the answer
        return ["cork", answer(target, body=b"fin"), "close"]
    if path == "/drop-if-reused":
        return [answer(target, body=body)]
    if path == "/pieces":  # the head byte by byte, then the body
        return ["drip", answer(target, fields=b"X-Long: " + b"p" * 300 + b"\r\n", body=b"x" * 50)]
    return [answer(target, status=b"404 Not Found")]


def expect_answer(target):
    if target.startswith("/expect-no"):
        return answer(target, status=b"417 Expectation Failed", body=b"no")
    return b"HTTP/1.1 100 Continue From The Backend\r\n\r\n"


def without_hop_fields(head):
    """HEAD as wsring relays it: the backend's Connection and Keep-Alive lines dropped."""
    lines = head[:-4].split(b"\r\n")
    keep = [ln for ln in lines if not ln.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join(keep) + b"\r\n\r\n"


@pytest.fixture
def raw_proxy(env):
    backend = RawBackend(scripted, expect_answer)
    proxy = env.wsring(f"key query:user\nbackend raw 127.0.0.1:{backend.port}\n")
    yield proxy, backend
    backend.close()


def last_request(backend, target):
    got = [(n, h, b) for n, h, b in backend.requests if h.split(b" ")[1] == target.encode()]
    assert len(got) == 1, f"{target}: {len(got)} requests reached the backend"
    return got[0]


def exchange(s, r, data, head_request=False):
    s.sendall(data)
    return read_response(r, head_request)


def test_bodies_and_bodiless_answers_relayed_byte_exact_on_one_connection(raw_proxy):
    proxy, backend = raw_proxy
    s, r = connect(proxy.port)
    with s:
        # 0 B request and answer
        t = "/echo?user=a&n=0"
        _i, head, body, _c = exchange(s, r, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert head == answer(t) and body == b"" and last_request(backend, t)[2] == b""
        # 1 MiB Content-Length both ways
        big = blob(MIB, "request")
        t = "/echo?user=b&n=1"
        _i, head, body, _c = exchange(s, r, f"POST {t} HTTP/1.1\r\nHost: h\r\nContent-Length: "
                                      f"{MIB}\r\n\r\n".encode() + big)
        assert head + body == answer(t, body=big) and last_request(backend, t)[2] == big
        # 1 MiB chunked with trailers both ways: chunk framing and trailers relayed verbatim
        t = "/chunked?user=c&n=2"
        req_body = chunked(big, [7, 65535, 1, 300000],
                           b"X-Req-Sum: " + hashlib.sha256(big).hexdigest().encode() + b"\r\n"
                           b"X-Two:\tb\r\n")
        _i, head, body, _c = exchange(s, r, f"PUT {t} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                                      "chunked\r\n\r\n".encode() + req_body)
        assert last_request(backend, t)[2] == req_body
        assert head + body == scripted("PUT", t, [], b"")[0]
        assert body.endswith(b"0\r\n" + RESPONSE_TRAILERS + b"\r\n")
        # HEAD, 204, 304: no body whatever the head announces; the next request still frames
        for method, t in (("HEAD", "/head?user=d&n=3"), ("GET", "/204?user=e&n=4"),
                          ("GET", "/304?user=f&n=5")):
            _i, head, body, _c = exchange(s, r, f"{method} {t} HTTP/1.1\r\nHost: h\r\n\r\n"
                                          .encode(), head_request=method == "HEAD")
            assert head == scripted(method, t, [], b"")[0] and body == b"", (t, head)
            assert r.buf == b"", f"{t}: bytes after a bodiless answer: {r.buf[:100]!r}"
        # Expect: 100-continue accepted: the backend's own 100 comes through, then the body goes
        t = "/echo?user=g&n=6"
        s.sendall(f"POST {t} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5"
                  "\r\n\r\n".encode())
        assert r.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue From The Backend\r\n\r\n"
        _i, head, body, _c = exchange(s, r, b"hello")
        assert head + body == answer(t, body=b"hello")
        # pipelined: three requests in one write, answered in order
        ts = ["/echo?user=h&n=7", "/echo?user=i&n=8", "/204?user=j&n=9"]
        s.sendall(f"GET {ts[0]} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
                  + f"POST {ts[1]} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc".encode()
                  + f"GET {ts[2]} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        for t, want_body in zip(ts, (b"", b"abc", b"")):
            _i, head, body, _c = read_response(r)
            assert head.split(b"\r\n")[1] == b"X-Req: " + t.encode() and body == want_body
        # a backend's Connection: close ends that backend connection only
        conns = backend.conns
        t = "/backend-closes?user=k&n=10"
        _i, head, body, _c = exchange(s, r, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert head + body == without_hop_fields(answer(t, body=b"bye")[:-3]) + b"bye"
        t = "/echo?user=l&n=11"
        _i, head, body, _c = exchange(s, r, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert head == answer(t) and backend.conns == conns + 1
        # a close-delimited answer: relayed whole, then wsring closes and says so in the head
        t = "/close-delimited?user=m&n=12"
        _i, head, body, closed = exchange(s, r, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert head == f"HTTP/1.1 200 OK\r\nX-Req: {t}\r\nConnection: close\r\n\r\n".encode()
        assert closed and body == BIG_RESPONSE
    assert backend.garbage == []


def test_expect_100_continue_rejected_by_the_backend(raw_proxy):
    proxy, backend = raw_proxy
    s, r = connect(proxy.port)
    with s:
        t = "/expect-no?user=a"
        s.sendall(f"POST {t} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5"
                  "\r\n\r\n".encode())
        interim, head, body, _c = read_response(r)
        # no 100 from wsring: the backend's 417 is the answer; the unsent body cannot be
        # told from a next request, so wsring ends the client connection and says so
        assert interim == [] and body == b"no"
        assert head == answer(t, status=b"417 Expectation Failed", body=b"no")[:-2].replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        assert r.to_eof() == b""
    assert [h.split(b" ")[1] for _n, h, _b in backend.requests] == [t.encode()]


def test_response_head_in_many_small_pieces(raw_proxy):
    proxy, backend = raw_proxy
    s, r = connect(proxy.port)
    with s:
        for n in range(3):  # byte-by-byte heads, keep-alive in between
            t = f"/pieces?user=p{n}"
            _i, head, body, _c = exchange(s, r, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            want = answer(t, fields=b"X-Long: " + b"p" * 300 + b"\r\n", body=b"x" * 50)
            assert head + body == want


# ---- smuggling shapes on the second request of a keep-alive connection ----

GOOD = b"POST /echo?user=first HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nfirst"
SECOND_BAD = {  # name: the second request, which must get a 400 and end that connection
    "cl+te": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te+cl": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "duplicate cl": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                    b"Content-Length: 6\r\n\r\nhello!",
    "duplicate equal cl": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                          b"Content-Length: 5\r\n\r\nhello",
    "cl list": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
    "cl sign": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
    "cl hex": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello",
    "te twice": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te list": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
               b"0\r\n\r\n",
    "te identity": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
    "te in 1.0": b"POST /echo?user=s HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "te tab": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    "te space before colon": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : "
                             b"chunked\r\n\r\n0\r\n\r\n",
    "te underscore": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n"
                     b"Content-Length: 5\r\n\r\nhello",
    "obs-fold": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\n"
                b"hello",
    "obs-fold te": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                   b"0\r\n\r\n",
    "leading space line": b"POST /echo?user=s HTTP/1.1\r\n Host: h\r\nContent-Length: 5\r\n\r\nhello",
    "bare lf in head": b"POST /echo?user=s HTTP/1.1\r\nHost: h\nContent-Length: 5\r\n\r\nhello",
    "bare lf request line": b"GET /echo?user=s HTTP/1.1\nHost: h\r\n\r\n",
    "bare cr": b"POST /echo?user=s HTTP/1.1\r\nHost: h\rContent-Length: 5\r\n\r\nhello",
    "nul in value": b"GET /echo?user=s HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "bad chunk size": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk size 0x": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk size overflow": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk size space": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                        b"\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    "chunk bare lf": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\nhello\r\n0\r\n\r\n",
    "chunk data too long": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
    "trailer obs-fold": b"POST /echo?user=s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                        b"\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n",
    "no host": b"GET /echo?user=s HTTP/1.1\r\nX-A: a\r\n\r\n",
    "two spaces": b"GET  /echo?user=s HTTP/1.1\r\nHost: h\r\n\r\n",
}


def read_400_then_eof(r):
    _i, head, body, _c = read_response(r)
    assert head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head, head
    assert r.to_eof() == b""


@pytest.mark.parametrize("how", ["after", "pipelined", "body later"])
def test_bad_second_request_gets_400_and_ends_only_its_connection(raw_proxy, how):
    proxy, backend = raw_proxy
    other, other_r = connect(proxy.port)
    with other:
        _i, head, body, _c = exchange(other, other_r, GOOD)
        assert body == b"first"
        for name, bad in SECOND_BAD.items():
            s, r = connect(proxy.port)
            with s:
                if how == "pipelined":
                    s.sendall(GOOD + bad)
                    _i, head, body, _c = read_response(r)
                else:
                    _i, head, body, _c = exchange(s, r, GOOD)
                    cut = bad.index(b"\r\n\r\n") + 4 if how == "body later" else len(bad)
                    s.sendall(bad[:cut])
                    if cut < len(bad):
                        time.sleep(0.05)  # the head is out; the bad body comes in its own read
                        s.sendall(bad[cut:])
                assert head + body == answer("/echo?user=first", body=b"first"), name
                try:
                    read_400_then_eof(r)
                except (AssertionError, EOFError) as e:
                    raise AssertionError(f"{name} ({how}): {e}") from None
        # the other client's connection was never touched
        _i, head, body, _c = exchange(other, other_r, GOOD)
        assert body == b"first"
    bodies = [b for _n, h, b in backend.requests if b"user=s " in h]
    assert all(b is not None and b != b"hello" for b in bodies), bodies
    assert backend.garbage == [] or how == "body later", backend.garbage


# ---- a pooled backend connection that went stale ----

def test_stale_pooled_connection_costs_no_request(raw_proxy):
    """A pooled backend connection the backend closed is found before use (its FIN is already
    there) or, when the close races the request, an idempotent request is sent again once on
    a fresh connection; a POST the backend may have read is not (502)."""
    proxy, backend = raw_proxy
    s, r = connect(proxy.port)
    with s:
        # the answer and the FIN arrive together; the pipelined POST must not go to that
        # connection: wsring sees the FIN when it takes the connection from the pool
        t1, t2 = "/answer-then-fin?user=a", "/echo?user=a&n=1"
        s.sendall(f"GET {t1} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
                  + f"POST {t2} HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody".encode())
        _i, head, body, _c = read_response(r)
        assert head + body == answer(t1, body=b"fin")
        _i, head, body, _c = read_response(r)
        assert head + body == answer(t2, body=b"body")
        # the backend closes a reused connection on receiving the request: the GET is
        # idempotent, so it goes once more on a fresh connection and the client sees 200
        for n in range(3):
            t = f"/drop-if-reused?user=a&n=get{n}"
            _i, head, body, _c = exchange(s, r, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            assert head == answer(t), head
        for n in range(3):  # each went to a reused connection, then once to a fresh one
            conns = [c for c, h, _b in backend.requests if b"n=get%d " % n in h]
            assert len(conns) == 2 and conns[0] < conns[1], (n, conns)
        # a POST that may have been read is never sent twice: the client gets the 502
        t = "/drop-if-reused?user=a&n=post"
        _i, head, body, _c = exchange(s, r, f"POST {t} HTTP/1.1\r\nHost: h\r\n"
                                      "Content-Length: 2\r\n\r\nhi".encode())
        assert head.startswith(b"HTTP/1.1 502 "), head
    assert len([h for _c, h, _b in backend.requests if b"n=post" in h]) == 1


def test_bytes_after_a_body_longer_than_a_head_may_be_get_431(raw_proxy):
    """What follows a request body in the same reads is the next head: more of it than
    max_head_bytes without its end is a 431, as on a fresh connection, and the answer to the
    request before it comes first."""
    proxy, backend = raw_proxy
    body = blob(20000, "body")  # longer than the first read of a head (16 KiB + 1)
    for junk in (b"x" * 100000, b"GET /echo?user=b HTTP/1.1\r\nHost: h\r\nX-Big: "
                 + b"y" * 40000 + b"\r\n\r\n"):
        s, r = connect(proxy.port)
        with s:
            t = "/echo?user=a"
            s.sendall(f"POST {t} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n\r\n"
                      .encode() + body + junk)
            _i, head, got, _c = read_response(r)
            assert head + got == answer(t, body=body)
            _i, head, _b, _c = read_response(r)
            assert head.startswith(b"HTTP/1.1 431 "), head
            assert r.to_eof() == b""
    assert proxy.proc.alive()


def test_early_answer_to_an_upload_reaches_a_pooled_client(raw_proxy):
    """A backend that refuses an upload before its body is in (413) ends that exchange; the
    client is told Connection: close and may finish sending: wsring drains it (RFC 9112 s9.6)
    instead of resetting the connection under a client that is still writing."""
    proxy, backend = raw_proxy
    big = blob(8 * MIB, "upload")
    for _ in range(3):
        with requests.Session() as s:
            r = s.post(f"http://127.0.0.1:{proxy.port}/early-answer?user=a", data=big, timeout=10)
            assert (r.status_code, r.content, r.headers.get("connection")) == (
                413, b"too big", "close")


def test_500_pipelined_requests_for_many_users_answered_in_order(keepalive_proxy):
    """One write of 500 requests (about 44 KB: the batch spans many reads, requests straddle
    read boundaries) for different users: each answered by its owner, in order."""
    proxy, users, owners = keepalive_proxy
    jobs = jobs_for(500, users)
    batch = b""
    for job in jobs:
        body = job["body"].encode()
        target = f"/send/{job['i']}?user={job['user']}"
        batch += (f"POST {target} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode() + body if body else f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n"
                  .encode())
    assert len(batch) > 40000
    s, r = connect(proxy.port)
    with s:
        s.sendall(batch)
        answers = []
        for _job in jobs:
            _i, head, body, _c = read_response(r)
            if (dict(parse_head(head)[1]).get("transfer-encoding") or "") == "chunked":
                body = dechunk(body)
            answers.append((int(head.split(b" ")[1]), body))
    check_answers(jobs, answers, owners)


def test_curl_expect_100_continue_relayed_from_a_stock_server(keepalive_proxy, tmp_path):
    """curl waits for the 100 before sending a body with Expect: 100-continue; Node's server
    sends it. curl must get it through wsring at once (not after its 10 s expect timeout), and
    several URLs on one curl command line share one connection."""
    proxy, users, owners = keepalive_proxy
    data = blob(2 * MIB, "curl")
    path = tmp_path / "body"
    path.write_bytes(data)
    before = accepted(proxy)
    argv = ["curl", "-sS", "--expect100-timeout", "10", "-H", "Expect: 100-continue",
            "--data-binary", f"@{path}", "-w", "\\n%{time_total}\\n"]
    for u in users[:5]:
        argv += [f"http://127.0.0.1:{proxy.port}/send/0?user={u}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 10, r.stdout
    for u, rep, took in zip(users[:5], lines[0::2], lines[1::2]):
        rep = json.loads(rep)
        assert (rep["backend"], rep["len"], rep["sha256"]) == (
            owners[u], len(data), hashlib.sha256(data).hexdigest())
        assert float(took) < 5, f"curl waited {took} s: the 100 Continue did not come through"
    assert accepted(proxy) - before == 1
