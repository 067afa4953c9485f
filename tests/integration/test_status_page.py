"""The status page at "/" on the admin port, looked at by a real browser (headless Chromium driven
over the DevTools protocol) while WebSocket clients are connected: what it shows must agree with
/ring, /metrics and /lookup, and a WebSocket opened by the browser lands on /lookup's owner."""
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter

import pytest

from helpers import (REPO, backend_lines, http_get, masked_frame, raw_handshake, read_frame,
                     wait_port)

websockets = pytest.importorskip("websockets")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = REPO / "build" / "status_page.png"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1100,900", "--remote-debugging-port=0", "about:blank"]


def descendants(pid):
    """Pids of PID's children, grandchildren... (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium; yields its DevTools port. Ends it, and every process it started, by pid."""
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path / "chromium-profile"
    log = open(tmp_path / "chromium.log", "wb")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 20
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, (
                "chromium did not start:\n" + (tmp_path / "chromium.log").read_text()[-2000:])
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        assert wait_port(port)
        yield port
    finally:
        family = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pid in family:  # helpers that outlived the browser process
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


class Page:
    """One browser tab over its own DevTools WebSocket."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    @classmethod
    async def open(cls, devtools_port, url):
        status, body = http_get(devtools_port, "/json/version")
        browser = json.loads(body)["webSocketDebuggerUrl"]
        async with websockets.connect(browser, max_size=None) as b:
            target = (await cls(b).call("Target.createTarget", url=url))["targetId"]
        ws = await websockets.connect(f"ws://127.0.0.1:{devtools_port}/devtools/page/{target}",
                                      max_size=None, ping_interval=None)
        return cls(ws)

    async def call(self, method, **params):
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # events are not needed here: skip them
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 20))
            if msg.get("id") == self.next_id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg["result"]

    async def js(self, expr):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True,
                            awaitPromise=True)
        assert "exceptionDetails" not in r, f"{expr[:80]}: {r['exceptionDetails']}"
        return r["result"].get("value")

    async def wait(self, expr, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = await self.js(expr)
            if got:
                return got
            assert time.monotonic() < deadline, f"page: {what} not within {timeout}s"
            await asyncio.sleep(0.1)

    async def key(self, name, code, text=""):
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=name, code=name,
                            windowsVirtualKeyCode=code, text=text if kind == "keyDown" else "")

    async def click(self, selector):
        box = await self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                            button="left", clickCount=1)


# What the page shows, read the way a person would: the text in each cell.
SHOWN = """(() => ({
  rows: [...document.querySelectorAll('#members tbody tr[data-id]')].map((tr) => ({
    id: tr.dataset.id, share: tr.querySelector('.share').textContent,
    conns: tr.querySelector('.conns').textContent, weight: tr.querySelector('.weight').textContent,
    address: tr.querySelector('.address').textContent })),
  fingerprint: document.getElementById('fingerprint').textContent,
  membership: document.getElementById('membership').textContent,
  source: document.getElementById('source').textContent,
  shareHead: document.getElementById('share-head').textContent,
  arcs: [...document.querySelectorAll('#ring-svg circle[data-id]')].map((c) => c.dataset.id),
  changes: document.getElementById('changes').textContent,
}))()"""


def metrics_active(proxy):
    from prometheus_client.parser import text_string_to_metric_families
    _, body = http_get(proxy.admin_port, "/metrics")
    return {s.labels["backend"]: int(s.value)
            for f in text_string_to_metric_families(body.decode()) if f.name == "wsring_connections_active"
            for s in f.samples}


def ring_of(proxy):
    return json.loads(http_get(proxy.admin_port, "/ring")[1])


def check_shown(shown, ring, active):
    total = sum(m["weight"] for m in ring["members"])
    assert shown["fingerprint"] == ring["fingerprint"]
    assert shown["membership"] == ring["membership_fingerprint"]
    assert shown["source"] == ring["source"]
    assert shown["shareHead"] == "\u2248 share by weight"  # hash ring: an approximation
    rows = {r["id"]: r for r in shown["rows"]}
    assert set(rows) == {m["id"] for m in ring["members"]}, shown["rows"]
    assert sorted(shown["arcs"]) == sorted(rows)
    for m in ring["members"]:
        row = rows[m["id"]]
        assert re.fullmatch(r"\d{1,3}\.\d%", row["share"]), row
        assert row["share"] == f"{100 * m['weight'] / total:.1f}%", (row, m, total)
        assert row["weight"] == str(m["weight"]) and row["address"] == m["address"], row
        assert int(row["conns"]) == active.get(m["id"], 0), (row, active)


def test_status_page_in_a_browser(env, chromium):
    backends = env.backends(["sp-a", "sp-b", "sp-c"])
    weights = {"sp-a": 1, "sp-b": 2, "sp-c": 3}
    members = "".join(f"backend {b.name} {b.address} weight {weights[b.name]}\n" for b in backends)
    proxy = env.wsring("key query:user\nring_hold 100ms\n" + members)
    status, body = http_get(proxy.admin_port, "/")
    assert status == 200 and body.startswith(b"<!DOCTYPE html>")

    # traffic: some clients connected (each says hello and gets an echo back)
    users = [f"page-user-{i}" for i in range(15)]
    owner = {u: look["owner"] for u, look in proxy.lookup_many(users).items()}
    held = []
    for u in users:
        s, _ = raw_handshake(proxy.port, u)
        read_frame(s)
        s.sendall(masked_frame(1, b"hello through wsring"))
        assert read_frame(s)[2] == b"hello through wsring"
        held.append(s)
    want = dict(Counter(owner.values()))
    deadline = time.monotonic() + 5
    while {k: v for k, v in metrics_active(proxy).items() if v} != want:
        assert time.monotonic() < deadline, (metrics_active(proxy), want)
        time.sleep(0.05)
    admin = f"http://127.0.0.1:{proxy.admin_port}/"

    async def run():
        page = await Page.open(chromium, admin)
        await page.wait("document.querySelectorAll('#members tr[data-id]').length === 3",
                        "three member rows")
        check_shown(await page.js(SHOWN), ring_of(proxy), metrics_active(proxy))

        # "who owns user K?": typed in the box, Enter; then a key that needs escaping, by click
        look = proxy.lookup("alice")
        await page.js("document.getElementById('lookup-input').focus()")
        await page.call("Input.insertText", text="alice")
        await page.key("Enter", 13, "\r")
        got = await page.wait("(t => t.includes('\u2192') && t)"
                              "(document.getElementById('lookup-result').textContent)", "lookup")
        assert got == f"alice \u2192 {look['owner']} ({look['address']})", got
        odd = "zoë & <b>x</b>?=/%"
        look = proxy.lookup(odd)
        await page.js(f"document.getElementById('lookup-input').value = {json.dumps(odd)}")
        await page.click("#lookup-button")
        got = await page.wait(f"(t => t.startsWith({json.dumps(odd)}) && t)"
                              "(document.getElementById('lookup-result').textContent)", "lookup 2")
        assert got == f"{odd} \u2192 {look['owner']} ({look['address']})", got
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shot = await page.call("Page.captureScreenshot", format="png")
        SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))

        # a second tab opens a WebSocket through wsring and lands on bob's owner
        tab = await Page.open(chromium, admin + "healthz")
        await tab.wait("document.readyState === 'complete'", "second tab")
        hello = json.loads(await tab.js(
            "new Promise((ok, fail) => { const ws = new WebSocket("
            f"'ws://127.0.0.1:{proxy.port}/chat?user=bob'); window.bob = ws;"
            " ws.onmessage = (e) => ok(e.data); ws.onerror = () => fail(new Error('ws error')); })"))
        bob = proxy.lookup("bob")
        assert hello["backend"] == bob["owner"] and hello["key"] == "bob", (hello, bob)

        # the first tab follows: bob's connection within a refresh or two, then a member leaving
        expect = Counter(want)
        expect[bob["owner"]] += 1
        await page.wait(f"document.querySelector('#members tr[data-id=\"{bob['owner']}\"] .conns')"
                        f".textContent === '{expect[bob['owner']]}'", "bob's connection", 6)
        check_shown(await page.js(SHOWN), ring_of(proxy), metrics_active(proxy))
        head = "".join(proxy.conf_path.read_text().splitlines(True)[:3])
        proxy.conf_path.write_text(head + "key query:user\nring_hold 100ms\n"
                                   + "".join(members.splitlines(True)[:2]))
        os.kill(proxy.pid, signal.SIGHUP)
        await page.wait("document.getElementById('changes').textContent.includes('-sp-c')",
                        "-sp-c in the changes", 8)
        await page.wait("document.querySelectorAll('#members tr[data-id]:not(.gone)').length === 2",
                        "two members in the ring", 4)
        shown = await page.js(SHOWN)
        assert shown["fingerprint"] == ring_of(proxy)["fingerprint"]
        shot = await page.call("Page.captureScreenshot", format="png")
        SCREENSHOT.with_name("status_page_after_change.png").write_bytes(base64.b64decode(shot["data"]))
        await tab.js("window.bob.close()")
        await tab.ws.close()
        await page.ws.close()

    asyncio.run(run())
    for s in held:
        s.close()
    print(f"status page: {len(users)} clients {want}, screenshot {SCREENSHOT}")
