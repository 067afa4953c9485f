#!/usr/bin/python3
"""A stock chat server (Python `websockets`, no hashing logic) for test_chat.py: the seed's
User A -> Server(A) -> Server(B) -> User B, with Server(A) reaching Server(B) through wsring.

  WebSocket /chat?user=U    U's connection. First message: {"type":"hello","backend":NAME}.
                            U sends {"type":"send","to":V,"id":X,"text":T}; this server delivers
                            it through wsring (below) and answers {"type":"sent","id":X} once the
                            owner of V has confirmed, or {"type":"failed","id":X} after 30 s.
                            U acks each message it gets with {"type":"ack","id":X}.
  GET /deliver?user=V&id=X&from=U&text=T
                            (arrives through wsring, keyed by V): if V is connected here, sends
                            {"type":"msg","id":X,"from":U,"to":V,"via":NAME,"text":T} and answers
                            200 once V has acked it (504 after 2 s); 404 when V is not here (it
                            is moving: the sender retries).
  GET /stats                {"name", "deliveries_in", "delivery_requests", "wsring_connections"}

Delivery to wsring uses a pool of keep-alive HTTP/1.1 connections (the way a pooled HTTP client
does), each request keyed by its target user; retried with back-off until 200 (at-least-once;
the recipient drops duplicates by id, as chat clients do).
Prints "READY <port>" on stdout once listening.
"""
import argparse
import asyncio
import json
import signal
import sys
from http import HTTPStatus
from urllib.parse import parse_qs, quote, urlsplit

import websockets

USERS = {}  # user -> websocket (the latest connection of that user here)
PENDING = {}  # (user, message id) -> future resolved by the user's ack
STATS = {"deliveries_in": 0, "delivery_requests": 0, "wsring_connections": 0}


class WsringPool:
    """Keep-alive HTTP/1.1 connections to wsring; a connection is reused until either side
    closes it."""

    def __init__(self, port, size):
        self.port, self.idle, self.size = port, [], size
        self.sem = asyncio.Semaphore(size)

    async def get(self, target):
        async with self.sem:
            for attempt in range(2):  # a reused connection may have been closed meanwhile
                if self.idle:
                    reader, writer = self.idle.pop()
                else:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    STATS["wsring_connections"] += 1
                try:
                    writer.write(f"GET {target} HTTP/1.1\r\nHost: wsring\r\n\r\n".encode())
                    await writer.drain()
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    status = int(lines[0].split()[1])
                    fields = {k.strip().lower(): v.strip() for k, _, v in
                              (line.partition(":") for line in lines[1:] if line)}
                    body = await reader.readexactly(int(fields.get("content-length", "0")))
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    writer.close()
                    if attempt == 0:
                        continue
                    raise
                if fields.get("connection", "").lower() == "close":
                    writer.close()
                else:
                    self.idle.append((reader, writer))
                return status, body
        raise OSError("unreachable")


async def deliver(ws, me, msg):
    """Server(A)'s side: through wsring to the owner of msg["to"], retried until it confirms."""
    target = (f"/deliver?user={quote(msg['to'], safe='')}&id={quote(msg['id'], safe='')}"
              f"&from={quote(me, safe='')}&text={quote(msg['text'], safe='')}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    delay = 0.02
    while loop.time() < deadline:
        STATS["delivery_requests"] += 1
        try:
            status, _ = await POOL.get(target)
        except OSError:
            status = 0
        if status == 200:
            reply = {"type": "sent", "id": msg["id"]}
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.3)
    else:
        reply = {"type": "failed", "id": msg["id"]}
    try:
        await ws.send(json.dumps(reply))
    except websockets.ConnectionClosed:
        pass  # the sender moved; it resends what it never saw confirmed


async def on_deliver(query):
    """Server(B)'s side: hand the message to the user's connection and wait for its ack."""
    user, mid = query["user"][0], query["id"][0]
    ws = USERS.get(user)
    if ws is None or ws.closed:
        return HTTPStatus.NOT_FOUND, [], b"not here\n"
    fut = asyncio.get_running_loop().create_future()
    PENDING[(user, mid)] = fut
    try:
        await ws.send(json.dumps({"type": "msg", "id": mid, "from": query["from"][0], "to": user,
                                  "via": NAME, "text": query["text"][0]}))
        await asyncio.wait_for(fut, 2.0)
    except websockets.ConnectionClosed:
        return HTTPStatus.NOT_FOUND, [], b"gone\n"
    except asyncio.TimeoutError:
        return HTTPStatus.GATEWAY_TIMEOUT, [], b"no ack\n"
    finally:
        PENDING.pop((user, mid), None)
    STATS["deliveries_in"] += 1
    return HTTPStatus.OK, [], b"delivered\n"


async def process_request(path, headers):
    url = urlsplit(path)
    if url.path == "/deliver":
        return await on_deliver(parse_qs(url.query))
    if url.path == "/stats":
        return HTTPStatus.OK, [("Content-Type", "application/json")], json.dumps(
            dict(STATS, name=NAME)).encode()
    return None  # a WebSocket handshake


async def handler(ws, path):
    user = parse_qs(urlsplit(path).query).get("user", [None])[0]
    if user is None:
        await ws.close(1008, "no user")
        return
    USERS[user] = ws
    tasks = set()
    try:
        await ws.send(json.dumps({"type": "hello", "backend": NAME, "user": user}))
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "send":
                t = asyncio.create_task(deliver(ws, user, msg))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            elif msg["type"] == "ack":
                fut = PENDING.get((user, msg["id"]))
                if fut is not None and not fut.done():
                    fut.set_result(True)
    except websockets.ConnectionClosed:
        pass
    finally:
        if USERS.get(user) is ws:
            del USERS[user]
        await asyncio.gather(*tasks, return_exceptions=True)  # deliveries go on without U


async def main(args):
    global POOL
    POOL = WsringPool(args.wsring_port, args.pool)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", args.port, process_request=process_request,
                                compression=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await stop


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--wsring-port", type=int, required=True)
    p.add_argument("--pool", type=int, default=4)
    a = p.parse_args()
    NAME = a.name
    asyncio.run(main(a))
    sys.exit(0)
