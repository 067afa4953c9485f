"""Client helper for consul_double.py: start/stop the double and drive its control API.

    from double import ConsulDouble
    with ConsulDouble(acl_token="s3cret", nodes=["n2", "n3"]) as c:
        c.register("n2", "web-1", "web", "127.0.0.1", 9001, tags=["v1"], weight=2)
        c.set_status("n2", "web-1", "critical")
        code, headers, body = c.health("web", passing=1, index=5, wait="1s")
        c.fault("500", seconds=3); c.clear_fault()
        c.stats()["counts"]["health.service"]

Python 3 standard library only.
"""

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "consul_double.py")


class ConsulDouble:
    def __init__(self, acl_token=None, read_token=None, dc="dc1", node="node1",
                 nodes=None, extra_args=(), python=None, verbose=False):
        self.acl_token = acl_token
        self.args = [python or "/usr/bin/python3", SCRIPT, "--port", "0", "--dc", dc,
                     "--node", node]
        if acl_token is not None:
            self.args += ["--acl-token", acl_token]
        if read_token is not None:
            self.args += ["--read-token", read_token]
        if nodes:
            self.args += ["--nodes", ",".join(nodes)]
        if verbose:
            self.args.append("--verbose")
        self.args += list(extra_args)
        self.proc = None
        self.port = None

    # ---- lifecycle
    def start(self, timeout=10.0):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True)
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if not line.startswith("READY ") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError("consul double did not start: %r" % line)
        self.port = int(line.split()[1])
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def addr(self):
        """host:port, as for CONSUL_HTTP_ADDR."""
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.addr

    # ---- raw HTTP
    def request(self, method, path, body=None, headers=None, timeout=30.0):
        """Returns (status, headers dict with lower-case keys, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def _control(self, method, sub, body=None):
        code, _, data = self.request(method, "/_double/" + sub, body)
        if code != 200:
            raise RuntimeError("control %s %s -> %d %s" % (method, sub, code, data))
        return json.loads(data)

    def health(self, service, token=None, timeout=30.0, **params):
        """GET /v1/health/service/<service>; params: passing=1, index=N, wait='1s',
        tag=[...], stale=True (bare flag) ..."""
        q = []
        for k, v in params.items():
            vals = v if isinstance(v, (list, tuple)) else [v]
            for one in vals:
                q.append(k if one is True else "%s=%s" % (k, urllib.parse.quote(str(one))))
        path = "/v1/health/service/" + urllib.parse.quote(service)
        if q:
            path += "?" + "&".join(q)
        headers = {"X-Consul-Token": token} if token else {}
        return self.request("GET", path, headers=headers, timeout=timeout)

    # ---- control API
    def register(self, node, id, service, address="127.0.0.1", port=0, tags=(), weight=None,
                 status="passing", meta=None, weights=None, node_address=None):
        """Register an instance on any node (creates the node).  status=None: no service
        check at all (only serfHealth)."""
        body = {"node": node, "id": id, "service": service, "address": address, "port": port,
                "tags": list(tags), "status": status if status is not None else "none"}
        if weight is not None:
            body["weight"] = weight
        if weights is not None:
            body["weights"] = weights
        if meta is not None:
            body["meta"] = meta
        if node_address is not None:
            body["node_address"] = node_address
        return self._control("POST", "register", body)

    def deregister(self, node, id):
        return self._control("POST", "deregister", {"node": node, "id": id})

    def set_status(self, node, id, status, output=None, check_id=None):
        body = {"node": node, "id": id, "status": status}
        if check_id:
            body["check_id"] = check_id
        if output is not None:
            body["output"] = output
        return self._control("POST", "status", body)

    def set_node(self, node, status=None, address=None, output=None):
        body = {"node": node}
        if status:
            body["status"] = status
        if address:
            body["address"] = address
        if output is not None:
            body["output"] = output
        return self._control("POST", "node", body)

    def remove_node(self, node):
        return self._control("DELETE", "node", {"node": node})

    def fault(self, mode, seconds=None, **kw):
        """mode: 500|hang|drop|garbage|no_index|index_reset|latency.  kw: count=N (next N
        matching requests only), path='/v1/health/' (prefix, default '/v1/'), delay=S
        (latency), status=503/body='...' (500 mode), rst=True (drop with RST), to=N
        (index_reset target, default 1)."""
        body = dict(kw, mode=str(mode))
        if seconds is not None:
            body["seconds"] = seconds
        return self._control("POST", "fault", body)

    def clear_fault(self):
        return self._control("DELETE", "fault")

    def shuffle(self, on=True):
        return self._control("POST", "shuffle", {"on": on})

    def stats(self, since=None):
        return self._control("GET", "stats" + ("?since=%f" % since if since else ""))

    def reset_stats(self):
        return self._control("DELETE", "stats")

    def count(self, endpoint="health.service", since=None):
        return self.stats(since)["counts"].get(endpoint, 0)

    def blocking(self):
        """Blocking queries currently in flight."""
        return self.stats()["blocking"]

    def index(self, service):
        return self._control("GET", "index/" + urllib.parse.quote(service))["index"]

    def state(self):
        return self._control("GET", "state")


if __name__ == "__main__":  # manual use: python3 double.py  -> runs until Ctrl-C
    with ConsulDouble(nodes=sys.argv[1:]) as c:
        print(c.addr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
