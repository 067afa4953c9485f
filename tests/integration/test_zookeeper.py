"""ZooKeeper discovery, end to end (DESIGN §11, DISCOVERY §3): ONE real ZooKeeper 3.8 server per
pytest session, backends registered as Curator does (ephemeral nodes with ServiceInstance JSON,
each on its own session), real WebSocket clients through wsring, membership checked against /ring
and /lookup. Each test watches its own path, so tests do not see each other's nodes."""
import os
import signal
import time
from collections import Counter

import pytest
from kazoo.client import KazooClient

from consul_helpers import LiveConn, hellos, land, log, log_lines, member_ids, ring, wait_until
from helpers import check_routed
from zk_helpers import Registration, ZooKeeper, backend, zk_available, zk_body

CONVERGE = 2.0  # seconds: joins and leaves
RECOVER = 5.0  # seconds: after ZooKeeper is back (DESIGN §11)
USERS = [f"zk-user-{i}" for i in range(300)]


@pytest.fixture(scope="session")
def zk(tmp_path_factory):
    why = zk_available()
    if why:
        pytest.skip(why)
    server = ZooKeeper(tmp_path_factory.mktemp("zookeeper"))
    took = server.start()
    print(f"ZooKeeper ready in {took:.2f}s on {server.hosts}")
    yield server
    server.stop()


@pytest.fixture
def zk_up(zk):
    """The session's server, running (a test that stopped it restarts it on the same data dir)."""
    if zk.popen.poll() is not None:
        zk.start()
    yield zk
    if zk.stopped():
        zk.kill()
    if zk.popen.poll() is not None:
        zk.start()


@pytest.fixture
def kz(zk_up):
    """The test's own ZooKeeper client, to look at the nodes as the server sees them."""
    c = KazooClient(hosts=zk_up.hosts, timeout=4.0)
    c.start(timeout=15)
    yield c
    c.stop()
    c.close()


@pytest.fixture
def path(request):
    return "/services/" + request.node.name.replace("[", "-").replace("]", "")


def start(env, zk, path, ids, weights=None, timeout=1.0):
    """Backends named by ring id, each registered on its own session."""
    bs, regs = {}, {}
    for i in ids:
        bs[i] = backend(env, i)
        regs[i] = Registration(env, zk, path, bs[i], i, weight=(weights or {}).get(i),
                               timeout=timeout)
    return bs, regs


def wait_members(proxy, ids, timeout=5.0):
    ids = set(ids)
    return wait_until(lambda: member_ids(proxy) == ids, timeout, f"/ring members == {sorted(ids)}")


def assert_routed(proxy, users, backends):
    looks = proxy.lookup_many(users)
    got = hellos(proxy.port, users)
    for u in users:
        check_routed(got[u], u, looks[u], list(backends))
    return {u: looks[u]["owner"] for u in users}


def probe_until(port, users, pred, timeout, what):
    return wait_until(lambda: pred(land(port, users, strict=False)), timeout, what, step=0.05)


def node_gone(kz, path, rid, timeout):
    """Waits until the server has deleted PATH/RID; returns time.monotonic() at that moment."""
    wait_until(lambda: kz.exists(f"{path}/{rid}") is None, timeout, f"{path}/{rid} deleted",
               step=0.01)
    return time.monotonic()


# 1 ------------------------------------------------------------------------------------------
def test_registered_backend_joins_deleted_and_dead_ones_leave_within_2s(env, zk_up, kz, path):
    bs, regs = start(env, zk_up, path, ["ws-a", "ws-b"])
    new = backend(env, "ws-c")
    everyone = list(bs.values()) + [new]
    proxy = env.wsring(zk_body(zk_up, path))
    wait_members(proxy, bs)
    r = ring(proxy)
    assert r["source"] == "zookeeper" and r["watch"]["state"] == "ok", r
    assert r["watch"]["connected"] and r["watch"]["path"] == path, r["watch"]
    before = assert_routed(proxy, USERS, everyone)
    assert set(before.values()) == set(bs)

    # join: an ephemeral node appears -> its users' new connections land on it
    reg = Registration(env, zk_up, path, new, "ws-c")
    t0 = time.monotonic()
    t_join = probe_until(proxy.port, USERS[:25], lambda got: "ws-c" in got.values(), 5,
                         "a new connection landing on ws-c")
    after = assert_routed(proxy, USERS, everyone)
    theirs = [u for u in USERS if after[u] == "ws-c"]
    assert len(theirs) > 30, f"ws-c owns only {len(theirs)}/{len(USERS)} users"
    assert not [u for u in USERS if after[u] not in (before[u], "ws-c")], "keys moved between others"
    assert any("added=ws-c" in ln for ln in log_lines(proxy, "ring_changed")), log(proxy)
    live = [LiveConn(proxy.port, u) for u in theirs[:5]]

    # leave by deregistration (the node deleted): users go back to their old owner
    reg.delete()
    t_del = time.monotonic()
    t_leave = probe_until(proxy.port, theirs[:20], lambda got: "ws-c" not in got.values(), 5,
                          "ws-c's users no longer landing on it")
    assert member_ids(proxy) == set(bs)
    final = assert_routed(proxy, USERS, everyone)
    assert final == before, "after the leave, users are back on their old owners"
    assert any("removed=ws-c" in ln for ln in log_lines(proxy, "ring_changed")), log(proxy)
    # its live connections were migrated (Close 1012 at a message boundary), as with Consul
    for c in live:
        c.sock.settimeout(5)
        try:
            data = c.sock.recv(64)
        except OSError:
            data = b""
        assert data == b"" or data[0] == 0x88, f"{c.user}: want a Close frame, got {data[:8]!r}"
        if data:
            assert int.from_bytes(data[2:4], "big") == 1012, data[:8]
        c.close()

    # leave by death: its process killed, the server expires its session (about 1 s), then it goes
    victim = "ws-b"
    owned = [u for u in USERS if final[u] == victim]
    regs[victim].kill()
    t_gone = node_gone(kz, path, victim, 10)
    wait_until(lambda: victim not in member_ids(proxy), 5, f"{victim} leaving after expiry",
               step=0.01)
    t_dead_leave = time.monotonic() - t_gone
    moved = assert_routed(proxy, owned[:40], everyone)
    assert set(moved.values()) == {"ws-a"}, moved
    print(f"zookeeper convergence: join {t_join:.2f}s (wall {time.monotonic() - t0:.1f}s), "
          f"delete->leave {t_leave:.2f}s, session expiry->leave {t_dead_leave:.2f}s "
          f"({len(theirs)} users moved)")
    assert t_join <= CONVERGE, f"join took {t_join:.2f}s"
    assert t_leave <= CONVERGE, f"leave after delete took {t_leave:.2f}s"
    assert t_dead_leave <= CONVERGE, f"leave after the server's deletion took {t_dead_leave:.2f}s"
