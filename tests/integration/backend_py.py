#!/usr/bin/python3
"""Stock Python `websockets` backend for the integration tests and the demo.

On each connection it sends one text message, JSON
  {"backend", "key", "ring", "xff", "proto", "path", "ext", "headers"}
built from the request it received (so a test sees where it landed and what
wsring forwarded), then echoes every message back unchanged: text as text,
binary as binary. A message starting with "__frag__" (text or bytes) is echoed
as a fragmented message (7-unit fragments) so the server->client direction
carries continuation frames. Pings are answered by the library; it accepts
permessage-deflate when the client offers it (the library default).

Prints "READY <port>" on stdout once listening (--port 0 picks a free one). With --certfile and
--keyfile it serves wss:// (TLS) instead.
"""
import argparse
import asyncio
import json
import signal
import sys

import websockets

FRAG = "__frag__"


def utf8(value):
    """websockets decodes header bytes as ASCII with surrogateescape; undo that as UTF-8."""
    return value.encode("ascii", "surrogateescape").decode("utf-8", "backslashreplace")


def header_all(headers, name):
    values = headers.get_all(name)
    return utf8(", ".join(values)) if values else None


def fragments(msg, size=7):
    return [msg[i:i + size] for i in range(0, len(msg), size)] or [msg]


async def handler(ws, path=None):
    h = ws.request_headers
    hello = {
        "backend": NAME,
        "key": header_all(h, "X-Wsring-Key"),
        "ring": header_all(h, "X-Wsring-Ring"),
        "xff": header_all(h, "X-Forwarded-For"),
        "proto": header_all(h, "X-Forwarded-Proto"),
        "path": ws.path,
        "ext": ws.response_headers.get("Sec-WebSocket-Extensions"),
        "headers": [(n, utf8(v)) for n, v in h.raw_items()],
    }
    try:
        await ws.send(json.dumps(hello))
        async for msg in ws:
            prefix = FRAG if isinstance(msg, str) else FRAG.encode()
            if msg.startswith(prefix):
                await ws.send(fragments(msg))
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    tls = None
    if ARGS.certfile:  # wss:// backend (wsring's backend_tls)
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(ARGS.certfile, ARGS.keyfile)
    async with websockets.serve(handler, ARGS.host, port, max_size=None, max_queue=64,
                                ping_interval=None, backlog=4096, ssl=tls) as server:
        real = server.sockets[0].getsockname()[1]
        print(f"READY {real}", flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--certfile", help="serve wss:// with this PEM certificate chain")
    ap.add_argument("--keyfile", help="the PEM key of --certfile")
    ARGS = ap.parse_args()
    NAME = ARGS.name
    try:
        asyncio.run(main(ARGS.port))
    except OSError as e:
        print(f"backend_py {NAME}: {e}", file=sys.stderr)
        sys.exit(1)
