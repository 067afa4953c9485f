#!/usr/bin/python3
"""Plain HTTP and Server-Sent Events backend (asyncio, no framework).

  GET /sse?stream=T&n=N...   text/event-stream: first an event "hello" whose data
                             is the report below, then events id 1..N; event i+1
                             is written only after POST /ack?stream=T&n=i has
                             arrived (a side channel through the proxy), so a
                             proxy that buffers the stream stalls it. No ack
                             within 10 s ends the stream with event "stalled".
  POST /ack?stream=T&n=I     records the ack; 200 "ok".
  anything else              200 JSON report: backend, method, target, path,
                             headers (list of [name, value] as received),
                             raw_head (the head as received), body (up to
                             64 KiB), body_len, body_sha256 (Content-Length or
                             chunked request bodies).

One request per connection; every response says Connection: close and the
server closes after it. Prints "READY <port>" on stdout once listening.
"""
import argparse
import asyncio
import hashlib
import json
import signal
import sys
from urllib.parse import parse_qs, urlsplit

ACK_TIMEOUT = 10.0
MAX_HEAD = 1 << 20
# stream id -> (asyncio.Condition, [highest acked n])
STREAMS = {}


def stream_state(sid):
    if sid not in STREAMS:
        STREAMS[sid] = (asyncio.Condition(), [0])
    return STREAMS[sid]


def report(method, target, headers, raw_head, body):
    hv = [v for n, v in headers if n.lower() == "x-wsring-key"]
    return {
        "backend": NAME,
        "method": method,
        "target": target,
        "path": urlsplit(target).path,
        "key": ", ".join(hv) if hv else None,
        "headers": headers,
        "raw_head": raw_head.decode("latin-1"),
        "body": body.decode("latin-1") if len(body) <= 65536 else None,
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }


async def read_chunked(reader):
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def respond(writer, status, ctype, body):
    writer.write((f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    await writer.drain()


async def sse(writer, sid, n, hello):
    cond, acked = stream_state(sid)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n")
    writer.write(f"event: hello\ndata: {json.dumps(hello)}\n\n".encode())
    await writer.drain()
    for i in range(1, n + 1):
        if i > 1:
            async with cond:
                try:
                    await asyncio.wait_for(cond.wait_for(lambda: acked[0] >= i - 1), ACK_TIMEOUT)
                except asyncio.TimeoutError:
                    writer.write(f"event: stalled\ndata: waited for ack {i - 1}\n\n".encode())
                    await writer.drain()
                    return
        data = json.dumps({"n": i, "backend": NAME, "key": hello["key"]})
        writer.write(f"id: {i}\nevent: tick\ndata: {data}\n\n".encode())
        await writer.drain()


async def handle(reader, writer):
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if len(raw) > MAX_HEAD:
            return
        lines = raw[:-4].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append([name, value.strip()])
        length = 0
        chunked = False
        for name, value in headers:
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                chunked = value.lower() == "chunked"
        if chunked:
            body = await asyncio.wait_for(read_chunked(reader), 30)
        else:
            body = await asyncio.wait_for(reader.readexactly(length), 30) if length else b""
        q = parse_qs(urlsplit(target).query)
        path = urlsplit(target).path
        rep = report(method, target, headers, raw, body)
        if path == "/sse":
            await sse(writer, q.get("stream", [""])[0], int(q.get("n", ["10"])[0]), rep)
        elif path == "/ack" and method == "POST":
            cond, acked = stream_state(q.get("stream", [""])[0])
            async with cond:
                acked[0] = max(acked[0], int(q.get("n", ["0"])[0]))
                cond.notify_all()
            await respond(writer, "200 OK", "text/plain", b"ok")
        else:
            await respond(writer, "200 OK", "application/json", json.dumps(rep).encode())
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
            ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    server = await asyncio.start_server(handle, ARGS.host, port, limit=MAX_HEAD + 1, backlog=4096)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ARGS = ap.parse_args()
    NAME = ARGS.name
    try:
        asyncio.run(main(ARGS.port))
    except OSError as e:
        print(f"backend_http {NAME}: {e}", file=sys.stderr)
        sys.exit(1)
