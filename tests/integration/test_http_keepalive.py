"""Issue #8, correctness: per-request HTTP/1.1 routing on keep-alive client connections (DESIGN
§3, §10.1) with real pooled clients (Python requests, Node fetch), stock and raw backends."""
import hashlib
import json
import re
import subprocess

import pytest
import requests

from helpers import HERE, NODE, http_get


def node_backends(env, names):
    """Node keep-alive backends (backend_node_http.js): [(name, port)]."""
    out = []
    for name in names:
        proc = env.spawn(f"backend-{name}", [NODE, str(HERE / "backend_node_http.js"), name, "0"],
                         stdout=subprocess.PIPE)
        out.append((name, env.read_ready(proc)))
    return out


def accepted(proxy):
    """wsring_connections_accepted_total from /metrics: client connections accepted so far."""
    status, body = http_get(proxy.admin_port, "/metrics")
    assert status == 200
    m = re.search(rb"^wsring_connections_accepted_total (\d+)$", body, re.M)
    assert m, body[:500]
    return int(m.group(1))


def owners_of(proxy, users):
    """The owner of every user, from one POST /lookup (the admin port's batch answer)."""
    r = requests.post(f"http://127.0.0.1:{proxy.admin_port}/lookup", data=json.dumps(users),
                      timeout=10)
    assert r.status_code == 200, r.text[:300]
    answer = r.json()
    assert [a["key"] for a in answer] == users
    return {a["key"]: a["owner"] for a in answer}


def jobs_for(n, users):
    """N requests spread over USERS: every third a POST with a body unique to it, else a GET."""
    return [{"i": i, "user": users[(i * 7) % len(users)],
             "body": "" if i % 3 else f"msg {i} " + "x" * (i % 200)} for i in range(n)]


def check_answers(jobs, answers, owners):
    """Every answer is 200 from the user's owner, for its own request (in order), byte-exact."""
    assert len(answers) == len(jobs)
    wrong = []
    for job, (status, text) in zip(jobs, answers):
        rep = json.loads(text) if status == 200 else {}
        body = job["body"].encode()
        want = {"backend": owners[job["user"]], "key": job["user"], "len": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "method": "POST" if body else "GET"}
        got = {k: rep.get(k) for k in want}
        if status != 200 or got != want or not rep["url"].startswith(f"/send/{job['i']}?"):
            wrong.append((job["i"], status, got, want, rep.get("url")))
    assert not wrong, f"{len(wrong)} wrong answers, first: {wrong[:3]}"


@pytest.fixture
def keepalive_proxy(env):
    backends = node_backends(env, ("ka-a", "ka-b", "ka-c"))
    proxy = env.wsring("key query:user\n" + "".join(
        f"backend {n} 127.0.0.1:{p}\n" for n, p in backends))
    users = [f"user-{i}" for i in range(1000)]
    owners = owners_of(proxy, users)
    assert set(owners.values()) == {n for n, _ in backends}
    return proxy, users, owners


def test_python_requests_session_reuses_one_connection_for_5000_requests(keepalive_proxy):
    proxy, users, owners = keepalive_proxy
    jobs = jobs_for(5000, users)
    before = accepted(proxy)
    answers = []
    with requests.Session() as s:
        for job in jobs:
            url = f"http://127.0.0.1:{proxy.port}/send/{job['i']}"
            params = {"user": job["user"]}
            r = (s.post(url, params=params, data=job["body"].encode(), timeout=10) if job["body"]
                 else s.get(url, params=params, timeout=10))
            answers.append((r.status_code, r.content))
    check_answers(jobs, answers, owners)
    # one pooled connection carried all 5,000 requests for 1,000 users
    assert accepted(proxy) - before == 1


def test_node_fetch_reuses_its_pool_for_5000_requests(keepalive_proxy, tmp_path):
    proxy, users, owners = keepalive_proxy
    jobs = jobs_for(5000, users)
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    lanes = 4
    before = accepted(proxy)
    r = subprocess.run([NODE, str(HERE / "fetch_client.js"), str(proxy.port), str(path),
                        str(lanes)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert [o["i"] for o in out] == list(range(len(jobs)))
    check_answers(jobs, [(o["status"], o["text"]) for o in out], owners)
    # undici reuses its pooled connections: a few per concurrent lane (it may open a spare
    # while a finished response is being released), never one per request
    opened = accepted(proxy) - before
    assert 1 <= opened <= 4 * lanes, f"{opened} client connections for {len(jobs)} requests"
