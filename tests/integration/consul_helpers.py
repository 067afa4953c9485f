"""Helpers for test_consul.py: the Consul double (tests/consul/double.py), wsring confs with a
`consul` block, /ring polling, timed waits, and WebSocket probes that report where users land."""
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import websockets

from helpers import (HERE, PYTHON, Backend, http_get, masked_frame, raw_handshake, read_frame,
                     ws_hello, ws_url)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "consul"))
from double import ConsulDouble  # noqa: E402  (tests/consul/double.py)

SERVICE = "ws-backend"
__all__ = ["ConsulDouble"]  # re-exported for test_consul.py


def backend(env, rid):
    """Env.backend() for a ring id NODE/SERVICE_ID (the '/' must stay out of the log's file name):
    a Python websockets backend that reports RID as its name."""
    argv = [PYTHON, str(HERE / "backend_py.py"), "--name", rid, "--port", "0"]
    proc = env.spawn("backend-" + rid.replace("/", "_"), argv, stdout=subprocess.PIPE)
    return Backend(rid, env.read_ready(proc), proc, "py")


def consul_body(double, wait="5s", retry_max="1s", ring_hold="200ms", extra="", block_extra=""):
    """Directives for Env.wsring(): routing on ?user=, discovery from the double."""
    return (f"key query:user\nring_hold {ring_hold}\ndiscovery consul\n{extra}"
            f"consul {{\n    address   {double.url}\n    service   {SERVICE}\n"
            f"    wait      {wait}\n    retry_max {retry_max}\n    stale     on\n{block_extra}}}\n")


def register(double, backend, weight=None, status="passing", address="127.0.0.1", tags=()):
    """Registers BACKEND (whose name is the ring id NODE/SERVICE_ID) at the double."""
    node, sid = backend.name.split("/", 1)
    return double.register(node, sid, SERVICE, address, backend.port, weight=weight,
                           status=status, tags=tags)


def set_status(double, backend, status):
    node, sid = backend.name.split("/", 1)
    return double.set_status(node, sid, status)


def ring(proxy):
    status, body = http_get(proxy.admin_port, "/ring")
    assert status == 200, f"/ring -> {status} {body[:200]!r}"
    return json.loads(body)


def ring_text(proxy):
    return http_get(proxy.admin_port, "/ring")[1].decode(errors="replace")


def member_ids(proxy):
    return {m["id"] for m in ring(proxy)["members"]}


def wait_until(pred, timeout, what, step=0.02):
    """Polls PRED until true; returns the seconds it took; fails with WHAT after TIMEOUT."""
    t0 = time.monotonic()
    last = None
    while True:
        try:
            last = pred()
            if last:
                return time.monotonic() - t0
        except (OSError, AssertionError) as e:
            last = e
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(step)


def wait_members(proxy, ids, timeout=5.0):
    ids = set(ids)
    return wait_until(lambda: member_ids(proxy) == ids, timeout, f"/ring members == {sorted(ids)}")


def owners(proxy, users):
    return {u: look["owner"] for u, look in proxy.lookup_many(users).items()}


def log(proxy):
    return proxy.proc.log_text(limit=10_000_000)


def log_lines(proxy, event):
    return [ln for ln in log(proxy).splitlines() if f"event={event} " in ln + " "]


async def try_hello(port, user):
    """The backend's hello (dict), or the HTTP status wsring refused with (int), or the error."""
    try:
        return await ws_hello(ws_url(port, user), timeout=5.0)
    except websockets.InvalidStatusCode as e:
        return e.status_code
    except Exception as e:  # reported by the caller
        return e


async def _land(port, users):
    return await asyncio.gather(*(try_hello(port, u) for u in users))


def land(port, users, strict=True):
    """user -> backend name it landed on (or status/error when not STRICT)."""
    res = asyncio.run(_land(port, users))
    out = {}
    for u, h in zip(users, res):
        if isinstance(h, dict):
            assert h["key"] == u, h
            out[u] = h["backend"]
        else:
            assert not strict, f"user {u!r}: {h!r}"
            out[u] = h
    return out


def hellos(port, users):
    res = asyncio.run(_land(port, users))
    bad = [(u, h) for u, h in zip(users, res) if not isinstance(h, dict)]
    assert not bad, f"{len(bad)} connections failed, e.g. {bad[:3]}"
    return dict(zip(users, res))


class LiveConn:
    """A WebSocket held open over a raw socket: hello read at once, echo on demand."""

    def __init__(self, port, user):
        self.user = user
        self.sock, _ = raw_handshake(port, user)
        fin, op, payload = read_frame(self.sock)
        assert op == 1, (op, payload)
        self.hello = json.loads(payload)
        self.n = 0

    @property
    def backend(self):
        return self.hello["backend"]

    def echo(self):
        self.n += 1
        msg = f"{self.user} #{self.n}".encode()
        self.sock.sendall(masked_frame(1, msg))
        fin, op, payload = read_frame(self.sock)
        assert (op, payload) == (1, msg), f"{self.user}: echo got op {op} {payload[:80]!r}"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
