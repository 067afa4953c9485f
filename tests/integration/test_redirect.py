"""Redirect mode (DESIGN §10): `route PATH redirect` answers 307 to the owner's public_url, the
request target kept; an owner without public_url is proxied to; other paths are proxied. The
public_url comes from `backend ... public_url` or Consul's Service.Meta.public_url, and /ring and
/lookup show it."""
import asyncio
import http.client
import json
import socket
import threading
import time
import urllib.request

import pytest
import websockets

from consul_helpers import SERVICE, ConsulDouble, backend as consul_backend, consul_body, ring
from helpers import (raw_exchange, split_response, status_of, wait_port, ws_hello)

USERS = [f"user-{i}" for i in range(200)]


def url_of(b):
    return f"http://127.0.0.1:{b.port}"


def static_conf(backends, with_url, routes="route /connect redirect\nroute /connect/keep proxy\n"):
    lines = []
    for b in backends:
        extra = f" public_url {url_of(b)}/" if b.name in with_url else ""  # the "/" is dropped
        lines.append(f"backend {b.name} {b.address}{extra}\n")
    return "key query:user\n" + routes + "".join(lines)


def metric(proxy, name, labels):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + labels + " "):
                return float(line.split()[-1])
    raise AssertionError(f"no {name}{labels} in /metrics")


def admin_json(proxy, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}{path}", timeout=10) as r:
        return json.loads(r.read())


def test_redirect_to_owner_public_url_on_one_keep_alive_connection(env):
    """200 users asked on ONE client connection: each owner with a public_url answers 307 with
    Location = public_url + the target, the owner without one is proxied to; following the
    Location directly reaches the owner (its backend reports its name)."""
    bs = env.backends(["ws-a", "ws-b", "ws-c"])
    proxy = env.wsring(static_conf(bs, {"ws-a", "ws-b"}), workers=1)
    owners = {u: proxy.lookup(u)["owner"] for u in USERS}
    assert set(owners.values()) == {"ws-a", "ws-b", "ws-c"}
    url = {b.name: url_of(b) for b in bs}
    accepted0 = metric(proxy, "wsring_connections_accepted_total", "")

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    redirected = proxied = 0
    for u in USERS:
        target = f"/connect/{u}?user={u}&x=a%20b"
        conn.request("GET", target)
        resp = conn.getresponse()
        body = resp.read()
        if owners[u] == "ws-c":
            # No public_url: proxied to the owner, a websockets server that answers a plain GET
            # with 426 Upgrade Required.
            assert resp.status == 426, (u, resp.status, body)
            proxied += 1
            continue
        assert resp.status == 307, (u, resp.status, body)
        assert resp.reason == "Temporary Redirect"
        assert resp.getheader("Location") == url[owners[u]] + target
        assert resp.getheader("Content-Length") == "0" and body == b""
        assert resp.getheader("Connection") is None  # keep-alive kept
        redirected += 1
    conn.close()
    assert redirected > 100 and proxied > 20, (redirected, proxied)
    # Every request travelled on the one connection.
    assert metric(proxy, "wsring_connections_accepted_total", "") == accepted0 + 1
    assert metric(proxy, "wsring_handshakes_total", '{result="redirected"}') == redirected

    # A client following the Location lands on the owner directly (http -> ws, as a client does).
    async def follow():
        for u in USERS[:40]:
            if owners[u] == "ws-c":
                continue
            loc = f"{url[owners[u]]}/connect/{u}?user={u}"
            hello = await ws_hello("ws://" + loc[len("http://"):])
            assert hello["backend"] == owners[u]
            assert hello["key"] is None  # straight to the backend: wsring added nothing
    asyncio.run(follow())


def test_longest_prefix_wins_and_other_paths_are_proxied(env):
    bs = env.backends(["ws-a", "ws-b"])
    proxy = env.wsring(static_conf(bs, {"ws-a", "ws-b"}), workers=1)
    u = USERS[0]
    owner = proxy.lookup(u)["owner"]
    port = {b.name: b.port for b in bs}[owner]
    for target, want in [(f"/connect?user={u}", 307), (f"/connected/x?user={u}", 307),
                         (f"/connect/keep?user={u}", 426), (f"/connect/keeper?user={u}", 426),
                         (f"/chat?user={u}", 426), (f"/?user={u}", 426)]:
        got, how = raw_exchange(proxy.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n"
                                            f"Connection: close\r\n\r\n".encode())
        status, headers, _ = split_response(got)
        assert status == want, (target, got[:300])
        if want == 307:
            assert dict(headers)["location"] == f"http://127.0.0.1:{port}{target}"
            assert dict(headers)["connection"] == "close"  # the client asked for close
            assert how == "eof"

    # The WebSocket of a proxied path still works end to end.
    hello = asyncio.run(ws_hello(f"ws://127.0.0.1:{proxy.port}/chat?user={u}"))
    assert hello["backend"] == owner and hello["key"] == u


def test_websocket_upgrade_gets_307_and_close(env):
    """A WebSocket handshake on a redirect path gets the 307 (no 101) and Connection: close; a
    stock websockets client reports the redirect; following it by hand reaches the owner."""
    bs = env.backends(["ws-a", "ws-b"])
    proxy = env.wsring(static_conf(bs, {"ws-a", "ws-b"}), workers=1)
    u = "alice"
    owner = proxy.lookup(u)["owner"]
    port = {b.name: b.port for b in bs}[owner]
    got, how = raw_exchange(proxy.port, (
        f"GET /connect?user={u} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    status, headers, body = split_response(got)
    assert status == 307 and how == "eof", got
    h = dict(headers)
    assert h["location"] == f"http://127.0.0.1:{port}/connect?user={u}"
    assert h["connection"] == "close" and h["content-length"] == "0" and body == b""

    async def stock_client():
        # websockets 10 follows a redirect only to ws:// or wss://: it refuses an http:// one,
        # and the error names the Location it got.
        with pytest.raises((websockets.exceptions.InvalidURI,
                            websockets.exceptions.InvalidStatusCode)) as e:
            async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/connect?user={u}",
                                          open_timeout=5):
                pass
        assert f"127.0.0.1:{port}/connect?user={u}" in str(e.value) or "307" in str(e.value)
        hello = await ws_hello(f"ws://127.0.0.1:{port}/connect?user={u}")
        assert hello["backend"] == owner
    asyncio.run(stock_client())


def test_requests_with_a_body_and_pipelined_requests(env):
    bs = env.backends(["ws-a"])
    proxy = env.wsring(static_conf(bs, {"ws-a"}), workers=1)
    loc = url_of(bs[0])
    # A body: 307 with Connection: close (the body is never read as a next request).
    got, how = raw_exchange(proxy.port, b"POST /connect?user=u1 HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 5\r\n\r\nhello")
    status, headers, _ = split_response(got)
    assert status == 307 and dict(headers)["location"] == loc + "/connect?user=u1"
    assert dict(headers)["connection"] == "close" and how == "eof"
    # Three pipelined requests in one write: three answers in order; the third (a proxied path)
    # goes to the backend, whose 426 comes after the two 307s.
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(b"GET /connect?user=u1 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /connect/2?user=u2 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /chat?user=u3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.count(b"HTTP/1.1 307 Temporary Redirect\r\n") == 2, got
    first = got.index(b"Location: " + loc.encode() + b"/connect?user=u1\r\n")
    second = got.index(b"Location: " + loc.encode() + b"/connect/2?user=u2\r\n")
    assert first < second < got.index(b"HTTP/1.1 426")
    # HTTP/1.0 without keep-alive: close.
    got, how = raw_exchange(proxy.port, b"GET /connect?user=u1 HTTP/1.0\r\n\r\n")
    assert status_of(got) == 307 and b"Connection: close\r\n" in got and how == "eof"


def test_ring_and_lookup_show_public_url(env):
    bs = env.backends(["ws-a", "ws-b"])
    proxy = env.wsring(static_conf(bs, {"ws-a"}), workers=1)
    members = {m["id"]: m for m in admin_json(proxy, "/ring")["members"]}
    assert members["ws-a"]["public_url"] == url_of(bs[0])
    assert "public_url" not in members["ws-b"]
    for u in USERS[:50]:
        look = admin_json(proxy, f"/lookup?key={u}")
        if look["owner"] == "ws-a":
            assert look["public_url"] == url_of(bs[0])
        else:
            assert "public_url" not in look
    req = urllib.request.Request(f"http://127.0.0.1:{proxy.admin_port}/lookup",
                                 data=json.dumps(USERS[:50]).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        batch = json.loads(r.read())
    assert [a.get("public_url") for a in batch] == [
        url_of(bs[0]) if a["owner"] == "ws-a" else None for a in batch]


def test_reload_adds_a_public_url(env):
    """SIGHUP with a public_url added: the owner's requests switch from proxied to redirected."""
    bs = env.backends(["ws-a"])
    proxy = env.wsring(static_conf(bs, set()), workers=1)
    got, _ = raw_exchange(proxy.port, b"GET /connect?user=u HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(got) == 426  # proxied: no url yet
    proxy.conf_path.write_text(proxy.conf_path.read_text().replace(
        f"backend ws-a {bs[0].address}", f"backend ws-a {bs[0].address} public_url {url_of(bs[0])}"))
    proxy.proc.popen.send_signal(1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got, _ = raw_exchange(proxy.port, b"GET /connect?user=u HTTP/1.1\r\nHost: x\r\nConnection: close"
                                          b"\r\n\r\n")
        if status_of(got) == 307:
            break
        time.sleep(0.1)
    assert status_of(got) == 307 and f"Location: {url_of(bs[0])}/connect?user=u".encode() in got


def test_consul_meta_public_url(env):
    """Consul's Service.Meta.public_url is the member's url: redirected there, shown in /ring, and
    a change of the url alone is picked up."""
    with ConsulDouble() as consul:
        b1, b2 = consul_backend(env, "n1/ws-a"), consul_backend(env, "n2/ws-b")
        consul.register("n1", "ws-a", SERVICE, "127.0.0.1", b1.port,
                        meta={"public_url": url_of(b1) + "/", "zone": "a"})
        consul.register("n2", "ws-b", SERVICE, "127.0.0.1", b2.port)
        proxy = env.wsring(consul_body(consul, extra="route /connect redirect\n"), workers=1)
        deadline = time.monotonic() + 10
        while len(ring(proxy)["members"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        members = {m["id"]: m for m in ring(proxy)["members"]}
        assert members["n1/ws-a"]["public_url"] == url_of(b1)
        assert "public_url" not in members["n2/ws-b"]
        users = [u for u in USERS if proxy.lookup(u)["owner"] == "n1/ws-a"][:5]
        others = [u for u in USERS if proxy.lookup(u)["owner"] == "n2/ws-b"][:5]
        for u in users:
            got, _ = raw_exchange(proxy.port, f"GET /connect?user={u} HTTP/1.1\r\nHost: x\r\n"
                                              f"Connection: close\r\n\r\n".encode())
            assert status_of(got) == 307, got
            assert f"Location: {url_of(b1)}/connect?user={u}\r\n".encode() in got
        for u in others:
            got, _ = raw_exchange(proxy.port, f"GET /connect?user={u} HTTP/1.1\r\nHost: x\r\n"
                                              f"Connection: close\r\n\r\n".encode())
            assert status_of(got) == 426, got  # no url: proxied to n2/ws-b
        # Only the url changes: published all the same.
        consul.register("n1", "ws-a", SERVICE, "127.0.0.1", b1.port,
                        meta={"public_url": "https://ws-a.example.com/chat"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = {m["id"]: m for m in ring(proxy)["members"]}["n1/ws-a"]
            if m.get("public_url") == "https://ws-a.example.com/chat":
                break
            time.sleep(0.05)
        got, _ = raw_exchange(proxy.port, f"GET /connect?user={users[0]} HTTP/1.1\r\nHost: x\r\n"
                                          f"Connection: close\r\n\r\n".encode())
        assert f"Location: https://ws-a.example.com/chat/connect?user={users[0]}\r\n".encode() in got
        # A malformed url refuses the answer: the last good ring stays (and says why).
        consul.register("n1", "ws-a", SERVICE, "127.0.0.1", b1.port,
                        meta={"public_url": "wss://nope.example.com"})
        time.sleep(1.5)
        m = {m["id"]: m for m in ring(proxy)["members"]}["n1/ws-a"]
        assert m["public_url"] == "https://ws-a.example.com/chat"
        assert "public_url" in json.dumps(ring(proxy).get("watch", {}))
        assert wait_port(proxy.port)


def test_many_pipelined_redirects_to_a_client_that_reads_late(env):
    """3,000 pipelined redirect requests (answers of 4 KiB each, 12 MB in all: more than the socket
    buffers hold) from a client that reads nothing for a second: wsring's answers fill the socket, wait
    for the client to read (the write-pending path), and every answer arrives, in order, on the
    one connection."""
    bs = env.backends(["ws-a", "ws-b"])
    proxy = env.wsring(static_conf(bs, {"ws-a", "ws-b"}), workers=1)
    owners = {u: admin_json(proxy, f"/lookup?key={u}")["owner"] for u in USERS[:20]}
    url = {b.name: url_of(b) for b in bs}
    n, pad = 3000, "p" * 4000
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: a small window
    s.settimeout(20)
    s.connect(("127.0.0.1", proxy.port))
    reqs = b"".join(f"GET /connect/{i}?user={USERS[i % 20]}&pad={pad} HTTP/1.1\r\nHost: x\r\n\r\n"
                    .encode() for i in range(n))
    sender = threading.Thread(target=s.sendall, args=(reqs,))
    sender.start()
    time.sleep(1.0)
    got = bytearray()
    want_end = f"/connect/{n - 1}?user={USERS[(n - 1) % 20]}&pad={pad}\r\n".encode()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        assert chunk, f"closed after {got.count(b'HTTP/1.1 307')} answers"
        got += chunk
        if want_end in got[-(len(chunk) + len(want_end) + 16):]:
            break
    sender.join()
    s.close()
    locations = [line[len(b"Location: "):].decode() for line in bytes(got).split(b"\r\n")
                 if line.startswith(b"Location: ")]
    assert len(locations) == n and got.count(b"HTTP/1.1 307 Temporary Redirect\r\n") == n
    for i, loc in enumerate(locations):
        u = USERS[i % 20]
        assert loc == f"{url[owners[u]]}/connect/{i}?user={u}&pad={pad}", (i, loc[:80])
    assert metric(proxy, "wsring_connections_accepted_total", "") == 1
