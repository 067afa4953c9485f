"""Consul discovery, end to end: real backends registered at the Consul double
(tests/consul/double.py), real clients through wsring, membership and routing checked against
/ring and /lookup (DESIGN §4, §5, §9; DISCOVERY §1)."""
import json
import os
import signal
import time
from collections import Counter

import pytest

from consul_helpers import (SERVICE, backend, ConsulDouble, LiveConn, consul_body, hellos, land, log,
                            log_lines, member_ids, owners, register, ring, ring_text, set_status,
                            wait_members, wait_until)
from helpers import check_routed

CONVERGE = 2.0  # seconds: the promise for joins, leaves and recovery
USERS = [f"cs-user-{i}" for i in range(300)]


@pytest.fixture(autouse=True)
def _no_consul_env(monkeypatch):
    """wsring reads CONSUL_HTTP_*: nothing from the caller's environment may leak in."""
    for name in list(os.environ):
        if name.startswith("CONSUL_HTTP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def consul(env):
    d = ConsulDouble()
    d.start()
    yield d
    d.stop()


def start(env, consul, ids, weights=None, status="passing"):
    """Backends named by ring id, registered and passing at the double."""
    bs = {i: backend(env, i) for i in ids}
    for i, b in bs.items():
        register(consul, b, weight=(weights or {}).get(i), status=status)
    return bs


def probe_until(port, users, pred, timeout, what):
    """Connects USERS (concurrently) again and again until PRED(landed) holds; seconds taken."""
    return wait_until(lambda: pred(land(port, users, strict=False)), timeout, what, step=0.05)


def assert_routed(proxy, users, backends):
    looks = proxy.lookup_many(users)
    got = hellos(proxy.port, users)
    for u in users:
        check_routed(got[u], u, looks[u], list(backends))
    return {u: looks[u]["owner"] for u in users}


# 1 ------------------------------------------------------------------------------------------
def test_passing_backend_joins_and_critical_backend_leaves_within_2s(env, consul):
    bs = start(env, consul, ["n1/ws-a", "n2/ws-b"])
    new = backend(env, "n3/ws-c")
    everyone = list(bs.values()) + [new]
    proxy = env.wsring(consul_body(consul))
    wait_members(proxy, bs)
    before = assert_routed(proxy, USERS, everyone)
    assert set(before.values()) == set(bs)

    # join: a backend registered and passing gets its users' new connections
    probe = USERS[:25]
    register(consul, new)
    t_join = probe_until(proxy.port, probe, lambda got: new.name in got.values(), 5,
                         f"a new connection landing on {new.name}")
    after = assert_routed(proxy, USERS, everyone)
    theirs = [u for u in USERS if after[u] == new.name]
    moved_elsewhere = [u for u in USERS if after[u] not in (before[u], new.name)]
    assert len(theirs) > 30, f"{new.name} owns only {len(theirs)}/{len(USERS)} users"
    assert not moved_elsewhere, f"adding a member moved keys between others: {moved_elsewhere[:5]}"
    assert any(f"added={new.name}" in ln for ln in log_lines(proxy, "ring_changed")), log(proxy)

    # leave: its check goes critical -> out of the ring, its users go to the new owner
    set_status(consul, new, "critical")
    t_leave = probe_until(proxy.port, theirs[:20], lambda got: new.name not in got.values(), 5,
                          f"{new.name}'s users no longer landing on it")
    assert member_ids(proxy) == set(bs)
    final = assert_routed(proxy, USERS, everyone)
    wrong = {u: (final[u], before[u]) for u in USERS if final[u] != before[u]}
    assert not wrong, f"after the leave, users not back on their old owner: {list(wrong.items())[:5]}"
    assert any(f"removed={new.name}" in ln for ln in log_lines(proxy, "ring_changed")), log(proxy)
    print(f"convergence: join {t_join:.2f}s, leave {t_leave:.2f}s ({len(theirs)} users moved)")
    assert t_join <= CONVERGE, f"join took {t_join:.2f}s"
    assert t_leave <= CONVERGE, f"leave took {t_leave:.2f}s"


# 2 ------------------------------------------------------------------------------------------
def test_empty_service_answers_503_until_a_backend_registers(env, consul):
    sick = backend(env, "n0/ws-sick")
    register(consul, sick, status="critical")  # not passing: must never be a member
    a = backend(env, "n1/ws-a")
    proxy = env.wsring(consul_body(consul), expect_healthy=False)
    wait_until(lambda: ring(proxy)["watch"]["state"] == "ok", 3, "watch state ok")
    for _ in range(4):
        got = land(proxy.port, ["u1", "u2", "u3"], strict=False)
        assert set(got.values()) == {503}, f"empty ring must answer 503: {got}"
        time.sleep(0.25)
    r = ring(proxy)
    assert r["members"] == [] and r["source"] == "consul", r
    assert log_lines(proxy, "consul_no_passing_instance"), log(proxy)

    register(consul, a)
    took = probe_until(proxy.port, ["u1"], lambda got: got["u1"] == a.name, 5,
                       "first connection routed after registration")
    assert member_ids(proxy) == {a.name}
    assert_routed(proxy, ["u1", "u2", "u3"], [a, sick])
    print(f"convergence: empty -> first member routed {took:.2f}s")
    assert took <= CONVERGE, f"first member took {took:.2f}s"


# 3 ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_30s_consul_outage_keeps_ring_and_connections_then_converges(env, consul):
    bs = start(env, consul, ["n1/ws-a", "n2/ws-b", "n3/ws-c"])
    late = backend(env, "n4/ws-d")
    everyone = list(bs.values()) + [late]
    proxy = env.wsring(consul_body(consul, wait="5s", retry_max="1s"))
    wait_members(proxy, bs)
    r0 = ring(proxy)
    fp0, members0 = r0["fingerprint"], r0["members"]
    before = assert_routed(proxy, USERS, everyone)
    live = [LiveConn(proxy.port, u) for u in USERS[:40]]
    for c in live:
        assert c.backend == before[c.user]
    sample = iter(USERS * 10)

    def steady(phase):
        r = ring(proxy)
        assert r["fingerprint"] == fp0 and r["members"] == members0, f"{phase}: ring changed {r}"
        users = [next(sample) for _ in range(10)]
        got = land(proxy.port, users)
        wrong = {u: got[u] for u in users if got[u] != before[u]}
        assert not wrong, f"{phase}: new connections not routed by the last good ring: {wrong}"
        for c in live[:5]:
            c.echo()
        return r

    phases = [("500", {}), ("hang", {}), ("drop", {})]
    counts = {}
    t_phase = {}
    changed = False
    try:
        for mode, kw in phases:  # no `seconds`: each fault lasts until replaced, then cleared
            t_phase[mode] = time.time()
            consul.fault(mode, path="/v1/health/", **kw)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                steady(mode)
                if mode == "drop" and not changed and time.monotonic() > end - 8:
                    register(consul, late)  # a membership change during the outage
                    changed = True
                time.sleep(0.7)
            counts[mode] = consul.count(since=t_phase[mode])
            if mode == "500":
                w = ring(proxy)["watch"]
                assert w["state"] == "retrying" and "500" in w["last_error"], w
            for c in live:
                c.echo()
    finally:
        consul.clear_fault()
    t_rec = time.monotonic()
    took = wait_until(lambda: late.name in member_ids(proxy), 10, f"{late.name} joining after recovery")
    after = assert_routed(proxy, USERS, everyone)
    moved = [u for u in USERS if after[u] != before[u]]
    assert moved and all(after[u] == late.name for u in moved), "only moves to the new member"
    # connections whose owner did not change are untouched (others may be migrated, DESIGN §5)
    for c in live:
        if after[c.user] == before[c.user]:
            c.echo()
        c.close()
    failed = log_lines(proxy, "consul_watch_failed")
    assert 1 <= len(failed) <= 6, "consul_watch_failed must be logged once per change of error, " \
                                  f"got {len(failed)}:\n" + "\n".join(failed)
    assert log_lines(proxy, "consul_watch_recovered"), log(proxy)
    assert ring(proxy)["watch"]["state"] == "ok"
    print(f"outage: queries per 10s phase {counts}; errors logged {len(failed)}; "
          f"change applied {took:.2f}s after recovery (wall {time.monotonic() - t_rec:.2f}s)")
    assert counts["500"] <= 40, f"{counts['500']} queries in 10s of 500s: no back-off"
    assert counts["500"] >= 3, f"only {counts['500']} queries in 10s of 500s: no retries"
    assert took <= CONVERGE, f"change applied {took:.2f}s after Consul recovered"


# 4 ------------------------------------------------------------------------------------------
def _two_member_proxy(env, consul):
    bs = start(env, consul, ["n1/ws-a", "n2/ws-b"])
    x = backend(env, "n3/ws-x")
    proxy = env.wsring(consul_body(consul, wait="5s"))
    wait_members(proxy, bs)
    return bs, x, proxy


@pytest.mark.parametrize("mode,needle", [("garbage", "invalid"), ("no_index", "X-Consul-Index")])
def test_bad_answers_keep_the_ring_then_follow_changes(env, consul, mode, needle):
    bs, x, proxy = _two_member_proxy(env, consul)
    fp0 = ring(proxy)["fingerprint"]
    consul.fault(mode)
    register(consul, x)  # wakes the blocked query: its answer is broken
    time.sleep(2.0)
    r = ring(proxy)
    assert r["fingerprint"] == fp0 and x.name not in member_ids(proxy), \
        f"{mode}: a broken answer changed the ring: {r}"
    assert r["watch"]["state"] == "retrying", r["watch"]
    failed = log_lines(proxy, "consul_watch_failed")
    assert len(failed) == 1 and needle in failed[0], f"{mode}: want one line with {needle!r}: {failed}"
    assert_routed(proxy, USERS[:60], list(bs.values()))
    consul.clear_fault()
    took = wait_until(lambda: x.name in member_ids(proxy), 10, f"{x.name} joining after the fault")
    assert log_lines(proxy, "consul_watch_recovered"), log(proxy)
    assert_routed(proxy, USERS[:60], list(bs.values()) + [x])
    set_status(consul, x, "critical")
    left = wait_until(lambda: x.name not in member_ids(proxy), 10, f"{x.name} leaving")
    print(f"{mode}: change applied {took:.2f}s after the fault ended, next change {left:.2f}s")
    assert took <= CONVERGE and left <= CONVERGE


def test_index_reset_requeries_without_blocking_then_follows(env, consul):
    bs, x, proxy = _two_member_proxy(env, consul)
    r0 = ring(proxy)
    idx0 = r0["watch"]["index"]
    assert idx0 > 1, r0["watch"]
    changes0 = len(log_lines(proxy, "ring_changed"))
    time.sleep(0.3)  # the watch is blocked now
    t_reset = time.time()
    consul.fault("index_reset", to=1)  # snapshot restore: blocked queries return at once, index 1
    wait_until(lambda: log_lines(proxy, "consul_index_reset"), 2, "consul_index_reset logged")
    reset = log_lines(proxy, "consul_index_reset")
    assert len(reset) == 1 and f"from={idx0}" in reset[0] and "to=1" in reset[0], reset
    time.sleep(0.5)
    queries = [e["query"] for e in consul.stats(since=t_reset)["log"]
               if e["endpoint"] == "health.service"]
    assert queries, "no query after the reset"
    first = [e["t"] for e in consul.stats(since=t_reset)["log"] if e["endpoint"] == "health.service"][0]
    assert first - t_reset < 1.0, f"re-query {first - t_reset:.2f}s after the reset"
    assert "index=" not in queries[0] or "index=0" in queries[0], \
        f"after a reset the re-query must not block: {queries}"
    assert any("index=1&" in q or q.endswith("index=1") for q in queries[1:]), \
        f"then it must block on the new index 1: {queries}"
    r1 = ring(proxy)
    assert r1["fingerprint"] == r0["fingerprint"] and r1["members"] == r0["members"], r1
    assert len(log_lines(proxy, "ring_changed")) == changes0, "same members after a reset: no change"
    assert not log_lines(proxy, "consul_watch_failed"), log(proxy)

    t0 = time.monotonic()
    register(consul, x)  # index 2 now: a client still blocked on the old index would miss it
    took = wait_until(lambda: x.name in member_ids(proxy), 10, f"{x.name} joining after the reset")
    assert_routed(proxy, USERS[:60], list(bs.values()) + [x])
    print(f"index_reset: re-query {queries[:2]}; change applied {took:.2f}s "
          f"({time.monotonic() - t0:.2f}s)")
    assert took <= CONVERGE


# 5 ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_idle_cluster_blocks_instead_of_polling(env, consul):
    bs = start(env, consul, ["n1/ws-a", "n2/ws-b"])
    proxy = env.wsring(consul_body(consul, wait="10s"))
    wait_members(proxy, bs)
    t0 = time.time()
    time.sleep(60)
    st = consul.stats(since=t0)
    queries = [e["query"] for e in st["log"] if e["endpoint"] == "health.service"]
    inflight = consul.blocking()
    print(f"idle: {len(queries)} health queries in 60s with wait 10s; e.g. {queries[:2]}")
    assert len(queries) <= 8, f"{len(queries)} health queries in 60s (wait 10s): polling?"
    assert len(queries) >= 4, f"only {len(queries)} queries in 60s with wait 10s"
    assert all("index=" in q and "wait=10" in q for q in queries), queries
    assert len(inflight) == 1 and 9.5 <= inflight[0]["wait"] <= 10.5, inflight
    assert member_ids(proxy) == set(bs)
    assert not log_lines(proxy, "consul_watch_failed"), log(proxy)


# 6 ------------------------------------------------------------------------------------------
def test_every_proxy_and_a_static_conf_compute_the_same_owner(env, consul):
    weights = {"n1/ws-a": 1, "n1/ws-b": 2, "n2/ws-a": 1, "n3/ws-c": 3}
    bs = start(env, consul, list(weights), weights=weights)
    extra = backend(env, "n4/ws-e")
    node, sid = extra.name.split("/")
    consul.register(node, sid, SERVICE, "", extra.port)  # no Service.Address: Node.Address
    bs[extra.name] = extra
    weights[extra.name] = 1
    users = [f"same-{i}" for i in range(1000)]

    p1 = env.wsring(consul_body(consul), name="wsring-1")
    p2 = env.wsring(consul_body(consul), name="wsring-2")
    for p in (p1, p2):
        wait_members(p, bs)
    static = "".join(f"backend {i} {b.address} weight {weights[i]}\n" for i, b in sorted(bs.items()))
    ps = env.wsring("key query:user\n" + static, name="wsring-static")

    def fingerprints(p):
        r = ring(p)
        return r["fingerprint"], r["membership_fingerprint"]

    def same_everywhere(proxies, label):
        fps = {p.proc.name: fingerprints(p) for p in proxies}
        assert len(set(fps.values())) == 1, f"{label}: fingerprints differ {fps}"
        ref = proxies[0].lookup_many(users)
        for p in proxies[1:]:
            other = p.lookup_many(users)
            diff = [u for u in users if (ref[u]["owner"], ref[u]["address"])
                    != (other[u]["owner"], other[u]["address"])]
            assert not diff, f"{label}: {p.proc.name} routes {len(diff)}/1000 users differently"
        return ref

    ref = same_everywhere([p1, p2], "two consul proxies")
    consul.shuffle(True)
    p3 = env.wsring(consul_body(consul), name="wsring-3")  # its first answer is shuffled
    wait_members(p3, bs)
    late = backend(env, "n5/ws-f")
    register(consul, late)  # everyone re-reads a shuffled answer
    bs[late.name] = late
    weights[late.name] = 1
    for p in (p1, p2, p3):
        wait_members(p, bs)
    env.stop(ps.proc)
    static = "".join(f"backend {i} {b.address} weight {weights[i]}\n" for i, b in sorted(bs.items()))
    ps = env.wsring("key query:user\n" + static, name="wsring-static2")
    ref = same_everywhere([p1, p2, p3, ps], "shuffled answers and a static conf")
    assert ring(ps)["source"] == "static"
    # and the connections really land there, through either consul proxy
    sample = users[::20]
    for p in (p1, p3):
        got = hellos(p.port, sample)
        for u in sample:
            check_routed(got[u], u, ref[u], list(bs.values()))
    print(f"same owner: 1000 users x 4 proxies, fingerprint {fingerprints(p1)}, "
          f"spread {dict(Counter(v['owner'] for v in ref.values()))}")


# 7 ------------------------------------------------------------------------------------------
def test_acl_token_wrong_right_env_and_never_logged(env, monkeypatch):
    secret, wrong = "5e3c-acl-secret-7f1d", "wrong-token-4b2a"
    with ConsulDouble(acl_token=secret) as consul:
        bs = start(env, consul, ["n1/ws-a", "n2/ws-b"])
        (env.tmp / "wrong.token").write_text(wrong + "\n")
        (env.tmp / "right.token").write_text(secret + "\n")
        bad = env.wsring(consul_body(consul, block_extra=f"    token_file {env.tmp}/wrong.token\n"),
                         name="wsring-wrong", expect_healthy=False)
        good = env.wsring(consul_body(consul, block_extra=f"    token_file {env.tmp}/right.token\n"),
                          name="wsring-file")
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", secret)
        by_env = env.wsring(consul_body(consul), name="wsring-env")
        monkeypatch.delenv("CONSUL_HTTP_TOKEN")
        anon = env.wsring(consul_body(consul), name="wsring-anon", expect_healthy=False)

        for p in (good, by_env):
            wait_members(p, bs)
            assert_routed(p, USERS[:50], bs.values())
        wait_until(lambda: log_lines(bad, "consul_watch_failed"), 3, "ACL error logged")
        time.sleep(2.5)  # several retries
        failed = log_lines(bad, "consul_watch_failed")
        assert len(failed) == 1, f"one line per change of error, got {failed}"
        assert "HTTP 403" in failed[0] and "ACL" in failed[0], failed[0]
        w = ring(bad)["watch"]
        assert w["state"] == "retrying" and "403" in w["last_error"], w
        assert ring(bad)["members"] == []
        assert set(land(bad.port, ["u1", "u2"], strict=False).values()) == {503}
        assert w["queries"] >= 3, f"a refused token must be retried (at retry_max): {w}"
        # anonymous reads are filtered to []: an empty ring, with a hint
        wait_until(lambda: log_lines(anon, "consul_no_passing_instance"), 3, "no passing logged")
        assert ring(anon)["members"] == []
        for p in (bad, good, by_env, anon):
            for where, text in (("log", log(p)), ("/ring", ring_text(p))):
                for tok in (secret, wrong):
                    assert tok not in text, f"{p.proc.name}: token {tok!r} appears in its {where}"


# 8 ------------------------------------------------------------------------------------------
def test_self_registration_passes_its_check_and_is_removed_on_sigterm(env, consul):
    bs = start(env, consul, ["n1/ws-a"])
    proxy = env.wsring(consul_body(consul, block_extra="    register  on\n"))
    wait_members(proxy, bs)

    def passing_wsring():
        code, _, body = consul.health("wsring", passing=1)
        return code == 200 and json.loads(body)

    took = wait_until(passing_wsring, 15, "service wsring registered and passing", step=0.2)
    entry = passing_wsring()
    assert len(entry) == 1, entry
    svc, checks = entry[0]["Service"], entry[0]["Checks"]
    assert svc["Service"] == "wsring" and svc["Port"] == proxy.port, svc
    http_checks = [c for c in checks if c["ServiceName"] == "wsring"]
    assert http_checks and all(c["Status"] == "passing" for c in http_checks), checks
    assert f"127.0.0.1:{proxy.admin_port}/healthz" in json.dumps(http_checks), \
        f"the check must poll the admin /healthz: {http_checks}"
    assert log_lines(proxy, "consul_registered"), log(proxy)
    print("register: check", [(c["Status"], c["Output"][:60]) for c in http_checks])
    # the backends' service is still watched as usual
    assert_routed(proxy, USERS[:20], bs.values())

    t0 = time.monotonic()
    os.kill(proxy.pid, signal.SIGTERM)
    code = proxy.proc.popen.wait(10)
    gone = time.monotonic() - t0
    assert code == 0, f"wsring exited {code} on SIGTERM"
    code, _, body = consul.request("GET", "/v1/agent/services")
    assert code == 200 and not [s for s in json.loads(body).values() if s["Service"] == "wsring"], \
        f"wsring still registered after SIGTERM: {body!r}"
    assert log_lines(proxy, "consul_deregistered"), log(proxy)
    print(f"register: passing after {took:.1f}s (check interval 5s), deregistered and exited "
          f"{gone:.2f}s after SIGTERM")


# 9 ------------------------------------------------------------------------------------------
def test_weight_3_member_gets_about_3x_the_users(env, consul):
    weights = {"n1/ws-heavy": 3, "n2/ws-a": 1, "n3/ws-b": 1}
    bs = start(env, consul, list(weights), weights=weights)
    proxy = env.wsring(consul_body(consul))
    wait_members(proxy, bs)
    assert {m["id"]: m["weight"] for m in ring(proxy)["members"]} == weights
    users = [f"w-{i}" for i in range(3000)]
    share = Counter(owners(proxy, users).values())
    for light in ("n2/ws-a", "n3/ws-b"):
        ratio = share["n1/ws-heavy"] / share[light]
        assert 2.4 <= ratio <= 3.6, f"weight 3 vs 1: {ratio:.2f}x ({dict(share)})"
    assert_routed(proxy, users[::30], bs.values())
    print(f"weights: 3000 users {dict(share)}")
