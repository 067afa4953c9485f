"""/metrics (DESIGN §6) read with the Prometheus client's own parser while real traffic flows:
every counter and gauge moves exactly as the test's traffic says it must."""
import json
import os
import signal
import time
from collections import Counter

import pytest

from helpers import (backend_lines, free_ports, http_get, masked_frame, raw_exchange, raw_handshake,
                     read_frame, status_of)

parser = pytest.importorskip("prometheus_client.parser",
                             reason="python3-prometheus-client is not installed (make deps)")

GOOD = b"GET /chat?user=alice HTTP/1.1\r\nHost: wsring\r\n"


class Scrape(dict):
    """One /metrics answer: {(sample name, sorted label pairs): value}."""

    def __call__(self, name, default=None, **labels):
        key = (name, tuple(sorted(labels.items())))
        if key not in self:
            assert default is not None, f"no sample {name}{labels} in /metrics"
            return default
        return self[key]

    def labelled(self, name):
        """{label tuple: value} of every sample called NAME."""
        return {labels: v for (n, labels), v in self.items() if n == name}


def scrape(proxy):
    status, body = http_get(proxy.admin_port, "/metrics")
    assert status == 200, (status, body[:200])
    out = Scrape()
    for family in parser.text_string_to_metric_families(body.decode()):
        assert family.name.startswith("wsring_"), f"metric family {family.name!r}"
        for s in family.samples:
            assert s.name.startswith("wsring_"), f"sample {s.name!r}"
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def ring(proxy):
    status, body = http_get(proxy.admin_port, "/ring")
    assert status == 200, (status, body[:200])
    return json.loads(body)


def wait_metrics(proxy, pred, what, timeout=5.0):
    """Scrapes until PRED(scrape) holds (counters are summed from the workers on each scrape, and
    a connection is counted when its worker gets to it); returns that scrape."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(proxy)
        if pred(m):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics: {what} not within {timeout}s; last scrape:\n"
                                 + "\n".join(f"{k} {v}" for k, v in sorted(m.items())))
        time.sleep(0.05)


def active(m):
    """{backend id: live connections} (every sample, zeros included)."""
    return {dict(labels)["backend"]: v for labels, v in m.labelled("wsring_connections_active").items()}


def reload(proxy, body):
    """Rewrites the conf (listen/admin/workers kept) with BODY and sends SIGHUP."""
    head = "".join(proxy.conf_path.read_text().splitlines(True)[:3])
    tmp = proxy.conf_path.with_suffix(".new")
    tmp.write_text(head + body)
    os.replace(tmp, proxy.conf_path)
    os.kill(proxy.pid, signal.SIGHUP)


def hold(proxy, users):
    """Opens a WebSocket per user over a raw socket; returns {user: (socket, hello, its size)}."""
    out = {}
    for u in users:
        s, _ = raw_handshake(proxy.port, u)
        _fin, op, payload = read_frame(s)
        assert op == 1, op
        out[u] = (s, json.loads(payload), len(payload))
    return out


def close_all(held):
    for s, *_ in held.values():
        s.close()


def test_traffic_moves_the_counters(env):
    backends = env.backends(["m-a", "m-b", "m-c"])
    dead = free_ports(1)[0]  # nothing listens there: its users are retried to the next member
    proxy = env.wsring("key query:user\nretry_next on\nconnect_timeout 1s\n"
                       + backend_lines(backends) + f"backend m-dead 127.0.0.1:{dead}\n")
    live = {b.name for b in backends}
    owner = {u: look["owner"] for u, look in proxy.lookup_many([f"mu-{i}" for i in range(200)]).items()}
    users = [u for u in owner if owner[u] in live][:24]
    orphan = next(u for u in owner if owner[u] == "m-dead")
    m0 = scrape(proxy)
    assert m0("wsring_ring_members") == 4 and m0("wsring_workers") == 2

    # a dead owner with retry_next on: served by another member, counted as retried
    held = hold(proxy, [orphan])
    assert held[orphan][1]["backend"] in live
    close_all(held)
    m1 = wait_metrics(proxy, lambda m: sum(active(m).values()) == 0
                      and m("wsring_handshakes_total", result="retried") == 1, "the retried conn")
    assert m1("wsring_handshakes_total", result="routed") == m0("wsring_handshakes_total",
                                                                 result="routed")

    # N connections: per-backend gauges equal /lookup's assignment, routed += N
    held = hold(proxy, users)
    for u, (_s, hello, _n) in held.items():
        assert hello["backend"] == owner[u], (u, hello["backend"], owner[u])
    want = Counter(owner[u] for u in users)
    m2 = wait_metrics(proxy, lambda m: {b: v for b, v in active(m).items() if v} == want,
                      f"connections_active == {dict(want)}")
    assert active(m2).get("m-dead", 0) == 0
    assert (m2("wsring_handshakes_total", result="routed")
            - m1("wsring_handshakes_total", result="routed")) == len(users)
    assert m2("wsring_connections_accepted_total") - m0("wsring_connections_accepted_total") == 25

    # bytes both ways: at least what the clients sent and what came back
    sent = received = 0
    for u, (s, _hello, hello_size) in held.items():
        frame = masked_frame(1, f"{u}:".encode() + b"x" * 1000)
        s.sendall(frame)
        sent += len(frame)
        _fin, op, payload = read_frame(s)
        assert op == 1 and payload.startswith(f"{u}:".encode())
        received += len(payload) + hello_size
    m3 = wait_metrics(
        proxy, lambda m: m("wsring_bytes_total", direction="client_to_backend")
        - m2("wsring_bytes_total", direction="client_to_backend") >= sent, f"{sent} bytes in")
    assert (m3("wsring_bytes_total", direction="backend_to_client")
            - m0("wsring_bytes_total", direction="backend_to_client")) >= received

    # every connected handshake is timed once
    assert m3("wsring_handshake_seconds_count") == (m3("wsring_handshakes_total", result="routed")
                                                    + m3("wsring_handshakes_total", result="retried"))
    assert m3("wsring_handshake_seconds_bucket", le="+Inf") == m3("wsring_handshake_seconds_count")

    # rejected requests, by reason
    resp, _ = raw_exchange(proxy.port, GOOD.replace(b"HTTP/1.1", b"HTTP/2.0") + b"\r\n")
    assert status_of(resp) == 400, resp[:100]
    m4 = wait_metrics(proxy, lambda m: m("wsring_rejected_total", reason="bad_head")
                      == m3("wsring_rejected_total", reason="bad_head") + 1, "bad_head += 1")
    assert (m4("wsring_handshakes_total", result="rejected")
            == m3("wsring_handshakes_total", result="rejected") + 1)
    resp, _ = raw_exchange(proxy.port, b"GET /chat HTTP/1.1\r\nHost: wsring\r\n\r\n")
    assert status_of(resp) == 400, resp[:100]
    m5 = wait_metrics(proxy, lambda m: m("wsring_rejected_total", reason="no_key")
                      == m4("wsring_rejected_total", reason="no_key") + 1, "no_key += 1")
    assert (m5("wsring_handshakes_total", result="rejected")
            == m4("wsring_handshakes_total", result="rejected") + 1)
    assert m5("wsring_rejected_total", reason="bad_head") == m4("wsring_rejected_total",
                                                                 reason="bad_head")

    # the ring in force, as /ring shows it
    r = ring(proxy)
    (info, value), = m5.labelled("wsring_ring_info").items()
    info = dict(info)
    assert value == 1 and info["fingerprint"] == r["fingerprint"], (info, r["fingerprint"])
    assert info["membership"] == r["membership_fingerprint"]
    assert info["hash"] == r["hash"] and info["source"] == r["source"] == "static"

    # the clients leave: the gauges go back to 0 and every connection is counted as closed
    close_all(held)
    closes = sum(m5.labelled("wsring_closes_total").values())
    m6 = wait_metrics(proxy, lambda m: sum(active(m).values()) == 0, "connections_active == 0")
    assert sum(m6.labelled("wsring_closes_total").values()) >= closes + len(users)


def test_empty_ring_reloads_and_migration(env):
    backends = env.backends(["r-a", "r-b", "r-c"])
    base = "key query:user\nring_hold 100ms\nmigrate_rate 200\nclose_grace 2s\n"
    proxy = env.wsring(base + "discovery static\n", expect_healthy=False)
    m0 = scrape(proxy)
    assert m0("wsring_ring_members") == 0

    # an empty ring answers 503
    resp, _ = raw_exchange(proxy.port, GOOD + b"\r\n")
    assert status_of(resp) == 503, resp[:100]
    m1 = wait_metrics(proxy, lambda m: m("wsring_handshakes_total", result="503")
                      == m0("wsring_handshakes_total", result="503") + 1, "503 += 1")

    # a good reload: ok += 1, and the new ring shows in wsring_ring_info
    reload(proxy, base + backend_lines(backends[:2]))
    m2 = wait_metrics(proxy, lambda m: m("wsring_ring_members") == 2
                      and m("wsring_config_reloads_total", result="ok") == 1, "reload ok")
    assert m2("wsring_config_reloads_total", result="failed") == 0
    assert m2("wsring_ring_changes_total") == m1("wsring_ring_changes_total") + 1
    fingerprint = ring(proxy)["fingerprint"]
    assert dict(next(iter(m2.labelled("wsring_ring_info"))))["fingerprint"] == fingerprint

    # a broken file: failed += 1, nothing else changes
    reload(proxy, base + backend_lines(backends) + "migrate_rate lots\n")
    m3 = wait_metrics(proxy, lambda m: m("wsring_config_reloads_total", result="failed") == 1,
                      "reload failed")
    assert m3("wsring_config_reloads_total", result="ok") == 1 and m3("wsring_ring_members") == 2
    assert ring(proxy)["fingerprint"] == fingerprint

    # a ring change under live connections: the misplaced ones are migrated at migrate_rate
    users = [f"mig-{i}" for i in range(40)]
    held = hold(proxy, users)
    reload(proxy, base + backend_lines(backends))
    wait_metrics(proxy, lambda m: m("wsring_ring_members") == 3, "third member")
    moved = [u for u, look in proxy.lookup_many(users).items() if look["owner"] == "r-c"]
    assert moved, "no user moved to the new member"
    for u in moved:  # each gets a Close 1012 and answers it, as a browser would
        s = held[u][0]
        s.settimeout(5)
        _fin, op, payload = read_frame(s)
        assert op == 8 and int.from_bytes(payload[:2], "big") == 1012, (u, op, payload)
        s.sendall(masked_frame(8, payload[:2]))
    m4 = wait_metrics(proxy, lambda m: m("wsring_closes_total", reason="migrated")
                      - m3("wsring_closes_total", reason="migrated") == len(moved),
                      f"{len(moved)} migrated closes")
    assert m4("wsring_migrations_started_total") - m3("wsring_migrations_started_total") == len(moved)
    assert m4("wsring_migrations_finished_total") == m4("wsring_closes_total", reason="migrated")
    assert m4("wsring_config_reloads_total", result="ok") == 2
    assert sum(active(m4).values()) == len(users) - len(moved)
    close_all(held)
