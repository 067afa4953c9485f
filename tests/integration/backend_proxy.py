#!/usr/bin/python3
"""A plain HTTP/1.1 backend that expects a PROXY protocol header (v1 or v2) first on every
connection, as wsring's `send_proxy` sends it. Its own parser follows haproxy's
proxy-protocol.txt, independent of wsring's.

For each request it answers 200 with a JSON body:
  {"backend", "conn" (a counter of connections accepted), "request" (the n-th on this
   connection), "proxy": {"version", "command", "src", "sport", "dst", "dport"} or
   {"error": why}, "xff", "key", "path"}
Keep-alive is honoured. Prints "READY <port>" once listening (--port 0 picks one).
"""
import argparse
import asyncio
import ipaddress
import json
import signal
import struct

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
COUNT = {"conns": 0}


async def read_proxy(reader):
    first = await reader.readexactly(5)
    if first == b"PROXY":
        line = first + await reader.readuntil(b"\r\n")
        if len(line) > 107:
            return {"error": "v1 line too long"}
        words = line[:-2].decode("ascii").split(" ")
        if words[1] == "UNKNOWN":
            return {"version": 1, "command": "UNKNOWN"}
        _, proto, src, dst, sport, dport = words
        return {"version": 1, "command": proto, "src": src, "dst": dst, "sport": int(sport),
                "dport": int(dport)}
    rest = await reader.readexactly(11)
    head = first + rest
    if head[:12] != SIG:
        return {"error": f"no PROXY header: {head!r}"}
    ver_cmd, fam, length = struct.unpack("!BBH", head[12:16])
    body = await reader.readexactly(length)
    out = {"version": ver_cmd >> 4, "command": "PROXY" if ver_cmd & 0xF else "LOCAL"}
    if fam == 0x11:
        src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
        out.update(src=str(ipaddress.IPv4Address(src)), dst=str(ipaddress.IPv4Address(dst)),
                   sport=sport, dport=dport, family="TCP4")
    elif fam == 0x21:
        src, dst, sport, dport = struct.unpack("!16s16sHH", body[:36])
        out.update(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)),
                   sport=sport, dport=dport, family="TCP6")
    return out


async def handle(reader, writer):
    COUNT["conns"] += 1
    conn = COUNT["conns"]
    try:
        proxy = await read_proxy(reader)
        n = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n += 1
            lines = head.decode("latin-1").split("\r\n")
            fields = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            length = int(fields.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            body = json.dumps({"backend": NAME, "conn": conn, "request": n, "proxy": proxy,
                               "xff": fields.get("x-forwarded-for"),
                               "key": fields.get("x-wsring-key"),
                               "path": lines[0].split(" ")[1]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ARGS = ap.parse_args()
    NAME = ARGS.name
    asyncio.run(main(ARGS.port))
