"""The seed's scenario end to end (DESIGN §10): 3 stock chat servers behind wsring, 200 users
connected through it; users message each other, each server delivering to the recipient's server
with a plain HTTP request through wsring (keyed by the recipient) on a pooled keep-alive client;
a 4th server joins (SIGHUP with one more backend line), the misplaced users get Close 1012,
reconnect and land on the new owner, while messages keep flowing. Every message must reach its
recipient, and only its recipient, with none lost."""
import asyncio
import json
import random
import signal
import subprocess
import time
import urllib.request

import websockets

from helpers import HERE, PYTHON, Backend, free_ports, http_get

USERS = [f"user-{i}" for i in range(200)]
SEND_TIMEOUT = 4.0  # a sender resends (same id) what was not confirmed within this


def start_backend(env, name, port, wsring_port):
    argv = [PYTHON, str(HERE / "chat_backend.py"), "--name", name, "--port", str(port),
            "--wsring-port", str(wsring_port)]
    proc = env.spawn(f"chat-{name}", argv, stdout=subprocess.PIPE)
    return Backend(name, env.read_ready(proc), proc, "chat")


def conf_for(ports, n):
    lines = "".join(f"backend chat-{i} 127.0.0.1:{ports[i]}\n" for i in range(n))
    return f"key query:user\nring_hold 200ms\nmigrate_rate 40\nclose_grace 2s\n{lines}"


def metric(proxy, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


class Chat:
    """The 200 users: each keeps one WebSocket through wsring (reconnecting after a Close, as
    chat clients do), acks and de-duplicates what it receives, and resends what it sent but
    never saw confirmed."""

    def __init__(self, port):
        self.port = port
        self.ws = {}  # user -> open websocket
        self.backend = {}  # user -> backend of its latest hello
        self.connects = {u: 0 for u in USERS}
        self.received = {u: {} for u in USERS}  # user -> id -> message
        self.duplicates = 0
        self.misdelivered = []
        self.sent = {}  # id -> (from, to, text)
        self.confirmed = set()
        self.failed = set()
        self.last_try = {}  # id -> monotonic time of the last send
        self.stop = False
        self.connected = {u: asyncio.Event() for u in USERS}

    async def user_loop(self, user):
        url = f"ws://127.0.0.1:{self.port}/chat?user={user}"
        while not self.stop:
            try:
                async with websockets.connect(url, compression=None, ping_interval=None,
                                              open_timeout=10, close_timeout=3) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["type"] == "hello" and hello["user"] == user
                    self.backend[user] = hello["backend"]
                    self.connects[user] += 1
                    self.ws[user] = ws
                    self.connected[user].set()
                    await self.resend_unconfirmed(user)
                    async for raw in ws:
                        await self.on_message(user, ws, json.loads(raw))
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
                pass
            self.ws.pop(user, None)
            self.connected[user].clear()
            if not self.stop:
                await asyncio.sleep(0.05 + random.random() * 0.1)  # reconnect back-off

    async def on_message(self, user, ws, msg):
        if msg["type"] == "msg":
            if msg["to"] != user:
                self.misdelivered.append((user, msg))
            if msg["id"] in self.received[user]:
                self.duplicates += 1
            self.received[user][msg["id"]] = msg
            await ws.send(json.dumps({"type": "ack", "id": msg["id"]}))
        elif msg["type"] == "sent":
            self.confirmed.add(msg["id"])
        elif msg["type"] == "failed":
            self.failed.add(msg["id"])

    async def send(self, mid):
        src, dst, text = self.sent[mid]
        ws = self.ws.get(src)
        if ws is None:
            return  # reconnecting: resend_unconfirmed sends it once back
        self.last_try[mid] = time.monotonic()
        try:
            await ws.send(json.dumps({"type": "send", "to": dst, "id": mid, "text": text}))
        except websockets.ConnectionClosed:
            pass

    async def resend_unconfirmed(self, user):
        for mid, (src, _dst, _text) in list(self.sent.items()):
            if src == user and mid not in self.confirmed:
                await self.send(mid)

    async def resend_loop(self):
        while not self.stop:
            now = time.monotonic()
            for mid in list(self.sent):
                if mid not in self.confirmed and now - self.last_try.get(mid, 0) > SEND_TIMEOUT:
                    await self.send(mid)
            await asyncio.sleep(0.2)

    async def new_message(self, n):
        src, dst = random.sample(USERS, 2)
        mid = f"m{n}"
        self.sent[mid] = (src, dst, f"hello {dst} from {src} #{n}")
        await self.send(mid)

    def delivered(self):
        return sum(1 for mid, (_s, dst, _t) in self.sent.items() if mid in self.received[dst])


def test_chat_messages_reach_their_users_while_a_fourth_server_joins(env):
    random.seed(8)
    ports = free_ports(4)
    proxy = env.wsring(conf_for(ports, 3), workers=2)
    backends = [start_backend(env, f"chat-{i}", ports[i], proxy.port) for i in range(3)]

    async def scenario():
        chat = Chat(proxy.port)
        loops = [asyncio.create_task(chat.user_loop(u)) for u in USERS]
        resender = asyncio.create_task(chat.resend_loop())
        await asyncio.wait_for(asyncio.gather(*(chat.connected[u].wait() for u in USERS)), 60)
        owners = proxy.lookup_many(USERS)
        assert all(chat.backend[u] == owners[u]["owner"] for u in USERS)
        assert len(set(chat.backend.values())) == 3

        # Phase 1: three servers.
        n = 0
        for _ in range(300):
            await chat.new_message(n)
            n += 1
            await asyncio.sleep(0.003)

        # Phase 2: a fourth server joins while messages keep flowing.
        backends.append(start_backend(env, "chat-3", ports[3], proxy.port))
        proxy.conf_path.write_text(proxy.conf_path.read_text().replace(
            conf_for(ports, 3), conf_for(ports, 4)))
        t_hup = time.monotonic()
        proxy.proc.popen.send_signal(signal.SIGHUP)
        during = []
        while time.monotonic() - t_hup < 5.0:
            during.append(f"m{n}")
            await chat.new_message(n)
            n += 1
            await asyncio.sleep(0.004)

        # Phase 3: everything must arrive.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(chat.confirmed) == len(chat.sent) and chat.delivered() == len(chat.sent):
                break
            await asyncio.sleep(0.1)
        chat.stop = True
        owners = proxy.lookup_many(USERS)
        where = dict(chat.backend)
        for ws in list(chat.ws.values()):
            await ws.close()
        for t in loops + [resender]:
            t.cancel()
        await asyncio.gather(*loops, resender, return_exceptions=True)
        return chat, owners, where, during

    chat, owners, where, during = asyncio.run(scenario())

    lost = [mid for mid, (_s, dst, _t) in chat.sent.items() if mid not in chat.received[dst]]
    assert not chat.misdelivered, f"messages at the wrong user: {chat.misdelivered[:5]}"
    assert not chat.failed, f"servers gave up on {len(chat.failed)} messages"
    assert not lost, f"{len(lost)} of {len(chat.sent)} messages lost: {lost[:10]}"
    assert len(chat.confirmed) == len(chat.sent)
    for u in USERS:  # nobody got a message meant for someone else (ids are unique)
        assert all(chat.sent[mid][1] == u for mid in chat.received[u])
    # The move: the new server owns about a quarter of the users, they were migrated and now sit
    # on their owners; the others never reconnected.
    moved = [u for u in USERS if owners[u]["owner"] == "chat-3"]
    assert 25 <= len(moved) <= 80, len(moved)
    assert all(where[u] == owners[u]["owner"] for u in USERS), [
        (u, where[u], owners[u]["owner"]) for u in USERS if where[u] != owners[u]["owner"]][:5]
    assert all(chat.connects[u] >= 2 for u in moved)
    assert sum(chat.connects[u] for u in USERS if u not in moved) == len(USERS) - len(moved)
    assert metric(proxy, "wsring_migrations_finished_total") >= len(moved)
    assert len(during) > 200  # messages sent while the ring changed and users moved
    # The servers reached each other through wsring on a few reused connections.
    stats = [json.loads(http_get(b.port, "/stats")[1]) for b in backends]
    requests = sum(s["delivery_requests"] for s in stats)
    conns = sum(s["wsring_connections"] for s in stats)
    assert sum(s["deliveries_in"] for s in stats) >= len(chat.sent)
    assert conns <= 4 * 4 and requests >= len(chat.sent), (conns, requests)
    print(f"messages={len(chat.sent)} during_move={len(during)} moved_users={len(moved)} "
          f"duplicates={chat.duplicates} delivery_requests={requests} wsring_connections={conns}")
