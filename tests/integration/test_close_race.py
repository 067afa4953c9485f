"""A migration whose Close crosses the client's own Close (DESIGN §3 step 5, §5; RFC 6455 §7.1.1).

When the client has already sent its Close (forwarded to the backend, which has not answered yet)
and a ring change then makes wsring inject its Close 1012, that Close is the client's awaited
reply and no other Close will come from the client: wsring must close TCP at once. Waiting
close_grace for a second Close stalled both sides for close_grace (the client waits for the
server's TCP close as long), which showed as 5 s handshakes during ring switches (issue 5)."""
import base64
import hashlib
import json
import os
import signal
import socket
import re
import struct
import threading
import time

from helpers import http_get, masked_frame, raw_handshake, read_frame
from consul_helpers import log_lines, wait_until

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


class SilentBackend:
    """A WebSocket backend that sends one hello and then never answers anything (a Close
    included); it records what it receives."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.conns = []
        self.eofs = 0  # connections whose peer (wsring) finished
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n")
        key = next(ln.split(b":", 1)[1].strip() for ln in lines
                   if ln.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        hello = json.dumps({"backend": self.name}).encode()
        c.sendall(bytes([0x81, len(hello)]) + hello)
        while True:
            try:
                chunk = c.recv(4096)
            except OSError:
                return
            if not chunk:
                self.eofs += 1  # and it keeps its own side open, as a stuck server would
                return
            self.received += chunk

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_injected_close_after_the_clients_close_ends_tcp_at_once(env):
    silent, other = SilentBackend("silent"), env.backend("other")
    try:
        body = ("key query:user\nring_hold 0\nclose_grace 3s\n"
                f"backend silent {silent.address}\nbackend other {other.address}\n")
        proxy = env.wsring(body)
        user = next(u for u in (f"race-{i}" for i in range(200))
                    if proxy.lookup(u)["owner"] == "silent")
        sock, _ = raw_handshake(proxy.port, user)
        fin, op, payload = read_frame(sock)
        assert (op, json.loads(payload)["backend"]) == (1, "silent")

        sock.sendall(masked_frame(8, struct.pack("!H", 1000)))  # the client's Close
        wait_until(lambda: len(silent.received) >= 8, 5, "the client's Close at the backend")
        proxy.conf_path.write_text(proxy.conf_path.read_text().replace(
            f"backend silent {silent.address}\n", ""))  # silent leaves: the connection migrates
        os.kill(proxy.pid, signal.SIGHUP)

        sock.settimeout(10)
        fin, op, payload = read_frame(sock)
        t_close = time.monotonic()
        assert op == 8 and struct.unpack("!H", payload[:2])[0] == 1012, (op, payload)
        rest = sock.recv(100)
        took = time.monotonic() - t_close
        sock.close()
        assert rest == b"", f"bytes after the Close: {rest!r}"
        wait_until(lambda: log_lines(proxy, "reloaded"), 5, "reloaded")
        print(f"close race: TCP closed {took * 1000:.0f} ms after wsring's Close 1012")
        assert took < 1.0, f"wsring waited {took:.2f}s (close_grace 3s) for a second Close"
    finally:
        silent.close()


def active_connections(proxy):
    status, body = http_get(proxy.admin_port, "/metrics")
    assert status == 200
    return sum(float(v) for v in re.findall(rb"^wsring_connections_active\{[^}]*\} (\S+)$",
                                             body, re.M))


def test_client_gone_without_close_frees_both_sockets_at_once(env):
    # A WebSocket ends with its TCP connection (RFC 6455 s7.1.1): once the client has finished,
    # the backend gets its EOF and wsring keeps nothing, even from a backend that never closes
    # its own side (it used to get a FIN and wsring waited for the backend's, holding two sockets).
    silent = SilentBackend("silent")
    try:
        proxy = env.wsring(f"key query:user\nbackend silent {silent.address}\n")
        sock, _ = raw_handshake(proxy.port, "gone-1")
        assert json.loads(read_frame(sock)[2])["backend"] == "silent"
        wait_until(lambda: active_connections(proxy) == 1, 5, "one connection active")
        sock.close()  # no Close frame: the client just goes
        wait_until(lambda: silent.eofs == 1, 5, "the backend's EOF")
        wait_until(lambda: active_connections(proxy) == 0, 5, "no connection left in wsring")
    finally:
        silent.close()


def test_backend_gone_ends_the_client_connection(env):
    # The other way: a backend that closes right after its hello ends the client's connection
    # (the hello delivered, then EOF), with no wait for the client's own close.
    class HelloThenClose(SilentBackend):
        def _one(self, c):
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.recv(4096)
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                      + bytes([0x81, 5]) + b"hello")
            c.close()

    backend = HelloThenClose("bye")
    try:
        proxy = env.wsring(f"key query:user\nbackend bye {backend.address}\n")
        sock, _ = raw_handshake(proxy.port, "gone-2")
        sock.settimeout(5)
        assert read_frame(sock) == (True, 1, b"hello")
        assert sock.recv(16) == b""  # EOF
        wait_until(lambda: active_connections(proxy) == 0, 5, "no connection left in wsring")
        sock.close()
    finally:
        backend.close()
