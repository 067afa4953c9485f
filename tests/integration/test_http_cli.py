"""Acceptance 6: plain HTTP routed per request on keep-alive connections, the key rules, the CLI."""
import hashlib
import json
import os
import re
import weakref

import pytest

import socket

from helpers import backend_lines, http_exchange, run_wsring, split_response

WSRING_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-wsring-key", "x-wsring-ring")


@pytest.fixture
def http_backends(env):
    return [env.backend(n, "http") for n in ("web-a", "web-b", "web-c")]


def request(port, data):
    resp, how = http_exchange(port, data, timeout=5)
    status, headers, body = split_response(resp)
    # keep-alive: the response is whole and the connection stays open for the next request
    assert how == "open", f"wsring must keep the client connection after the response ({how})"
    assert status == 200, resp[:300]
    return headers, json.loads(body)


def dechunk(body):
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2:]


def response_end(got, head_only=False):
    """Where the first whole response in GOT ends (its head only, for HEAD), or None."""
    head, sep, rest = got.partition(b"\r\n\r\n")
    if not sep:
        return None
    start = len(head) + 4
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    if head_only or status in (204, 304):
        return start
    if 100 <= status < 200:
        end = response_end(rest)
        return None if end is None else start + end
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        pos = 0
        while (eol := rest.find(b"\r\n", pos)) != -1:
            size = int(rest[pos:eol].split(b";")[0], 16)
            if size == 0:
                tail = rest.find(b"\r\n\r\n", eol)  # after the trailers, if any
                return None if tail == -1 else start + tail + 4
            pos = eol + 2 + size + 2
        return None
    length = int(fields.get(b"content-length", b"-1"))
    return start + length if 0 <= length <= len(rest) else None


_unread = weakref.WeakKeyDictionary()  # per socket: bytes of the responses after the one read


def read_response(sock, timeout=5.0, head_only=False):
    """Reads one whole response (only the head for HEAD); a chunked body comes back decoded.
    What follows it in the same read (pipelined answers may share a segment) waits for the
    next call."""
    sock.settimeout(timeout)
    got = _unread.pop(sock, b"")
    while (end := response_end(got, head_only)) is None:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {got[:200]!r}"
        got += chunk
    if end < len(got):
        _unread[sock] = got[end:]
    status, headers, body = split_response(got[:end])
    if "chunked" in dict(headers).get("transfer-encoding", ""):
        body = dechunk(body)
    return status, headers, body


def test_each_request_on_a_keep_alive_connection_goes_to_its_own_owner(env, http_backends):
    proxy = env.wsring("key query:user\n" + backend_lines(http_backends))
    users = [f"user-{i}" for i in range(60)]
    owners = {u: proxy.lookup(u)["owner"] for u in users}
    assert len(set(owners.values())) == 3
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        for u in users:  # one connection, many users: never "the first request decides"
            s.sendall(f"GET /send?user={u} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            status, headers, body = read_response(s)
            rep = json.loads(body)
            assert status == 200 and rep["backend"] == owners[u], (u, rep["backend"], owners[u])
            assert "connection" not in dict(headers), headers
        # pipelined: three requests in one write, answered in order by their own owners
        batch = users[:3]
        s.sendall(b"".join(f"GET /p?user={u} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
                           for u in batch))
        for u in batch:
            _st, _h, body = read_response(s)
            assert json.loads(body)["backend"] == owners[u]
        # Connection: close from the client ends the connection after that response
        s.sendall(b"GET /last?user=zed HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        _st, headers, _b = read_response(s)
        assert dict(headers).get("connection") == "close"
        assert s.recv(10) == b""


def test_plain_http_routed_with_hop_by_hop_headers_dropped(env, http_backends):
    proxy = env.wsring("key query:user\n" + backend_lines(http_backends))
    look = proxy.lookup("alice")
    client_lines = [b"GET /api/hello?user=alice&x=1 HTTP/1.1", b"Host: example.test",
                    b"Connection: keep-alive", b"X-Custom: a  b", b"Accept: */*"]
    _headers, rep = request(proxy.port, b"\r\n".join(client_lines) + b"\r\n\r\n")
    assert rep["backend"] == look["owner"] and rep["target"] == "/api/hello?user=alice&x=1"
    got = rep["headers"]
    conn = [v for n, v in got if n.lower() == "connection"]
    assert conn == [], f"the client's hop-by-hop Connection reached the backend: {conn}"
    one = {n.lower(): v for n, v in got}
    for name in WSRING_HEADERS:
        assert [n.lower() for n, _ in got].count(name) == 1, f"{name} not exactly once: {got}"
    assert (one["x-wsring-key"], one["x-forwarded-for"], one["x-forwarded-proto"]) == (
        "alice", "127.0.0.1", "http")
    assert one["x-wsring-ring"] == look["fingerprint"]
    # the client's other header lines arrive unchanged and in order
    raw_lines = rep["raw_head"].split("\r\n")
    assert raw_lines[0] == "GET /api/hello?user=alice&x=1 HTTP/1.1"
    kept = [ln for ln in raw_lines[1:] if ln and not ln.lower().startswith(("connection:",) + tuple(
        h + ":" for h in WSRING_HEADERS))]
    assert kept == ["Host: example.test", "X-Custom: a  b", "Accept: */*"], raw_lines


def test_plain_http_post_body_relayed(env, http_backends):
    proxy = env.wsring("key query:user\n" + backend_lines(http_backends))
    body = b'{"to": "bob", "text": "hi \xe2\x9c\x93"}'
    _h, rep = request(proxy.port, b"POST /internal/send?user=bob HTTP/1.1\r\nHost: h\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert rep["backend"] == proxy.lookup("bob")["owner"]
    assert rep["method"] == "POST" and rep["body"].encode("latin-1") == body
    big = os.urandom(2 << 20)  # larger than any socket buffer: relayed with backpressure
    _h, rep = request(proxy.port, b"PUT /upload?user=bob HTTP/1.1\r\nHost: h\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(big) + big)
    assert (rep["body_len"], rep["body_sha256"]) == (len(big), hashlib.sha256(big).hexdigest())


def test_key_rules_first_match_wins(env, http_backends):
    proxy = env.wsring("key query:user\nkey header:X-User-Id\nkey cookie:uid\nkey path:2\n"
                       + backend_lines(http_backends))
    cases = [  # (request head lines after the request line, target, expected key)
        ("/u/pathuser/x?user=q%20user", [b"X-User-Id: huser"], "q user"),
        ("/u/pathuser/x", [b"X-User-Id: huser", b"Cookie: uid=cuser"], "huser"),
        ("/u/pathuser/x", [b"Cookie: a=1; uid=cuser; b=2"], "cuser"),
        ("/u/path%C3%BCser/x", [b"Cookie: other=1"], "path\u00fcser"),
        ("/x?xuser=no&users=no&user=a%2Bb+c", [], "a+b c"),  # exact name; '+' is a space
        ("/x?user=&z=1", [b"X-User-Id:   padded  "], "padded"),  # empty value does not match
    ]
    for target, extra, key in cases:
        head = b"GET " + target.encode() + b" HTTP/1.1\r\nHost: h\r\n" + b"".join(
            e + b"\r\n" for e in extra) + b"\r\n"
        _h, rep = request(proxy.port, head)
        got_key = rep["key"].encode("latin-1").decode("utf-8")
        assert got_key == key, f"{target} {extra}: key {got_key!r}, want {key!r}"
        assert rep["backend"] == proxy.lookup(key)["owner"], f"{key!r} routed to {rep['backend']}"


def test_config_check_good_and_bad(env):
    good = env.write_conf("listen 127.0.0.1:18080\nadmin 127.0.0.1:19090\nkey query:user\n"
                          "hash ring\nretry_next on\ndown_hold 2s\nbackend ws-a 127.0.0.1:9001\n"
                          "backend ws-b 127.0.0.1:9002 weight 2\n", "good.conf")
    r = run_wsring(["-t", "-c", str(good)])
    assert r.returncode == 0, f"good config refused: {r.stdout}{r.stderr}"
    bad_cases = {
        "unknown directive": ("listen 127.0.0.1:18080\nkey query:user\nfrobnicate yes\n", 3),
        "bad duration": ("listen 127.0.0.1:18080\nbackend a 127.0.0.1:1\ndown_hold soon\n", 3),
        "bad key rule": ("listen 127.0.0.1:18080\nkey nowhere:x\n", 2),
        "duplicate single directive": ("listen 127.0.0.1:18080\nhash ring\nhash rendezvous\n", 3),
        "missing argument": ("listen 127.0.0.1:18080\n# comment\n\nbackend onlyname\n", 4),
    }
    for what, (text, line) in bad_cases.items():
        path = env.write_conf(text, "bad.conf")
        r = run_wsring(["-t", "-c", str(path)])
        out = r.stdout + r.stderr
        assert r.returncode == 1, f"{what}: exit {r.returncode}, output {out!r}"
        assert f"{path}:{line}:" in out, f"{what}: want '{path}:{line}: ...' in {out!r}"


def test_refuses_to_start_on_bad_config(env):
    path = env.write_conf("listen 127.0.0.1:18080\nbogus 1\n", "bad.conf")
    r = run_wsring(["-c", str(path)], timeout=10)
    assert r.returncode != 0 and f"{path}:2:" in r.stdout + r.stderr


def test_version_and_help():
    r = run_wsring(["--version"])
    assert r.returncode == 0 and re.search(r"\d+\.\d+\.\d+", r.stdout + r.stderr), r
    r = run_wsring(["-h"])
    assert r.returncode == 0 and "-c" in r.stdout + r.stderr, r


def test_backend_connections_are_pooled_and_each_request_routed(env):
    """Per-request routing over wsring's own keep-alive pool (DESIGN §10.1)."""
    import subprocess

    from helpers import HERE, NODE

    if not NODE:
        pytest.skip("node not found")
    backends = []
    for name in ("ka-a", "ka-b", "ka-c"):
        proc = env.spawn(f"backend-{name}", [NODE, str(HERE / "backend_node_http.js"), name, "0"],
                         stdout=subprocess.PIPE)
        backends.append((name, env.read_ready(proc)))
    proxy = env.wsring("key query:user\n" + "".join(
        f"backend {n} 127.0.0.1:{p}\n" for n, p in backends))
    users = [f"user-{i}" for i in range(40)]
    owners = {u: proxy.lookup(u)["owner"] for u in users}
    seen = {}
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        for i in range(400):
            u = users[i % len(users)]
            body = b"z" * (i % 9) * 111
            s.sendall(b"POST /m?user=%s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
                      % (u.encode(), len(body)) + body)
            status, _h, rbody = read_response(s)
            rep = json.loads(rbody)
            assert status == 200 and rep["backend"] == owners[u] and rep["len"] == len(body)
            seen[rep["backend"]] = rep["conns"]
        s.sendall(b"HEAD /h?user=x HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, rbody = read_response(s, head_only=True)
        assert status == 200 and rbody == b"" and dict(headers)["content-length"] == "5"
        # the HEAD answer's Content-Length announced no body: the next request still works
        s.sendall(b"GET /after?user=user-1 HTTP/1.1\r\nHost: h\r\n\r\n")
        assert json.loads(read_response(s)[2])["backend"] == owners["user-1"]
    # 400 requests over one client connection: each backend saw a handful of connections at most
    assert set(seen) == {n for n, _ in backends}
    assert all(c <= 4 for c in seen.values()), seen
