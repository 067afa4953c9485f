#!/usr/bin/python3
"""Holds many WebSocket connections (Python `websockets`) for test_migration.py and records how
each one ends.

  migration_client.py PORT USERS_JSON [--reconnect] [--stream] [--concurrency N]

Connects every user in USERS_JSON (a JSON list) to ws://127.0.0.1:PORT/chat?user=U, reads the
backend's hello and prints "OPEN <ok> <failed>". Every connection then has a reader task:

- echo mode (default): messages go to a queue that CHECK uses;
- --stream: binary messages from migration_stream_backend.py are verified as they come
  (magic, per-connection sequence, length, sha256), counted, never queued.

When a connection ends, the reader records [t (CLOCK_MONOTONIC, comparable across processes),
received close code or null, sent close code or null, reason, backend]. With --reconnect, a
connection the server ended with 1012 is opened again as the same user (as a real client would)
and the new backend is recorded.

Commands on stdin (one per line), answers on stdout (one line each):
  CHECK    every open connection sends one message and waits for its echo
           -> CHECKED {"ok": n, "bad": [[user, why], ...], "open": n}
  REPORT   -> REPORT {user: {"first", "now", "open", "ends": [...], "landed": [...],
                             "msgs", "bad", "last_msg_t"}}
  EXIT     (or EOF) ends the process.
"""
import argparse
import asyncio
import hashlib
import json
import os
import random
import struct
import sys
import time

import websockets

TIMEOUT = 30.0
MAGIC = b"WSRM"
HEAD = struct.Struct("!4sQI")  # magic, seq, body length; then 32 bytes sha256(head + body); body


class Conn:
    def __init__(self, user):
        self.user = user
        self.ws = None
        self.first = None      # backend of the first hello
        self.now = None        # backend of the current (or last) connection
        self.ends = []         # [t, rcvd_code, sent_code, reason, backend]
        self.landed = []       # backends of reconnections
        self.queue = asyncio.Queue()
        self.task = None
        self.msgs = 0
        self.bad = []
        self.seq = None
        self.last_msg_t = None


def verify(c, msg):
    if not isinstance(msg, bytes):
        raise ValueError(f"text message of {len(msg)} chars in the stream")
    if len(msg) < HEAD.size + 32:
        raise ValueError(f"short message of {len(msg)} bytes")
    magic, seq, n = HEAD.unpack_from(msg)
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if n != len(msg) - HEAD.size - 32:
        raise ValueError(f"message #{seq}: {len(msg)} bytes, header says body {n}")
    digest = msg[HEAD.size:HEAD.size + 32]
    if hashlib.sha256(msg[:HEAD.size] + msg[HEAD.size + 32:]).digest() != digest:
        raise ValueError(f"message #{seq}: sha256 mismatch")
    if c.seq is not None and seq != c.seq + 1:
        raise ValueError(f"message #{seq} after #{c.seq}")
    c.seq = seq


async def connect(port, c):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat?user={c.user}", compression=None,
                                  ping_interval=None, open_timeout=TIMEOUT, close_timeout=10,
                                  max_size=None if ARGS.stream else 1 << 20,
                                  max_queue=4 if ARGS.stream else 16,
                                  read_limit=1 << 16, write_limit=1 << 16)
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    if hello.get("key") != c.user:
        raise ValueError(f"hello for {hello.get('key')!r}")
    c.ws, c.now, c.seq = ws, hello["backend"], None
    return hello["backend"]


async def reader(port, c):
    while True:
        ws = c.ws
        try:
            while True:
                msg = await ws.recv()
                if ARGS.stream:
                    try:
                        verify(c, msg)
                        c.msgs += 1
                        c.last_msg_t = time.monotonic()
                    except ValueError as e:
                        c.bad.append(str(e))
                else:
                    c.queue.put_nowait(msg)
        except websockets.ConnectionClosed as e:
            c.ends.append([time.monotonic(), e.rcvd.code if e.rcvd else None,
                           e.sent.code if e.sent else None, e.rcvd.reason if e.rcvd else None,
                           c.now])
        except Exception as e:  # reported
            c.ends.append([time.monotonic(), None, None, f"error {e!r}", c.now])
        if not (ARGS.reconnect and c.ends[-1][1] == 1012):
            return
        await asyncio.sleep(random.uniform(0, 0.05))
        try:
            c.landed.append(await connect(port, c))
        except Exception as e:  # reported
            c.landed.append(f"error {e!r}")
            return


async def open_one(port, c, sem, failures):
    async with sem:
        try:
            c.first = await connect(port, c)
        except Exception as e:  # counted and reported
            failures.append(f"{c.user}: {e!r}")


async def check(conns):
    live = [c for c in conns if c.ws is not None and c.ws.open]

    async def one(c):
        msg = f"ping from {c.user} {time.monotonic_ns()}"
        await c.ws.send(msg)
        got = await asyncio.wait_for(c.queue.get(), TIMEOUT)
        if got != msg:
            raise ValueError(f"echo {got!r:.80} for {msg!r}")

    res = await asyncio.gather(*(one(c) for c in live), return_exceptions=True)
    bad = [[c.user, repr(r)] for c, r in zip(live, res) if r is not None]
    return {"ok": len(live) - len(bad), "bad": bad,
            "open": sum(1 for c in conns if c.ws is not None and c.ws.open)}


def report(conns):
    return {c.user: {"first": c.first, "now": c.now, "open": bool(c.ws is not None and c.ws.open),
                     "ends": c.ends, "landed": c.landed, "msgs": c.msgs, "bad": c.bad[:5],
                     "last_msg_t": c.last_msg_t} for c in conns}


async def main():
    port = ARGS.port
    users = json.loads(open(ARGS.users).read())
    conns = [Conn(u) for u in users]
    sem = asyncio.Semaphore(ARGS.concurrency)
    failures = []
    await asyncio.gather(*(open_one(port, c, sem, failures) for c in conns))
    for c in conns:
        if c.ws is not None:
            c.task = asyncio.ensure_future(reader(port, c))
    for f in failures[:5]:
        print(f"failure {f}", file=sys.stderr)
    print(f"OPEN {len(users) - len(failures)} {len(failures)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = line.strip()
        if not line or cmd == "EXIT":
            break
        if cmd == "CHECK":
            out = "CHECKED " + json.dumps(await check(conns))
        elif cmd == "REPORT":
            out = "REPORT " + json.dumps(report(conns))
        else:
            out = f"ERROR unknown command {cmd!r}"
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("users")
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--concurrency", type=int, default=100)
    ARGS = ap.parse_args()
    asyncio.run(main())
