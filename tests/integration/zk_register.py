#!/usr/bin/python3
"""Registers one backend in ZooKeeper the way Apache Curator's ServiceDiscovery does: an
ephemeral node <path>/<id> holding a ServiceInstance as JSON (as Curator 5's
JsonInstanceSerializer writes it; Spring Cloud Zookeeper's string metadata with --spring), on
its own ZooKeeper session (kazoo). Prints "READY <session id hex>" once the node exists.

Then reads commands on stdin, one a line:
  delete         deletes the node (a clean deregistration; the session stays)
  set JSON       replaces the node's data (Curator's updateService)
  close          closes the session (the server deletes the node at once) and exits
End of stdin closes the session too. SIGKILL leaves the node until the session expires.
"""
import argparse
import json
import sys
import time

from kazoo.client import KazooClient


def instance(args):
    metadata = {}
    if args.weight is not None:
        metadata["weight"] = str(args.weight) if args.spring else args.weight
    if args.public_url:
        metadata["public_url"] = args.public_url
    payload = None
    if metadata or args.spring:
        payload = {"metadata": metadata}
        if args.spring:
            payload = {"@class": "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
                       "id": f"{args.name}-1", "name": args.name,
                       "metadata": dict(metadata, instance_status="UP")}
    return {"name": args.name, "id": args.id, "address": args.address, "port": args.port,
            "sslPort": None, "payload": payload,
            "registrationTimeUTC": int(time.time() * 1000), "serviceType": "DYNAMIC",
            "uriSpec": {"parts": [{"value": "scheme", "variable": True},
                                  {"value": "://", "variable": False},
                                  {"value": "address", "variable": True},
                                  {"value": ":", "variable": False},
                                  {"value": "port", "variable": True}]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--path", required=True, help="basePath/name, e.g. /services/ws-backend")
    ap.add_argument("--id", required=True)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--weight", type=int)
    ap.add_argument("--public-url")
    ap.add_argument("--spring", action="store_true")
    ap.add_argument("--timeout", type=float, default=1.0, help="session timeout, seconds")
    ap.add_argument("--raw", help="node data to write instead of a ServiceInstance")
    args = ap.parse_args()
    args.name = args.path.rstrip("/").rsplit("/", 1)[-1]

    # Reconnect every 0.5 s at most: after a server restart the session must be resumed before
    # its (fresh) timeout runs out, or the server deletes the node.
    zk = KazooClient(hosts=args.hosts, timeout=args.timeout,
                     connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1.5,
                                       "max_delay": 0.5})
    zk.start(timeout=15)
    data = args.raw.encode() if args.raw is not None else json.dumps(instance(args)).encode()
    zk.ensure_path(args.path)
    zk.create(f"{args.path}/{args.id}", data, ephemeral=True)
    print(f"READY {zk.client_id[0]:#x}", flush=True)
    for line in sys.stdin:
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "delete":
            zk.delete(f"{args.path}/{args.id}")
        elif cmd == "set":
            zk.set(f"{args.path}/{args.id}", rest.encode())
        elif cmd == "close":
            break
        print(f"DONE {cmd}", flush=True)
    zk.stop()
    zk.close()


if __name__ == "__main__":
    main()
