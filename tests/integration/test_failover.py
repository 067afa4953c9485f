"""Acceptance 5: a killed backend's users move to the next distinct member; everyone else stays;
after down_hold the revived backend gets its users back."""
import asyncio
import json
import socket
import time
from collections import defaultdict

import pytest
import websockets

from helpers import (backend_lines, free_ports, gather_limited, raw_handshake, read_frame, ws_hello,
                     ws_url)

USERS = [f"fo-user-{i}" for i in range(400)]
DOWN_HOLD = 2.0


def owners_without(env, body, survivors, users):
    """Where the ring puts USERS once only SURVIVORS are members: asks a second wsring."""
    shadow = env.wsring(body + backend_lines(survivors), name="wsring-shadow")
    try:
        return {u: look["owner"] for u, look in shadow.lookup_many(users).items()}
    finally:
        shadow.stop()


async def land(port, users, limit=50):
    hellos = await gather_limited((ws_hello(ws_url(port, u)) for u in users), limit)
    errors = [(u, h) for u, h in zip(users, hellos) if not isinstance(h, dict)]
    assert not errors, f"{len(errors)} connections failed, e.g. {errors[:3]}"
    for u, h in zip(users, hellos):
        assert h["key"] == u
    return {u: h["backend"] for u, h in zip(users, hellos)}


def test_killed_backend_users_move_to_next_member_and_come_back(env):
    # fixed ports (outside the ephemeral range), so that the victim can come back on its own
    backends = [env.backend(n, port=p) for n, p in zip(["fo-a", "fo-b", "fo-c", "fo-d"], free_ports(4))]
    body = "key query:user\nretry_next on\ndown_hold 2s\nconnect_timeout 1s\n"
    proxy = env.wsring(body + backend_lines(backends))
    before = {u: look["owner"] for u, look in proxy.lookup_many(USERS).items()}
    assert asyncio.run(land(proxy.port, USERS)) == before

    victim = backends[1]
    theirs = [u for u in USERS if before[u] == victim.name]
    others = [u for u in USERS if before[u] != victim.name]
    assert len(theirs) >= 30, f"only {len(theirs)} users on {victim.name}"

    after = owners_without(env, body, [b for b in backends if b is not victim], USERS)
    moved_others = [u for u in others if after[u] != before[u]]
    assert not moved_others, f"removing a member moved other members' keys: {moved_others[:5]}"
    expected = {u: after[u] for u in theirs}

    # a user connected to the victim when it dies sees the connection end (and can reconnect)
    held, _ = raw_handshake(proxy.port, theirs[0])
    fin, op, payload = read_frame(held)
    assert json.loads(payload)["backend"] == victim.name

    env.kill(victim.proc)
    held.settimeout(5)
    try:
        while held.recv(4096):  # a Close frame from wsring is fine; EOF must follow
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("client connection still open 5s after its backend was killed")
    finally:
        held.close()
    for attempt in range(2):  # twice: the second time the victim is marked down locally
        moved = asyncio.run(land(proxy.port, theirs))
        wrong = {u: (moved[u], expected[u]) for u in theirs if moved[u] != expected[u]}
        assert not wrong, (f"attempt {attempt}: {len(wrong)}/{len(theirs)} of {victim.name}'s users "
                           f"not on the next distinct member (got, want): {list(wrong.items())[:5]}")
    stayed = asyncio.run(land(proxy.port, others))
    assert stayed == {u: before[u] for u in others}, "users of live backends must not move"
    per = defaultdict(int)
    for u in theirs:
        per[expected[u]] += 1
    print(f"failover: {len(theirs)} users of {victim.name} spread over {dict(per)}")

    # bring it back on the same port; after down_hold its users return
    revived = env.backend(victim.name, port=victim.port)
    assert revived.port == victim.port
    # the last failed connect to it was before it came back: after down_hold (plus slack for
    # both workers' marks) every one of its users must be routed to it again
    t_back = time.monotonic()
    time.sleep(DOWN_HOLD + 0.3)
    wrong = theirs
    while wrong and time.monotonic() - t_back < DOWN_HOLD + 3.0:
        back = asyncio.run(land(proxy.port, theirs))
        wrong = [u for u in theirs if back[u] != victim.name]
        if wrong:
            time.sleep(0.25)
    waited = time.monotonic() - t_back
    assert not wrong, (f"{len(wrong)}/{len(theirs)} users not back on {victim.name} "
                       f"{waited:.1f}s after it came back (down_hold {DOWN_HOLD}s)")
    assert asyncio.run(land(proxy.port, others)) == {u: before[u] for u in others}


def test_retry_next_off_gives_502_for_dead_owner_only(env):
    live = env.backends(["nr-a", "nr-b"])
    dead_port = free_ports(1)[0]
    proxy = env.wsring("key query:user\nretry_next off\nconnect_timeout 1s\n" + backend_lines(live)
                       + f"backend nr-dead 127.0.0.1:{dead_port}\n")
    owners = {u: look["owner"] for u, look in proxy.lookup_many(USERS[:150]).items()}
    dead_users = [u for u in owners if owners[u] == "nr-dead"][:10]
    live_users = [u for u in owners if owners[u] != "nr-dead"][:20]
    assert dead_users and live_users

    async def status(u):
        try:
            await ws_hello(ws_url(proxy.port, u))
            return 101
        except websockets.InvalidStatusCode as e:
            return e.status_code

    async def run():
        return [await status(u) for u in dead_users], await land(proxy.port, live_users)

    dead_status, landed = asyncio.run(run())
    assert dead_status == [502] * len(dead_users)
    assert landed == {u: owners[u] for u in live_users}


def blackhole():
    """A listener that never completes a handshake: its accept queue (backlog 0) is kept full, so
    the kernel drops further SYNs and a connect to it times out. Returns (sockets, port)."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = lsn.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        ok = False
    except socket.timeout:
        ok = True
    finally:
        probe.close()
    if not ok:
        lsn.close()
        filler.close()
        pytest.skip("cannot make a blackholed port on this kernel")
    return [lsn, filler], port


def test_owner_timing_out_moves_users_then_is_held_down(env):
    socks, slow_port = blackhole()
    try:
        live = env.backends(["to-a", "to-b", "to-c"])
        body = "key query:user\nretry_next on\nconnect_timeout 1s\ndown_hold 30s\n"
        proxy = env.wsring(body + backend_lines(live) + f"backend to-slow 127.0.0.1:{slow_port}\n")
        owners = {u: look["owner"] for u, look in proxy.lookup_many(USERS).items()}
        slow_users = [u for u in USERS if owners[u] == "to-slow"][:40]
        assert len(slow_users) >= 30
        expected = owners_without(env, body, live, slow_users)

        async def timed(u):
            t0 = time.monotonic()
            hello = await ws_hello(ws_url(proxy.port, u))
            return hello["backend"], time.monotonic() - t0

        async def run():
            first = await asyncio.gather(*(timed(u) for u in slow_users[:12]))  # both workers
            later = [await timed(u) for u in slow_users[12:]]
            return first, later

        first, later = asyncio.run(asyncio.wait_for(run(), 60))
        for u, (got, took) in zip(slow_users, first + later):
            assert got == expected[u], f"{u}: on {got}, next distinct member is {expected[u]}"
        slowest = max(t for _, t in first)
        assert 0.8 < slowest < 3.0, f"first connects took up to {slowest:.2f}s (connect_timeout 1s)"
        held = max(t for _, t in later)
        assert held < 0.8, f"a member held down is still tried: a connect took {held:.2f}s"
    finally:
        for s in socks:
            s.close()
