"""Acceptance 3: Server-Sent Events stream through wsring unbuffered, to the right client.

The backend writes event i+1 only after the client acknowledged event i with a POST through
wsring (routed by the same key, so it reaches the same backend); any buffering in the proxy
stalls the stream and the test fails on its deadline.
"""
import asyncio
import json
import time
from urllib.parse import quote

from helpers import backend_lines

EVENTS = 1000


async def read_head(reader):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head.decode("latin-1")


async def post_ack(port, user, stream, n):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write((f"POST /ack?user={quote(user)}&stream={stream}&n={n} HTTP/1.1\r\n"
                      f"Host: wsring\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        resp = await asyncio.wait_for(reader.read(), 5)  # Connection: close: closed after it
        assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    finally:
        writer.close()


async def stream_user(port, user, n_events):
    stream = f"s-{user}-{time.monotonic_ns()}"
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write((f"GET /sse?user={quote(user)}&stream={stream}&n={n_events} HTTP/1.1\r\n"
                      f"Host: wsring\r\nAccept: text/event-stream\r\n\r\n").encode())
        await writer.drain()
        head = await read_head(reader)
        assert head.startswith("HTTP/1.1 200"), head
        assert "text/event-stream" in head.lower()
        events = []
        while len(events) < n_events + 1:
            block = await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)
            fields = dict(line.split(": ", 1) for line in block.decode().strip("\n").split("\n"))
            assert fields.get("event") in ("hello", "tick"), f"unexpected event {fields}"
            data = json.loads(fields["data"])
            events.append(data)
            if fields["event"] == "tick":
                assert data["n"] == len(events) - 1 and fields["id"] == str(data["n"])
                if data["n"] < n_events:
                    await post_ack(port, user, stream, data["n"])
        rest = await asyncio.wait_for(reader.read(), 10)
        assert rest == b"", f"bytes after the last event: {rest[:100]!r}"
        return events
    finally:
        writer.close()


def test_sse_thousand_events_unbuffered_to_right_client(env):
    backends = [env.backend(n, "http") for n in ("sse-a", "sse-b", "sse-c")]
    proxy = env.wsring("key query:user\n" + backend_lines(backends))
    users = ["sse-alice", "sse-bob", "sse-carol"]
    owners = {u: proxy.lookup(u)["owner"] for u in users}

    async def go():
        return await asyncio.wait_for(
            asyncio.gather(*(stream_user(proxy.port, u, EVENTS) for u in users)), 150)

    t0 = time.monotonic()
    results = asyncio.run(go())
    elapsed = time.monotonic() - t0
    for user, events in zip(users, results):
        hello, ticks = events[0], events[1:]
        assert hello["backend"] == owners[user] and hello["key"] == user
        assert [e["n"] for e in ticks] == list(range(1, EVENTS + 1))
        assert all(e["backend"] == owners[user] and e["key"] == user for e in ticks)
        conn = [v for k, v in hello["headers"] if k.lower() == "connection"]
        assert conn == [], f"the client's hop-by-hop Connection reached the backend: {conn}"
    print(f"sse: {len(users)} x {EVENTS} acked events in {elapsed:.1f}s")
