#!/usr/bin/python3
"""Holds many idle WebSocket connections for the idle-connection test.

  idle_client.py PORT COUNT PREFIX [CONCURRENCY]
opens COUNT connections to ws://127.0.0.1:PORT/chat?user=PREFIX-i (at most CONCURRENCY
handshakes at once), reads each backend's hello, then prints "OPEN <ok> <failed>".
Each line "CHECK <every>" on stdin sends one message on every EVERY-th connection and
prints "CHECKED <echoed> <bad> <still_open>". "EXIT" or EOF ends the process (abruptly:
the test only needs the descriptors gone).
"""
import asyncio
import json
import os
import sys

import websockets

TIMEOUT = 30.0
# IDLE_TLS_CA=ca.pem: connect with wss:// and verify the proxy's certificate against that CA.
TLS = None
if os.environ.get("IDLE_TLS_CA"):
    import ssl
    TLS = ssl.create_default_context(cafile=os.environ["IDLE_TLS_CA"])
SCHEME = "wss" if TLS else "ws"


async def open_one(port, user, sem, conns, failures):
    async with sem:
        try:
            ws = await websockets.connect(f"{SCHEME}://127.0.0.1:{port}/chat?user={user}", ssl=TLS,
                                          compression=None,
                                          ping_interval=None, open_timeout=TIMEOUT, max_queue=4,
                                          read_limit=4096, write_limit=4096)
            hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if hello.get("key") != user:
                raise ValueError(f"hello for {hello.get('key')!r}")
            conns.append((user, ws))
        except Exception as e:  # counted and reported
            failures.append(f"{user}: {e!r}")


async def check(conns, every):
    sample = conns[::every]

    async def one(user, ws):
        msg = f"ping from {user}"
        await ws.send(msg)
        return await asyncio.wait_for(ws.recv(), TIMEOUT) == msg

    res = await asyncio.gather(*(one(u, ws) for u, ws in sample), return_exceptions=True)
    ok = sum(1 for r in res if r is True)
    still_open = sum(1 for _, ws in conns if ws.open)
    return ok, len(sample) - ok, still_open


async def main():
    port, count, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    sem = asyncio.Semaphore(concurrency)
    conns, failures = [], []
    await asyncio.gather(*(open_one(port, f"{prefix}-{i}", sem, conns, failures) for i in range(count)))
    for f in failures[:5]:
        print(f"failure {f}", file=sys.stderr)
    print(f"OPEN {len(conns)} {len(failures)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "EXIT":
            break
        if line.startswith("CHECK"):
            ok, bad, still_open = await check(conns, int(line.split()[1]))
            print(f"CHECKED {ok} {bad} {still_open}", flush=True)
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
