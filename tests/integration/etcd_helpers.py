"""Helpers for test_etcd.py: a real etcd 3.4 server (Debian etcd-server) on loopback ports, its v3
JSON gateway (base64 keys and values, int64 as strings: REAL-SERVERS.md §1), member registration in
etcd's endpoints.Manager format, and a TCP relay that can hold watch requests (for compaction)."""
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from helpers import free_ports

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
READY_BUDGET = 10.0  # seconds; measured 0.2-2.8 s under load (REAL-SERVERS.md §1)


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def prefix_end(prefix):
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def member_value(addr, weight=None, public_url=None, weight_as_string=False):
    """The value endpoints.Manager writes: {"Op":0,"Addr":...,"Metadata":{...}}."""
    meta = {}
    if weight is not None:
        meta["weight"] = str(weight) if weight_as_string else weight
    if public_url is not None:
        meta["public_url"] = public_url
    return json.dumps({"Op": 0, "Addr": addr, "Metadata": meta or None})


class Etcd:
    """One etcd process: start, ready on /health, SIGSTOP/SIGCONT, SIGKILL, restart on the same
    data dir and ports. Its log goes to DIR/etcd.log."""

    def __init__(self, workdir, tls=None):
        """TLS: a Pki; clients then need https, its CA and a client certificate."""
        self.dir = workdir
        self.data = os.path.join(workdir, "data")
        self.client_port, self.peer_port = free_ports(2)
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.client_port}"
        self.ctx = None
        if tls:
            self.ctx = ssl.create_default_context(cafile=tls.ca)
            self.ctx.load_cert_chain(tls.client_cert, tls.client_key)
        self.proc = None
        self.log = os.path.join(workdir, "etcd.log")

    def start(self):
        argv = [ETCD, "--name", "wsring-test", "--data-dir", self.data,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster", f"wsring-test=http://127.0.0.1:{self.peer_port}",
                "--logger=zap", "--log-outputs=stderr", "--log-level=warn"]
        if self.tls:
            argv += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                     "--trusted-ca-file", self.tls.ca, "--client-cert-auth"]
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=logf,
                                         stdin=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + READY_BUDGET
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"etcd exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1,
                                            context=self.ctx) as r:
                    if json.loads(r.read()).get("health") == "true":
                        # the first write may still fail for ~100 ms after /health (REAL-SERVERS)
                        self._retry(self._write_probe, 3.0)
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"etcd not ready within {READY_BUDGET}s:\n{self.log_text()}")

    def _write_probe(self):
        try:
            self.put("/wsring-test/ready", "1")
        except AssertionError as e:
            if "user name is empty" not in str(e):  # with auth on, the refusal means "serving"
                raise OSError(str(e)) from None

    @staticmethod
    def _retry(fn, budget):
        deadline = time.monotonic() + budget
        while True:
            try:
                return fn()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def sigstop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def sigkill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- the v3 JSON gateway (every call is a POST) ---------------------------------------
    def call(self, path, body, timeout=5.0):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ctx) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"etcd {path} -> {e.code} {e.read()[:300]!r}") from None

    def put(self, key, value, lease=None):
        body = {"key": b64(key), "value": b64(value)}
        if lease is not None:
            body["lease"] = lease
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def delete(self, key):
        return int(self.call("/v3/kv/deleterange", {"key": b64(key)})["header"]["revision"])

    def keys(self, prefix):
        r = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return {base64.b64decode(kv["key"]).decode() for kv in r.get("kvs", [])}

    def revision(self):
        return int(self.call("/v3/kv/range", {"key": b64("/wsring-test/ready")})["header"]["revision"])

    def grant(self, ttl):
        return self.call("/v3/lease/grant", {"TTL": ttl})["ID"]

    def keepalive(self, lease):
        return self.call("/v3/lease/keepalive", {"ID": lease})

    def compact(self, revision):
        return self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})


class Pki:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""

    def __init__(self, workdir):
        d = workdir

        def run(*argv):
            subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)

        self.ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca-key.pem")
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=wsring test CA")
        for who, ext in (("server", "subjectAltName=IP:127.0.0.1\n"
                                   # etcd 3.4's gateway dials its own gRPC server with this
                                   # certificate: it must be a client certificate too
                                   "extendedKeyUsage=serverAuth,clientAuth"),
                         ("client", "extendedKeyUsage=clientAuth")):
            key, csr = os.path.join(d, f"{who}-key.pem"), os.path.join(d, f"{who}.csr")
            cert, extf = os.path.join(d, f"{who}.pem"), os.path.join(d, f"{who}.ext")
            with open(extf, "w") as f:
                f.write(ext + "\n")
            run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN=wsring test {who}")
            run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial",
                "-out", cert, "-days", "2", "-extfile", extf)
            setattr(self, f"{who}_cert", cert)
            setattr(self, f"{who}_key", key)


class Registry:
    """Registers backends under PREFIX the way a backend would: a lease, then a put on it."""

    def __init__(self, etcd, prefix, ttl=60):
        self.etcd, self.prefix, self.ttl = etcd, prefix, ttl
        self.leases = {}

    def register(self, backend, weight=None, ttl=None, public_url=None):
        lease = self.etcd.grant(ttl or self.ttl)
        self.leases[backend.name] = lease
        return self.etcd.put(self.prefix + backend.name,
                             member_value(backend.address, weight, public_url), lease=lease)

    def deregister(self, backend):
        return self.etcd.delete(self.prefix + backend.name)


class HoldRelay:
    """A TCP relay in front of etcd that can hold watch requests (any client chunk holding
    "/v3/watch") until released, and cut every connection: it makes wsring list at revision R
    and watch from R+1 only after the test has compacted past R."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.hold = False
        self.released = threading.Event()
        self.held = 0
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target, timeout=5)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, s]
            threading.Thread(target=self._pump, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, False), daemon=True).start()

    def _pump(self, src, dst, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream and self.hold and b"/v3/watch" in data:
                    with self.lock:
                        self.held += 1
                    self.released.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hold_watches(self):
        self.released.clear()
        self.held = 0
        self.hold = True

    def release(self):
        self.hold = False
        self.released.set()

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.release()
        self.cut()
        self.sock.close()


def require_etcd():
    if not os.access(ETCD, os.X_OK):
        pytest.skip("etcd not installed (Debian etcd-server; make deps installs it)")
