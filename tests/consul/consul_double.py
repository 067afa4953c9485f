#!/usr/bin/python3
"""consul_double.py -- an HTTP double of the parts of Consul's API that wsring uses.

Written from Consul's documentation and source as digested (with citations) in
/work/shared/DISCOVERY.md section 1.  Citation keys used in comments below:

  BLK  website/content/api-docs/features/blocking.mdx
  HLT  website/content/api-docs/health.mdx
  CNS  website/content/api-docs/features/consistency.mdx
  APS  website/content/api-docs/api-structure.mdx
  ASV  website/content/api-docs/agent/service.mdx
  ACK  website/content/api-docs/agent/check.mdx
  HTTP agent/http.go (wrap, setIndex, setMeta, parseWait, parseConsistency, parseTokenInternal)
  HEP  agent/health_endpoint.go (healthServiceNodes, getBoolQueryParam, filterNonPassing)
  BQ   agent/blockingquery/blockingquery.go (Query)
  RPC  agent/consul/rpc.go RPCQueryTimeout, structs.JitterFraction = 16
  DEF  agent/config/default.go (default_query_time 300s, max_query_time 600s)
  CAT  agent/consul/state/catalog.go (maxIndexAndWatchChForService, serviceTagFilter,
       updateAllServiceIndexesOfNode)
  AACL agent/acl.go vetServiceUpdateWithAuthorizer / vetCheckUpdateWithAuthorizer,
       agent/agent.go updateTTLCheck
  CAP  raw capture of a Consul 1.16.2 /v1/health/service answer

Usage:
  consul_double.py --port 0 [--acl-token SECRET] [--read-token T] [--dc dc1]
                   [--node node1] [--nodes n1,n2=10.0.0.2,...] [--verbose]
Prints "READY <port>" on stdout once listening on 127.0.0.1.

Python 3 standard library only.  Not part of Consul: the /_double/ control API
(see handle_control below and README.md next to this file).
"""

import argparse
import gzip
import json
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONSUL_VERSION = "1.16.2"
ANON_ACCESSOR = "00000000-0000-0000-0000-000000000002"
DEFAULT_QUERY_TIME = 300.0   # DEF default_query_time = "300s"
MAX_QUERY_TIME = 600.0       # DEF max_query_time = "600s"
JITTER_FRACTION = 16         # RPC structs.JitterFraction
CHECK_OUTPUT_MAX = 4096      # agent check output truncation (ACK)
CHUNK_THRESHOLD = 2048       # Go net/http bufferBeforeChunkingSize: larger bodies go chunked
STATUSES = ("passing", "warning", "critical")


# --------------------------------------------------------------------------- helpers

_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
              "s": 1.0, "m": 60.0, "h": 3600.0}
_DUR_RE = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text):
    """Go time.ParseDuration: '10s', '1m30s', '250ms', '-1.5h'; bare '0' is valid,
    any other bare number ('10') is an error (HTTP parseWait -> 400 Invalid wait time)."""
    s = text
    sign = 1.0
    if s[:1] in "+-":
        if s[0] == "-":
            sign = -1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("invalid duration %r" % text)
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DUR_RE.match(s, pos)
        if not m:
            raise ValueError("invalid duration %r" % text)
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_go_duration(sec):
    """Go time.Duration.String() for the values we echo back (Interval/Timeout)."""
    if sec == 0:
        return "0s"
    ns = int(round(sec * 1e9))
    neg = ns < 0
    ns = abs(ns)
    if ns < 1000000000:
        if ns % 1000000 == 0:
            out = "%dms" % (ns // 1000000)
        elif ns % 1000 == 0:
            out = "%dus" % (ns // 1000)
        else:
            out = "%dns" % ns
    else:
        h, rem = divmod(ns, 3600 * 10**9)
        m, rem = divmod(rem, 60 * 10**9)
        secs = rem / 1e9
        out = ""
        if h:
            out += "%dh" % h
        if h or m:
            out += "%dm" % m
        out += ("%.9f" % secs).rstrip("0").rstrip(".") + "s"
    return ("-" if neg else "") + out


def go_parse_bool(v):
    """Go strconv.ParseBool."""
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(v)


def go_json(obj, pretty=False):
    """encoding/json.Marshal: compact, UTF-8, HTML-escaped <, >, &, U+2028/9."""
    if pretty:
        s = json.dumps(obj, indent=4, ensure_ascii=False)
    else:
        s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
         .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return s.encode("utf-8")


def getk(d, name, default=None):
    """Case-insensitive, snake_case tolerant key lookup (Consul decodes bodies with
    case-insensitive field matching and translates snake_case keys, ASV)."""
    if not isinstance(d, dict):
        return default
    if name in d:
        return d[name]
    want = name.lower().replace("_", "")
    for k, v in d.items():
        if isinstance(k, str) and k.lower().replace("_", "") == want:
            return v
    return default


class HTTPError(Exception):
    def __init__(self, code, msg):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg


# --------------------------------------------------------------------------- state

class Node:
    def __init__(self, name, address, idx):
        self.name = name
        self.id = str(uuid.uuid5(uuid.NAMESPACE_DNS, "consul-double." + name))
        self.address = address
        self.create_index = idx
        self.modify_index = idx
        # serfHealth node check
        self.serf_status = "passing"
        self.serf_output = "Agent alive and reachable"
        self.serf_create = idx
        self.serf_modify = idx


class Check:
    """A service check as stored in the catalog (plus agent-local runtime fields)."""

    FIELDS = ("name", "status", "notes", "output", "type", "interval", "timeout", "definition")

    def __init__(self, check_id, name, status, output="", notes="", ctype="",
                 interval="", timeout="", definition=None):
        self.check_id = check_id
        self.name = name
        self.status = status
        self.output = output
        self.notes = notes
        self.type = ctype
        self.interval = interval
        self.timeout = timeout
        self.definition = definition or {}
        self.create_index = 0
        self.modify_index = 0
        # agent runtime (not compared)
        self.agent_output = output     # latest output seen by the agent (may be unsynced)
        self.ttl = None                # seconds, TTL checks
        self.ttl_deadline = None
        self.http = None               # dict for HTTP checks
        self.tcp = None
        self.interval_s = None
        self.timeout_s = None
        self.success_before_passing = 0
        self.failures_before_critical = 0
        self.successes = 0
        self.failures = 0
        self.stop = None               # threading.Event for pollers
        self.service_id = ""
        self.service_name = ""

    def same(self, other):
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)


class Service:
    FIELDS = ("name", "tags", "address", "port", "meta", "weights", "enable_tag_override",
              "tagged_addresses")

    def __init__(self, node, sid, name, tags, address, port, meta, weights,
                 enable_tag_override=False, tagged_addresses=None):
        self.node = node
        self.id = sid
        self.name = name
        self.tags = list(tags or [])
        self.address = address or ""
        self.port = int(port or 0)
        self.meta = dict(meta) if meta else None
        self.weights = dict(weights) if weights else {"Passing": 1, "Warning": 1}
        self.enable_tag_override = bool(enable_tag_override)
        self.tagged_addresses = tagged_addresses or auto_tagged_addresses(self.address, self.port)
        self.create_index = 0
        self.modify_index = 0

    def same(self, other):
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)


def auto_tagged_addresses(address, port):
    # The agent fills lan_ipv4/wan_ipv4 (or _ipv6) when the service address is an IP
    # literal (CAP shows them); omitted when empty (DISCOVERY 1.2).
    if not address:
        return {}
    try:
        socket.inet_pton(socket.AF_INET, address)
        fam = "ipv4"
    except OSError:
        try:
            socket.inet_pton(socket.AF_INET6, address)
            fam = "ipv6"
        except OSError:
            return {}
    return {"lan_" + fam: {"Address": address, "Port": port},
            "wan_" + fam: {"Address": address, "Port": port}}


class Store:
    """Catalog state with per-service raft indexes (CAT)."""

    def __init__(self, dc, agent_node, extra_nodes):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.dc = dc
        self.agent_node = agent_node
        self.raft_index = 12          # a bootstrapped cluster has done some writes already
        self.nodes = {}
        self.services = {}            # (node, sid) -> Service
        self.checks = {}              # (node, check_id) -> Check (service checks only)
        self.svc_index = {}           # service name -> raft index of last write touching it
        self.extinction_index = 0     # CAT serviceLastExtinctionIndexName
        self.tables_index = self.raft_index  # max index of nodes/services tables
        self.generation = 0           # bumped on a simulated snapshot restore (BQ AbandonCh)
        self.fault_gen = 0            # bumped on fault changes, wakes blocked queries
        self.ensure_node(agent_node[0], agent_node[1])
        for name, addr in extra_nodes:
            self.ensure_node(name, addr)

    # -- index bookkeeping
    def _next(self):
        self.raft_index += 1
        return self.raft_index

    def _touch(self, idx, names, tables=True):
        for n in names:
            if n is not None:
                self.svc_index[n] = idx
        if tables:
            self.tables_index = idx
        self.cond.notify_all()

    def _instances(self, name):
        return [s for s in self.services.values() if s.name == name]

    def service_index(self, name):
        """CAT maxIndexAndWatchChForService: the service's own index if it has instances,
        else the service extinction index, else the nodes/services table index.
        HTTP setIndex rewrites 0 to 1."""
        with self.lock:
            if self._instances(name):
                idx = self.svc_index.get(name, self.tables_index)
            elif self.extinction_index:
                idx = self.extinction_index
            else:
                idx = self.tables_index
            return max(1, idx)

    # -- nodes
    def ensure_node(self, name, address="127.0.0.1"):
        with self.lock:
            n = self.nodes.get(name)
            if n is not None:
                if address and n.address != address:
                    idx = self._next()
                    n.address = address
                    n.modify_index = idx
                    self._touch(idx, {s.name for s in self.services.values() if s.node == name})
                return n
            idx = self._next()
            n = Node(name, address or "127.0.0.1", idx)
            self.nodes[name] = n
            self._touch(idx, ())
            return n

    def set_node_status(self, name, status, output=None):
        """A node check (serfHealth) change bumps every service on the node
        (CAT updateAllServiceIndexesOfNode)."""
        with self.lock:
            n = self.nodes.get(name)
            if n is None:
                raise HTTPError(404, "Unknown node %q" % name)
            if output is None:
                output = ("Agent alive and reachable" if status == "passing"
                          else "Agent not live or unreachable")
            if n.serf_status == status and n.serf_output == output:
                return False
            idx = self._next()
            n.serf_status, n.serf_output, n.serf_modify = status, output, idx
            self._touch(idx, {s.name for s in self.services.values() if s.node == name},
                        tables=False)
            return True

    def remove_node(self, name):
        with self.lock:
            if name not in self.nodes:
                raise HTTPError(404, "Unknown node %q" % name)
            idx = self._next()
            names = set()
            for key in [k for k, s in self.services.items() if s.node == name]:
                names.add(self.services.pop(key).name)
            for key in [k for k in self.checks if k[0] == name]:
                self._stop_check(self.checks.pop(key))
            del self.nodes[name]
            self._touch(idx, names)
            self._extinct(idx, names)
            return True

    def _extinct(self, idx, names):
        for nm in names:
            if not self._instances(nm):
                self.svc_index.pop(nm, None)
                self.extinction_index = idx

    # -- services
    def register(self, svc, checks, replace_existing_checks=False):
        """Idempotent registration of an instance and its checks: a write that changes
        nothing does not bump any index (BLK: 'idempotent write'; CAT ensure*Txn)."""
        with self.lock:
            if svc.node not in self.nodes:
                self.ensure_node(svc.node)
            key = (svc.node, svc.id)
            old = self.services.get(key)
            changed_svc = old is None or not old.same(svc)
            changed_checks = []
            for c in checks:
                oc = self.checks.get((svc.node, c.check_id))
                if oc is None or not oc.same(c):
                    changed_checks.append(c)
            removed = []
            if replace_existing_checks:
                keep = {c.check_id for c in checks}
                removed = [k for k, c in self.checks.items()
                           if k[0] == svc.node and c.service_id == svc.id and k[1] not in keep]
            if not changed_svc and not changed_checks and not removed:
                # still replace runtime objects (pollers, TTL timers) for agent checks
                for c in checks:
                    oc = self.checks[(svc.node, c.check_id)]
                    c.create_index, c.modify_index = oc.create_index, oc.modify_index
                    c.service_id, c.service_name = svc.id, svc.name
                    self._stop_check(oc)
                    self.checks[(svc.node, c.check_id)] = c
                return False
            idx = self._next()
            names = {svc.name}
            if old is not None:
                names.add(old.name)
                svc.create_index = old.create_index
                svc.modify_index = idx if changed_svc else old.modify_index
            else:
                svc.create_index = svc.modify_index = idx
            self.services[key] = svc
            for c in checks:
                oc = self.checks.get((svc.node, c.check_id))
                c.service_id, c.service_name = svc.id, svc.name
                if oc is not None:
                    self._stop_check(oc)
                    c.create_index = oc.create_index
                    c.modify_index = idx if not oc.same(c) else oc.modify_index
                else:
                    c.create_index = c.modify_index = idx
                self.checks[(svc.node, c.check_id)] = c
            for k in removed:
                self._stop_check(self.checks.pop(k))
            self._touch(idx, names)
            if old is not None and old.name != svc.name:
                self._extinct(idx, {old.name})
            return True

    def deregister(self, node, sid):
        with self.lock:
            svc = self.services.pop((node, sid), None)
            if svc is None:
                return False
            idx = self._next()
            for key in [k for k, c in self.checks.items() if k[0] == node and c.service_id == sid]:
                self._stop_check(self.checks.pop(key))
            self._touch(idx, {svc.name})
            self._extinct(idx, {svc.name})
            return True

    def _stop_check(self, c):
        if c.stop is not None:
            c.stop.set()

    def set_check(self, node, check_id, status, output=None, agent=False):
        """Check status update.  A status change is written (bumps the service index);
        with agent=True an output-only change stays agent-local (the agent defers
        output-only syncs by check_update_interval, default 5m, DISCOVERY 1.3)."""
        with self.lock:
            c = self.checks.get((node, check_id))
            if c is None:
                return None
            if output is not None:
                output = output[:CHECK_OUTPUT_MAX]
                c.agent_output = output
            if c.status == status and (agent or output is None or output == c.output):
                return False
            idx = self._next()
            c.status = status
            if output is not None:
                c.output = output
            c.modify_index = idx
            self._touch(idx, {c.service_name}, tables=False)
            return True

    def abandon(self, to_index):
        """Simulated snapshot restore: the state store is replaced by one at a lower
        index; blocked queries return at once (BQ AbandonCh, BLK)."""
        with self.lock:
            to_index = max(1, int(to_index))
            self.raft_index = to_index
            for n in self.nodes.values():
                n.create_index = min(n.create_index, to_index)
                n.modify_index = min(n.modify_index, to_index)
                n.serf_create = min(n.serf_create, to_index)
                n.serf_modify = min(n.serf_modify, to_index)
            for s in self.services.values():
                s.create_index = min(s.create_index, to_index)
                s.modify_index = min(s.modify_index, to_index)
            for c in self.checks.values():
                c.create_index = min(c.create_index, to_index)
                c.modify_index = min(c.modify_index, to_index)
            for k in self.svc_index:
                self.svc_index[k] = min(self.svc_index[k], to_index)
            self.extinction_index = min(self.extinction_index, to_index)
            self.tables_index = min(self.tables_index, to_index)
            self.generation += 1
            self.cond.notify_all()

    # -- JSON views
    def _node_json(self, n):
        return {"ID": n.id, "Node": n.name, "Address": n.address, "Datacenter": self.dc,
                "TaggedAddresses": {"lan": n.address, "lan_ipv4": n.address,
                                    "wan": n.address, "wan_ipv4": n.address},
                "Meta": {"consul-network-segment": "", "consul-version": CONSUL_VERSION},
                "CreateIndex": n.create_index, "ModifyIndex": n.modify_index}

    def _serf_json(self, n):
        return {"Node": n.name, "CheckID": "serfHealth", "Name": "Serf Health Status",
                "Status": n.serf_status, "Notes": "", "Output": n.serf_output,
                "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
                "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {},
                "CreateIndex": n.serf_create, "ModifyIndex": n.serf_modify}

    def _check_json(self, node, c, svc, agent=False):
        return {"Node": node, "CheckID": c.check_id, "Name": c.name, "Status": c.status,
                "Notes": c.notes, "Output": c.agent_output if agent else c.output,
                "ServiceID": svc.id if svc else "", "ServiceName": svc.name if svc else "",
                "ServiceTags": list(svc.tags) if svc else [], "Type": c.type,
                "Interval": c.interval, "Timeout": c.timeout, "ExposedPort": 0,
                "Definition": dict(c.definition),
                "CreateIndex": 0 if agent else c.create_index,
                "ModifyIndex": 0 if agent else c.modify_index}

    def _service_json(self, s):
        out = {"ID": s.id, "Service": s.name, "Tags": list(s.tags), "Address": s.address}
        if s.tagged_addresses:
            out["TaggedAddresses"] = s.tagged_addresses
        out.update({"Meta": dict(s.meta) if s.meta is not None else None,  # null when unset (CAP)
                    "Port": s.port, "Weights": dict(s.weights),
                    "EnableTagOverride": s.enable_tag_override,
                    "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}}, "Connect": {},
                    "PeerName": "", "CreateIndex": s.create_index,
                    "ModifyIndex": s.modify_index})
        return out

    def health_service(self, name, tags):
        """Entries for every instance of `name` carrying all `tags` (case-insensitive,
        CAT serviceTagFilter), ordered by (node, service ID) like the memdb index."""
        want = [t.lower() for t in tags]
        with self.lock:
            out = []
            for (node, sid) in sorted(k for k, s in self.services.items() if s.name == name):
                s = self.services[(node, sid)]
                have = {t.lower() for t in s.tags}
                if any(t not in have for t in want):
                    continue
                n = self.nodes[node]
                checks = [self._serf_json(n)]
                for ck in sorted(k for k, c in self.checks.items()
                                 if k[0] == node and c.service_id == sid):
                    checks.append(self._check_json(node, self.checks[ck], s))
                out.append({"Node": self._node_json(n), "Service": self._service_json(s),
                            "Checks": checks})
            return out

    def agent_services(self):
        with self.lock:
            out = {}
            for (node, sid), s in sorted(self.services.items()):
                if node != self.agent_node[0]:
                    continue
                d = {"ID": s.id, "Service": s.name, "Tags": list(s.tags),
                     "Meta": dict(s.meta or {}), "Port": s.port, "Address": s.address}
                if s.tagged_addresses:
                    d["TaggedAddresses"] = s.tagged_addresses
                d.update({"Weights": dict(s.weights), "EnableTagOverride": s.enable_tag_override,
                          "Datacenter": self.dc})
                out[sid] = d
            return out

    def agent_checks(self):
        with self.lock:
            out = {}
            for (node, cid), c in sorted(self.checks.items()):
                if node != self.agent_node[0]:
                    continue
                s = self.services.get((node, c.service_id))
                out[cid] = self._check_json(node, c, s, agent=True)
            return out

    def dump(self):
        with self.lock:
            return {"raft_index": self.raft_index, "extinction_index": self.extinction_index,
                    "service_index": dict(self.svc_index),
                    "nodes": {k: {"address": n.address, "serfHealth": n.serf_status}
                              for k, n in self.nodes.items()},
                    "services": [{"node": s.node, "id": s.id, "name": s.name,
                                  "address": s.address, "port": s.port, "tags": s.tags}
                                 for s in self.services.values()],
                    "checks": [{"node": k[0], "id": k[1], "status": c.status,
                                "service_id": c.service_id} for k, c in self.checks.items()]}


# --------------------------------------------------------------------------- checks runtime

class CheckRunner:
    """Runs agent HTTP/TCP checks and expires TTL checks (ACK)."""

    def __init__(self, store):
        self.store = store
        t = threading.Thread(target=self._ttl_loop, daemon=True)
        t.start()

    def _ttl_loop(self):
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            expired = []
            with self.store.lock:
                for (node, cid), c in self.store.checks.items():
                    if c.ttl and c.ttl_deadline is not None and now >= c.ttl_deadline:
                        c.ttl_deadline = None
                        expired.append((node, cid))
                for node, cid in expired:
                    # "TTL expired" is written with the critical status (agent CheckTTL)
                    self.store.set_check(node, cid, "critical", "TTL expired", agent=True)

    def start(self, node, c):
        if c.http is None and c.tcp is None:
            return
        c.stop = threading.Event()
        threading.Thread(target=self._poll, args=(node, c), daemon=True).start()

    def _result(self, node, c, status, output):
        # StatusHandler: SuccessBeforePassing / FailuresBeforeCritical (ACK)
        if status in ("passing", "warning"):
            c.successes += 1
            c.failures = 0
            if c.successes < c.success_before_passing:
                with self.store.lock:
                    c.agent_output = output
                return
        else:
            c.failures += 1
            c.successes = 0
            if c.failures < c.failures_before_critical:
                with self.store.lock:
                    c.agent_output = output
                return
        self.store.set_check(node, c.check_id, status, output, agent=True)

    def _poll(self, node, c):
        # CheckHTTP.run: first run after a random stagger within the interval
        if c.stop.wait(random.uniform(0, c.interval_s)):
            return
        while not c.stop.is_set():
            if c.http is not None:
                status, output = self._http_once(c)
            else:
                status, output = self._tcp_once(c)
            if c.stop.is_set():
                return
            self._result(node, c, status, output)
            if c.stop.wait(c.interval_s):
                return

    def _http_once(self, c):
        h = c.http
        url, method = h["url"], h["method"]
        req = urllib.request.Request(url, method=method,
                                     data=h["body"].encode() if h["body"] else None)
        req.add_header("User-Agent", "Consul Health Check")
        req.add_header("Accept", "text/plain, text/*, */*")
        for k, vals in (h["header"] or {}).items():
            for v in (vals if isinstance(vals, list) else [vals]):
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=c.timeout_s) as r:
                code, reason, body = r.status, r.reason, r.read(CHECK_OUTPUT_MAX)
        except urllib.error.HTTPError as e:
            code, reason = e.code, e.reason
            try:
                body = e.read(CHECK_OUTPUT_MAX)
            except Exception:
                body = b""
        except Exception as e:  # connection refused, timeout, ...
            return "critical", 'Get "%s": %s' % (url, e)
        output = "HTTP %s %s: %d %s Output: %s" % (method, url, code, reason,
                                                   body.decode("utf-8", "replace"))
        # ACK: 2xx passing, 429 Too Many Requests warning, anything else critical
        if 200 <= code < 300:
            return "passing", output
        if code == 429:
            return "warning", output
        return "critical", output

    def _tcp_once(self, c):
        host, _, port = c.tcp.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=c.timeout_s):
                return "passing", "TCP connect %s: Success" % c.tcp
        except Exception as e:
            return "critical", "dial tcp %s: %s" % (c.tcp, e)


# --------------------------------------------------------------------------- server

class Double:
    def __init__(self, args):
        self.args = args
        nodes = []
        for spec in (args.nodes.split(",") if args.nodes else []):
            spec = spec.strip()
            if not spec:
                continue
            name, _, addr = spec.partition("=")
            nodes.append((name, addr or "127.0.0.1"))
        self.store = Store(args.dc, (args.node, args.node_addr), nodes)
        self.runner = CheckRunner(self.store)
        self.acl = args.acl_token is not None
        self.tokens = {}
        if self.acl:
            self.tokens[args.acl_token] = {"accessor": str(uuid.uuid5(uuid.NAMESPACE_DNS, "mgmt")),
                                           "read": True, "write": True}
            if args.read_token:
                self.tokens[args.read_token] = {
                    "accessor": str(uuid.uuid5(uuid.NAMESPACE_DNS, "read")),
                    "read": True, "write": False}
        self.fault = None            # dict: mode, until, remaining, path, delay, body, rst
        self.hang_faults = []        # faults whose hung requests await release
        self.shuffle = False
        self.stats_lock = threading.Lock()
        self.reset_stats()
        self.inflight = {}           # id -> dict
        self.inflight_seq = 0

    # -- stats
    def reset_stats(self):
        with self.stats_lock:
            self.counts = {}
            self.log = []

    def record(self, method, path, query, endpoint):
        e = {"t": time.time(), "method": method, "path": path, "query": query,
             "endpoint": endpoint, "status": None}
        with self.stats_lock:
            self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
            self.log.append(e)
            if len(self.log) > 20000:
                del self.log[:10000]
        return e

    def stats(self, since=None):
        with self.stats_lock:
            log = [dict(e) for e in self.log if since is None or e["t"] >= since]
            counts = dict(self.counts)
        if since is not None:
            counts = {}
            for e in log:
                counts[e["endpoint"]] = counts.get(e["endpoint"], 0) + 1
        with self.store.lock:
            inflight = [dict(v) for v in self.inflight.values()]
        return {"counts": counts, "total": sum(counts.values()), "log": log,
                "blocking": inflight, "index": self.store.raft_index, "now": time.time()}

    # -- faults
    def active_fault(self, path, consume=False):
        with self.store.lock:
            f = self.fault
            if f is None:
                return None
            if f["until"] is not None and time.monotonic() >= f["until"]:
                self.fault = None
                self.store.fault_gen += 1
                self.store.cond.notify_all()
                return None
            if not path.startswith(f["path"]):
                return None
            if consume and f["remaining"] is not None:
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    self.fault = None
                    self.store.fault_gen += 1
                    self.store.cond.notify_all()
            return f

    def set_fault(self, spec):
        mode = str(spec.get("mode", ""))
        if mode not in ("500", "hang", "drop", "garbage", "no_index", "index_reset", "latency"):
            raise HTTPError(400, "unknown fault mode %r" % mode)
        if mode == "index_reset":
            self.store.abandon(spec.get("to", 1))
            return
        seconds = spec.get("seconds")
        count = spec.get("count")
        f = {"mode": mode,
             "until": time.monotonic() + float(seconds) if seconds else None,
             "remaining": int(count) if count else None,
             "path": spec.get("path", "/v1/"),
             "delay": float(spec.get("delay", 1.0)),
             "status": int(spec.get("status", 500)),
             "body": spec.get("body"),
             "rst": bool(spec.get("rst", False)),
             "released": threading.Event()}
        with self.store.lock:
            self._release_hangs()
            self.hang_faults.append(f)
            self.fault = f
            self.store.fault_gen += 1
            self.store.cond.notify_all()

    def _release_hangs(self):
        for f in self.hang_faults:
            f["released"].set()
        self.hang_faults = []

    def clear_fault(self):
        with self.store.lock:
            self._release_hangs()
            self.fault = None
            self.store.fault_gen += 1
            self.store.cond.notify_all()

    # -- ACL
    def resolve_token(self, handler, query):
        """Token order: ?token=, X-Consul-Token, Authorization: Bearer (HTTP
        parseTokenInternal, APS).  Returns None for anonymous."""
        tok = query.get("token", [""])[0]
        if not tok:
            tok = handler.headers.get("X-Consul-Token", "")
        if not tok:
            auth = handler.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                tok = auth[7:].strip()
        if not self.acl:
            return {"accessor": "", "read": True, "write": True, "anon": not tok}
        if not tok:
            return {"accessor": ANON_ACCESSOR, "read": False, "write": False, "anon": True}
        t = self.tokens.get(tok)
        if t is None:
            raise HTTPError(403, "ACL not found")
        return dict(t, anon=False)

    def need_write(self, tok, kind, name):
        if not tok["write"]:
            # HTTP wrap maps acl.IsErrPermissionDenied -> 403 (AACL)
            raise HTTPError(403, "Permission denied: token with AccessorID '%s' lacks "
                                 "permission '%s:write' on %s" % (tok["accessor"], kind,
                                                                  json.dumps(name)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "consul-double"
    double = None  # set in main

    def log_message(self, fmt, *a):
        if self.double.args.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % a))

    # ---- low level response helpers
    def _send(self, code, body=b"", headers=None, ctype=None):
        headers = list(headers or [])
        if self.double_path.startswith("/v1/"):
            headers.append(("X-Consul-Default-Acl-Policy", "deny" if self.double.acl else "allow"))
        if ctype is None and body:
            ctype = "text/plain; charset=utf-8"
        gz = (body and "gzip" in self.headers.get("Accept-Encoding", "")
              and self.double_path.startswith("/v1/"))
        if gz:
            # agent/http.go wraps every handler in a gzip handler (MinSize 0)
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
            headers.append(("Vary", "Accept-Encoding"))
        self.send_response_only(code)
        self.send_header("Date", self.date_time_string())
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        chunked = len(body) > CHUNK_THRESHOLD and self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            step = 8192
            for i in range(0, len(body), step):
                part = body[i:i + step]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        if self.stat_entry is not None:
            self.stat_entry["status"] = code

    def _send_json(self, obj, headers=None, pretty=False, code=200):
        self._send(code, go_json(obj, pretty), headers, "application/json")

    def _send_error(self, code, msg):
        self._send(code, msg.encode("utf-8"), None, "text/plain; charset=utf-8")

    def _drop(self, rst=False):
        self.close_connection = True
        if self.stat_entry is not None:
            self.stat_entry["status"] = "dropped"
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.rfile.close()
                self.wfile.close()
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def client_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if r:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
        return False

    # ---- dispatch
    def do_GET(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _dispatch(self):
        d = self.double
        u = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(u.path)
        self.double_path = path
        query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.stat_entry = None
        try:
            body = self._read_body()
        except Exception:
            body = b""
        if path.startswith("/_double/"):
            try:
                self.handle_control(path, query, body)
            except HTTPError as e:
                self._send_error(e.code, e.msg)
            except Exception as e:  # pragma: no cover
                self._send_error(500, "double error: %r" % e)
            return
        endpoint = endpoint_name(self.command, path)
        self.stat_entry = d.record(self.command, path, u.query, endpoint)
        # latency fault applies on arrival
        f = d.active_fault(path)
        if f is not None and f["mode"] == "latency":
            d.active_fault(path, consume=True)
            time.sleep(f["delay"])
        f = d.active_fault(path)
        if f is not None and f["mode"] in ("500", "hang", "drop"):
            if self.apply_fault(path):
                return
        try:
            self.route(path, query, body)
        except HTTPError as e:
            self._send_error(e.code, e.msg)
        except BrokenPipeError:
            self.close_connection = True

    def apply_fault(self, path):
        """Apply a disruptive fault now; returns True if the request was consumed."""
        d = self.double
        f = d.active_fault(path, consume=True)
        if f is None:
            return False
        mode = f["mode"]
        if mode == "500":
            self._send_error(f["status"], f["body"] or "No cluster leader")
            return True
        if mode == "drop":
            self._drop(f["rst"])
            return True
        if mode == "hang":
            # Like a frozen (SIGSTOPped) agent: nothing is answered while the fault is on;
            # afterwards the request proceeds normally.  A client that gives up is dropped.
            if self.stat_entry is not None:
                self.stat_entry["status"] = "hung"
            # With count=N the fault stops catching new requests after N, but those N stay
            # frozen until the fault is cleared/replaced or its `seconds` run out.
            while not f["released"].is_set():
                if f["until"] is not None and time.monotonic() >= f["until"]:
                    break
                if self.client_gone():
                    self._drop()
                    return True
                f["released"].wait(0.2)
            return False
        return False

    # ---- Consul API
    def route(self, path, query, body):
        d = self.double
        m = self.command
        if path.startswith("/v1/health/service/"):
            if m != "GET":
                raise HTTPError(405, "method %s not allowed" % m)
            return self.health_service(path[len("/v1/health/service/"):], query)
        if path == "/v1/status/leader":
            return self._send_json("127.0.0.1:8300")
        if path == "/v1/agent/services":
            tok = d.resolve_token(self, query)
            svcs = d.store.agent_services() if tok["read"] else {}
            return self._send_json(svcs, pretty="pretty" in query)
        if path == "/v1/agent/checks":
            tok = d.resolve_token(self, query)
            cks = d.store.agent_checks() if tok["read"] else {}
            return self._send_json(cks, pretty="pretty" in query)
        if path.startswith("/v1/agent/"):
            if m != "PUT":
                raise HTTPError(405, "method %s not allowed" % m)
            sub = path[len("/v1/agent/"):]
            if sub == "service/register":
                return self.agent_register(query, body)
            if sub.startswith("service/deregister/"):
                return self.agent_deregister(sub[len("service/deregister/"):], query)
            for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
                if sub.startswith("check/%s/" % verb):
                    note = query.get("note", [None])[0]
                    return self.agent_check_update(sub[len("check/%s/" % verb):], status,
                                                   note if note is not None else "", query)
            if sub.startswith("check/update/"):
                try:
                    b = json.loads(body or b"{}")
                except ValueError as e:
                    raise HTTPError(400, "Request decode failed: %s" % e)
                status = getk(b, "Status", "")
                if status not in STATUSES:
                    raise HTTPError(400, "Invalid check status: %s" % json.dumps(status))
                return self.agent_check_update(sub[len("check/update/"):], status,
                                               getk(b, "Output", "") or "", query)
        raise HTTPError(404, "404 page not found")

    def health_service(self, name, query):
        d = self.double
        # HTTP parseConsistency
        stale = "stale" in query
        consistent = "consistent" in query
        if stale and consistent:
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        cached = "cached" in query
        if cached and consistent:
            raise HTTPError(400, "Cannot specify ?cached with ?consistent, conflicting semantics.")
        # HTTP parseWait: wait first, then index
        wait = None
        w = query.get("wait", [""])[0]
        if w != "":
            try:
                wait = parse_go_duration(w)
            except ValueError:
                raise HTTPError(400, "Invalid wait time")
        min_index = 0
        i = query.get("index", [""])[0]
        if i != "":
            if not re.fullmatch(r"[0-9]+", i) or int(i) >= 2**64:
                raise HTTPError(400, "Invalid index")
            min_index = int(i)
        # HEP getBoolQueryParam: bare ?passing is true, else strconv.ParseBool
        passing = False
        if "passing" in query:
            v = query["passing"][0]
            if v == "":
                passing = True
            else:
                try:
                    passing = go_parse_bool(v)
                except ValueError:
                    raise HTTPError(400, "Invalid value for ?passing")
        tags = query.get("tag", [])
        dc = query.get("dc", [""])[0]
        if dc and dc != d.store.dc:
            raise HTTPError(500, "No path to datacenter")
        tok = d.resolve_token(self, query)  # 403 ACL not found on unknown token
        if not name:
            raise HTTPError(400, "Missing service name")

        # RPC RPCQueryTimeout: default 5m when unset/<=0, cap 10m, + RandomStagger(wait/16)
        if wait is None or wait <= 0:
            wait = DEFAULT_QUERY_TIME
        elif wait > MAX_QUERY_TIME:
            wait = MAX_QUERY_TIME
        jitter = random.uniform(0, wait / JITTER_FRACTION)
        timeout = wait + jitter

        st = d.store
        path = self.double_path
        with st.lock:
            gen0, fgen0 = st.generation, st.fault_gen
            idx = st.service_index(name)
            key = None
            if min_index > 0 and idx <= min_index:
                # BQ Query: block until the index exceeds min_index, or timeout
                d.inflight_seq += 1
                key = d.inflight_seq
                d.inflight[key] = {"service": name, "index": min_index, "wait": wait,
                                   "timeout": timeout, "started": time.time(),
                                   "query": urllib.parse.urlsplit(self.path).query}
                deadline = time.monotonic() + timeout
                try:
                    while True:
                        idx = st.service_index(name)
                        if idx > min_index:
                            break
                        if st.generation != gen0:
                            break  # snapshot restore: abandon, answer at once
                        if st.fault_gen != fgen0:
                            fgen0 = st.fault_gen
                            f = d.fault
                            if f is not None and path.startswith(f["path"]) and \
                                    f["mode"] in ("500", "drop", "garbage", "hang"):
                                break
                        rem = deadline - time.monotonic()
                        if rem <= 0:
                            break
                        st.cond.wait(min(rem, 0.25))
                        if self.client_gone():
                            d.inflight.pop(key, None)
                            self._drop()
                            return
                finally:
                    d.inflight.pop(key, None)
            entries = st.health_service(name, tags)
            idx = st.service_index(name)

        # faults that hit at answer time (also wakes of blocked queries)
        f = d.active_fault(path)
        if f is not None and f["mode"] in ("500", "drop", "hang"):
            if self.apply_fault(path):
                return
            with st.lock:
                entries = st.health_service(name, tags)
                idx = st.service_index(name)
        f = d.active_fault(path)
        mode = f["mode"] if f is not None else None

        # ACL filtering of reads: no service:read -> filtered to [] (DISCOVERY 1.6)
        if not tok["read"]:
            entries = []
        # HEP filterNonPassing: after the blocking query, index unaffected; every check
        # (node checks included) must be exactly "passing"
        if passing:
            entries = [e for e in entries if all(c["Status"] == "passing" for c in e["Checks"])]
        if d.shuffle:
            random.shuffle(entries)

        headers = []
        if mode != "no_index":
            headers.append(("X-Consul-Index", str(max(1, idx))))  # setIndex: never 0
        headers.append(("X-Consul-KnownLeader", "true"))
        headers.append(("X-Consul-LastContact", "0"))
        headers.append(("X-Consul-Effective-Consistency",
                        "stale" if stale else "consistent" if consistent else "leader"))
        headers.append(("X-Consul-Query-Backend", "blocking-query"))
        if cached:
            headers.append(("X-Cache", "MISS"))
            headers.append(("Age", "0"))
        if mode in ("no_index", "garbage"):
            d.active_fault(path, consume=True)
        if mode == "garbage":
            body = f["body"].encode() if f["body"] else \
                b'[{"Node":{"ID":"' + bytes(random.randrange(256) for _ in range(24)) + b'",,}'
            return self._send(200, body, headers, "application/json")
        self._send_json(entries, headers, pretty="pretty" in query)

    def _parse_check(self, cdef, sid, sname, auto_id):
        if not isinstance(cdef, dict):
            raise HTTPError(400, "Request decode failed: check must be an object")
        cid = getk(cdef, "CheckID") or getk(cdef, "ID") or auto_id
        name = getk(cdef, "Name") or "Service '%s' check" % sname
        status = getk(cdef, "Status") or "critical"   # ACK: initial status defaults to critical
        if status not in STATUSES:
            raise HTTPError(400, "Status for checks must 'passing', 'warning', 'critical'")

        def dur(key):
            v = getk(cdef, key)
            if v in (None, "", 0):
                return None
            try:
                return parse_go_duration(v) if isinstance(v, str) else float(v) / 1e9
            except ValueError:
                raise HTTPError(400, "Request decode failed: invalid duration for %s" % key)

        ttl, interval, timeout = dur("TTL"), dur("Interval"), dur("Timeout")
        http = getk(cdef, "HTTP")
        tcp = getk(cdef, "TCP")
        if http or tcp:
            if not interval or interval <= 0:
                raise HTTPError(400, "Invalid check: Interval must be > 0 for Script, HTTP, "
                                     "H2PING, TCP or UDP checks")
            ctype = "http" if http else "tcp"
        elif ttl:
            if ttl <= 0:
                raise HTTPError(400, "Invalid check: TTL must be > 0 for TTL checks")
            ctype = "ttl"
        else:
            raise HTTPError(400, "Invalid check: must be one of script, HTTP, TCP, UDP, gRPC, "
                                 "alias, docker, or TTL check type")
        definition = {}
        if http:
            definition = {"HTTP": http, "Interval": format_go_duration(interval)}
            if timeout:
                definition["Timeout"] = format_go_duration(timeout)
        elif tcp:
            definition = {"TCP": tcp, "Interval": format_go_duration(interval)}
        c = Check(cid, name, status, output=getk(cdef, "Output", "") or "",
                  notes=getk(cdef, "Notes", "") or "", ctype=ctype,
                  interval=format_go_duration(interval) if interval else "",
                  timeout=format_go_duration(timeout) if timeout else "",
                  definition=definition)
        c.ttl = ttl
        c.interval_s = interval
        c.timeout_s = timeout or 10.0   # ACK: Timeout defaults to 10s
        c.success_before_passing = int(getk(cdef, "SuccessBeforePassing", 0) or 0)
        c.failures_before_critical = int(getk(cdef, "FailuresBeforeCritical", 0) or 0)
        if http:
            c.http = {"url": http, "method": getk(cdef, "Method") or "GET",
                      "header": getk(cdef, "Header") or {}, "body": getk(cdef, "Body") or ""}
        if tcp:
            c.tcp = tcp
        return c

    def agent_register(self, query, body):
        d = self.double
        tok = d.resolve_token(self, query)
        try:
            b = json.loads(body or b"null")
        except ValueError as e:
            raise HTTPError(400, "Request decode failed: %s" % e)
        if not isinstance(b, dict):
            raise HTTPError(400, "Request decode failed: body must be a JSON object")
        name = getk(b, "Name")
        if not name:
            raise HTTPError(400, "Missing service name")
        sid = getk(b, "ID") or name       # ASV: ID defaults to Name
        d.need_write(tok, "service", name)
        weights = getk(b, "Weights")
        if weights is not None:
            w = {"Passing": int(getk(weights, "Passing", 0) or 0),
                 "Warning": int(getk(weights, "Warning", 0) or 0)}
            if w["Passing"] <= 0:
                raise HTTPError(400, "Invalid Weights: Passing must be greater than 0")
            if w["Warning"] < 0:
                raise HTTPError(400, "Invalid Weights: Warning must be greater or equal than 0")
            weights = w
        meta = getk(b, "Meta")
        tags = getk(b, "Tags") or []
        port = getk(b, "Port") or 0
        address = getk(b, "Address") or ""
        tagged = getk(b, "TaggedAddresses") or None
        if tagged:
            tagged = {k: {"Address": getk(v, "Address", ""), "Port": getk(v, "Port", 0)}
                      for k, v in tagged.items()}
        svc = Service(d.store.agent_node[0], sid, name, tags, address, port, meta or None,
                      weights, getk(b, "EnableTagOverride", False), tagged)
        cdefs = []
        one = getk(b, "Check")
        if one:
            cdefs.append(one)
        cdefs.extend(getk(b, "Checks") or [])
        checks = []
        for i, cdef in enumerate(cdefs):
            auto = "service:%s" % sid
            if len(cdefs) > 1:
                auto += ":%d" % (i + 1)   # ASV: service:<id>:1..n with several checks
            checks.append(self._parse_check(cdef, sid, name, auto))
        replace = "replace-existing-checks" in query
        d.store.register(svc, checks, replace_existing_checks=replace)
        now = time.monotonic()
        for c in checks:
            if c.ttl:
                c.ttl_deadline = now + c.ttl
            d.runner.start(svc.node, c)
        self._send(200, b"")

    def agent_deregister(self, sid, query):
        d = self.double
        tok = d.resolve_token(self, query)
        node = d.store.agent_node[0]
        with d.store.lock:
            svc = d.store.services.get((node, sid))
            if svc is None:
                # AACL vetServiceUpdateWithAuthorizer
                raise HTTPError(404, "Unknown service ID %s. Ensure that the service ID is "
                                     "passed, not the service name." % json.dumps(sid))
            d.need_write(tok, "service", svc.name)
            d.store.deregister(node, sid)
        self._send(200, b"")

    def agent_check_update(self, cid, status, output, query):
        d = self.double
        tok = d.resolve_token(self, query)
        node = d.store.agent_node[0]
        with d.store.lock:
            c = d.store.checks.get((node, cid))
            if c is None:
                # AACL vetCheckUpdateWithAuthorizer (current versions answer 404)
                raise HTTPError(404, "Unknown check ID %s. Ensure that the check ID is passed, "
                                     "not the check name." % json.dumps(cid))
            d.need_write(tok, "service", c.service_name)
            if not c.ttl:
                # agent.go updateTTLCheck
                raise HTTPError(500, "CheckID %s does not have associated TTL" % json.dumps(cid))
            c.ttl_deadline = time.monotonic() + c.ttl
            d.store.set_check(node, cid, status, output, agent=True)
        self._send(200, b"")

    # ---- control API (not Consul)
    def handle_control(self, path, query, body):
        d = self.double
        st = d.store
        m = self.command
        try:
            b = json.loads(body) if body else {}
        except ValueError as e:
            raise HTTPError(400, "bad json: %s" % e)
        sub = path[len("/_double/"):].rstrip("/")
        if sub == "register" and m in ("POST", "PUT"):
            node = b.get("node") or st.agent_node[0]
            st.ensure_node(node, b.get("node_address"))
            sid = b.get("id") or b["service"]
            weights = b.get("weights")
            if weights is None and b.get("weight") is not None:
                weights = {"Passing": int(b["weight"]), "Warning": int(b["weight"])}
            svc = Service(node, sid, b["service"], b.get("tags") or [], b.get("address", ""),
                          b.get("port", 0), b.get("meta"), weights)
            checks = []
            status = b.get("status", "passing")
            if status is not None and status != "none":
                if status not in STATUSES:
                    raise HTTPError(400, "bad status %r" % status)
                checks.append(Check("service:%s" % sid, "Service '%s' check" % svc.name,
                                    status, output=b.get("output", "")))
            changed = st.register(svc, checks, replace_existing_checks=True)
            return self._send_json({"changed": changed, "index": st.service_index(svc.name)})
        if sub == "deregister" and m in ("POST", "PUT", "DELETE"):
            node = b.get("node") or st.agent_node[0]
            svc = st.services.get((node, b["id"]))
            changed = st.deregister(node, b["id"])
            return self._send_json({"changed": changed,
                                    "index": st.service_index(svc.name) if svc else st.raft_index})
        if sub == "status" and m in ("POST", "PUT"):
            node = b.get("node") or st.agent_node[0]
            cid = b.get("check_id") or "service:%s" % b["id"]
            if b.get("status") not in STATUSES:
                raise HTTPError(400, "bad status %r" % b.get("status"))
            r = st.set_check(node, cid, b["status"], b.get("output"))
            if r is None:
                raise HTTPError(404, "no check %s on %s" % (cid, node))
            return self._send_json({"changed": r})
        if sub == "node" and m in ("POST", "PUT"):
            st.ensure_node(b["node"], b.get("address"))
            changed = False
            if b.get("status"):
                changed = st.set_node_status(b["node"], b["status"], b.get("output"))
            return self._send_json({"changed": changed})
        if sub == "node" and m == "DELETE":
            st.remove_node(b["node"])
            return self._send_json({"changed": True})
        if sub == "fault" and m in ("POST", "PUT"):
            d.set_fault(b)
            return self._send_json({"ok": True})
        if sub == "fault" and m == "DELETE":
            d.clear_fault()
            return self._send_json({"ok": True})
        if sub == "shuffle" and m in ("POST", "PUT"):
            d.shuffle = bool(b.get("on", True))
            return self._send_json({"shuffle": d.shuffle})
        if sub == "stats" and m == "GET":
            since = query.get("since", [None])[0]
            return self._send_json(d.stats(float(since) if since else None))
        if sub == "stats" and m == "DELETE":
            d.reset_stats()
            return self._send_json({"ok": True})
        if sub == "state" and m == "GET":
            return self._send_json(st.dump())
        if sub.startswith("index/") and m == "GET":
            return self._send_json({"index": st.service_index(sub[len("index/"):])})
        raise HTTPError(404, "unknown control endpoint %s %s" % (m, path))


def endpoint_name(method, path):
    if path.startswith("/v1/health/service/"):
        return "health.service"
    if path.startswith("/v1/agent/service/register"):
        return "agent.service.register"
    if path.startswith("/v1/agent/service/deregister/"):
        return "agent.service.deregister"
    for v in ("pass", "warn", "fail", "update"):
        if path.startswith("/v1/agent/check/%s/" % v):
            return "agent.check." + v
    if path == "/v1/agent/services":
        return "agent.services"
    if path == "/v1/agent/checks":
        return "agent.checks"
    if path == "/v1/status/leader":
        return "status.leader"
    return "other"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def handle_error(self, request, client_address):
        if self.verbose:
            ThreadingHTTPServer.handle_error(self, request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="HTTP double of Consul's API (tests only)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--acl-token", default=None,
                    help="enable ACLs (default policy deny); this secret has full rights")
    ap.add_argument("--read-token", default=None,
                    help="with --acl-token: a token with service:read/node:read only")
    ap.add_argument("--dc", default="dc1")
    ap.add_argument("--node", default="node1", help="the agent's own node name")
    ap.add_argument("--node-addr", default="127.0.0.1")
    ap.add_argument("--nodes", default="", help="extra nodes: n1,n2=10.0.0.2,...")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    Handler.double = Double(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.verbose = args.verbose
    print("READY %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
