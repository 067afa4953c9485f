"""etcd and ZooKeeper agree (issue 9, DESIGN §4, §11): two wsring instances, one fed by a real etcd
and one by a real ZooKeeper, given the same member set (same ids, addresses and weights, each in
its ecosystem's own format) show the same fingerprint and route 1,000 users identically; real
WebSocket clients through each land on the same backends."""
import os

from consul_helpers import land, member_ids, ring, wait_until
from etcd_helpers import Registry
from test_etcd import etcd_body
from zk_helpers import Registration, backend, zk_body

WEIGHTS = {"ws-a": 1, "ws-b": 2, "ws-c": 3}
USERS = [f"agree-user-{i}" for i in range(1000)]


def test_etcd_and_zookeeper_fed_proxies_show_one_fingerprint_and_route_alike(env, etcd, zk_up):
    bs = {n: backend(env, n) for n in WEIGHTS}
    reg = Registry(etcd, f"/services/agree-{os.getpid()}/")
    for n, b in bs.items():
        reg.register(b, weight=WEIGHTS[n])
    path = f"/services/agree-{os.getpid()}"
    regs = [Registration(env, zk_up, path, bs[n], n, weight=WEIGHTS[n]) for n in WEIGHTS]
    by_etcd = env.wsring(etcd_body(etcd.url, reg.prefix), name="wsring-etcd")
    by_zk = env.wsring(zk_body(zk_up, path), name="wsring-zk")
    for proxy in (by_etcd, by_zk):
        wait_until(lambda: member_ids(proxy) == set(WEIGHTS), 5, "all three members")

    re, rz = ring(by_etcd), ring(by_zk)
    assert (re["source"], rz["source"]) == ("etcd", "zookeeper")
    assert re["fingerprint"] == rz["fingerprint"], (re, rz)
    strip = [{k: m[k] for k in ("id", "address", "weight")} for m in re["members"]]
    assert strip == [{k: m[k] for k in ("id", "address", "weight")} for m in rz["members"]]
    assert {m["id"]: m["weight"] for m in re["members"]} == WEIGHTS

    le, lz = by_etcd.lookup_many(USERS), by_zk.lookup_many(USERS)
    differ = [u for u in USERS if le[u]["owner"] != lz[u]["owner"]]
    assert not differ, f"{len(differ)} of 1000 users routed differently, e.g. {differ[:3]}"
    spread = {n: sum(le[u]["owner"] == n for u in USERS) for n in WEIGHTS}
    assert spread["ws-c"] > spread["ws-a"], spread  # weights took effect, in both

    sample = USERS[:60]
    got_e, got_z = land(by_etcd.port, sample), land(by_zk.port, sample)
    assert got_e == got_z == {u: le[u]["owner"] for u in sample}
    print(f"etcd and ZooKeeper: fingerprint {re['fingerprint']}, 1000 users alike, spread {spread}")
    for r in regs:
        r.close()
