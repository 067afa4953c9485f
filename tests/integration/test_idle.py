"""Acceptance 7: 9,000 concurrent idle WebSocket connections through one wsring stay open and
usable; wsring's resident memory per connection is printed and stored in build/idle_rss.txt.

wsring holds two descriptors per proxied connection (18,000 here, under the 20,000 hard limit),
so the client side is spread over 6 processes and the backend side over 4.
"""
import os
import select
import subprocess
import time

import pytest

from helpers import HERE, PYTHON, REPO, backend_lines

CLIENT_PROCS = 6
PER_PROC = 1500
TOTAL = CLIENT_PROCS * PER_PROC
SAMPLE_EVERY = 10


def read_line(proc, timeout):
    """One stdout line of a client process, or AssertionError after TIMEOUT."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.popen.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            chunk = os.read(fd, 1)
            if not chunk:
                break
            if chunk == b"\n":
                return buf.decode()
            buf += chunk
    raise AssertionError(f"{proc.name}: no line within {timeout}s (got {buf!r}):\n{proc.log_text()}")


@pytest.mark.slow
def test_nine_thousand_idle_connections(env):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2 * TOTAL + 200:
        pytest.skip(f"descriptor hard limit {hard} < {2 * TOTAL + 200} needed by wsring")
    t0 = time.monotonic()
    backends = env.backends([f"idle-{c}" for c in "abcd"])
    proxy = env.wsring("key query:user\n" + backend_lines(backends))
    time.sleep(0.3)
    rss_before = proxy.rss_kb()

    clients = []
    for i in range(CLIENT_PROCS):
        proc = env.spawn(f"idle-client-{i}",
                         [PYTHON, str(HERE / "idle_client.py"), str(proxy.port), str(PER_PROC),
                          f"idle{i}", "60"],
                         stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        clients.append(proc)
    opened = 0
    for proc in clients:
        line = read_line(proc, 90 - (time.monotonic() - t0))
        _, ok, failed = line.split()
        assert int(failed) == 0, f"{proc.name}: {line}\n{proc.log_text()}"
        opened += int(ok)
    t_open = time.monotonic() - t0
    assert opened == TOTAL
    assert proxy.proc.alive()
    time.sleep(1.0)  # idle for a moment: nothing may be closed behind our back
    rss_after = proxy.rss_kb()

    for proc in clients:
        proc.popen.stdin.write(f"CHECK {SAMPLE_EVERY}\n".encode())
        proc.popen.stdin.flush()
    echoed = still_open = 0
    for proc in clients:
        _, ok, bad, open_now = read_line(proc, 30).split()
        assert int(bad) == 0, f"{proc.name}: {bad} sampled connections did not echo"
        echoed += int(ok)
        still_open += int(open_now)
    assert echoed == TOTAL // SAMPLE_EVERY
    assert still_open == TOTAL, f"only {still_open}/{TOTAL} connections still open"

    per_conn = (rss_after - rss_before) * 1024 / TOTAL
    msg = (f"idle: {TOTAL} WebSocket connections through wsring: RSS {rss_before} kB -> "
           f"{rss_after} kB, {per_conn:.0f} bytes per connection (opened in {t_open:.1f}s, "
           f"{echoed} sampled echoes ok)")
    print(msg)
    out = REPO / "build" / "idle_rss.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(msg + "\n")
    for proc in clients:
        env.kill(proc)
    assert time.monotonic() - t0 < 120, "the idle test must finish within 2 minutes"
