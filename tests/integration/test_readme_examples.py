"""Runs the Python and Node examples of README.md's "Delivering a message to another user's
server" against a live wsring and checks what they print against /lookup."""
import json
import os
import re
import subprocess
import sys

import pytest

from helpers import NODE, REPO

EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```(python|js)\n(.*?)```", re.S)
USERS = ["alice", "bob", "carol"]


def examples():
    text = (REPO / "README.md").read_text()
    section = text.split("## Delivering a message to another user's server", 1)[1].split("\n## ", 1)[0]
    found = {m.group(1): (m.group(2), m.group(3)) for m in EXAMPLE.finditer(section)}
    assert set(found) == {f"{n}.{ext}" for n in ("through_wsring", "lookup", "compute_locally",
                                                    "redirect") for ext in ("py", "js")}
    return found


@pytest.fixture(scope="module")
def live(shared_env):
    bs = [shared_env.backend(n, kind="http") for n in ("ws-a", "ws-b", "ws-c")]
    urls = {b.name: f"http://127.0.0.1:{b.port}" for b in bs}
    body = "route /connect redirect\n" + "".join(
        f"backend {b.name} {b.address} public_url {urls[b.name]}\n" for b in bs)
    proxy = shared_env.wsring(body, workers=1)
    return proxy, {u: proxy.lookup(u) for u in USERS}, urls


def run(tmp_path, name, live):
    lang, code = examples()[name]
    proxy, _, _ = live
    path = tmp_path / name
    path.write_text(code)
    env = dict(os.environ, WSRING=f"http://127.0.0.1:{proxy.port}",
               WSRING_ADMIN=f"http://127.0.0.1:{proxy.admin_port}",
               WSRING_CLIENTS=str(REPO / "clients"))
    if lang == "js" and not (NODE and os.access(NODE, os.X_OK)):
        pytest.skip("node not found")
    argv = [sys.executable if lang == "python" else NODE, str(path)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert r.returncode == 0, f"{name} failed:\n{r.stderr[-2000:]}"
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("ext", ["py", "js"])
def test_through_wsring(tmp_path, live, ext):
    _, owners, _ = live
    out = run(tmp_path, f"through_wsring.{ext}", live)
    assert [o["user"] for o in out] == USERS
    for o in out:
        report = json.loads(o["body"])  # backend_http.py names itself and what it got
        assert o["status"] == 200 and report["backend"] == owners[o["user"]]["owner"]
        assert report["method"] == "POST" and report["key"] == o["user"]
        assert json.loads(report["body"]) == {"text": "hi"}


@pytest.mark.parametrize("ext", ["py", "js"])
def test_lookup(tmp_path, live, ext):
    _, owners, urls = live
    out = run(tmp_path, f"lookup.{ext}", live)
    assert [o["key"] for o in out] == USERS
    for o in out:
        assert o["owner"] == owners[o["key"]]["owner"]
        assert o["address"] == owners[o["key"]]["address"]
        assert o["public_url"] == urls[o["owner"]]


@pytest.mark.parametrize("ext", ["py", "js"])
def test_compute_locally(tmp_path, live, ext):
    _, owners, _ = live
    out = run(tmp_path, f"compute_locally.{ext}", live)
    assert out == [{"key": u, "owner": owners[u]["owner"]} for u in USERS]


@pytest.mark.parametrize("ext", ["py", "js"])
def test_redirect(tmp_path, live, ext):
    _, owners, urls = live
    out = run(tmp_path, f"redirect.{ext}", live)
    want = "ws" + urls[owners["alice"]["owner"]][len("http"):] + "/connect?user=alice"
    assert out == [{"status": 307, "websocket": want}]
