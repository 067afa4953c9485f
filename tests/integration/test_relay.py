"""Acceptance 2: wsring relays WebSocket traffic byte-exact both ways."""
import asyncio
import base64
import json
import os
import random
import struct
import subprocess
import time

import pytest
import websockets

from consul_helpers import wait_until
from helpers import HERE, backend_lines, check_routed, masked_frame, raw_handshake, read_frame, ws_url

MIB = 1 << 20


@pytest.fixture(params=["io_uring", "syscalls"])
def proxied(env, request, monkeypatch):
    """One Python backend behind wsring, with its io_uring batches and without them (as where
    seccomp refuses io_uring: WSRING_NO_IO_URING); returns (proxy, backend)."""
    if request.param == "syscalls":
        monkeypatch.setenv("WSRING_NO_IO_URING", "1")
    b = env.backend("relay-py")
    proxy = env.wsring("key query:user\n" + backend_lines([b]))
    if request.param == "syscalls":
        # Worker 0 says it from its own thread, which may start after "ready" is logged.
        wait_until(lambda: "event=io_uring state=off" in proxy.proc.log_text(), 10,
                   "worker 0's io_uring state=off")
    return proxy, b


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connect(proxy, user="relay-user", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    ws = await websockets.connect(ws_url(proxy.port, user), open_timeout=10, close_timeout=5, **kw)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, hello


def test_ten_thousand_small_messages_in_order(proxied):
    proxy, _ = proxied
    rnd = random.Random(1)
    msgs = []
    for i in range(10_000):
        if i % 2:
            msgs.append(rnd.randbytes(rnd.randrange(0, 200)))
        else:
            msgs.append(f"{i}:" + "".join(rnd.choice("aé✓\U0001F600z ") for _ in range(rnd.randrange(0, 60))))

    async def go():
        ws, _ = await connect(proxy, compression=None)
        got = []

        async def reader():
            while len(got) < len(msgs):
                got.append(await asyncio.wait_for(ws.recv(), 20))

        async def writer():
            for m in msgs:
                await ws.send(m)

        await asyncio.gather(reader(), writer())
        await ws.close()
        return got

    got = run(go())
    assert len(got) == len(msgs)
    bad = [i for i, (a, b) in enumerate(zip(msgs, got)) if a != b or type(a) is not type(b)]
    assert not bad, f"{len(bad)} messages differ, first at index {bad[0]}: sent {msgs[bad[0]]!r} got {got[bad[0]]!r}"


@pytest.mark.parametrize("size", [MIB, 16 * MIB], ids=["1MiB", "16MiB"])
def test_large_messages_binary_and_text(proxied, size):
    proxy, _ = proxied
    data = os.urandom(size)
    text = base64.b64encode(os.urandom(size * 3 // 4)).decode()[:size - 3] + "✓"  # multi-byte at the end

    async def go():
        ws, _ = await connect(proxy, compression=None)
        out = []
        for m in (data, text):
            await ws.send(m)
            out.append(await asyncio.wait_for(ws.recv(), 60))
        await ws.close()
        return out

    got_bin, got_text = run(go())
    assert isinstance(got_bin, bytes) and len(got_bin) == len(data) and got_bin == data
    assert isinstance(got_text, str) and got_text == text


def test_fragmented_messages_both_ways(proxied):
    proxy, _ = proxied

    async def go():
        ws, _ = await connect(proxy, compression=None)
        out = []
        # client -> server fragments (echoed whole), server -> client fragments (__frag__ prefix)
        cases = [[b"ab", b"", b"cdef", os.urandom(70000)], ["frag", "mént", "é ✓"],
                 "__frag__" + "x✓" * 500, b"__frag__" + os.urandom(3000)]
        for c in cases:
            await ws.send(c)
            # a ping between messages must not disturb anything
            await asyncio.wait_for(await ws.ping(b"between"), 5)
            out.append(await asyncio.wait_for(ws.recv(), 10))
        await ws.close()
        return cases, out

    cases, out = run(go())
    want = [b"".join(cases[0]), "".join(cases[1]), cases[2], cases[3]]
    for w, g in zip(want, out):
        assert type(w) is type(g) and w == g


def test_ping_pong_and_close_code(proxied):
    proxy, _ = proxied

    async def go():
        ws, _ = await connect(proxy)
        t0 = time.monotonic()
        for i in range(20):
            await asyncio.wait_for(await ws.ping(f"p{i}".encode()), 5)
        rtt = (time.monotonic() - t0) / 20
        await ws.close(4001, "bye now")
        return rtt, ws.close_code, ws.close_reason

    rtt, code, reason = run(go())
    # the backend (websockets) echoes the close code; it came back through wsring
    assert (code, reason) == (4001, "bye now")
    assert rtt < 1.0


def test_permessage_deflate_negotiated_end_to_end(proxied):
    proxy, _ = proxied

    async def go():
        ws, hello = await connect(proxy)  # websockets offers permessage-deflate by default
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        big = "compressible " * 100_000
        out = []
        for m in (big, b"\x00" * MIB, "small ✓"):
            await ws.send(m)
            out.append(await asyncio.wait_for(ws.recv(), 30))
        await ws.close()
        return ext, hello, out, [big, b"\x00" * MIB, "small ✓"]

    ext, hello, out, sent = run(go())
    assert ext and "permessage-deflate" in ext, f"client saw Sec-WebSocket-Extensions {ext!r}"
    assert hello["ext"] == ext, "the extension the backend agreed to is the one the client got"
    assert out == sent


def test_bytes_after_head_in_same_write_are_relayed(proxied):
    """A client may send its first frame together with the handshake; wsring must forward the
    bytes that followed the head in the same read."""
    proxy, _ = proxied
    s, _head = raw_handshake(proxy.port, "early", masked_frame(1, b"early bird") + masked_frame(2, b"\x00\x01"))
    try:
        fin, op, payload = read_frame(s)
        assert (fin, op) == (True, 1) and json.loads(payload)["key"] == "early"
        assert read_frame(s) == (True, 1, b"early bird")
        assert read_frame(s) == (True, 2, b"\x00\x01")
    finally:
        s.close()


def test_raw_frames_relayed_verbatim(proxied):
    """Frame by frame over a raw socket: continuation frames, a ping inside a fragmented client
    message, and the backend's pong all pass through unchanged."""
    proxy, _ = proxied
    s, head = raw_handshake(proxy.port, "raw")
    try:
        assert b"sec-websocket-extensions" not in head.lower(), "nothing offered, nothing agreed"
        fin, op, payload = read_frame(s)
        assert (fin, op) == (True, 1) and json.loads(payload)["key"] == "raw"
        # client: fragmented text with a ping in the middle
        s.sendall(masked_frame(1, b"__frag__hel", fin=False) + masked_frame(9, b"mid")
                  + masked_frame(0, b"lo world", fin=True))
        frames = [read_frame(s)]
        while len(frames) < 10 and not (frames[-1][0] and frames[-1][1] != 10):
            frames.append(read_frame(s))
        assert frames[0] == (True, 10, b"mid"), f"pong first: {frames}"
        # the backend (websockets) echoes "__frag__hello world" as 7-byte fragments, then an
        # empty final continuation frame
        assert frames[1:] == [(False, 1, b"__frag_"), (False, 0, b"_hello "), (False, 0, b"world"),
                              (True, 0, b"")], frames
        s.sendall(masked_frame(8, struct.pack("!H", 1000)))
        fin, op, payload = read_frame(s)
        assert (fin, op, payload[:2]) == (True, 8, struct.pack("!H", 1000))
        s.settimeout(5)
        assert s.recv(10) == b"", "TCP closes after the close handshake"
    finally:
        s.close()


def test_node_client_against_node_backend(env, node_ws):
    b = env.backend("relay-node", "node")
    proxy = env.wsring("key query:user\n" + backend_lines([b]))
    look = proxy.lookup("n-user")
    r = subprocess.run([node_ws, str(HERE / "client_node.js"), "echo", str(proxy.port), "n-user"],
                       capture_output=True, text=True, timeout=60, cwd=HERE)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out.get("error") is None, out
    check_routed(out["hello"], "n-user", look)
    assert out["checks"] == {k: True for k in out["checks"]} and len(out["checks"]) == 6, out["checks"]
    assert "permessage-deflate" in (out["ext"] or ""), f"client saw extensions {out['ext']!r}"
