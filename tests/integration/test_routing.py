"""Acceptance 1: every user lands on the backend /lookup names, every time (Python and Node clients)."""
import asyncio
import json
import socket
import subprocess
from collections import Counter

import pytest

from helpers import HERE, backend_lines, check_routed, gather_limited, ws_hello, ws_url

USERS = [f"user-{i:04d}" for i in range(1000)]
# a few keys that need percent-encoding in the query: wsring must route on the decoded key
USERS[:4] = ["zoë", "a b&c=d", "ユーザー", "100%/x"]
CONCURRENCY = 50


def assert_all_routed(results, lookups, backends):
    """RESULTS: list of (user, attempt, hello dict or error)."""
    errors = [(u, a, r) for u, a, r in results if not isinstance(r, dict)]
    assert not errors, f"{len(errors)} connections failed, e.g. {errors[:5]}"
    by_user = {}
    for user, _attempt, hello in results:
        check_routed(hello, user, lookups[user], backends)
        assert hello["xff"] == "127.0.0.1", hello["xff"]
        by_user.setdefault(user, set()).add(hello["backend"])
    split = {u: b for u, b in by_user.items() if len(b) != 1}
    assert not split, f"users split across backends: {list(split.items())[:5]}"
    assert set(by_user) == set(lookups)
    spread = Counter(next(iter(b)) for b in by_user.values())
    # every backend owns some of 1000 users (a real ring with 3 members never starves one)
    assert set(spread) == {b.name for b in backends}, spread
    return spread


def test_python_clients_land_on_lookup_owner(env):
    backends = env.backends(["py-a", "py-b", "py-c"])
    proxy = env.wsring("key query:user\n" + backend_lines(backends))
    lookups = proxy.lookup_many(USERS)

    async def run():
        jobs = [(u, a) for a in range(2) for u in USERS]
        hellos = await gather_limited((ws_hello(ws_url(proxy.port, u)) for u, _ in jobs), CONCURRENCY)
        return [(u, a, h) for (u, a), h in zip(jobs, hellos)]

    results = asyncio.run(run())
    spread = assert_all_routed(results, lookups, backends)
    print(f"python: 2000 connections, users per backend {dict(spread)}")


def test_node_clients_land_on_lookup_owner(env, node_ws):
    backends = env.backends(["node-a", "node-b", "node-c"], kind="node")
    proxy = env.wsring("key query:user\n" + backend_lines(backends))
    lookups = proxy.lookup_many(USERS)
    users_file = env.tmp / "users.json"
    users_file.write_text(json.dumps(USERS))
    r = subprocess.run([node_ws, str(HERE / "client_node.js"), "route", str(proxy.port),
                        str(users_file), "2", str(CONCURRENCY)],
                       capture_output=True, text=True, timeout=180, cwd=HERE)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)["results"]
    assert len(out) == 2 * len(USERS)
    results = [(x["user"], x["attempt"], x.get("hello", x.get("error"))) for x in out]
    spread = assert_all_routed(results, lookups, backends)
    print(f"node: 2000 connections, users per backend {dict(spread)}")


def test_handshake_head_forwarded_unchanged(env):
    """The backend sees the client's handshake headers as sent, plus the four wsring headers once."""
    backends = env.backends(["fw-a", "fw-b"])
    proxy = env.wsring("key query:user\n" + backend_lines(backends))
    look = proxy.lookup("alice")
    extra = [("X-Custom", "one  two"), ("Cookie", "a=1; b=2"), ("X-Custom", "again")]
    hello = asyncio.run(ws_hello(ws_url(proxy.port, "alice"), extra_headers=extra))
    check_routed(hello, "alice", look)
    got = [(n, v) for n, v in hello["headers"]]
    names = [n.lower() for n, _ in got]
    for name in ("x-forwarded-for", "x-forwarded-proto", "x-wsring-key", "x-wsring-ring"):
        assert names.count(name) == 1, f"{name} appears {names.count(name)} times: {got}"
    assert hello["proto"] == "http"
    client_part = [(n, v) for n, v in got if not n.lower().startswith(("x-forwarded-", "x-wsring-"))]
    for pair in [("Host", f"127.0.0.1:{proxy.port}"), ("Upgrade", "websocket"),
                 ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")] + extra:
        assert pair in client_part, f"{pair} not forwarded as sent: {client_part}"
    assert [p for p in client_part if p[0] == "X-Custom"] == [("X-Custom", "one  two"),
                                                              ("X-Custom", "again")]


@pytest.mark.parametrize("algo", ["ring", "rendezvous"])
def test_weights_and_hash_algorithms(env, algo):
    """Both hash modes route by /lookup; a weight-4 member owns the most users."""
    backends = env.backends([f"{algo}-a", f"{algo}-b", f"{algo}-heavy"])
    lines = backend_lines(backends[:2]) + f"backend {backends[2].name} {backends[2].address} weight 4\n"
    proxy = env.wsring(f"key query:user\nhash {algo}\n" + lines)
    lookups = proxy.lookup_many(USERS)
    share = Counter(look["owner"] for look in lookups.values())
    assert share[backends[2].name] > 0.5 * len(USERS), f"weight 4 of 6 owns only {share}"
    sample = USERS[::5]

    async def run():
        return await gather_limited((ws_hello(ws_url(proxy.port, u)) for u in sample), CONCURRENCY)

    for user, hello in zip(sample, asyncio.run(run())):
        assert isinstance(hello, dict), f"{user}: {hello!r}"
        check_routed(hello, user, lookups[user], backends)


def test_ipv6_listener(env):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    backends = env.backends(["v6-a", "v6-b"])
    proxy = env.wsring("key query:user\nkey_missing client_ip\n" + backend_lines(backends), host="::1")
    hello = asyncio.run(ws_hello(ws_url(proxy.port, "carol", host="::1")))
    check_routed(hello, "carol", proxy.lookup("carol"), backends)
    assert hello["xff"] == "::1"
    hello = asyncio.run(ws_hello(ws_url(proxy.port, None, host="::1")))
    check_routed(hello, "::1", proxy.lookup("::1"), backends)  # client address as text, no brackets
