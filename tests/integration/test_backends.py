"""The stock backends and clients themselves, without wsring (so a failure elsewhere is wsring's)."""
import asyncio
import json
import subprocess

import pytest
import websockets

from helpers import HERE, raw_exchange, split_response, ws_hello, ws_url

pytestmark = pytest.mark.no_wsring


def test_python_backend_echoes_directly(env):
    b = env.backend("direct-py")

    async def run():
        async with websockets.connect(ws_url(b.port, "zoë"), max_size=None) as ws:
            hello = json.loads(await ws.recv())
            assert hello["backend"] == "direct-py" and hello["path"] == "/chat?user=zo%C3%AB"
            assert "permessage-deflate" in ws.response_headers.get("Sec-WebSocket-Extensions", "")
            for msg in ["text ✓", b"\x00\xffbin", "__frag__0123456789abcdef", b"__frag__xyz" * 5]:
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 5) == msg
            await asyncio.wait_for(await ws.ping(b"p"), 5)

    asyncio.run(run())


def test_http_backend_reports_directly(env):
    b = env.backend("direct-http", "http")
    resp, how = raw_exchange(b.port, b"GET /x?user=a HTTP/1.1\r\nHost: h\r\nX-Wsring-Key: a\r\n\r\n")
    status, _headers, body = split_response(resp)
    assert (status, how) == (200, "eof")
    rep = json.loads(body)
    assert rep["backend"] == "direct-http" and rep["key"] == "a" and rep["path"] == "/x"


def test_node_backend_and_client_directly(env, node_ws):
    b = env.backend("direct-node", "node")
    assert asyncio.run(ws_hello(ws_url(b.port, "u1")))["backend"] == "direct-node"
    r = subprocess.run([node_ws, str(HERE / "client_node.js"), "echo", str(b.port), "u1"],
                       capture_output=True, text=True, timeout=60, cwd=HERE)
    out = json.loads(r.stdout)
    assert out.get("error") is None, out
    assert all(v is True for v in out["checks"].values()) and len(out["checks"]) == 6, out["checks"]
    assert "permessage-deflate" in (out["ext"] or ""), out
