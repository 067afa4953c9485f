"""The backend pool's directives (DESIGN §10.1): pool_idle_timeout closes idle keep-alive backend
connections, pool_max_idle caps how many stay per member, and 0 turns pooling off. Observed from
the backend's side: a keep-alive HTTP/1.1 server that records when each connection opens and
closes."""
import concurrent.futures
import http.client
import http.server
import threading
import time

import pytest


class Backend:
    """A keep-alive HTTP/1.1 server (stdlib) counting its open connections."""

    def __init__(self, delay=0.0):
        self.lock = threading.Lock()
        self.opened = 0
        self.closed_at = []  # monotonic times of the closes
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless the client says close

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.opened += 1

            def finish(self):
                super().finish()
                with outer.lock:
                    outer.closed_at.append(time.monotonic())

            def do_GET(self):
                if delay:
                    time.sleep(delay)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def open_now(self):
        with self.lock:
            return self.opened - len(self.closed_at)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.stop()


def get(conn, user):
    conn.request("GET", f"/x?user={user}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"ok"


def test_idle_timeout_closes_pooled_backend_connections(env, backend):
    proxy = env.wsring(f"pool_idle_timeout 300ms\nbackend a 127.0.0.1:{backend.port}\n", workers=1)
    client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    get(client, "u1")
    t_done = time.monotonic()
    time.sleep(0.1)
    assert backend.open_now() == 1  # pooled, idle
    get(client, "u2")  # reused: no new backend connection
    assert backend.opened == 1
    t_done = time.monotonic()
    deadline = t_done + 3
    while backend.open_now() > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.open_now() == 0, "the idle backend connection was never closed"
    idle = backend.closed_at[0] - t_done
    assert 0.25 <= idle <= 1.0, f"closed after {idle:.3f}s idle, want about 0.3s"
    # The client's own connection stays open; the next request connects anew.
    get(client, "u3")
    assert backend.opened == 2
    client.close()


def test_default_idle_timeout_keeps_connections_for_seconds(env, backend):
    proxy = env.wsring(f"backend a 127.0.0.1:{backend.port}\n", workers=1)
    client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    get(client, "u1")
    time.sleep(1.5)
    assert backend.open_now() == 1 and backend.opened == 1  # default 4s: still pooled
    get(client, "u2")
    assert backend.opened == 1
    client.close()


def run_parallel(proxy, n):
    def one(i):
        c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            get(c, f"u{i}")
        finally:
            c.close()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))


def test_pool_max_idle_keeps_at_most_n_per_member(env):
    b = Backend(delay=0.4)  # six requests at once need six backend connections
    try:
        proxy = env.wsring(f"pool_max_idle 2\nbackend a 127.0.0.1:{b.port}\n", workers=1)
        run_parallel(proxy, 6)
        assert b.opened == 6
        deadline = time.monotonic() + 3
        while b.open_now() > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert b.open_now() == 2, f"{b.open_now()} idle backend connections, want 2"
    finally:
        b.stop()


def test_pool_max_idle_0_connects_per_request(env, backend):
    proxy = env.wsring(f"pool_max_idle 0\nbackend a 127.0.0.1:{backend.port}\n", workers=1)
    client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for i in range(5):
        get(client, f"u{i}")
    client.close()
    assert backend.opened == 5
    deadline = time.monotonic() + 3
    while backend.open_now() > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.open_now() == 0
