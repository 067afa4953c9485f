"""Acceptance 4: every row of DESIGN §7 as a client sees it."""
import asyncio
import json
import socket
import time

import pytest

from helpers import (backend_lines, check_routed, free_ports, http_get, http_exchange, raw_exchange,
                     response_complete, status_of, ws_hello, ws_url)

GOOD = b"GET /api?user=alice HTTP/1.1\r\nHost: wsring\r\n"

MALFORMED = {
    "content_length_and_transfer_encoding":
        b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate_content_length":
        b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    "bad_content_length": b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nContent-Length: 2x\r\n\r\nab",
    "bare_lf_in_header": b"GET /api?user=alice HTTP/1.1\r\nHost: h\r\nX-A: 1\nX-B: 2\r\n\r\n",
    "bare_lf_after_request_line": b"GET /api?user=alice HTTP/1.1\nHost: h\r\n\r\n",
    "bare_cr_in_header": b"GET /api?user=alice HTTP/1.1\r\nHost: h\r\nX-A: 1\rX-B: 2\r\n\r\n",
    "obs_fold": b"GET /api?user=alice HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n",
    "whitespace_line_after_request_line": b"GET /api?user=alice HTTP/1.1\r\n Host: h\r\n\r\n",
    "space_before_colon": b"GET /api?user=alice HTTP/1.1\r\nHost : h\r\n\r\n",
    "tab_before_colon": b"GET /api?user=alice HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n",
    "empty_header_name": b"GET /api?user=alice HTTP/1.1\r\nHost: h\r\n: nameless\r\n\r\n",
    "bad_version": b"GET /api?user=alice HTTP/2.0\r\nHost: h\r\n\r\n",
    "garbage_version": b"GET /api?user=alice HTPT/1.1\r\nHost: h\r\n\r\n",
    "invalid_method_char": b"G(T /api?user=alice HTTP/1.1\r\nHost: h\r\n\r\n",
    "space_in_target": b"GET /api?user=al ice HTTP/1.1\r\nHost: h\r\n\r\n",
    "missing_host": b"GET /api?user=alice HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
    "transfer_encoding_gzip_chunked":
        b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "transfer_encoding_twice":
        b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "nul_in_header_value": b"GET /api?user=alice HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "control_byte_in_key": b"GET /api?user=%0d%0aX:1 HTTP/1.1\r\nHost: h\r\n\r\n",
    "del_byte_in_key": b"GET /api?user=a%7fb HTTP/1.1\r\nHost: h\r\n\r\n",
    "key_longer_than_max_key_bytes": b"GET /api?user=" + b"k" * 300 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
}


# RFC 9112-valid heads that a strict parser must still accept (guards against over-rejecting)
VALID = {
    "optional_whitespace_around_value": GOOD + b"X-A: \t spaced \t \r\n\r\n",
    "empty_header_value": GOOD + b"X-Empty:\r\n\r\n",
    "all_tchars_in_name": GOOD + b"X-!#$%&'*+.^_`|~09az: v\r\n\r\n",
    "obs_text_in_value": GOOD + b"X-Latin: caf\xe9 \x80\xff\r\n\r\n",
    "fifty_headers": GOOD + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(50)) + b"\r\n",
    "http_1_0_with_host": b"GET /api?user=alice HTTP/1.0\r\nHost: h\r\n\r\n",
    "chunked_body_any_case":
        b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    "content_length_body": b"POST /api?user=alice HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
                           b"hello world",
    "key_at_max_key_bytes": b"GET /api?user=" + b"k" * 256 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "head_just_under_max_head_bytes": GOOD + b"X-Pad: " + b"p" * (15 * 1024) + b"\r\n\r\n",
}


@pytest.fixture(scope="module")
def http_proxy(shared_env):
    """Read-only: every test below only sends requests, so one wsring serves them all."""
    backends = [shared_env.backend(n, "http") for n in ("err-a", "err-b")]
    return shared_env.wsring("key query:user\nmax_key_bytes 256\nhandshake_timeout 1s\n"
                      "max_head_bytes 16k\n" + backend_lines(backends))


def expect_status(port, data, status, timeout=5.0):
    # wsring's own answers (>= 400) end the connection: read to EOF; a routed one is read whole
    exchange = raw_exchange if status >= 400 else http_exchange
    resp, how = exchange(port, data, timeout=timeout)
    assert status_of(resp) == status, f"sent {data[:120]!r}...: got {resp[:200]!r} ({how})"
    if status >= 400:  # wsring's own answers end the connection
        assert how in ("eof", "reset"), f"connection left open after {status} ({how})"
    else:  # a routed request leaves a keep-alive connection open for the next one
        assert how in ("open", "eof"), f"no whole response after {status} ({how})"
    return resp


def test_well_formed_control_request_is_routed(http_proxy):
    resp = expect_status(http_proxy.port, GOOD + b"\r\n", 200)
    assert b'"backend"' in resp


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_unusual_head_is_routed(http_proxy, name):
    resp = expect_status(http_proxy.port, VALID[name], 200)
    rep = json.loads(resp.partition(b"\r\n\r\n")[2])
    if b"hello" in VALID[name].partition(b"\r\n\r\n")[2]:
        assert rep["body"] == "hello world", rep["body"]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_head_is_400_and_closed(http_proxy, name):
    expect_status(http_proxy.port, MALFORMED[name], 400)


def test_oversized_head_is_431(http_proxy):
    big = GOOD + b"X-Pad: " + b"p" * (17 * 1024) + b"\r\n\r\n"
    expect_status(http_proxy.port, big, 431)


def test_oversized_head_without_end_is_431(http_proxy):
    big = GOOD + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"q" * 100) for i in range(200))  # ~20 KiB, no end
    expect_status(http_proxy.port, big, 431)


def test_missing_key_is_400(http_proxy):
    expect_status(http_proxy.port, b"GET /api?other=1 HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    expect_status(http_proxy.port, b"GET /api?user= HTTP/1.1\r\nHost: h\r\n\r\n", 400)


def test_missing_key_websocket_is_refused(http_proxy):
    async def go():
        import websockets
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await ws_hello(ws_url(http_proxy.port, None))
        return e.value.status_code

    assert asyncio.run(go()) == 400


def test_key_missing_client_ip_routes_by_address(env):
    backends = env.backends(["ip-a", "ip-b", "ip-c"])
    proxy = env.wsring("key query:user\nkey_missing client_ip\n" + backend_lines(backends))
    look = proxy.lookup("127.0.0.1")
    for _ in range(3):
        hello = asyncio.run(ws_hello(ws_url(proxy.port, None)))
        check_routed(hello, "127.0.0.1", look)
    # a key, when present, still wins
    hello = asyncio.run(ws_hello(ws_url(proxy.port, "bob")))
    check_routed(hello, "bob", proxy.lookup("bob"))


def test_empty_ring_is_503(env):
    proxy = env.wsring("key query:user\ndiscovery static\n", expect_healthy=False)
    expect_status(proxy.port, GOOD + b"\r\n", 503)
    status, body = http_get(proxy.admin_port, "/lookup?key=alice")
    assert status == 503 and "error" in json.loads(body), (status, body)


@pytest.mark.parametrize("retry", ["on", "off"])
def test_owner_and_retry_unreachable_is_502(env, retry):
    dead1, dead2 = free_ports(2)  # nothing listens there
    proxy = env.wsring(f"key query:user\nretry_next {retry}\nconnect_timeout 1s\n"
                       f"backend dead-1 127.0.0.1:{dead1}\nbackend dead-2 127.0.0.1:{dead2}\n")
    t0 = time.monotonic()
    expect_status(proxy.port, GOOD + b"\r\n", 502)
    assert time.monotonic() - t0 < 4.0, "refused connections must not wait for connect_timeout"


@pytest.mark.parametrize("sent", [b"", b"GET /api?user=slow HTTP/1.1\r\nHost: h"],
                         ids=["nothing", "half_a_head"])
def test_slow_handshake_is_closed_after_timeout(http_proxy, sent):
    s = socket.create_connection(("127.0.0.1", http_proxy.port), timeout=5)
    try:
        s.sendall(sent)  # then silence
        t0 = time.monotonic()
        # A client that sends nothing waits unaccepted for the kernel's 1 s (TCP_DEFER_ACCEPT).
        s.settimeout((1.0 if sent else 2.0) + 2.0)
        try:
            while s.recv(4096):  # an error response is allowed; EOF must follow
                pass
            how = "eof"
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            how = "timeout"
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert how in ("eof", "reset"), f"still open {elapsed:.1f}s after half a head (handshake_timeout 1s)"
    assert elapsed >= 0.5, f"closed after {elapsed:.2f}s, before handshake_timeout"


def test_a_client_is_accepted_once_it_speaks(http_proxy):
    """TCP_DEFER_ACCEPT: a connected client that has sent nothing costs wsring no descriptor and no
    wake-up; its first bytes bring the accept, and the answer follows as usual."""
    from test_http_keepalive import accepted
    s = socket.create_connection(("127.0.0.1", http_proxy.port), timeout=5)
    try:
        before = accepted(http_proxy)
        time.sleep(0.5)
        assert accepted(http_proxy) == before, "accepted before its first byte"
        s.sendall(GOOD + b"\r\n")
        got = b""
        while not response_complete(got):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        assert status_of(got) == 200, got[:200]
        assert accepted(http_proxy) == before + 1
    finally:
        s.close()


def test_trickling_client_is_closed_after_timeout(http_proxy):
    """handshake_timeout bounds the whole head, not the gap between bytes."""
    s = socket.create_connection(("127.0.0.1", http_proxy.port), timeout=5)
    t0 = time.monotonic()
    closed_at = None
    try:
        for b in (GOOD + b"X-Slow: " + b"s" * 40):
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
            s.settimeout(0.1)
            try:
                if s.recv(4096) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 6:
                break
    finally:
        s.close()
    assert closed_at is not None and closed_at < 3.0, f"trickling client still open ({closed_at})"
