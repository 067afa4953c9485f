#!/usr/bin/python3
"""Stock Python `websockets` backend that streams big fragmented messages (test_migration.py).

On each connection it sends the usual JSON hello {"backend", "key", "ring"}, then binary messages
back to back until the connection ends, each one sent as `ws.send(iterable)` of 64 KiB fragments
(so the server->client direction is almost always in the middle of a fragmented message):

  magic "WSRM" | seq (u64, from 0 per connection) | body length (u32) |
  sha256(first 16 bytes + body) (32 bytes) | body (4 MiB - 48 bytes, random)

With --stall, every connection gets one complete message and then the first two fragments of a
second one, after which the backend sends nothing more (a message that never ends: wsring must
fall back to the next frame boundary after close_grace).

Prints "READY <port>" once listening.
"""
import argparse
import asyncio
import hashlib
import json
import os
import signal
import struct
import sys

import websockets

MSG = 4 << 20
FRAG = 64 << 10
HEAD = struct.Struct("!4sQI")
BODIES = [os.urandom(MSG - HEAD.size - 32) for _ in range(4)]


def message(seq):
    body = BODIES[seq % len(BODIES)]
    head = HEAD.pack(b"WSRM", seq, len(body))
    msg = head + hashlib.sha256(head + body).digest() + body
    return [msg[i:i + FRAG] for i in range(0, len(msg), FRAG)]


async def handler(ws, path=None):
    h = ws.request_headers
    try:
        await ws.send(json.dumps({"backend": NAME, "key": h.get("X-Wsring-Key"),
                                  "ring": h.get("X-Wsring-Ring")}))
        seq = 0
        if ARGS.stall:
            await ws.send(message(0))

            async def stalled():
                for frag in message(1)[:2]:
                    yield frag
                await ws.wait_closed()  # never finishes the message

            await ws.send(stalled())
        while True:
            await ws.send(message(seq))
            seq += 1
    except websockets.ConnectionClosed:
        pass


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", port, max_size=1 << 20, compression=None,
                                ping_interval=None, write_limit=1 << 18, backlog=1024) as server:
        print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stall", action="store_true")
    ARGS = ap.parse_args()
    NAME = ARGS.name
    try:
        asyncio.run(main(ARGS.port))
    except OSError as e:
        print(f"migration_stream_backend {NAME}: {e}", file=sys.stderr)
        sys.exit(1)
