"""Tests of the Consul double against the documented behaviour (DISCOVERY.md section 1).

Run: cd tests/consul && /usr/bin/python3 -m pytest -q
"""

import gzip
import http.client
import http.server
import json
import socket
import threading
import time

import pytest

from double import ConsulDouble

TOKEN = "s3cret-token"
READ_TOKEN = "read-only-token"


@pytest.fixture
def c():
    d = ConsulDouble(nodes=["n2", "n3"])
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def acl():
    d = ConsulDouble(acl_token=TOKEN, read_token=READ_TOKEN, nodes=["n2"])
    d.start()
    d.register("n2", "web-1", "web", "10.0.0.1", 80)
    yield d
    d.stop()


def body(resp):
    return json.loads(resp[2])


def idx(resp):
    return int(resp[1]["x-consul-index"])


def put(c, path, payload=None, token=None):
    h = {"X-Consul-Token": token} if token else {}
    return c.request("PUT", path, payload, headers=h)


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0


def in_thread(fn, *a, **kw):
    out = {}

    def run():
        t0 = time.monotonic()
        try:
            out["r"] = fn(*a, **kw)
        except Exception as e:  # noqa
            out["e"] = e
        out["dt"] = time.monotonic() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wait_for(pred, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ----------------------------------------------------------------------------- shape

def test_response_shape_and_headers(c):
    c.register("n2", "web-1", "web", "10.0.0.1", 8080, tags=["v1"])
    r = c.health("web")
    assert r[0] == 200
    h = r[1]
    assert h["content-type"] == "application/json"
    assert int(h["x-consul-index"]) >= 1
    assert h["x-consul-knownleader"] == "true"
    assert h["x-consul-lastcontact"] == "0"
    assert h["x-consul-effective-consistency"] == "leader"
    assert h["x-consul-default-acl-policy"] == "allow"
    [e] = body(r)
    assert e["Node"]["Node"] == "n2" and e["Node"]["Datacenter"] == "dc1"
    assert e["Node"]["Address"] == "127.0.0.1" and e["Node"]["ID"]
    s = e["Service"]
    assert (s["ID"], s["Service"], s["Address"], s["Port"]) == ("web-1", "web", "10.0.0.1", 8080)
    assert s["Tags"] == ["v1"] and s["Meta"] is None
    assert s["Weights"] == {"Passing": 1, "Warning": 1}
    assert s["TaggedAddresses"]["lan_ipv4"] == {"Address": "10.0.0.1", "Port": 8080}
    assert s["Proxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}} and s["PeerName"] == ""
    assert [ck["CheckID"] for ck in e["Checks"]] == ["serfHealth", "service:web-1"]
    serf = e["Checks"][0]
    assert serf["Status"] == "passing" and serf["ServiceTags"] == [] and serf["Definition"] == {}
    assert e["Checks"][1]["ServiceName"] == "web" and e["Checks"][1]["ServiceTags"] == ["v1"]


def test_unknown_service_is_empty_array_with_nonzero_index(c):
    r = c.health("nope")
    assert r[0] == 200 and r[2] == b"[]" and idx(r) >= 1


def test_no_service_address_and_weights(c):
    c.register("n3", "a", "api", address="", port=0, weights={"Passing": 5, "Warning": 2})
    [e] = body(c.health("api"))
    assert e["Service"]["Address"] == "" and "TaggedAddresses" not in e["Service"]
    assert e["Service"]["Weights"] == {"Passing": 5, "Warning": 2}


def test_large_body_is_chunked_and_gzip_on_request(c):
    for i in range(10):
        c.register("n2", "web-%d" % i, "web", "10.0.0.%d" % i, 80)
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=5)
    conn.request("GET", "/v1/health/service/web")
    r = conn.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked"
    assert len(json.loads(r.read())) == 10
    conn.request("GET", "/v1/health/service/web", headers={"Accept-Encoding": "gzip"})
    r = conn.getresponse()  # keep-alive: same connection
    assert r.getheader("Content-Encoding") == "gzip"
    assert len(json.loads(gzip.decompress(r.read()))) == 10
    conn.close()


# ----------------------------------------------------------------------------- filters

def test_passing_filter(c):
    c.register("n2", "ok", "web", port=1, status="passing")
    c.register("n2", "warn", "web", port=2, status="warning")
    c.register("n2", "crit", "web", port=3, status="critical")
    c.register("n3", "nodebad", "web", port=4, status="passing")
    c.set_node("n3", status="critical")
    assert len(body(c.health("web"))) == 4
    for v in (True, "1", "t", "TRUE", "true", "True"):
        assert [e["Service"]["ID"] for e in body(c.health("web", passing=v))] == ["ok"], v
    for v in ("0", "f", "false", "FALSE"):
        assert len(body(c.health("web", passing=v))) == 4, v
    r = c.health("web", passing="yes")
    assert r[0] == 400 and r[2] == b"Invalid value for ?passing"
    assert r[1]["content-type"].startswith("text/plain")


def test_passing_filter_does_not_change_index(c):
    c.register("n2", "ok", "web", status="passing")
    c.register("n2", "bad", "web", status="critical")
    assert idx(c.health("web")) == idx(c.health("web", passing=1))


def test_tags_all_must_match_case_insensitive(c):
    c.register("n2", "a", "web", tags=["Blue", "v1"])
    c.register("n2", "b", "web", tags=["blue"])
    c.register("n2", "c", "web", tags=["v1"])
    ids = lambda r: sorted(e["Service"]["ID"] for e in body(r))  # noqa: E731
    assert ids(c.health("web", tag="blue")) == ["a", "b"]
    assert ids(c.health("web", tag=["BLUE", "V1"])) == ["a"]
    assert ids(c.health("web", tag=["blue", "v2"])) == []


# ----------------------------------------------------------------------------- bad params

@pytest.mark.parametrize("params,code,msg", [
    ({"dc": "dc2"}, 500, b"No path to datacenter"),
    ({"stale": True, "consistent": True}, 400,
     b"Cannot specify ?stale with ?consistent, conflicting semantics."),
    ({"index": "abc"}, 400, b"Invalid index"),
    ({"index": "-1"}, 400, b"Invalid index"),
    ({"index": "1", "wait": "10"}, 400, b"Invalid wait time"),
    ({"wait": "5x"}, 400, b"Invalid wait time"),
    ({"passing": "2"}, 400, b"Invalid value for ?passing"),
])
def test_bad_params(c, params, code, msg):
    r = c.health("web", **params)
    assert (r[0], r[2]) == (code, msg)


def test_good_params(c):
    assert c.health("web", dc="dc1")[0] == 200
    assert c.health("web", wait="1m30s")[0] == 200           # index=0: no blocking
    r = c.health("web", stale=True)
    assert r[1]["x-consul-effective-consistency"] == "stale"
    r = c.health("web", consistent=True)
    assert r[1]["x-consul-effective-consistency"] == "consistent"


# ----------------------------------------------------------------------------- blocking

def test_blocking_returns_on_change(c):
    c.register("n2", "web-1", "web")
    i0 = idx(c.health("web"))
    t, out = in_thread(c.health, "web", index=i0, wait="5s")
    assert wait_for(lambda: len(c.blocking()) == 1, 2)
    time.sleep(0.2)
    assert t.is_alive()
    c.register("n3", "web-2", "web")
    t.join(3)
    r = out["r"]
    assert out["dt"] < 2.0 and idx(r) > i0 and len(body(r)) == 2
    assert c.blocking() == []


def test_blocking_timeout_returns_full_result_same_index(c):
    c.register("n2", "web-1", "web")
    i0 = idx(c.health("web"))
    r, dt = timed(c.health, "web", index=i0, wait="1s")
    assert 1.0 <= dt < 1.0 + 1.0 / 16 + 0.3
    assert idx(r) == i0 and len(body(r)) == 1


def test_blocking_250ms_go_duration(c):
    i0 = idx(c.health("web"))
    r, dt = timed(c.health, "web", index=i0, wait="250ms")
    assert r[0] == 200 and 0.25 <= dt < 0.25 + 0.25 / 16 + 0.3


def test_index_behind_returns_at_once(c):
    c.register("n2", "web-1", "web")
    r, dt = timed(c.health, "web", index=1, wait="5s")
    assert dt < 0.5 and idx(r) > 1


def test_jitter_bound(c):
    i0 = idx(c.health("web"))
    threads = [in_thread(c.health, "web", index=i0, wait="1600ms") for _ in range(8)]
    assert wait_for(lambda: len(c.blocking()) == 8, 2)
    # server-side timeout = wait + RandomStagger(wait/16), exactly in [wait, wait*17/16)
    timeouts = [b["timeout"] for b in c.blocking()]
    assert all(1.6 <= x < 1.6 * 17 / 16 for x in timeouts)
    assert max(timeouts) - min(timeouts) > 0.001  # jitter actually spreads the wake-ups
    dts = []
    for t, out in threads:
        t.join(5)
        dts.append(out["dt"])
    assert min(dts) >= 1.6
    assert max(dts) < 1.6 + 1.6 / 16 + 0.3


def test_per_service_index_not_woken_by_other_service(c):
    c.register("n2", "web-1", "web")
    c.register("n2", "api-1", "api")
    iw = idx(c.health("web"))
    ia = idx(c.health("api"))
    t, out = in_thread(c.health, "web", index=iw, wait="1s")
    time.sleep(0.2)
    c.register("n3", "api-2", "api")
    t.join(3)
    assert out["dt"] >= 1.0 and idx(out["r"]) == iw       # timed out, not woken
    assert idx(c.health("api")) > ia


def test_index_monotonic_never_zero(c):
    seen = [idx(c.health("web"))]
    c.register("n2", "web-1", "web")
    seen.append(idx(c.health("web")))
    c.set_status("n2", "web-1", "critical")
    seen.append(idx(c.health("web")))
    c.set_status("n2", "web-1", "passing")
    seen.append(idx(c.health("web")))
    c.register("n2", "web-1", "web", tags=["new"])
    seen.append(idx(c.health("web")))
    assert all(i >= 1 for i in seen)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_extinction_index(c):
    c.register("n2", "web-1", "web")
    c.register("n3", "web-2", "web")
    i1 = idx(c.health("web"))
    c.deregister("n2", "web-1")
    i2 = idx(c.health("web"))
    c.deregister("n3", "web-2")
    r = c.health("web")
    assert r[2] == b"[]" and i1 < i2 < idx(r)
    st = c.state()
    assert st["extinction_index"] == idx(r)


def test_extinction_wakes_blocked_query(c):
    c.register("n2", "web-1", "web")
    i0 = idx(c.health("web"))
    t, out = in_thread(c.health, "web", index=i0, wait="5s")
    time.sleep(0.2)
    c.deregister("n2", "web-1")
    t.join(3)
    assert out["dt"] < 2 and out["r"][2] == b"[]" and idx(out["r"]) > i0


def test_unchanged_writes_do_not_bump(c):
    c.register("n2", "web-1", "web", "10.0.0.1", 80, tags=["a"])
    i0 = idx(c.health("web"))
    assert c.register("n2", "web-1", "web", "10.0.0.1", 80, tags=["a"])["changed"] is False
    assert c.set_status("n2", "web-1", "passing")["changed"] is False
    assert c.set_node("n2", status="passing")["changed"] is False
    assert idx(c.health("web")) == i0
    c.register("n2", "web-1", "web", "10.0.0.1", 81, tags=["a"])
    assert idx(c.health("web")) > i0


def test_node_check_change_bumps_services_on_node(c):
    c.register("n2", "web-1", "web")
    c.register("n3", "api-1", "api")
    iw, ia = idx(c.health("web")), idx(c.health("api"))
    c.set_node("n2", status="critical")
    assert idx(c.health("web")) > iw and idx(c.health("api")) == ia
    assert body(c.health("web", passing=1)) == []


# ----------------------------------------------------------------------------- ACL

def test_acl_unknown_token_403(acl):
    r = acl.health("web", token="wrong")
    assert r[0] == 403 and r[2] == b"ACL not found"
    assert r[1]["content-type"] == "text/plain; charset=utf-8"


def test_acl_anonymous_filtered(acl):
    r = acl.health("web")
    assert r[0] == 200 and r[2] == b"[]" and idx(r) >= 1
    assert r[1]["x-consul-default-acl-policy"] == "deny"


@pytest.mark.parametrize("how", ["header", "bearer", "query"])
def test_acl_token_forms(acl, how):
    path = "/v1/health/service/web"
    h = {}
    if how == "header":
        h["X-Consul-Token"] = TOKEN
    elif how == "bearer":
        h["Authorization"] = "Bearer " + TOKEN
    else:
        path += "?token=" + TOKEN
    r = acl.request("GET", path, headers=h)
    assert r[0] == 200 and len(json.loads(r[2])) == 1


def test_acl_query_token_wins(acl):
    r = acl.request("GET", "/v1/health/service/web?token=wrong", headers={"X-Consul-Token": TOKEN})
    assert r[0] == 403


def test_acl_writes(acl):
    reg = {"Name": "self", "ID": "self-1", "Port": 1}
    r = put(acl, "/v1/agent/service/register", reg)
    assert r[0] == 403 and r[2].startswith(b"Permission denied")
    assert b"service:write" in r[2]
    r = put(acl, "/v1/agent/service/register", reg, token=READ_TOKEN)
    assert r[0] == 403 and r[2].startswith(b"Permission denied")
    assert len(json.loads(acl.health("web", token=READ_TOKEN)[2])) == 1
    assert put(acl, "/v1/agent/service/register", reg, token="nope")[0] == 403
    assert put(acl, "/v1/agent/service/register", reg, token=TOKEN)[0] == 200
    assert json.loads(acl.request("GET", "/v1/agent/services")[2]) == {}
    r = acl.request("GET", "/v1/agent/services", headers={"X-Consul-Token": TOKEN})
    assert "self-1" in json.loads(r[2])
    assert put(acl, "/v1/agent/service/deregister/self-1")[0] == 403
    assert put(acl, "/v1/agent/service/deregister/self-1", token=TOKEN)[0] == 200


# ----------------------------------------------------------------------------- agent

def test_agent_register_validation_and_defaults(c):
    r = put(c, "/v1/agent/service/register", {"Port": 1})
    assert (r[0], r[2]) == (400, b"Missing service name")
    r = put(c, "/v1/agent/service/register", {"Name": "x", "Weights": {"Passing": 0}})
    assert r[0] == 400
    r = put(c, "/v1/agent/service/register", {"Name": "x", "Check": {"HTTP": "http://x/"}})
    assert r[0] == 400 and b"Interval" in r[2]
    # snake_case / lower-case keys, ID defaults to Name
    r = put(c, "/v1/agent/service/register",
            {"name": "self", "port": 7000, "tags": ["t"], "enable_tag_override": True,
             "meta": {"Zone_A": "1"}, "check": {"ttl": "30s"}})
    assert r[0] == 200 and r[2] == b""
    svcs = json.loads(c.request("GET", "/v1/agent/services")[2])
    s = svcs["self"]
    assert s["ID"] == "self" and s["Port"] == 7000 and s["EnableTagOverride"] is True
    assert s["Meta"] == {"Zone_A": "1"} and s["Weights"] == {"Passing": 1, "Warning": 1}
    [e] = body(c.health("self"))
    assert e["Node"]["Node"] == "node1" and e["Service"]["Meta"] == {"Zone_A": "1"}
    ck = e["Checks"][1]
    assert ck["CheckID"] == "service:self" and ck["Name"] == "Service 'self' check"
    assert ck["Status"] == "critical" and ck["Type"] == "ttl"   # default initial status
    assert body(c.health("self", passing=1)) == []


def test_agent_register_initial_status_and_multiple_checks(c):
    r = put(c, "/v1/agent/service/register",
            {"Name": "svc", "ID": "svc-1",
             "Checks": [{"TTL": "30s", "Status": "passing"}, {"TTL": "30s"}]})
    assert r[0] == 200
    checks = json.loads(c.request("GET", "/v1/agent/checks")[2])
    assert checks["service:svc-1:1"]["Status"] == "passing"
    assert checks["service:svc-1:2"]["Status"] == "critical"
    r = put(c, "/v1/agent/service/register", {"Name": "svc", "Check": {"TTL": "1s", "Status": "ok"}})
    assert r[0] == 400


def test_agent_ttl_pass_warn_fail_update(c):
    put(c, "/v1/agent/service/register",
        {"Name": "self", "ID": "self-1", "Check": {"CheckID": "ttl-1", "TTL": "30s"}})
    i0 = idx(c.health("self"))
    r = put(c, "/v1/agent/check/pass/ttl-1?note=all%20good")
    assert r[0] == 200 and r[2] == b""
    r1 = c.health("self", passing=1)
    assert len(body(r1)) == 1 and idx(r1) > i0
    assert body(r1)[0]["Checks"][1]["Output"] == "all good"
    # pass on an already-passing check writes nothing (DISCOVERY 1.3)
    put(c, "/v1/agent/check/pass/ttl-1?note=other")
    assert idx(c.health("self")) == idx(r1)
    put(c, "/v1/agent/check/warn/ttl-1")
    assert body(c.health("self"))[0]["Checks"][1]["Status"] == "warning"
    assert body(c.health("self", passing=1)) == []
    put(c, "/v1/agent/check/fail/ttl-1")
    assert body(c.health("self"))[0]["Checks"][1]["Status"] == "critical"
    r = put(c, "/v1/agent/check/update/ttl-1", {"Status": "passing", "Output": "fine"})
    assert r[0] == 200
    assert body(c.health("self"))[0]["Checks"][1]["Output"] == "fine"
    r = put(c, "/v1/agent/check/update/ttl-1", {"Status": "bogus"})
    assert r[0] == 400
    r = put(c, "/v1/agent/check/pass/nope")
    assert r[0] == 404 and r[2].startswith(b'Unknown check ID "nope"')
    assert c.request("GET", "/v1/agent/check/pass/ttl-1")[0] == 405


def test_agent_deregister(c):
    put(c, "/v1/agent/service/register", {"Name": "self", "ID": "self-1"})
    assert len(body(c.health("self"))) == 1
    i0 = idx(c.health("self"))
    assert put(c, "/v1/agent/service/deregister/self-1")[0] == 200
    r = c.health("self")
    assert r[2] == b"[]" and idx(r) > i0
    r = put(c, "/v1/agent/service/deregister/self-1")
    assert r[0] == 404 and r[2].startswith(b'Unknown service ID "self-1"')


def test_ttl_expiry(c):
    put(c, "/v1/agent/service/register",
        {"Name": "self", "Check": {"TTL": "600ms", "Status": "passing"}})
    assert len(body(c.health("self", passing=1))) == 1
    time.sleep(0.4)
    put(c, "/v1/agent/check/pass/service:self")      # refresh resets the TTL clock
    time.sleep(0.4)
    assert len(body(c.health("self", passing=1))) == 1
    assert wait_for(lambda: body(c.health("self", passing=1)) == [], 2)
    ck = body(c.health("self"))[0]["Checks"][1]
    assert ck["Status"] == "critical" and ck["Output"] == "TTL expired"


def test_non_ttl_check_update_is_500(c):
    put(c, "/v1/agent/service/register",
        {"Name": "self", "Check": {"TCP": "127.0.0.1:1", "Interval": "10s"}})
    r = put(c, "/v1/agent/check/pass/service:self")
    assert r[0] == 500 and b"does not have associated TTL" in r[2]


class _Health(http.server.BaseHTTPRequestHandler):
    code = 200

    def do_GET(self):
        b = b"OK"
        self.send_response(type(self).code)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def log_message(self, *a):
        pass


def test_http_check_polling(c):
    class H(_Health):
        code = 200
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/health" % srv.server_address[1]
        r = put(c, "/v1/agent/service/register",
                {"Name": "self", "Port": srv.server_address[1],
                 "Check": {"HTTP": url, "Interval": "200ms", "Timeout": "1s"}})
        assert r[0] == 200
        ck = body(c.health("self"))[0]["Checks"][1]
        assert ck["Type"] == "http" and ck["Interval"] == "200ms" and ck["Timeout"] == "1s"
        assert wait_for(lambda: body(c.health("self", passing=1)), 3)
        ck = body(c.health("self"))[0]["Checks"][1]
        assert ck["Output"].startswith("HTTP GET %s: 200" % url)
        H.code = 429
        assert wait_for(lambda: body(c.health("self"))[0]["Checks"][1]["Status"] == "warning", 3)
        H.code = 503
        assert wait_for(lambda: body(c.health("self"))[0]["Checks"][1]["Status"] == "critical", 3)
        H.code = 204
        assert wait_for(lambda: body(c.health("self", passing=1)), 3)
    finally:
        srv.shutdown()
        srv.server_close()
    # server gone -> connection refused -> critical
    assert wait_for(lambda: body(c.health("self"))[0]["Checks"][1]["Status"] == "critical", 3)


# ----------------------------------------------------------------------------- faults

def test_fault_500_and_clear(c):
    c.fault("500")
    r = c.health("web")
    assert r[0] == 500 and r[2] == b"No cluster leader"
    assert put(c, "/v1/agent/service/register", {"Name": "x"})[0] == 500
    c.clear_fault()
    assert c.health("web")[0] == 200


def test_fault_seconds_and_count(c):
    c.fault("500", seconds=0.5)
    assert c.health("web")[0] == 500
    time.sleep(0.6)
    assert c.health("web")[0] == 200
    c.fault("500", count=2, path="/v1/health/")
    assert [c.health("web")[0] for _ in range(3)] == [500, 500, 200]


def test_fault_hits_inflight_blocking_query(c):
    i0 = idx(c.health("web"))
    t, out = in_thread(c.health, "web", index=i0, wait="10s")
    assert wait_for(lambda: len(c.blocking()) == 1, 2)
    c.fault("500")
    t.join(3)
    assert out["r"][0] == 500 and out["dt"] < 2


def test_fault_hang(c):
    c.fault("hang")
    with pytest.raises(socket.timeout):
        c.health("web", timeout=0.5)
    t, out = in_thread(c.health, "web", timeout=5)
    time.sleep(0.3)
    assert t.is_alive()
    c.clear_fault()
    t.join(3)
    assert out["r"][0] == 200   # the frozen agent resumes and answers


def test_fault_hang_count_and_seconds(c):
    c.fault("hang", count=1)
    t, out = in_thread(c.health, "web", timeout=5)
    time.sleep(0.3)
    assert t.is_alive()
    assert c.health("web", timeout=2)[0] == 200      # only the first request was caught
    c.clear_fault()
    t.join(3)
    assert out["r"][0] == 200
    c.fault("hang", seconds=0.5)
    r, dt = timed(c.health, "web", timeout=5)
    assert r[0] == 200 and 0.4 <= dt < 2


def test_defaults_wait_5m_and_cap_10m(c):
    i0 = idx(c.health("web"))
    ts = [in_thread(c.health, "web", index=i0, timeout=1, wait=w) for w in ("0s", "30m")]
    assert wait_for(lambda: len(c.blocking()) == 2, 2)
    waits = sorted(b["wait"] for b in c.blocking())
    assert waits == [300.0, 600.0]
    for t, _ in ts:
        t.join(3)


def test_fault_drop(c):
    c.fault("drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        c.health("web")
    c.fault("drop", rst=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        c.health("web")
    c.clear_fault()
    assert c.health("web")[0] == 200


def test_fault_garbage(c):
    c.register("n2", "web-1", "web")
    c.fault("garbage")
    r = c.health("web")
    assert r[0] == 200 and r[1]["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(r[2])


def test_fault_no_index(c):
    c.register("n2", "web-1", "web")
    c.fault("no_index")
    r = c.health("web")
    assert r[0] == 200 and "x-consul-index" not in r[1] and len(body(r)) == 1


def test_fault_index_reset(c):
    c.register("n2", "web-1", "web")
    i0 = idx(c.health("web"))
    assert i0 > 1
    t, out = in_thread(c.health, "web", index=i0, wait="10s")
    assert wait_for(lambda: len(c.blocking()) == 1, 2)
    c.fault("index_reset")
    t.join(3)
    assert out["dt"] < 2 and idx(out["r"]) == 1 and len(body(out["r"])) == 1
    # a client that does not reset keeps blocking on an index the cluster has not reached
    r, dt = timed(c.health, "web", index=i0, wait="300ms")
    assert dt >= 0.3 and idx(r) == 1
    c.register("n3", "web-2", "web")
    assert idx(c.health("web")) == 2


def test_fault_latency(c):
    c.fault("latency", delay=0.4)
    r, dt = timed(c.health, "web")
    assert r[0] == 200 and dt >= 0.4
    c.clear_fault()
    r, dt = timed(c.health, "web")
    assert dt < 0.3


def test_control_api_not_faulted(c):
    c.fault("drop")
    c.register("n2", "web-1", "web")
    assert c.stats()["index"] >= 1
    c.clear_fault()


# ----------------------------------------------------------------------------- stats, shuffle

def test_stats(c):
    t0 = time.time()
    for _ in range(3):
        c.health("web")
    put(c, "/v1/agent/service/register", {"Name": "x"})
    s = c.stats()
    assert s["counts"]["health.service"] == 3
    assert s["counts"]["agent.service.register"] == 1
    assert c.count("health.service", since=t0) == 3
    assert c.count("health.service", since=time.time() + 1) == 0
    i0 = idx(c.health("web"))
    t, out = in_thread(c.health, "web", index=i0, wait="2s")
    [b] = wait_for(c.blocking, 2)
    assert b["service"] == "web" and b["index"] == i0 and b["wait"] == 2.0
    c.reset_stats()
    assert c.stats()["counts"] == {}
    t.join(4)


def test_client_closing_blocked_query_leaves_inflight(c):
    i0 = idx(c.health("web"))
    with pytest.raises(socket.timeout):
        c.health("web", index=i0, wait="10s", timeout=0.3)
    assert wait_for(lambda: c.blocking() == [], 2)


def test_shuffle(c):
    for i in range(8):
        c.register("n%d" % (2 + i % 2), "web-%d" % i, "web", port=i)
    order = lambda: [e["Service"]["ID"] for e in body(c.health("web"))]  # noqa: E731
    base = order()
    assert base == order()
    assert base == sorted(base, key=lambda x: (0 if x in ("web-0", "web-2", "web-4", "web-6")
                                               else 1, x))  # by (node, id)
    c.shuffle(True)
    orders = {tuple(order()) for _ in range(6)}
    assert len(orders) > 1 and all(sorted(o) == sorted(base) for o in orders)
    c.shuffle(False)
    assert order() == base
