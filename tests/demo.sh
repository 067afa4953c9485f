#!/bin/sh
# make demo: three stock Python websockets backends (ws-a, ws-b, ws-c on 127.0.0.1:9001..9003),
# ./wsring -c conf/proxy.conf in front of them (127.0.0.1:8080, admin 127.0.0.1:9090), and six
# users who connect twice each: every line shows which backend answered and what /lookup says.
# Run from the repository root. Everything it starts is killed on exit.
set -u
cd "$(dirname "$0")/.." || exit 1

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
WSRING=./wsring
CONF=conf/proxy.conf
PORTS="8080 9001 9002 9003 9090"

if [ ! -x "$WSRING" ] || [ ! -f "$CONF" ]; then
    echo "wsring: not yet built / not ready"
    exit 0
fi

# shellcheck disable=SC2086 # one argument per port
busy=$("$PY" - $PORTS <<'EOF'
import socket, sys
busy = []
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        busy.append(p)
    finally:
        s.close()
print(" ".join(busy))
EOF
)
if [ -n "$busy" ]; then
    echo "demo: port(s) $busy on 127.0.0.1 already in use; the demo needs 8080, 9001-9003 and 9090 free" >&2
    exit 1
fi

tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# wait_http URL SECONDS: 0 once URL answers 200
wait_http() {
    "$PY" - "$1" "$2" <<'EOF'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

n=1
for name in ws-a ws-b ws-c; do
    "$PY" tests/integration/backend_py.py --name "$name" --port "900$n" >"$tmp/$name.out" 2>"$tmp/$name.log" &
    pids="$pids $!"
    n=$((n + 1))
done
"$PY" - <<'EOF' || { echo "demo: the backends did not start:" >&2; cat "$tmp"/*.log >&2; exit 1; }
import socket, sys, time
deadline = time.monotonic() + 10
for port in (9001, 9002, 9003):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(1)
            time.sleep(0.05)
EOF
echo "backends: ws-a 127.0.0.1:9001, ws-b 127.0.0.1:9002, ws-c 127.0.0.1:9003"

"$WSRING" -c "$CONF" 2>"$tmp/wsring.log" &
pids="$pids $!"
if ! wait_http http://127.0.0.1:9090/healthz 10; then
    echo "wsring: not yet built / not ready"
    exit 0
fi
echo "wsring: listening on 127.0.0.1:8080, admin on 127.0.0.1:9090"
echo

"$PY" - <<'EOF'
import asyncio, json, sys, urllib.parse, urllib.request
import websockets

USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]

async def backend_of(user):
    url = "ws://127.0.0.1:8080/chat?user=" + urllib.parse.quote(user)
    async with websockets.connect(url, open_timeout=5, close_timeout=2) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))["backend"]

def lookup(user):
    url = "http://127.0.0.1:9090/lookup?key=" + urllib.parse.quote(user)
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["owner"]

bad = 0
for user in USERS:
    try:
        first = asyncio.run(backend_of(user))
        again = asyncio.run(backend_of(user))
        owner = lookup(user)
    except Exception as e:
        print(f"{user} -> error: {e}")
        bad += 1
        continue
    mark = "" if first == again == owner else "   <-- MISMATCH"
    bad += bool(mark)
    print(f"{user} -> {first} (again: {again}; /lookup: {owner}){mark}")
print()
print("every user landed on its /lookup owner both times" if not bad else f"{bad} user(s) misrouted")
sys.exit(1 if bad else 0)
EOF
