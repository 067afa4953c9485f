"""Asking wsring who owns a user (DESIGN §10.2): GET /lookup, POST /lookup in batches, GET /ring."""
import json
import urllib.error
import urllib.request

from helpers import backend_lines


def post_lookup(proxy, body):
    req = urllib.request.Request(f"http://127.0.0.1:{proxy.admin_port}/lookup", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get_json(proxy, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}{path}", timeout=10) as r:
        return json.loads(r.read())


def test_batch_lookup_of_10000_keys_matches_single_lookups(env):
    proxy = env.wsring("hash rendezvous\n"
                       "backend a 127.0.0.1:1001\nbackend b 127.0.0.1:1002 weight 2\n"
                       "backend c 127.0.0.1:1003\n")
    keys = [f"user-{i}" for i in range(10000)]
    keys[:3] = ["zoë", "a b&c=d", "ユーザー"]
    status, answer = post_lookup(proxy, json.dumps(keys).encode())
    assert status == 200
    assert [a["key"] for a in answer] == keys  # in request order
    singles = proxy.lookup_many(keys[:500] + keys[-500:])
    for a in answer[:500] + answer[-500:]:
        assert a["owner"] == singles[a["key"]]["owner"]
        assert a["address"] == singles[a["key"]]["address"]
    assert {a["owner"] for a in answer} == {"a", "b", "c"}


def test_batch_lookup_refuses_what_is_not_a_key_list(env):
    proxy = env.wsring("max_key_bytes 8\nbackend a 127.0.0.1:1001\n")
    for body in (b'{"a":1}', b"not json", json.dumps(["k"] * 10001).encode(), b'["a", 1]'):
        status, answer = post_lookup(proxy, body)
        assert status == 400 and "error" in answer, (body[:20], status, answer)
    status, answer = post_lookup(proxy, json.dumps(["ok", "x\u0001y", "", "123456789"]).encode())
    assert status == 200
    assert answer[0]["owner"] == "a"
    assert all("error" in a and "owner" not in a for a in answer[1:]), answer


def test_batch_lookup_on_an_empty_ring_is_503(env):
    proxy = env.wsring("", expect_healthy=False)
    status, answer = post_lookup(proxy, b'["a"]')
    assert status == 503 and "empty" in answer["error"]


def test_ring_carries_what_a_local_computation_needs(env):
    proxy = env.wsring(backend_lines([]) + "hash rendezvous\nbackend x 127.0.0.1:1001 weight 3\n")
    ring = get_json(proxy, "/ring")
    assert ring["hash"] == "rendezvous" and ring["slots"] == 1 << 20
    assert ring["key_hash"] == "XXH3_64bits" and ring["spec"].startswith("ring/SPEC.md")
    assert ring["members"] == [{"id": "x", "address": "127.0.0.1:1001", "weight": 3}]
    assert ring["fingerprint"] == proxy.lookup("k")["fingerprint"]
