"""TLS (DESIGN §12): wss:// clients (Python websockets, Node ws, headless Chromium) routed like ws://
users and relayed byte-exact; resumption; strict clients refusing expired and wrong-host
certificates; a certificate swapped by SIGHUP under 500 live connections; plaintext on a TLS port;
`wsring -t` on bad certificate files; TLS to backends (verified, and refused with a wrong CA); the
memory an idle wss connection costs.

Certificates are made with the `openssl` command in a session fixture: a test CA, a server
certificate for 127.0.0.1 and localhost, a second one (the SIGHUP swap), an expired one, one for
the wrong host, and a second CA that signed none of them."""
import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from helpers import (HERE, PYTHON, REPO, WSRING_BIN, Backend, backend_lines, check_routed,
                     free_ports, gather_limited, http_get, run_wsring, wait_port)

websockets = pytest.importorskip("websockets")

OPENSSL = "openssl"
CA_CNF = """[ca]
default_ca = ca_default
[ca_default]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
serial = {dir}/serial
default_md = sha256
policy = policy_any
[policy_any]
commonName = supplied
"""


def openssl(*args, cwd):
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"openssl {' '.join(args)}:\n{r.stderr[-2000:]}"
    return r.stdout


class Certs:
    """Paths of the PEM files made for the session: certs.server_pem is "<dir>/server.pem",
    certs.other_ca_pem "<dir>/other-ca.pem"."""

    def __init__(self, d):
        self.dir = d

    def __getattr__(self, name):
        base, ext = name.rsplit("_", 1)
        return str(self.dir / f"{base.replace('_', '-')}.{ext}")


def make_leaf(d, name, cn, san, dates=None):
    """NAME.pem / NAME.key signed by ca.pem: DATES None = valid now, else (start, end) for
    `openssl ca` (an expired certificate)."""
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    if dates is None:
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "30", "-out", f"{name}.pem", "-extfile",
                f"{name}.ext", cwd=d)
    else:
        openssl("ca", "-batch", "-config", "ca.cnf", "-in", f"{name}.csr", "-out", f"{name}.pem",
                "-startdate", dates[0], "-enddate", dates[1], "-extfile", f"{name}.ext",
                "-notext", cwd=d)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "30",
                "-subj", f"/CN=wsring {ca} test", cwd=d)
    (d / "issued").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(CA_CNF.format(dir=d))
    make_leaf(d, "server", "wsring-one", "DNS:localhost,IP:127.0.0.1")
    make_leaf(d, "server2", "wsring-two", "DNS:localhost,IP:127.0.0.1")
    make_leaf(d, "expired", "wsring-expired", "DNS:localhost,IP:127.0.0.1",
              dates=("20200101000000Z", "20200201000000Z"))
    make_leaf(d, "wronghost", "wrong.example", "DNS:wrong.example")
    (d / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                   "-----END CERTIFICATE-----\n")
    return Certs(d)


def client_ctx(cafile, **kw):
    ctx = ssl.create_default_context(cafile=cafile)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def start_tls(env, certs, body, cert=None, key=None, workers=2):
    """wsring with a plain listener (env.wsring's) and a tls one; returns (proxy, tls port)."""
    (tls_port,) = free_ports(1)
    conf = (f"listen 127.0.0.1:{tls_port} tls\n"
            f"tls_certificate {cert or certs.server_pem}\n"
            f"tls_certificate_key {key or certs.server_key}\n" + body)
    proxy = env.wsring(conf, workers=workers)
    assert wait_port(tls_port)
    return proxy, tls_port


def wss_url(port, user, host="127.0.0.1"):
    return f"wss://{host}:{port}/chat?user={user}"


async def wss_hello(url, ctx, timeout=15.0):
    async with websockets.connect(url, ssl=ctx, compression=None, ping_interval=None,
                                  open_timeout=timeout, close_timeout=5) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def peer_cn(port, cafile, session=None):
    """(subject CN of the certificate the proxy shows, TLS version, session, session_reused)."""
    ctx = client_ctx(cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
            cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
            return cn, s.version(), s.session, s.session_reused


def tls_ws_exchange(port, ctx, user, session=None, **wrap):
    """A WebSocket handshake over a TLS socket (WRAP: more wrap_socket arguments); returns (ssl
    socket, response head). The caller closes the socket."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session, **wrap)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /chat?user={user} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, f"EOF in handshake response: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head


def counter(proxy, name, label):
    _, body = http_get(proxy.admin_port, "/metrics")
    m = re.search(rf'^{name}\{{reason="{label}"\}} (\d+)', body.decode(), re.M)
    return int(m.group(1)) if m else 0


# -- clients routed and relayed ---------------------------------------------------------------

def test_python_wss_clients_routed_and_relayed_byte_exact(env, certs):
    backends = env.backends(["tls-a", "tls-b", "tls-c"])
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    users = [f"tls-user-{i}" for i in range(60)]
    lookups = proxy.lookup_many(users)
    ctx = client_ctx(certs.ca_pem)

    async def run():
        hellos = await gather_limited((wss_hello(wss_url(port, u), ctx) for u in users), 20)
        payloads = [os.urandom(1 << 20), "héllo ✓ " * 5000, b"", os.urandom(70000)]
        async with websockets.connect(wss_url(port, "bulk"), ssl=ctx, compression=None,
                                      max_size=None, ping_interval=None) as ws:
            hello = json.loads(await ws.recv())
            back = []
            for p in payloads:
                await ws.send(p)
                back.append(await asyncio.wait_for(ws.recv(), 20))
            for i in range(200):  # many small messages, each its own TLS record
                await ws.send(f"small {i}")
                back.append(await asyncio.wait_for(ws.recv(), 20))
        return hellos, hello, payloads, back

    hellos, bulk_hello, payloads, back = asyncio.run(run())
    for u, h in zip(users, hellos):
        assert not isinstance(h, Exception), f"{u}: {h!r}"
        check_routed(h, u, lookups[u], backends)
        assert h["proto"] == "https", f"X-Forwarded-Proto {h['proto']!r} on a tls listener"
        assert h["xff"] == "127.0.0.1"
    assert len({h["backend"] for h in hellos}) == 3, "60 users should reach all three backends"
    check_routed(bulk_hello, "bulk", proxy.lookup("bulk"), backends)
    assert back[:4] == payloads, "a message came back changed (1 MiB, text, empty, 70000 bytes)"
    assert back[4:] == [f"small {i}" for i in range(200)]
    # The plain listener of the same proxy still says http.
    async def plain():
        async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/chat?user=p",
                                      compression=None) as ws:
            return json.loads(await ws.recv())
    assert asyncio.run(plain())["proto"] == "http"


def test_node_ws_clients_over_wss(env, certs, node_ws):
    backends = env.backends(["tls-node-a", "tls-node-b"], kind="node")
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    users = [f"node-tls-{i}" for i in range(40)]
    lookups = proxy.lookup_many(users)
    users_file = env.tmp / "users.json"
    users_file.write_text(json.dumps(users))
    node_env = dict(os.environ, WS_SCHEME="wss", NODE_EXTRA_CA_CERTS=certs.ca_pem)
    r = subprocess.run([node_ws, str(HERE / "client_node.js"), "route", str(port),
                        str(users_file), "1", "10"],
                       capture_output=True, text=True, timeout=120, cwd=HERE, env=node_env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)["results"]
    assert len(out) == len(users)
    for x in out:
        assert "hello" in x, f"{x['user']}: {x.get('error')}"
        check_routed(x["hello"], x["user"], lookups[x["user"]], backends)
        assert x["hello"]["proto"] == "https"
    look = proxy.lookup("node-echo")
    r = subprocess.run([node_ws, str(HERE / "client_node.js"), "echo", str(port), "node-echo"],
                       capture_output=True, text=True, timeout=60, cwd=HERE, env=node_env)
    assert r.returncode == 0, r.stderr[-2000:]
    echo = json.loads(r.stdout)
    assert echo.get("error") is None, echo
    check_routed(echo["hello"], "node-echo", look)
    # text, 1000 bytes, 1 MiB binary, 1 MiB compressible text, empty, ping: all byte-exact
    assert echo["checks"] == {k: True for k in echo["checks"]} and len(echo["checks"]) == 6, echo
    # Without the CA, Node's default verification refuses the proxy.
    r = subprocess.run([node_ws, str(HERE / "client_node.js"), "route", str(port),
                        str(users_file), "1", "1"], capture_output=True, text=True, timeout=60,
                       cwd=HERE, env=dict(os.environ, WS_SCHEME="wss"))
    errors = [x.get("error", "") for x in json.loads(r.stdout)["results"]]
    assert all("self-signed certificate" in e or "unable to" in e for e in errors), errors[:3]


def spki_hash(cert_pem):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's pin format)."""
    pub = subprocess.run([OPENSSL, "x509", "-in", cert_pem, "-noout", "-pubkey"],
                         capture_output=True, check=True).stdout
    der = subprocess.run([OPENSSL, "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    digest = subprocess.run([OPENSSL, "dgst", "-sha256", "-binary"], input=der,
                            capture_output=True, check=True).stdout
    return base64.b64encode(digest).decode()


def test_chromium_page_connects_over_wss(env, certs, tmp_path):
    from test_status_page import CHROMIUM, FLAGS, Page, descendants
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    backends = env.backends(["tls-chrome-a", "tls-chrome-b"])
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    profile = tmp_path / "chromium-profile"
    log = open(tmp_path / "chromium.log", "wb")
    flags = [f for f in FLAGS if f != "about:blank"]
    proc = subprocess.Popen([CHROMIUM, *flags,
                             f"--ignore-certificate-errors-spki-list={spki_hash(certs.server_pem)}",
                             f"--user-data-dir={profile}", "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 20
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.05)
        devtools = int(port_file.read_text().split()[0])
        assert wait_port(devtools)
        user = "chrome-tls-user"
        look = proxy.lookup(user)
        script = f"""new Promise((resolve) => {{
          const ws = new WebSocket({json.dumps(wss_url(port, user, host="localhost"))});
          ws.binaryType = 'arraybuffer';
          const big = new Uint8Array(300000).map((_, i) => (i * 7) & 255);
          let hello = null;
          ws.onmessage = (ev) => {{
            if (hello === null) {{ hello = JSON.parse(ev.data); ws.send(big); return; }}
            const got = new Uint8Array(ev.data);
            const same = got.length === big.length && got.every((b, i) => b === big[i]);
            ws.close(1000); resolve({{hello, same}});
          }};
          ws.onerror = () => resolve({{error: 'websocket error'}});
          setTimeout(() => resolve({{error: 'timeout'}}), 15000);
        }})"""

        async def run():
            page = await Page.open(devtools, "about:blank")
            try:
                return await page.js(script)
            finally:
                await page.ws.close()

        got = asyncio.run(run())
        assert "error" not in got, got
        check_routed(got["hello"], user, look, backends)
        assert got["hello"]["proto"] == "https"
        assert got["same"] is True, "300000 bytes came back changed"
    finally:
        family = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def test_drain_sends_close_1001_over_tls(env, certs):
    """SIGTERM's Close 1001 is injected into the TLS stream at a message boundary, then the proxy
    exits cleanly."""
    backends = env.backends(["tls-drain"])
    proxy, port = start_tls(env, certs, "drain_timeout 5s\n" + backend_lines(backends))
    ctx = client_ctx(certs.ca_pem)

    async def run():
        async with websockets.connect(wss_url(port, "drainer"), ssl=ctx, compression=None,
                                      ping_interval=None) as ws:
            await ws.recv()
            await ws.send("before")
            assert await ws.recv() == "before"
            os.kill(proxy.pid, signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            return closed.value

    closed = asyncio.run(run())
    assert closed.rcvd is not None and closed.rcvd.code == 1001, closed
    proxy.proc.popen.wait(10)
    assert proxy.proc.popen.returncode == 0, proxy.proc.log_text()


def test_tls_session_ends_with_close_notify(env, certs):
    """When the backend ends the WebSocket, wsring ends the client's TLS session with
    close_notify before its FIN: a clean close, which strict clients require."""
    backends = env.backends(["tls-notify"])
    proxy, port = start_tls(env, certs, backend_lines(backends))
    ctx = client_ctx(certs.ca_pem)
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # Python's default forgives a bare FIN
    s, _ = tls_ws_exchange(port, ctx, "notify", suppress_ragged_eofs=False)
    mask = os.urandom(4)
    code = (1000).to_bytes(2, "big")
    s.sendall(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(code)))
    got = b""
    while True:
        chunk = s.recv(65536)  # a bare FIN raises SSLEOFError here
        if not chunk:
            break
        got += chunk
    s.close()
    assert b"\x88\x02\x03\xe8" in got, got[-40:]  # the backend's Close reply came first


def test_https_requests_routed_one_by_one_on_keep_alive(env, certs):
    """Plain HTTP over TLS (DESIGN §10.1): every request on one kept-alive https connection goes to
    its own owner, pipelined requests too (they may sit in TLS's read-ahead, unseen by epoll), and
    request bodies arrive whole."""
    from test_http_cli import read_response
    backends = [env.backend(n, "http") for n in ("tls-web-a", "tls-web-b", "tls-web-c")]
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    users = [f"web-{i}" for i in range(30)]
    owners = {u: proxy.lookup(u)["owner"] for u in users}
    assert len(set(owners.values())) == 3
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with client_ctx(certs.ca_pem).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        for u in users:
            s.sendall(f"GET /send?user={u} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            status, _h, body = read_response(s)
            rep = json.loads(body)
            assert status == 200 and rep["backend"] == owners[u], (u, rep["backend"], owners[u])
            assert ["X-Forwarded-Proto", "https"] in rep["headers"], rep["headers"]
        batch = users[:5]
        s.sendall(b"".join(f"GET /p?user={u} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
                           for u in batch))
        for u in batch:
            _st, _h, body = read_response(s)
            assert json.loads(body)["backend"] == owners[u]
        payload = os.urandom(200000)
        s.sendall(b"POST /up?user=web-1 HTTP/1.1\r\nHost: h\r\nContent-Length: "
                  + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        _st, _h, body = read_response(s)
        rep = json.loads(body)
        assert rep["body_len"] == len(payload)
        assert rep["body_sha256"] == hashlib.sha256(payload).hexdigest()


# -- the TLS session itself -------------------------------------------------------------------

@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_resumption_and_alpn(env, certs, version):
    backends = env.backends(["tls-res"])
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    v = getattr(ssl.TLSVersion, version)
    ctx = client_ctx(certs.ca_pem, minimum_version=v, maximum_version=v)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    s, _ = tls_ws_exchange(port, ctx, "resume-user")
    assert s.version() == version.replace("_", "."), s.version()
    assert s.selected_alpn_protocol() == "http/1.1"
    assert not s.session_reused
    s.recv(4096)  # the hello frame; in TLS 1.3 the ticket has arrived by now
    session = s.session
    s.close()
    s2, _ = tls_ws_exchange(port, ctx, "resume-user", session=session)
    assert s2.session_reused, f"{version}: the second handshake was a full one"
    s2.close()
    # Tickets survive a SIGHUP that rereads the same certificate (ticket keys carried over).
    os.kill(proxy.pid, signal.SIGHUP)
    wait_log(proxy, "event=reloaded")
    s3, _ = tls_ws_exchange(port, ctx, "resume-user", session=session)
    assert s3.session_reused, f"{version}: resumption lost across SIGHUP"
    s3.close()


def test_tls12_session_ids_resume_after_a_bare_fin(env, certs):
    """A TLS 1.2 client without tickets resumes by session id, also when its first connection
    ended with a bare FIN (no close_notify): the session stays in wsring's cache."""
    backends = env.backends(["tls-sid"])
    _, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    ctx = client_ctx(certs.ca_pem, minimum_version=ssl.TLSVersion.TLSv1_2,
                     maximum_version=ssl.TLSVersion.TLSv1_2)
    ctx.options |= ssl.OP_NO_TICKET
    s, _ = tls_ws_exchange(port, ctx, "sid-user")
    s.recv(4096)  # the hello frame
    session = s.session
    assert session.id and not session.has_ticket
    s.close()  # no close_notify: Python's close() sends a bare FIN
    time.sleep(0.3)  # wsring reads the EOF and frees the connection
    for i in range(2):
        s2, _ = tls_ws_exchange(port, ctx, "sid-user", session=session)
        reused = s2.session_reused
        s2.close()
        assert reused, f"resumption {i + 1}: a full handshake"
        time.sleep(0.3)


def test_old_protocols_refused(env, certs):
    backends = env.backends(["tls-old"])
    _, port = start_tls(env, certs, backend_lines(backends))
    r = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
                        "-cipher", "DEFAULT:@SECLEVEL=0"], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-1500:]
    assert "no protocols available" not in out, "the client could not even offer TLS 1.1"
    assert re.search(r"protocol version|unsupported protocol|wrong version", out), out[-1500:]


def wait_log(proxy, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proxy.proc.log_text(200000)
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in the log:\n{proxy.proc.log_text()[-3000:]}")


@pytest.mark.parametrize("which,why", [("expired", "certificate has expired"),
                                       ("wronghost", "mismatch")])
def test_strict_clients_refuse_bad_certificates(env, certs, which, why):
    backends = env.backends([f"tls-{which}"])
    _, port = start_tls(env, certs, backend_lines(backends),
                        cert=getattr(certs, f"{which}_pem"), key=getattr(certs, f"{which}_key"))
    ctx = client_ctx(certs.ca_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match=why):
        asyncio.run(wss_hello(wss_url(port, "u"), ctx))
    # The same certificate with verification off works: it is the client refusing, not wsring.
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    assert asyncio.run(wss_hello(wss_url(port, "u"), loose))["backend"] == f"tls-{which}"


def test_plaintext_on_a_tls_listener(env, certs):
    backends = env.backends(["tls-plain"])
    proxy, port = start_tls(env, certs, backend_lines(backends))
    from helpers import raw_exchange
    got, how = raw_exchange(port, b"GET /chat?user=a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert how == "eof", f"plain HTTP on the TLS port ended with {how}: {got!r}"
    assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n") and got.endswith(b"plain_http\n"), got
    got, how = raw_exchange(port, os.urandom(16) + b"\x00" * 600)
    assert got == b"" and how in ("eof", "reset"), (got, how)
    assert counter(proxy, "wsring_closes_total", "plain_http") == 1
    assert counter(proxy, "wsring_closes_total", "tls_handshake") == 1
    # ... and the listener still serves TLS.
    assert asyncio.run(wss_hello(wss_url(port, "after"), client_ctx(certs.ca_pem)))["key"] == "after"


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("cert,key,message", [
    ("missing.pem", "server.key", r':3: "tls_certificate .*missing.pem": cannot read: No such file'),
    ("server.pem", "missing.key", r':4: "tls_certificate_key .*missing.key": cannot read: No such'),
    ("garbage.pem", "server.key", r':3: "tls_certificate .*garbage.pem" holds no usable PEM certificate'),
    ("server.pem", "server.pem", r':4: "tls_certificate_key .*server.pem" holds no PEM private key'),
    ("server.pem", "server2.key", r':4: "tls_certificate_key .*server2.key" does not match the certificate in .*server.pem'),
])
def test_check_reads_the_certificate_files(certs, tmp_path, cert, key, message):
    conf = tmp_path / "t.conf"
    conf.write_text(f"listen 127.0.0.1:8443 tls\nbackend a 127.0.0.1:1\n"
                    f"tls_certificate {certs.dir / cert}\ntls_certificate_key {certs.dir / key}\n")
    r = run_wsring(["-t", "-c", str(conf)])
    assert r.returncode == 1 and re.search(re.escape(str(conf)) + message, r.stderr), r.stderr
    good = tmp_path / "good.conf"
    good.write_text(f"listen 127.0.0.1:8443 tls\nbackend a 127.0.0.1:1\n"
                    f"tls_certificate {certs.server_pem}\ntls_certificate_key {certs.server_key}\n")
    r = run_wsring(["-t", "-c", str(good)])
    assert r.returncode == 0, r.stderr


def test_check_reads_the_backend_ca_file(certs, tmp_path):
    conf = tmp_path / "t.conf"
    conf.write_text("listen 127.0.0.1:8080\nbackend a 127.0.0.1:1\nbackend_tls on\n"
                    f"backend_ca_file {certs.dir / 'garbage.pem'}\n")
    r = run_wsring(["-t", "-c", str(conf)])
    assert r.returncode == 1 and f'{conf}:4: "backend_ca_file' in r.stderr, r.stderr


# -- SIGHUP ------------------------------------------------------------------------------------

LIVE = 500


def test_sighup_swaps_the_certificate_without_dropping_connections(env, certs, tmp_path):
    backends = env.backends(["tls-hup-a", "tls-hup-b"])
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes(open(certs.server_pem, "rb").read())
    live_key.write_bytes(open(certs.server_key, "rb").read())
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends),
                            cert=str(live_cert), key=str(live_key))
    assert peer_cn(port, certs.ca_pem)[0] == "wsring-one"
    ctx = client_ctx(certs.ca_pem)

    async def run():
        async def open_one(i):
            ws = await websockets.connect(wss_url(port, f"hup-{i}"), ssl=ctx, compression=None,
                                          ping_interval=None, open_timeout=30, max_queue=4)
            hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert hello["key"] == f"hup-{i}"
            return ws
        conns = await gather_limited((open_one(i) for i in range(LIVE)), 50)
        bad = [c for c in conns if isinstance(c, Exception)]
        assert not bad, f"{len(bad)} of {LIVE} did not open: {bad[:3]!r}"

        # Renew in place (as certbot does), then reload.
        live_cert.write_bytes(open(certs.server2_pem, "rb").read())
        live_key.write_bytes(open(certs.server2_key, "rb").read())
        os.kill(proxy.pid, signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(None, wait_log, proxy, "event=reloaded")
        fresh = await asyncio.get_running_loop().run_in_executor(None, peer_cn, port, certs.ca_pem)

        # A broken renewal: the reload fails and the certificate in force stays.
        live_cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
        os.kill(proxy.pid, signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(None, wait_log, proxy,
                                                         "event=reload_failed")
        after_bad = await asyncio.get_running_loop().run_in_executor(None, peer_cn, port,
                                                                     certs.ca_pem)

        async def echo(i, ws):
            msg = f"still here {i}"
            await ws.send(msg)
            return await asyncio.wait_for(ws.recv(), 30) == msg

        res = await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(conns)),
                                   return_exceptions=True)
        open_now = sum(1 for ws in conns if ws.open)
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        return fresh, after_bad, res, open_now

    fresh, after_bad, res, open_now = asyncio.run(run())
    assert fresh[0] == "wsring-two", f"new connections still see {fresh[0]!r} after SIGHUP"
    assert after_bad[0] == "wsring-two", "a bad certificate file replaced the good one"
    ok = sum(1 for r in res if r is True)
    assert ok == LIVE and open_now == LIVE, (
        f"after the certificate swap {ok}/{LIVE} live connections echoed, {open_now} open; "
        f"first failures {[r for r in res if r is not True][:3]!r}")
    _, body = http_get(proxy.admin_port, "/metrics")
    assert re.search(r'wsring_config_reloads_total\{result="ok"\} 1\b', body.decode())
    assert re.search(r'wsring_config_reloads_total\{result="failed"\} 1\b', body.decode())


# -- TLS to backends ---------------------------------------------------------------------------

def tls_backend(env, certs, name):
    argv = [PYTHON, str(HERE / "backend_py.py"), "--name", name, "--port", "0",
            "--certfile", certs.server_pem, "--keyfile", certs.server_key]
    proc = env.spawn(f"backend-{name}", argv, stdout=subprocess.PIPE)
    return Backend(name, env.read_ready(proc), proc, "py-tls")


def test_backend_tls(env, certs):
    backends = [tls_backend(env, certs, "wss-a"), tls_backend(env, certs, "wss-b")]
    proxy = env.wsring("key query:user\nbackend_tls on\n"
                       f"backend_ca_file {certs.ca_pem}\n" + backend_lines(backends))
    users = [f"btls-{i}" for i in range(16)]
    lookups = proxy.lookup_many(users)

    close_times = []

    async def run():
        hellos = await gather_limited((_plain_hello(proxy.port, u, close_times) for u in users), 8)
        async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/chat?user=btls-bulk",
                                      compression=None, max_size=None) as ws:
            await ws.recv()
            for size in (1 << 20, 100, 0, 40000):
                data = os.urandom(size)
                await ws.send(data)
                assert await asyncio.wait_for(ws.recv(), 30) == data, f"{size} bytes changed"
        return hellos

    hellos = asyncio.run(run())
    for u, h in zip(users, hellos):
        assert not isinstance(h, Exception), f"{u}: {h!r}"
        check_routed(h, u, lookups[u], backends)
    assert {h["backend"] for h in hellos} == {"wss-a", "wss-b"}
    # The backend's Close reply and its close_notify often arrive in one read: the EOF read
    # behind the frame must still end the connection at once, not after the client's 10 s wait.
    assert max(close_times) < 3, f"Close handshakes took {sorted(close_times)[-3:]} s"
    assert "backend_tls_failed" not in proxy.proc.log_text()


@pytest.mark.parametrize("extra,why", [
    ("backend_ca_file {other}\n", "certificate: "),
    ("backend_ca_file {ca}\nbackend_tls_server_name wrong.example\n", "certificate: "),
])
def test_backend_tls_refused(env, certs, extra, why):
    b = tls_backend(env, certs, "wss-strict")
    proxy = env.wsring("key query:user\nbackend_tls on\n"
                       + extra.format(other=certs.other_ca_pem, ca=certs.ca_pem) + backend_lines([b]))
    from helpers import http_exchange, status_of
    got, _ = http_exchange(proxy.port, b"GET /chat?user=x HTTP/1.1\r\nHost: a\r\n"
                           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status_of(got) == 502, got
    log = wait_log(proxy, "event=backend_tls_failed member=wss-strict")
    assert why in log


def send_queue(port):
    """The largest Send-Q (bytes the kernel holds unsent) of wsring's sockets on local PORT."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return max([int(line.split()[1]) for line in out.splitlines() if line.strip()] or [0])


def test_backpressure_with_tls_on_both_ends(env, certs):
    """A wss client that stops reading while it sends 20 MiB: wsring's TLS writes towards the
    client block (its socket's send queue fills up), the bytes wait in the pending buffers and go
    out once the client reads again; every message comes back whole and in order. The backend
    side speaks TLS too."""
    b = tls_backend(env, certs, "wss-slow")
    proxy, port = start_tls(env, certs, "key query:user\nbackend_tls on\n"
                            f"backend_ca_file {certs.ca_pem}\n" + backend_lines([b]))
    ctx = client_ctx(certs.ca_pem)
    # More messages than the backend queues (websockets: 64) and more bytes than the sockets hold.
    msgs = [os.urandom(64 << 10) for _ in range(320)]

    async def run():
        async with websockets.connect(wss_url(port, "slow-reader"), ssl=ctx, compression=None,
                                      max_size=None, max_queue=1, ping_interval=None,
                                      write_limit=1 << 16) as ws:
            await ws.recv()

            async def send_all():
                for m in msgs:
                    await ws.send(m)
            sender = asyncio.create_task(send_all())
            await asyncio.sleep(2)  # not reading: every buffer on the way fills up
            stuck = send_queue(port)
            assert stuck > 1 << 20, f"wsring's socket to the client holds only {stuck} bytes"
            back = [await asyncio.wait_for(ws.recv(), 60) for _ in msgs]
            await sender
            return back

    back = asyncio.run(run())
    assert [len(m) for m in back] == [len(m) for m in msgs]
    assert back == msgs, "a message came back changed under backpressure"


def test_backend_tls_handshake_timeout(env, certs):
    """A backend that accepts TCP but never answers the TLS handshake: connect_timeout ends the
    wait, the member is marked down and the client gets 502 (not a hang)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes TCP handshakes; nobody ever speaks
    try:
        port = silent.getsockname()[1]
        proxy = env.wsring("key query:user\nconnect_timeout 500ms\nbackend_tls on\n"
                           f"backend_ca_file {certs.ca_pem}\nbackend mute 127.0.0.1:{port}\n")
        from helpers import http_exchange, status_of
        t0 = time.monotonic()
        got, _ = http_exchange(proxy.port, b"GET /x?user=u HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(got) == 502, got
        assert time.monotonic() - t0 < 3
        wait_log(proxy, 'event=backend_tls_failed member=mute address=127.0.0.1:'
                 f'{port} error="handshake timed out (connect_timeout)"')
    finally:
        silent.close()


def test_backend_tls_server_name(env, certs):
    b = tls_backend(env, certs, "wss-named")
    proxy = env.wsring("key query:user\nbackend_tls on\nbackend_tls_server_name localhost\n"
                       f"backend_ca_file {certs.ca_pem}\n" + backend_lines([b]))
    hello = asyncio.run(_plain_hello(proxy.port, "named"))
    check_routed(hello, "named", proxy.lookup("named"))


async def _plain_hello(port, user, close_times=None):
    """The backend's hello to USER through ws://; appends how long the Close handshake took."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/chat?user={user}",
                                  compression=None) as ws:
        hello = json.loads(await ws.recv())
        t = time.monotonic()
    if close_times is not None:
        close_times.append(time.monotonic() - t)
    return hello


# -- memory ------------------------------------------------------------------------------------

IDLE = 2000


def test_idle_wss_connections_stay_cheap(env, certs, monkeypatch):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2 * IDLE + 200:
        pytest.skip(f"descriptor hard limit {hard} too low")
    backends = env.backends(["tls-idle-a", "tls-idle-b"])
    proxy, port = start_tls(env, certs, "key query:user\n" + backend_lines(backends))
    time.sleep(0.3)
    # Warm up: OpenSSL's one-time allocations are not per-connection costs.
    asyncio.run(wss_hello(wss_url(port, "warm"), client_ctx(certs.ca_pem)))
    rss_before = proxy.rss_kb()
    monkeypatch.setenv("IDLE_TLS_CA", certs.ca_pem)  # idle_client.py: wss:// with this CA
    procs = []
    for i in range(2):
        procs.append(env.spawn(f"idle-tls-client-{i}",
                               [PYTHON, str(HERE / "idle_client.py"), str(port), str(IDLE // 2),
                                f"idle-tls{i}", "50"],
                               stdout=subprocess.PIPE, stdin=subprocess.PIPE))
    from test_idle import read_line
    for p in procs:
        env_line = read_line(p, 120)
        _, ok, failed = env_line.split()
        assert int(failed) == 0 and int(ok) == IDLE // 2, f"{p.name}: {env_line}\n{p.log_text()}"
    time.sleep(1.0)
    rss_after = proxy.rss_kb()
    for p in procs:
        p.popen.stdin.write(b"CHECK 10\n")
        p.popen.stdin.flush()
    for p in procs:
        _, ok, bad, open_now = read_line(p, 60).split()
        assert int(bad) == 0 and int(open_now) == IDLE // 2, f"{p.name}: {bad} bad, {open_now} open"
    per_conn = (rss_after - rss_before) * 1024 / IDLE
    msg = (f"idle wss: {IDLE} connections: RSS {rss_before} kB -> {rss_after} kB, "
           f"{per_conn:.0f} bytes per connection")
    print(msg)
    for p in procs:
        env.kill(p)
    if b"__asan_init" not in WSRING_BIN.read_bytes():  # ASan's redzones are no measure
        (REPO / "build").mkdir(exist_ok=True)
        (REPO / "build" / "idle_wss_rss.txt").write_text(msg + "\n")
        assert per_conn < 40 * 1024, msg
