"""Process and socket helpers shared by the integration tests (imported by conftest.py and tests).

Everything here talks only to 127.0.0.1 / ::1, every wait has a deadline, and every process
started through an Env is killed by pid when the test ends.
"""
import base64
import concurrent.futures
import http.client
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WSRING_BIN = Path(os.environ.get("WSRING_BIN") or REPO / "wsring")
PYTHON = sys.executable
NODE = shutil.which("node") or "/usr/bin/node"
READY_TIMEOUT = 10.0


def raise_nofile():
    """preexec_fn: soft RLIMIT_NOFILE up to the hard limit (the idle test needs thousands)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _ephemeral_start():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_ports(n, host="127.0.0.1"):
    """N distinct free TCP ports (all bound at once, then released). They are taken below the
    ephemeral range when there is room, so that no outgoing connection (wsring has thousands in
    the idle test) can hold one when a test binds it again, e.g. to revive a backend."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lo, hi = 10000, _ephemeral_start()
    socks = []
    try:
        for _ in range(200):
            if len(socks) == n:
                break
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, random.randrange(lo, hi) if hi > lo + 1000 else 0))
                socks.append(s)
            except OSError:
                s.close()
        assert len(socks) == n, "no free ports"
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port, host="127.0.0.1", timeout=READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def http_get(port, target, host="127.0.0.1", timeout=5.0):
    """(status, body bytes) of GET TARGET; raises OSError when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def response_complete(got):
    """True when GOT holds one whole HTTP response (framed by Content-Length or chunked)."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    if 100 <= status < 200:
        return response_complete(body)
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if status in (204, 304):
        return True
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        return body.endswith(b"0\r\n\r\n")
    if b"content-length" in fields:
        return len(body) >= int(fields[b"content-length"])
    return False  # close-delimited: only EOF ends it


def http_exchange(port, data, host="127.0.0.1", timeout=5.0):
    """Sends DATA on a fresh connection and reads one response.

    Returns (bytes received, how): "open" when a whole response arrived and the connection
    stayed open (keep-alive), else "eof", "reset" or "timeout" as raw_exchange.
    """
    return raw_exchange(port, data, host, timeout, until=response_complete)


def raw_exchange(port, data, host="127.0.0.1", timeout=5.0, until=None):
    """Sends DATA on a fresh connection and reads until EOF or TIMEOUT.

    Returns (bytes received, how it ended): "eof", "reset" or "timeout".
    """
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    got = b""
    try:
        s.connect((host, port))
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got, "timeout"
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return got, "timeout"
            except ConnectionResetError:
                return got, "reset"
            if not chunk:
                return got, "eof"
            got += chunk
            if until is not None and until(got):
                return got, "open"
    finally:
        s.close()


def status_of(resp):
    """The status code of a raw HTTP response (0 when there is none)."""
    line = resp.split(b"\r\n", 1)[0].split(b" ")
    if len(line) >= 2 and line[0].startswith(b"HTTP/1.") and line[1].isdigit():
        return int(line[1])
    return 0


def split_response(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return status_of(resp), headers, body


class Proc:
    def __init__(self, name, popen, log):
        self.name, self.popen, self.log = name, popen, log
        self.killed = False  # SIGKILLed on purpose: its exit code says nothing

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_text(self, limit=20000):
        try:
            text = Path(self.log).read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]


class Backend:
    def __init__(self, name, port, proc, kind):
        self.name, self.port, self.proc, self.kind = name, port, proc, kind

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"


class Wsring:
    def __init__(self, env, proc, port, admin_port, conf_path, host="127.0.0.1"):
        self.env, self.proc, self.port, self.admin_port = env, proc, port, admin_port
        self.conf_path, self.host = conf_path, host

    @property
    def pid(self):
        return self.proc.pid

    def lookup(self, key):
        status, body = http_get(self.admin_port, "/lookup?key=" + quote(key, safe=""))
        assert status == 200, f"/lookup?key={key!r} -> {status} {body[:200]!r}"
        return json.loads(body)

    def lookup_many(self, keys, threads=8):
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return dict(zip(keys, pool.map(self.lookup, keys)))

    def rss_kb(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self):
        self.env.stop(self.proc)


def backend_lines(backends):
    return "".join(f"backend {b.name} {b.address}\n" for b in backends)


class Env:
    """Per-test set of started processes; cleanup() kills every one by pid."""

    def __init__(self, tmp_path):
        self.tmp = Path(tmp_path)
        self.procs = []

    # -- processes -------------------------------------------------------------------------
    def spawn(self, name, argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=None):
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as logf:
            popen = subprocess.Popen(argv, stdout=stdout, stderr=logf, stdin=stdin, cwd=cwd,
                                     preexec_fn=raise_nofile)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=5.0):
        if proc.popen.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(5)
        for f in (proc.popen.stdout, proc.popen.stdin):
            if f:
                try:
                    f.close()
                except OSError:
                    pass

    def kill(self, proc):
        proc.killed = True
        self.stop(proc, sig=signal.SIGKILL)

    def cleanup(self):
        for proc in reversed(self.procs):
            self.stop(proc, timeout=3.0)
        self.check_wsring_exits()

    def check_wsring_exits(self):
        """wsring must stop cleanly on SIGTERM, and (in the ASan build) without a sanitizer report."""
        for proc in self.procs:
            if not proc.name.startswith("wsring") or proc.killed:
                continue
            text = proc.log_text()
            bad = [w for w in ("AddressSanitizer", "LeakSanitizer", "runtime error:") if w in text]
            code = proc.popen.returncode
            assert code in (0, 1) and not bad, (
                f"{proc.name} ended with code {code} {bad}:\n{text[-4000:]}")

    def logs(self):
        out = []
        for proc in self.procs:
            out.append(f"----- {proc.name} (pid {proc.pid}, log {proc.log}) -----\n{proc.log_text()}")
        return "\n".join(out)

    def read_ready(self, proc, timeout=READY_TIMEOUT):
        """Reads the "READY <port>" line a backend prints; returns the port."""
        deadline = time.monotonic() + timeout
        buf = b""
        fd = proc.popen.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode()
                    if line.startswith("READY "):
                        return int(line.split()[1])
                    raise AssertionError(f"{proc.name}: unexpected first line {line!r}")
            elif proc.popen.poll() is not None:
                break
        raise AssertionError(f"{proc.name} did not get ready:\n{proc.log_text()}")

    # -- backends --------------------------------------------------------------------------
    def backend(self, name, kind="py", port=0):
        """Starts a backend: kind "py" (websockets), "http" (HTTP + SSE) or "node" (ws)."""
        if kind == "py":
            argv = [PYTHON, str(HERE / "backend_py.py"), "--name", name, "--port", str(port)]
        elif kind == "http":
            argv = [PYTHON, str(HERE / "backend_http.py"), "--name", name, "--port", str(port)]
        elif kind == "node":
            argv = [NODE, str(HERE / "backend_node.js"), "--name", name, "--port", str(port)]
        else:
            raise ValueError(kind)
        proc = self.spawn(f"backend-{name}", argv, stdout=subprocess.PIPE)
        real = self.read_ready(proc)
        return Backend(name, real, proc, kind)

    def backends(self, names, kind="py"):
        return [self.backend(n, kind) for n in names]

    # -- wsring ----------------------------------------------------------------------------
    def write_conf(self, text, name="proxy.conf"):
        path = self.tmp / name
        path.write_text(text)
        return path

    def wsring(self, body, workers=2, host="127.0.0.1", expect_healthy=True, name="wsring"):
        """Starts wsring on BODY (directives other than listen/admin/workers) and waits for
        /healthz. EXPECT_HEALTHY False accepts any HTTP answer (an empty ring may be 503)."""
        require_wsring()
        port, admin = free_ports(2, host)
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        conf = f"listen {listen}\nadmin 127.0.0.1:{admin}\nworkers {workers}\n{body}"
        path = self.write_conf(conf, f"{name}.conf")
        proc = self.spawn(name, [str(WSRING_BIN), "-c", str(path)])
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not proc.alive():
                raise AssertionError(f"wsring exited with {proc.popen.returncode} on\n{conf}\n"
                                     f"{proc.log_text()}")
            try:
                status, _ = http_get(admin, "/healthz", timeout=1.0)
                if status == 200 or not expect_healthy:
                    return Wsring(self, proc, port, admin, path, host)
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"wsring did not answer /healthz with 200 within {READY_TIMEOUT}s on\n"
                             f"{conf}\n{proc.log_text()}")


def require_wsring():
    if not (WSRING_BIN.is_file() and os.access(WSRING_BIN, os.X_OK)):
        pytest.skip(f"wsring binary not built: {WSRING_BIN} (run make, or set WSRING_BIN)")


def run_wsring(args, timeout=10.0):
    """Runs WSRING_BIN with ARGS to completion: CompletedProcess with text output."""
    require_wsring()
    return subprocess.run([str(WSRING_BIN), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def check_routed(hello, user, look, backends=None):
    """Asserts that the backend's hello for USER matches /lookup's answer LOOK (and, given the
    BACKENDS list, that /lookup's address is the owner's)."""
    assert look["key"] == user and re.fullmatch(r"[0-9a-f]{16}", look["fingerprint"]), look
    if backends is not None:
        addr = {b.name: b.address for b in backends}
        assert look["address"] == addr[look["owner"]], f"/lookup address {look} vs {addr}"
    assert hello.get("backend") == look["owner"], (
        f"user {user!r} landed on {hello.get('backend')!r}, /lookup says {look['owner']!r}")
    assert hello.get("key") == user, f"X-Wsring-Key {hello.get('key')!r} for user {user!r}"
    assert hello.get("ring") == look["fingerprint"], (
        f"X-Wsring-Ring {hello.get('ring')!r} != /lookup fingerprint {look['fingerprint']!r}")


# -- asyncio clients ----------------------------------------------------------------------------
def ws_url(port, user=None, path="/chat", host="127.0.0.1"):
    from urllib.parse import quote as _q
    h = f"[{host}]" if ":" in host else host
    return f"ws://{h}:{port}{path}" + ("" if user is None else f"?user={_q(user, safe='')}")


async def ws_hello(url, timeout=10.0, **kw):
    """Connects, returns the backend's hello (dict), closes."""
    import asyncio
    import websockets
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    async with websockets.connect(url, open_timeout=timeout, close_timeout=5, **kw) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def gather_limited(coros, limit):
    """Runs the coroutines with at most LIMIT in flight; results in order (exceptions returned)."""
    import asyncio
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            try:
                return await c
            except Exception as e:  # reported per item by the caller
                return e

    return await asyncio.gather(*(one(c) for c in coros))


# -- raw WebSocket frames ---------------------------------------------------------------------
def read_frame(sock):
    """(fin, opcode, payload) of one unmasked server frame from a blocking socket."""
    def need(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"EOF after {len(buf)}/{n} bytes")
            buf += chunk
        return buf

    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    assert not b1 & 0x80, "server frames are never masked"
    return bool(b0 & 0x80), b0 & 0x0F, need(n)


def masked_frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_handshake(port, user, early=b""):
    """A WebSocket handshake over a raw socket (EARLY bytes sent in the same write as the head);
    returns (socket, response head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /chat?user={user} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode() + early)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, f"EOF in handshake response: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head
