"""etcd discovery and state_file, end to end: a real etcd 3.4 (one per session), real backends
registered on leases in etcd's endpoints.Manager format, real WebSocket clients through wsring,
membership and routing checked against /ring and /lookup (DESIGN §11, DISCOVERY §2)."""
import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import websockets

from consul_helpers import (ConsulDouble, LiveConn, backend, consul_body, hellos, land, log,
                            log_lines, member_ids, owners, register, ring, wait_members,
                            wait_until)
from etcd_helpers import Etcd, HoldRelay, Pki, Registry, member_value, require_etcd
from helpers import WSRING_BIN, check_routed, free_ports, http_get, ws_url

CONVERGE = 2.0  # seconds: joins and leaves
RECOVER = 5.0   # seconds: following etcd again once it is back
USERS = [f"et-user-{i}" for i in range(300)]
_prefixes = itertools.count()


@pytest.fixture
def reg(etcd):
    """A fresh prefix per test: tests share the server, never its keys."""
    return Registry(etcd, f"/services/ws-{os.getpid()}-{next(_prefixes)}/")


def etcd_body(endpoints, prefix, ring_hold="200ms", extra="", block_extra=""):
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    eps = "".join(f"    endpoints {u}\n" for u in endpoints)
    return (f"key query:user\nring_hold {ring_hold}\ndiscovery etcd\n{extra}"
            f"etcd {{\n{eps}    prefix {prefix}\n{block_extra}}}\n")


def start(env, reg, names, **kw):
    bs = {n: backend(env, n) for n in names}
    for b in bs.values():
        reg.register(b, **kw)
    return bs


async def _quick_hello(port, user):
    """Where a new connection lands (backend name), or the error. A short close_timeout: a
    probe that crosses a migration must not stall the round (a Close crossing wsring's 1012
    leaves the client waiting close_grace for the TCP close; see the report on issue 5)."""
    try:
        async with websockets.connect(ws_url(port, user), open_timeout=3, close_timeout=0.2,
                                      compression=None, ping_interval=None) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 3))["backend"]
    except Exception as e:  # reported by the predicate's caller
        return e


async def _quick_land(port, users):
    return await asyncio.gather(*(_quick_hello(port, u) for u in users))


def probe_until(port, users, pred, timeout, what):
    """Connects USERS again and again until PRED(user -> backend) holds; the seconds it took."""
    def once():
        return pred(dict(zip(users, asyncio.run(_quick_land(port, users)))))
    return wait_until(once, timeout, what, step=0.05)


def assert_routed(proxy, users, backends):
    looks = proxy.lookup_many(users)
    got = hellos(proxy.port, users)
    for u in users:
        check_routed(got[u], u, looks[u], list(backends))
    return {u: looks[u]["owner"] for u in users}


def changes(proxy):
    return log_lines(proxy, "ring_changed")


def metrics(proxy):
    status, body = http_get(proxy.admin_port, "/metrics")
    assert status == 200
    return body.decode()


# 1 ------------------------------------------------------------------------------------------
def test_join_deregister_and_lease_expiry_within_2s(env, etcd, reg):
    bs = start(env, reg, ["ws-a", "ws-b"])
    new = backend(env, "ws-c")
    short = backend(env, "ws-d")
    everyone = list(bs.values()) + [new, short]
    proxy = env.wsring(etcd_body(etcd.url, reg.prefix))
    wait_members(proxy, bs)
    r = ring(proxy)
    assert r["source"] == "etcd" and r["watch"]["state"] == "ok", r
    before = assert_routed(proxy, USERS, everyone)

    # join: a key put on a lease gets its users' new connections
    reg.register(new, weight=2)
    t_join = probe_until(proxy.port, USERS[:25], lambda got: new.name in got.values(), 5,
                         f"a new connection landing on {new.name}")
    after = assert_routed(proxy, USERS, everyone)
    theirs = [u for u in USERS if after[u] == new.name]
    assert len(theirs) > 50, f"{new.name} (weight 2) owns only {len(theirs)}/{len(USERS)}"
    assert not [u for u in USERS if after[u] not in (before[u], new.name)]
    assert [m["weight"] for m in ring(proxy)["members"] if m["id"] == new.name] == [2]

    # deregister: the key deleted -> out of the ring, its users back on their old owners
    reg.deregister(new)
    t_leave = probe_until(proxy.port, theirs[:20], lambda got: new.name not in got.values(), 5,
                          f"{new.name}'s users no longer landing on it")
    final = assert_routed(proxy, USERS, everyone)
    assert final == before, "after the deregistration, users not back on their old owners"

    # lease expiry: a key on a 2 s lease with no keepalive; etcd deletes it, wsring follows
    reg.register(short, ttl=2)
    wait_members(proxy, list(bs) + [short.name], timeout=CONVERGE + 1)
    key = reg.prefix + short.name
    t_gone = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = time.monotonic()
        if t_gone is None and key not in etcd.keys(reg.prefix):
            t_gone = now
        if t_gone is not None and short.name not in member_ids(proxy):
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"expired lease: etcd gone={t_gone is not None}, ring "
                             f"{member_ids(proxy)}\n{log(proxy)}")
    t_expire = time.monotonic() - t_gone
    assert owners(proxy, USERS) == before
    assert any(f"removed={short.name}" in ln for ln in changes(proxy)), log(proxy)
    m = metrics(proxy)
    assert 'wsring_discovery_up{source="etcd"} 1' in m and 'source="etcd"} 1\n' in m, m
    print(f"convergence: join {t_join:.2f}s, deregister {t_leave:.2f}s, "
          f"lease expiry {t_expire:.2f}s after etcd deleted the key")
    assert t_join <= CONVERGE and t_leave <= CONVERGE and t_expire <= CONVERGE


# 2 ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_etcd_stopped_then_killed_keeps_ring_and_connections_then_converges(env, etcd, reg):
    bs = start(env, reg, ["ws-a", "ws-b", "ws-c"])
    late = backend(env, "ws-late")
    everyone = list(bs.values()) + [late]
    proxy = env.wsring(etcd_body(etcd.url, reg.prefix))
    wait_members(proxy, bs)
    r0 = ring(proxy)
    before = assert_routed(proxy, USERS, everyone)
    live = [LiveConn(proxy.port, u) for u in USERS[:30]]
    sample = itertools.cycle(USERS)

    def steady(phase):
        r = ring(proxy)
        assert r["fingerprint"] == r0["fingerprint"] and r["members"] == r0["members"], phase
        for c in live:
            c.echo()
        users = [next(sample) for _ in range(10)]
        got = land(proxy.port, users)
        assert all(got[u] == before[u] for u in users), f"{phase}: {got}"

    try:
        etcd.sigstop()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10.5:
            steady("etcd stopped")
            time.sleep(0.5)
        etcd.sigkill()
        for _ in range(4):
            steady("etcd killed")
            time.sleep(0.5)
        assert ring(proxy)["watch"]["state"] == "retrying", ring(proxy)
    finally:
        if not etcd.alive():
            etcd.start()  # same data dir and ports
    try:
        t_back = time.monotonic()
        for c in live:
            c.echo()  # every live connection survived the outage
        reg.register(late)  # the first change after the restart
        wait_until(lambda: late.name in member_ids(proxy), RECOVER + 1,
                   "wsring following etcd after its restart")
        took = time.monotonic() - t_back
        wait_until(lambda: ring(proxy)["watch"]["state"] == "ok", 2, "watch state ok")
        assert log_lines(proxy, "etcd_watch_failed") and log_lines(proxy, "etcd_watch_recovered")
        assert len(changes(proxy)) == 2, changes(proxy)  # the first list, then the late join
        after = owners(proxy, USERS)
        assert all(after[u] in (before[u], late.name) for u in USERS)
        for c in live:
            if after[c.user] == before[c.user]:
                c.echo()  # those the join did not move stay untouched
    finally:
        for c in live:
            c.close()
    print(f"convergence after etcd restart: {took:.2f}s")
    assert took <= RECOVER, f"followed etcd {took:.2f}s after it came back"


# 3 ------------------------------------------------------------------------------------------
def test_compaction_past_the_watch_revision_relists_without_spurious_change(env, etcd, reg):
    relay = HoldRelay(etcd.client_port)
    try:
        bs = start(env, reg, ["ws-a", "ws-b"])
        extra = backend(env, "ws-c")
        proxy = env.wsring(etcd_body(relay.url, reg.prefix))
        wait_members(proxy, bs)
        fp0 = ring(proxy)["fingerprint"]
        n0 = len(changes(proxy))

        def compact_while_held(change):
            """Cut the watch; let the re-list through and hold the new watch (from R+1) while
            CHANGE() writes and the store is compacted past R; then let the watch go."""
            relay.hold_watches()
            relay.cut()
            wait_until(lambda: relay.held >= 1, 10, "wsring's next watch request")
            change()
            etcd.put("/wsring-test/filler", "x")  # two writes: compacted strictly past R + 1
            etcd.put("/wsring-test/filler", "y")
            etcd.compact(etcd.revision())
            relay.release()
            return wait_until(lambda: len(log_lines(proxy, "etcd_watch_compacted")) >= compacted + 1,
                              10, "etcd_watch_compacted")

        # 1: no member change across the compaction: no ring change at all
        compacted = 0
        compact_while_held(lambda: None)
        wait_until(lambda: ring(proxy)["watch"]["state"] == "ok", 10, "watch ok after re-list")
        time.sleep(0.5)
        assert ring(proxy)["fingerprint"] == fp0
        assert len(changes(proxy)) == n0, changes(proxy)

        # 2: members changed behind the compaction (one added, one added and removed again):
        # the re-list finds exactly the new set, in one ring change
        compacted = 1
        transient = backend(env, "ws-transient")
        compact_while_held(lambda: (reg.register(extra), reg.register(transient),
                                    reg.deregister(transient)))
        wait_members(proxy, list(bs) + [extra.name], timeout=5)
        time.sleep(0.5)
        new = changes(proxy)[n0:]
        assert len(new) == 1 and f"added={extra.name} " in new[0] + " " and "removed=-" in new[0], new
        assert "ws-transient" not in log(proxy).split("event=etcd_watch_started", 1)[1]
        assert ring(proxy)["watch"]["compactions"] == 2
        assert_routed(proxy, USERS[:100], list(bs.values()) + [extra])
    finally:
        relay.close()


# 4 ------------------------------------------------------------------------------------------
def test_restart_with_etcd_down_routes_on_the_state_file(env, etcd, reg, tmp_path):
    state = tmp_path / "members.json"
    bs = start(env, reg, ["ws-a", "ws-b", "ws-c", "ws-d"])
    reg.register(bs["ws-b"], weight=3, public_url="wss://b.example.com")
    body = etcd_body(etcd.url, reg.prefix, extra=f"state_file {state}\n")
    proxy = env.wsring(body)
    wait_members(proxy, bs)
    wait_until(lambda: state.exists() and len(json.loads(state.read_text())["members"]) == 4,
               3, "state file written")
    saved = json.loads(state.read_text())
    assert saved["source"] == "etcd"
    assert {m["id"]: m.get("public_url") for m in saved["members"]}["ws-b"] == "wss://b.example.com"
    users = [f"sf-user-{i}" for i in range(1000)]
    r0 = ring(proxy)
    own0 = owners(proxy, users)
    few = users[:12]
    landed0 = land(proxy.port, few)
    assert landed0 == {u: own0[u] for u in few}
    env.stop(proxy.proc)

    etcd.stop()
    try:
        again = env.wsring(body, expect_healthy=False, name="wsring-restarted")
        took = wait_until(lambda: ring(again)["source"] == "state_file", 5,
                          "/ring source state_file")
        r1 = ring(again)
        assert r1["members"] == r0["members"] and r1["fingerprint"] == r0["fingerprint"]
        assert owners(again, users) == own0, "routing differs from before the restart"
        assert land(again.port, few) == landed0
        assert log_lines(again, "state_file_in_force"), log(again)
        assert ring(again)["watch"]["state"] == "retrying"
        m = metrics(again)
        assert 'hash="ring",source="state_file"} 1' in m, m
        assert 'wsring_discovery_up{source="etcd"} 0' in m, m
        print(f"saved set in force {took:.2f}s after start; 1,000 owners and 12 connections "
              "as before")
    finally:
        etcd.start()
    wait_until(lambda: ring(again)["source"] == "etcd", RECOVER, "/ring source back to etcd")
    assert ring(again)["fingerprint"] == r0["fingerprint"]
    assert len(changes(again)) == 1, changes(again)  # the saved set only: etcd agreed with it
    assert log_lines(again, "state_file_superseded"), log(again)


# 5 ------------------------------------------------------------------------------------------
def test_corrupt_or_unwritable_state_file(env, etcd, reg, tmp_path):
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there: etcd is "down"
    state = tmp_path / "members.json"
    state.write_text('{"version":1,"members":[{"id":"x","address":"127.0.0.1:1","weight":0}]}')
    proxy = env.wsring(etcd_body(dead, reg.prefix, extra=f"state_file {state}\n"),
                       expect_healthy=False)
    wait_until(lambda: log_lines(proxy, "state_file_unusable"), 3, "state_file_unusable logged")
    assert "weight outside 1..1000" in log_lines(proxy, "state_file_unusable")[0]
    time.sleep(1.5)  # past the grace time: nothing to fall back on
    r = ring(proxy)
    assert r["members"] == [] and r["source"] == "etcd", r
    assert set(land(proxy.port, ["u1", "u2"], strict=False).values()) == {503}
    env.stop(proxy.proc)

    # a state file that cannot be written: logged, routing unaffected
    a = backend(env, "ws-a")
    reg.register(a)
    proxy = env.wsring(etcd_body(etcd.url, reg.prefix,
                                 extra=f"state_file {tmp_path}/no-such-dir/m.json\n"),
                       name="wsring-unwritable")
    wait_members(proxy, [a.name])
    wait_until(lambda: log_lines(proxy, "state_file_write_failed"), 3, "write failure logged")
    assert "No such file or directory" in log_lines(proxy, "state_file_write_failed")[0]
    assert land(proxy.port, ["u1"]) == {"u1": a.name}


# 6 ------------------------------------------------------------------------------------------
def test_endpoint_failover_and_bad_values_keep_the_last_good_set(env, etcd, reg):
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    a, b = backend(env, "ws-a"), backend(env, "ws-b")
    reg.register(a)
    reg.register(b)
    proxy = env.wsring(etcd_body([dead, etcd.url], reg.prefix))
    wait_members(proxy, [a.name, b.name], timeout=5)  # whichever endpoint it tried first
    fp = ring(proxy)["fingerprint"]
    # a value that is not the endpoints format: refused, the last good set stays
    etcd.put(reg.prefix + "ws-broken", "127.0.0.1:9999")
    wait_until(lambda: any("kv.value is not a JSON object" in ln
                           for ln in log_lines(proxy, "etcd_watch_failed")), 5, "refusal logged")
    assert ring(proxy)["fingerprint"] == fp
    assert land(proxy.port, ["u1", "u2"]).keys() == {"u1", "u2"}
    # fixed by its writer: followed again (the back-off is capped at 4 s)
    etcd.put(reg.prefix + "ws-broken", member_value(a.address))
    # (up to two capped back-offs: the next try may go to the dead endpoint first)
    wait_members(proxy, [a.name, b.name, "ws-broken"], timeout=2 * RECOVER)


# 7 ------------------------------------------------------------------------------------------
def test_state_file_with_consul(env, tmp_path):
    state = tmp_path / "members.json"
    double = ConsulDouble()
    double.start()
    try:
        bs = {n: backend(env, n) for n in ["n1/ws-a", "n2/ws-b", "n3/ws-c"]}
        for b in bs.values():
            register(double, b)
        body = consul_body(double, extra=f"state_file {state}\n")
        proxy = env.wsring(body)
        wait_members(proxy, bs)
        wait_until(lambda: state.exists() and len(json.loads(state.read_text())["members"]) == 3,
                   3, "state file written")
        assert json.loads(state.read_text())["source"] == "consul"
        users = [f"cs-user-{i}" for i in range(300)]
        own0 = owners(proxy, users)
        r0 = ring(proxy)
        env.stop(proxy.proc)
    finally:
        double.stop()
    again = env.wsring(body, expect_healthy=False, name="wsring-restarted")
    wait_until(lambda: ring(again)["source"] == "state_file", 5, "/ring source state_file")
    assert ring(again)["fingerprint"] == r0["fingerprint"]
    assert owners(again, users) == own0
    assert land(again.port, users[:5]) == {u: own0[u] for u in users[:5]}
    assert log_lines(again, "consul_watch_failed") and log_lines(again, "state_file_in_force")


# 8 ------------------------------------------------------------------------------------------
def test_etcd_auth_token_from_a_password_file(env, tmp_path):
    """A second etcd with auth on (the session one stays open): wsring authenticates as a user
    who may only read the prefix; a wrong password is refused, logged, and never printed."""
    require_etcd()
    secured = Etcd(str(tmp_path))
    secured.start()
    try:
        ctl = [shutil.which("etcdctl") or "/usr/bin/etcdctl", "--endpoints", secured.url]
        root = ctl + ["--user", "root:r00t-pw"]
        envv = dict(os.environ, ETCDCTL_API="3")
        a = backend(env, "ws-a")
        for argv in (ctl + ["user", "add", "root:r00t-pw"], ctl + ["role", "add", "wsread"],
                     ctl + ["role", "grant-permission", "wsread", "--prefix=true", "read",
                            "/secure/ws/"],
                     ctl + ["user", "add", "wsring:s3cret-pw"],
                     ctl + ["user", "grant-role", "wsring", "wsread"],
                     ctl + ["auth", "enable"],
                     root + ["put", "/secure/ws/ws-a", member_value(a.address)]):
            subprocess.run(argv, env=envv, check=True, capture_output=True, timeout=20)
        pw = tmp_path / "etcd.password"
        pw.write_text("s3cret-pw\n")
        auth = f"    username wsring\n    password_file {pw}\n"
        proxy = env.wsring(etcd_body(secured.url, "/secure/ws/", block_extra=auth))
        wait_members(proxy, [a.name])
        b = backend(env, "ws-b")
        subprocess.run(root + ["put", "/secure/ws/ws-b", member_value(b.address)], env=envv,
                       check=True, capture_output=True, timeout=20)
        wait_members(proxy, [a.name, b.name], timeout=CONVERGE)
        assert land(proxy.port, ["u1", "u2", "u3"]).keys() == {"u1", "u2", "u3"}

        # a restarted etcd forgets its tokens: wsring is refused once, authenticates again
        secured.sigkill()
        secured.start()
        t_back = time.monotonic()
        c = backend(env, "ws-c")
        subprocess.run(root + ["put", "/secure/ws/ws-c", member_value(c.address)], env=envv,
                       check=True, capture_output=True, timeout=20)
        wait_members(proxy, [a.name, b.name, c.name], timeout=RECOVER + 2)
        print(f"followed a restarted etcd with auth {time.monotonic() - t_back:.2f}s after it "
              "was back")

        pw.write_text("wrong-pw\n")
        bad = env.wsring(etcd_body(secured.url, "/secure/ws/", block_extra=auth),
                         expect_healthy=False, name="wsring-badpw")
        wait_until(lambda: log_lines(bad, "etcd_watch_failed"), 5, "auth failure logged")
        assert "authentication failed" in log_lines(bad, "etcd_watch_failed")[0]
        assert ring(bad)["members"] == [] and ring(bad)["watch"]["state"] == "retrying"
        for p in (proxy, bad):
            assert "s3cret" not in log(p) and "wrong-pw" not in log(p)
            assert "s3cret" not in json.dumps(ring(p)) and "wrong-pw" not in json.dumps(ring(p))
    finally:
        secured.stop()


def test_missing_password_file_refuses_to_start(env, etcd, tmp_path):
    conf = env.write_conf(f"listen 127.0.0.1:{free_ports(1)[0]}\nadmin off\n" +
                          etcd_body(etcd.url, "/p/", block_extra=(
                              f"    username u\n    password_file {tmp_path}/nope\n")), "pw.conf")
    r = subprocess.run([str(WSRING_BIN), "-c", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1, r
    assert f"etcd password_file {tmp_path}/nope: No such file or directory" in r.stderr, r.stderr


# 9 ------------------------------------------------------------------------------------------
def test_etcd_over_tls_with_a_client_certificate(env, tmp_path):
    """A second etcd serving https only and requiring client certificates: wsring with ca_file,
    cert_file and key_file follows it; without the client certificate it is refused (logged)."""
    require_etcd()
    pki = Pki(str(tmp_path))
    secured = Etcd(str(tmp_path), tls=pki)
    secured.start()
    try:
        reg = Registry(secured, "/tls/ws/")
        a = backend(env, "ws-a")
        reg.register(a)
        files = (f"    ca_file {pki.ca}\n    cert_file {pki.client_cert}\n"
                 f"    key_file {pki.client_key}\n")
        proxy = env.wsring(etcd_body(secured.url, reg.prefix, block_extra=files))
        wait_members(proxy, [a.name])
        b = backend(env, "ws-b")
        reg.register(b)
        wait_members(proxy, [a.name, b.name], timeout=CONVERGE)
        assert ring(proxy)["watch"]["endpoint"].startswith("https://")

        nocert = env.wsring(etcd_body(secured.url, reg.prefix,
                                      block_extra=f"    ca_file {pki.ca}\n"),
                            expect_healthy=False, name="wsring-nocert")
        wait_until(lambda: log_lines(nocert, "etcd_watch_failed"), 10, "TLS refusal logged")
        assert ring(nocert)["members"] == []
    finally:
        secured.stop()


# 10 -----------------------------------------------------------------------------------------
def test_sighup_restarts_the_watch_on_the_new_prefix(env, etcd, reg):
    a, b = backend(env, "ws-a"), backend(env, "ws-b")
    reg.register(a)
    other = Registry(etcd, reg.prefix.rstrip("/") + "-other/")
    other.register(b)
    proxy = env.wsring(etcd_body(etcd.url, reg.prefix))
    wait_members(proxy, [a.name])
    text = proxy.conf_path.read_text()
    proxy.conf_path.write_text(text.replace(f"prefix {reg.prefix}", f"prefix {other.prefix}"))
    os.kill(proxy.pid, signal.SIGHUP)
    wait_members(proxy, [b.name], timeout=CONVERGE)
    assert ring(proxy)["watch"]["prefix"] == other.prefix
    assert land(proxy.port, ["u1"]) == {"u1": b.name}
    # a state_file added by a reload gets the members in force at once
    state = proxy.conf_path.parent / "reloaded-members.json"
    text = proxy.conf_path.read_text()
    proxy.conf_path.write_text(text.replace("discovery etcd\n", f"discovery etcd\nstate_file {state}\n"))
    os.kill(proxy.pid, signal.SIGHUP)
    wait_until(lambda: state.exists() and [m["id"] for m in json.loads(state.read_text())["members"]]
               == [b.name], 3, "state file written after the reload")
    # changing the source itself needs a restart: refused, the etcd watch goes on
    proxy.conf_path.write_text(text.replace("discovery etcd", "discovery static").split("etcd {")[0])
    os.kill(proxy.pid, signal.SIGHUP)
    wait_until(lambda: log_lines(proxy, "reload_failed"), 3, "reload refused")
    c = backend(env, "ws-c")
    other.register(c)
    wait_members(proxy, [b.name, c.name], timeout=CONVERGE)
