"""DESIGN §12 edge: PROXY protocol on listeners and towards backends, and `key jwt:CLAIM`.

Real stock backends (Python websockets; a raw HTTP backend that parses PROXY headers itself),
real clients (Python websockets over a socket that first carries a PROXY header), tokens signed
here with `cryptography` (RSA, EC P-256, HMAC), routing checked against /lookup on the admin port.
"""
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest
import websockets
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from helpers import (HERE, PYTHON, backend_lines, check_routed, http_exchange, http_get,
                     raw_exchange, run_wsring, split_response)

NOW = int(time.time())
ISS = "https://id.example.com/"
AUD = "chat"
SECRET = b"integration-test-only-secret-0123456789"
V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# -- keys and tokens ----------------------------------------------------------------------------
def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    def __init__(self, tmp):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        self.rsa_pem = self.rsa.public_key().public_bytes(*pub)
        self.files = {
            "RS256": tmp / "rsa.pem",
            "ES256": tmp / "ec.pem",
            "HS256": tmp / "hs.secret",
        }
        self.files["RS256"].write_bytes(self.rsa_pem)
        self.files["ES256"].write_bytes(self.ec.public_key().public_bytes(*pub))
        self.files["HS256"].write_bytes(SECRET + b"\n")  # one trailing newline is not the secret

    def sign(self, alg, msg, key=None):
        if alg == "HS256":
            return hmac.new(key or SECRET, msg, hashlib.sha256).digest()
        if alg == "RS256":
            return (key or self.rsa).sign(msg, padding.PKCS1v15(), hashes.SHA256())
        if alg == "ES256":
            r, s = decode_dss_signature(self.ec.sign(msg, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if alg == "none":
            return b""
        raise ValueError(alg)

    def token(self, claims, alg="RS256", header=None, sign_alg=None, key=None):
        header = header or {"alg": alg, "typ": "JWT"}
        msg = (b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())).encode()
        return msg.decode() + "." + b64u(self.sign(sign_alg or alg, msg, key))


def claims(sub="alice", **kw):
    c = {"sub": sub, "iss": ISS, "aud": AUD, "exp": NOW + 600, "nbf": NOW - 10}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


# -- PROXY headers (built here from the spec, not by wsring's writer) ---------------------------
def v1(proto, src="", dst="", sport=0, dport=0):
    if proto == "UNKNOWN":
        return b"PROXY UNKNOWN\r\n"
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(command, src=None, dst=None, sport=0, dport=0, tlvs=b""):
    if src is None:
        return V2SIG + bytes([0x20 | command, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    fam, size = (socket.AF_INET, 4) if "." in src else (socket.AF_INET6, 16)
    body = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack("!HH", sport, dport)
    body += tlvs
    return V2SIG + bytes([0x20 | command, 0x11 if size == 4 else 0x21]) + struct.pack(
        "!H", len(body)) + body


async def ws_hello_via(port, header, path="/chat", drip=False, **kw):
    """A websockets client over a socket that first sends HEADER (byte by byte when DRIP)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if drip:
        for i in range(len(header)):
            s.sendall(header[i:i + 1])
            await asyncio.sleep(0.002)
    else:
        s.sendall(header)
    s.setblocking(False)
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}", sock=s, open_timeout=10,
                                  close_timeout=5, compression=None, ping_interval=None,
                                  **kw) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def metric(admin_port, name):
    _, body = http_get(admin_port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


# -- the shared proxy: a plain listener and a proxy_protocol one, RS256 tokens ------------------
@pytest.fixture(scope="module")
def edge(shared_env):
    keys = Keys(shared_env.tmp)
    backends = shared_env.backends(["ws-a", "ws-b", "ws-c"])
    from helpers import free_ports
    pp_port, = free_ports(1)
    proxy = shared_env.wsring(
        f"listen 127.0.0.1:{pp_port} proxy_protocol\n"
        "handshake_timeout 2s\n"
        "key jwt:sub\nkey query:user\nkey_missing client_ip\n"
        f"jwt_key_file {keys.files['RS256']}\njwt_audience {AUD}\njwt_issuer {ISS}\n"
        + backend_lines(backends))
    proxy.pp_port = pp_port
    return proxy, backends, keys


# -- PROXY protocol in --------------------------------------------------------------------------
CARRIED = {
    "v1_tcp4": (v1("TCP4", "203.0.113.7", "192.0.2.1", 40001, 443), "203.0.113.7"),
    "v1_tcp6": (v1("TCP6", "2001:db8::7", "2001:db8::1", 40002, 443), "2001:db8::7"),
    "v1_unknown": (v1("UNKNOWN"), "127.0.0.1"),
    "v2_tcp4": (v2(1, "198.51.100.23", "192.0.2.1", 40003, 443), "198.51.100.23"),
    "v2_tcp6": (v2(1, "2001:db8:0:1::23", "2001:db8::1", 40004, 443), "2001:db8:0:1::23"),
    "v2_tcp4_with_tlvs": (v2(1, "198.51.100.24", "192.0.2.1", 1, 2,
                             tlvs=b"\x01\x00\x08http/1.1" + b"\x04\x00\x03\x00\x00\x00"),
                          "198.51.100.24"),
    "v2_local": (v2(0), "127.0.0.1"),
}


@pytest.mark.parametrize("case", sorted(CARRIED))
def test_proxy_header_address_becomes_x_forwarded_for(edge, case):
    proxy, backends, _ = edge
    header, want = CARRIED[case]
    hello = asyncio.run(ws_hello_via(proxy.pp_port, header, path="/chat?user=alice"))
    assert hello["xff"] == want, hello
    check_routed(hello, "alice", proxy.lookup("alice"), backends)
    # and the WebSocket relays both ways after the header
    async def echo():
        s = socket.create_connection(("127.0.0.1", proxy.pp_port), timeout=10)
        s.sendall(header)
        s.setblocking(False)
        async with websockets.connect(f"ws://127.0.0.1:{proxy.pp_port}/chat?user=bob", sock=s,
                                      compression=None, ping_interval=None) as ws:
            await ws.recv()
            await ws.send("ping-" + case)
            return await asyncio.wait_for(ws.recv(), 10)
    assert asyncio.run(echo()) == "ping-" + case


def test_proxy_header_feeds_key_missing_client_ip(edge):
    proxy, backends, _ = edge
    for header, ip in ((v1("TCP6", "2001:db8::99", "::1", 5, 6), "2001:db8::99"),
                       (v2(1, "203.0.113.99", "192.0.2.1", 5, 6), "203.0.113.99")):
        hello = asyncio.run(ws_hello_via(proxy.pp_port, header, path="/chat"))
        check_routed(hello, ip, proxy.lookup(ip), backends)  # hashed as text, no port, no brackets


def test_proxy_header_in_pieces_and_with_the_head_in_one_write(edge):
    proxy, backends, _ = edge
    hello = asyncio.run(ws_hello_via(proxy.pp_port, v2(1, "203.0.113.5", "192.0.2.1", 7, 8),
                                     path="/chat?user=carol", drip=True))
    assert hello["xff"] == "203.0.113.5"
    check_routed(hello, "carol", proxy.lookup("carol"), backends)
    # header and a plain HTTP request in the same segment: the request is still read whole
    resp, how = raw_exchange(proxy.pp_port, v1("TCP4", "203.0.113.6", "192.0.2.1", 1, 2) +
                             b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             b"Sec-WebSocket-Version: 13\r\n\r\n", timeout=3,
                             until=lambda got: b"\r\n\r\n" in got)
    assert resp.startswith(b"HTTP/1.1 101 "), resp


def test_plain_listener_needs_no_header(edge):
    proxy, backends, _ = edge
    from helpers import ws_hello, ws_url
    hello = asyncio.run(ws_hello(ws_url(proxy.port, "dave")))
    assert hello["xff"] == "127.0.0.1"
    check_routed(hello, "dave", proxy.lookup("dave"), backends)
    # a PROXY header on a listener not flagged for it is not honoured: it is a bad request line
    resp, _ = http_exchange(proxy.port, v1("TCP4", "203.0.113.7", "192.0.2.1", 1, 2) +
                            b"GET /?user=x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400 "), resp


GET_WS = (b"GET /chat?user=alice HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

MALFORMED_PROXY = {
    "no_header_plain_http": GET_WS,
    "tls_client_hello": b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + b"\x00" * 40,
    "v1_lowercase": b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + GET_WS,
    "v1_unknown_protocol": b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n" + GET_WS,
    "v1_bad_ipv4": b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n" + GET_WS,
    "v1_port_out_of_range": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n" + GET_WS,
    "v1_double_space": b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n" + GET_WS,
    "v1_bare_lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + GET_WS,
    "v1_over_107_bytes": b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n" + GET_WS,
    "v2_bad_signature": b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + b"\x00" * 12 + GET_WS,
    "v2_version_1": V2SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12 + GET_WS,
    "v2_length_short_for_tcp4": V2SIG + b"\x21\x11\x00\x08" + b"\x00" * 8 + GET_WS,
    "v2_unix_family": V2SIG + b"\x21\x31\x00\xd8" + b"\x00" * 216 + GET_WS,
    "v2_udp": V2SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12 + GET_WS,
    "v2_broken_tlv": V2SIG + b"\x21\x11\x00\x10" + b"\x00" * 12 + b"\x01\x00\x09x" + GET_WS,
    "v2_length_over_limit": V2SIG + b"\x21\x11\x10\x00" + b"\x00" * 64,
}


def test_malformed_proxy_headers_are_closed_without_an_answer(edge):
    proxy, _, _ = edge
    before = metric(proxy.admin_port, 'wsring_closes_total{reason="bad_proxy"}')
    for name, data in MALFORMED_PROXY.items():
        got, how = raw_exchange(proxy.pp_port, data, timeout=5)
        assert got == b"" and how in ("eof", "reset"), f"{name}: {how} {got[:80]!r}"
    after = metric(proxy.admin_port, 'wsring_closes_total{reason="bad_proxy"}')
    assert after - before == len(MALFORMED_PROXY)


def test_incomplete_proxy_header_times_out(edge):
    proxy, _, _ = edge
    t0 = time.monotonic()
    got, how = raw_exchange(proxy.pp_port, b"PROXY TCP4 203.0.113.7 ", timeout=8)
    took = time.monotonic() - t0
    assert got == b"" and how in ("eof", "reset"), how
    assert 1.5 < took < 6, f"closed after {took:.1f}s, handshake_timeout is 2s"


# -- JWT ----------------------------------------------------------------------------------------
def test_valid_token_routes_by_claim_from_all_three_places(edge):
    proxy, backends, keys = edge
    from helpers import ws_hello

    for user in ("alice", "bob", "user-42"):
        tok = keys.token(claims(user))
        look = proxy.lookup(user)
        # ?user=mallory is ignored: the token decides
        base = f"ws://127.0.0.1:{proxy.port}/chat?user=mallory"
        hello = asyncio.run(ws_hello(base, extra_headers={"Authorization": f"Bearer {tok}"}))
        check_routed(hello, user, look, backends)
        hello = asyncio.run(ws_hello(base + f"&access_token={tok}"))
        check_routed(hello, user, look, backends)
        hello = asyncio.run(ws_hello(base, subprotocols=["chat.v1", f"access_token.{tok}"]))
        check_routed(hello, user, look, backends)
        assert any(n.lower() == "sec-websocket-protocol" for n, _ in hello["headers"])


def test_no_token_falls_through_to_the_next_rule(edge):
    proxy, backends, _ = edge
    from helpers import ws_hello, ws_url
    hello = asyncio.run(ws_hello(ws_url(proxy.port, "erin"),
                                 extra_headers={"Authorization": "Basic ZXJpbjpwdw=="}))
    check_routed(hello, "erin", proxy.lookup("erin"), backends)


def bad_tokens(keys):
    return {
        "bad_signature": keys.token(claims(), key=keys.rsa_other),
        "expired": keys.token(claims(exp=NOW - 120)),
        "not_yet_valid": keys.token(claims(nbf=NOW + 300)),
        "wrong_audience": keys.token(claims(aud=["billing", "ops"])),
        "missing_audience": keys.token(claims(aud=None)),
        "wrong_issuer": keys.token(claims(iss="https://evil.example.com/")),
        "alg_none": keys.token(claims(), alg="none"),
        "hs256_signed_with_the_rsa_public_key": keys.token(claims(), alg="HS256", key=keys.rsa_pem),
        "truncated": keys.token(claims()).rsplit(".", 1)[0],
        "bad_base64": keys.token(claims()).replace(".", "=.", 1),
        "missing_claim": keys.token(claims(sub=None)),
        "non_string_claim": keys.token(claims(sub=12345)),
    }


@pytest.mark.parametrize("where", ["bearer", "query", "subprotocol"])
def test_every_bad_token_is_401_and_never_the_next_rule(edge, where):
    proxy, _, keys = edge
    before = metric(proxy.admin_port, 'wsring_closes_total{reason="bad_token"}')
    bad = bad_tokens(keys)
    for name, tok in bad.items():
        target, extra = "/chat?user=alice", b""
        if where == "bearer":
            extra = f"Authorization: Bearer {tok}\r\n".encode()
        elif where == "query":
            target += "&access_token=" + tok
        else:
            extra = f"Sec-WebSocket-Protocol: chat, access_token.{tok}\r\n".encode()
        req = (f"GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               ).encode() + extra + b"\r\n"
        resp, _ = raw_exchange(proxy.port, req, timeout=5)
        status, headers, body = split_response(resp)
        assert status == 401, f"{name} via {where}: {resp[:200]!r}"
        assert ("www-authenticate", 'Bearer error="invalid_token"') in headers, headers
        assert body == b"bad_token\n"
    after = metric(proxy.admin_port, 'wsring_closes_total{reason="bad_token"}')
    assert after - before == len(bad)


def test_websockets_client_sees_401(edge):
    proxy, _, keys = edge
    from helpers import ws_hello
    tok = keys.token(claims(exp=NOW - 3600))
    with pytest.raises(websockets.InvalidStatusCode) as e:
        asyncio.run(ws_hello(f"ws://127.0.0.1:{proxy.port}/chat?user=alice",
                             extra_headers={"Authorization": f"Bearer {tok}"}))
    assert e.value.status_code == 401


@pytest.mark.parametrize("alg", ["ES256", "HS256"])
def test_es256_and_hs256_keys(env, alg):
    keys = Keys(env.tmp)
    backends = env.backends(["ws-a", "ws-b"])
    proxy = env.wsring("key jwt:uid\n"
                       f"jwt_key_file {keys.files[alg]}\njwt_audience {AUD}\n"
                       + backend_lines(backends))
    from helpers import ws_hello
    for user in ("u1", "u2", "u3"):
        tok = keys.token(claims(sub=None, uid=user, aud=["x", AUD]), alg=alg)
        hello = asyncio.run(ws_hello(f"ws://127.0.0.1:{proxy.port}/chat",
                                     extra_headers={"Authorization": f"Bearer {tok}"}))
        check_routed(hello, user, proxy.lookup(user), backends)
    # the other algorithms are refused by this key, whatever they are signed with
    for other in {"RS256", "ES256", "HS256"} - {alg}:
        tok = keys.token(claims(sub=None, uid="u1"), alg=other)
        resp, _ = http_exchange(proxy.port, f"GET /?access_token={tok} HTTP/1.1\r\nHost: h\r\n\r\n"
                                .encode())
        assert resp.startswith(b"HTTP/1.1 401 "), (other, resp[:100])


# -- jwt_key_file errors at wsring -t, and on SIGHUP ---------------------------------------------
def test_key_file_errors_at_check_time(tmp_path):
    ed = ed25519.Ed25519PrivateKey.generate()
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(*pub)
    files = {
        "good.pem": (ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(*pub), None),
        "ed25519.pem": (ed.public_key().public_bytes(*pub), "holds an unsupported key type"),
        "p384.pem": (p384, "holds an EC key on a curve other than P-256"),
        "bad.pem": (b"-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n",
                    "is not a PEM public key"),
        "private.pem": (ed.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), "is a private key"),
        "short.secret": (b"too-short\n", "holds an HS256 secret shorter than 32 bytes"),
        "missing.pem": (None, "cannot read: No such file or directory"),
    }
    for name, (content, want) in files.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        conf = tmp_path / "t.conf"
        conf.write_text(f"listen 127.0.0.1:1\nkey jwt:sub\njwt_key_file {path}\n"
                        "backend a 127.0.0.1:2\n")
        r = run_wsring(["-t", "-c", str(conf)])
        if want is None:
            assert r.returncode == 0, r.stderr
        else:
            assert r.returncode == 1
            assert r.stderr.startswith(f"wsring: {conf}:3: \"jwt_key_file {path}\" {want}"), r.stderr
    conf.write_text("listen 127.0.0.1:1\nkey query:u\nkey jwt:sub\nbackend a 127.0.0.1:2\n")
    r = run_wsring(["-t", "-c", str(conf)])
    assert r.returncode == 1 and f"{conf}:3: a \"key jwt:CLAIM\" rule needs jwt_key_file" in r.stderr


def test_reload_with_a_bad_key_keeps_the_running_key(env):
    keys = Keys(env.tmp)
    backends = env.backends(["ws-a"])
    proxy = env.wsring(f"key jwt:sub\njwt_key_file {keys.files['HS256']}\n" + backend_lines(backends))
    tok = keys.token(claims("zoe", aud=None, iss=None), alg="HS256")
    keys.files["HS256"].write_bytes(b"short\n")
    os.kill(proxy.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reload_failed" not in proxy.proc.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "jwt_key_file" in proxy.proc.log_text() and "reload_failed" in proxy.proc.log_text()
    from helpers import ws_hello
    hello = asyncio.run(ws_hello(f"ws://127.0.0.1:{proxy.port}/chat?access_token={tok}"))
    assert hello["key"] == "zoe"


# -- send_proxy ---------------------------------------------------------------------------------
def proxy_backend(env, name):
    proc = env.spawn(f"backend-{name}", [PYTHON, str(HERE / "backend_proxy.py"), "--name", name],
                     stdout=subprocess.PIPE)

    class B:
        pass
    b = B()
    b.name, b.port, b.proc = name, env.read_ready(proc), proc
    b.address = f"127.0.0.1:{b.port}"
    return b


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_is_observed_by_the_backend(env, version):
    from helpers import free_ports
    b = proxy_backend(env, "pb")
    pp_port, = free_ports(1)
    proxy = env.wsring(f"listen 127.0.0.1:{pp_port} proxy_protocol\nsend_proxy {version}\n"
                       + backend_lines([b]))
    # two requests on one keep-alive client connection: two backend connections, each with a header
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    seen = []
    for i in range(2):
        conn.request("GET", f"/r{i}?user=alice")
        resp = conn.getresponse()
        assert resp.status == 200
        seen.append(json.loads(resp.read()))
    client_port = conn.sock.getsockname()[1]
    conn.close()
    want_version = 1 if version == "v1" else 2
    for s in seen:
        assert s["proxy"]["version"] == want_version, s
        assert s["proxy"]["src"] == "127.0.0.1" and s["proxy"]["sport"] == client_port, s
        assert s["proxy"]["dst"] == "127.0.0.1" and s["proxy"]["dport"] == proxy.port, s
        assert s["request"] == 1, f"a backend connection served two requests: {s}"
    assert seen[0]["conn"] != seen[1]["conn"], "send_proxy must not reuse pooled connections"
    # a client that came through a balancer: the carried address goes on to the backend
    req = v2(1, "2001:db8::42", "2001:db8::1", 4242, 443) + \
        b"GET /carried?user=bob HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    resp, _ = raw_exchange(pp_port, req, timeout=5)
    s = json.loads(resp.partition(b"\r\n\r\n")[2])
    assert s["proxy"]["src"] == "2001:db8::42" and s["proxy"]["sport"] == 4242, s
    assert s["proxy"]["dst"] == "2001:db8::1" and s["proxy"]["dport"] == 443, s
    assert s["xff"] == "2001:db8::42" and s["path"] == "/carried?user=bob"
