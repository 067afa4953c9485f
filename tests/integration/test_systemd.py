"""systemd integration (DESIGN §6): systemd/wsring.service passes `systemd-analyze verify`,
wsring's sd_notify messages (READY=1, RELOADING=1, STOPPING=1) arrive on a fake $NOTIFY_SOCKET
(a path and the abstract `@name` form) at the right moments, and `make install` into a DESTDIR
puts the binary, the unit and proxy.conf in place. PID 1 need not be systemd for any of it."""
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import (REPO, WSRING_BIN, backend_lines, free_ports, http_get, raw_handshake,
                     read_frame, require_wsring)

UNIT = REPO / "systemd" / "wsring.service"
UNIT_BIN = "/usr/local/bin/wsring"  # the unit's ExecStart binary (Makefile PREFIX default)


# -- helpers ------------------------------------------------------------------------------------
def unit_lines(text):
    """(key, value) of every assignment in a unit file, in order (keys may repeat)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def systemd_analyze():
    """Path of systemd-analyze, installing Debian's `systemd` package if needed; skips when that
    is impossible."""
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("systemd-analyze is missing and cannot be installed (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "systemd"]):
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=200,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            pytest.skip(f"systemd-analyze is missing and `{' '.join(argv)}` failed: "
                        f"{(r.stderr or r.stdout)[-300:]}")
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.skip("the systemd package installed no systemd-analyze")
    return found


class Notify:
    """A fake sd_notify receiver: an AF_UNIX datagram socket bound to a file (ABSTRACT False) or
    in the abstract namespace; `address` is the $NOTIFY_SOCKET value."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dir = None
        if abstract:
            name = f"wsring-test-{os.getpid()}-{os.urandom(4).hex()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            # A short directory of our own: sun_path holds at most 107 bytes.
            self.dir = tempfile.mkdtemp(prefix="wsn-", dir="/tmp")
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)

    def recv(self, timeout=10.0):
        """The next datagram as a list of its NAME=VALUE lines; fails after TIMEOUT."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"no sd_notify message within {timeout}s") from None
        return data.decode().split("\n")

    def nothing(self, within=0.3):
        """Asserts that no datagram arrives WITHIN seconds."""
        self.sock.settimeout(within)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return
        raise AssertionError(f"unexpected sd_notify message {data!r}")

    def close(self):
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify_path():
    n = Notify(abstract=False)
    yield n
    n.close()


@pytest.fixture
def notify_abstract():
    n = Notify(abstract=True)
    yield n
    n.close()


def start_notified(env, monkeypatch, notify, body):
    """Starts wsring on BODY with NOTIFY_SOCKET set, without waiting for anything.
    Returns (proc, listen port, admin port, conf path)."""
    require_wsring()
    port, admin = free_ports(2)
    conf = env.write_conf(f"listen 127.0.0.1:{port}\nadmin 127.0.0.1:{admin}\nworkers 2\n{body}",
                          "wsring.conf")
    monkeypatch.setenv("NOTIFY_SOCKET", notify.address)
    proc = env.spawn("wsring", [str(WSRING_BIN), "-c", str(conf)])
    return proc, port, admin, conf


def log_events(proc):
    return re.findall(r"\bevent=(\w+)", proc.log_text(limit=10_000_000))


def wait_exit(proc, timeout):
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"wsring still running {timeout}s after SIGTERM:\n"
                             f"{proc.log_text()}") from None


# -- the unit file ------------------------------------------------------------------------------
@pytest.mark.no_wsring
def test_unit_says_what_the_deployment_relies_on():
    kv = unit_lines(UNIT.read_text())
    one = {}
    for k, v in kv:
        one.setdefault(k, v)
    assert one["Type"] == "notify"
    assert one["ExecStart"] == f"{UNIT_BIN} -c /etc/wsring/proxy.conf"
    assert ("ExecReload", "/bin/kill -HUP $MAINPID") in kv
    assert one["KillSignal"] == "SIGTERM"
    # Above drain_timeout's default (30s), or systemd SIGKILLs wsring in the middle of a drain.
    assert int(one["TimeoutStopSec"].rstrip("s")) > 30
    assert one["Restart"] == "on-failure"
    assert one["LimitNOFILE"] == "1048576"
    assert (one["User"], one["Group"]) == ("wsring", "wsring")
    for k, v in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                 "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
                 "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
                 "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
                 "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
                 "AmbientCapabilities": "CAP_NET_BIND_SERVICE", "StateDirectory": "wsring",
                 "ConfigurationDirectory": "wsring", "LockPersonality": "yes",
                 "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
                 "SystemCallArchitectures": "native"}.items():
        assert one.get(k) == v, f"{k}={one.get(k)!r}, want {v!r}"


def test_systemd_analyze_verify_is_clean(tmp_path):
    """The unit as shipped, with only its binary path pointed at the wsring under test (verify
    refuses a missing executable). User=wsring stays as it is, whether or not that user exists
    here: verify does not resolve users (systemd does that when it starts the unit), and
    swapping in an existing one would verify something else (User=nobody draws a warning)."""
    analyze = systemd_analyze()
    text = UNIT.read_text()
    assert UNIT_BIN in text
    text = text.replace(UNIT_BIN, str(WSRING_BIN.resolve()))
    unit = tmp_path / "wsring.service"  # verify derives the unit name from the file name
    unit.write_text(text)
    r = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).splitlines()
    ours = [ln for ln in out if "wsring" in ln]
    assert not ours, "systemd-analyze verify complains about the unit:\n" + "\n".join(out)
    # Lines about other (system) units are not ours to fix; without any, verify must pass.
    assert r.returncode == 0 or out, f"verify exited {r.returncode} without a message"


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    analyze = systemd_analyze()
    unit = tmp_path / "wsring.service"
    unit.write_text(UNIT.read_text().replace(UNIT_BIN, str(WSRING_BIN.resolve())))
    r = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    m = re.search(r"Overall exposure level for wsring\.service: ([0-9.]+) (\w+)", r.stdout)
    if m is None and "offline" in r.stderr:
        pytest.skip(f"this systemd-analyze has no `security --offline`: {r.stderr[-200:]}")
    assert m, f"no exposure level in:\n{r.stdout[-2000:]}\n{r.stderr[-1000:]}"
    # 0 = locked down .. 10 = unprotected; 2.0 "OK" when written.
    assert float(m.group(1)) <= 3.0, r.stdout


# -- sd_notify ------------------------------------------------------------------------------------
def check_ready_reload_stop(env, monkeypatch, notify):
    (b,) = env.backends(["ws-a"])
    proc, port, admin, conf = start_notified(
        env, monkeypatch, notify, f"key query:user\ndrain_timeout 10s\n{backend_lines([b])}")

    # READY=1 is the first message, and once it is here the listener and the admin port answer.
    assert notify.recv() == ["READY=1"], proc.log_text()
    socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    assert http_get(admin, "/healthz", timeout=2.0) == (200, b"ok\n")
    assert "ready" in log_events(proc)
    sock, head = raw_handshake(port, "alice")
    hello = read_frame(sock)
    assert hello[1] == 1 and b'"backend": "ws-a"' in hello[2], hello
    notify.nothing()

    # SIGHUP: RELOADING=1, then READY=1 once the file has been read again.
    os.kill(proc.pid, signal.SIGHUP)
    assert notify.recv() == ["RELOADING=1"]
    assert notify.recv() == ["READY=1"]
    events = log_events(proc)
    assert events[-2:] == ["reloading", "reloaded"], events

    # A broken file: the reload fails, the running configuration stays, and systemd still gets
    # READY=1 (or the unit would stay "reloading").
    good = conf.read_text()
    conf.write_text(good + "vnodes many\n")
    os.kill(proc.pid, signal.SIGHUP)
    assert notify.recv() == ["RELOADING=1"]
    assert notify.recv() == ["READY=1"]
    text = proc.log_text()
    assert re.search(r'event=reload_failed error="[^"]*wsring\.conf:\d+: ', text), text
    assert http_get(admin, "/healthz")[0] == 200
    conf.write_text(good)
    notify.nothing()

    # SIGTERM: STOPPING=1 at once, while a WebSocket is still open; the client gets Close 1001,
    # and once it is gone wsring exits 0.
    os.kill(proc.pid, signal.SIGTERM)
    assert notify.recv(timeout=3.0) == ["STOPPING=1"]
    fin, op, payload = read_frame(sock)
    assert op == 8 and struct.unpack("!H", payload[:2])[0] == 1001, (op, payload)
    sock.close()
    assert wait_exit(proc, 10) == 0, proc.log_text()
    assert log_events(proc)[-1] == "stopped"


def test_notify_ready_reload_stopping_on_a_socket_path(env, monkeypatch, notify_path):
    check_ready_reload_stop(env, monkeypatch, notify_path)


def test_notify_ready_reload_stopping_on_an_abstract_socket(env, monkeypatch, notify_abstract):
    check_ready_reload_stop(env, monkeypatch, notify_abstract)


def test_ready_waits_for_the_listener_with_consul_down(env, monkeypatch, notify_path):
    """With discovery consul and no agent at all, wsring still listens and says READY=1 (an empty
    ring answers 503), so systemd does not time the start out while Consul is away."""
    (dead,) = free_ports(1)
    body = (f"discovery consul\nconsul {{\n    address http://127.0.0.1:{dead}\n"
            f"    service ws-backend\n}}\n")
    proc, port, admin, _ = start_notified(env, monkeypatch, notify_path, body)
    assert notify_path.recv() == ["READY=1"], proc.log_text()
    status, _ = http_get(port, "/chat?user=alice")
    assert status == 503
    os.kill(proc.pid, signal.SIGTERM)
    assert notify_path.recv(timeout=3.0) == ["STOPPING=1"]
    assert wait_exit(proc, 10) == 0, proc.log_text()


def test_unreachable_notify_socket_is_harmless(env, monkeypatch):
    """A NOTIFY_SOCKET nobody listens on (or a relative one, which sd_notify ignores) changes
    nothing: wsring starts, serves and stops cleanly."""
    for address in ("/nonexistent/notify", "@wsring-nobody-listens-" + os.urandom(4).hex(),
                    "relative/notify"):
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        proxy = env.wsring("backend ws-a 127.0.0.1:1\n")
        assert proxy.lookup("alice")["owner"] == "ws-a"
        os.kill(proxy.pid, signal.SIGTERM)
        assert wait_exit(proxy.proc, 10) == 0, proxy.proc.log_text()


# -- make install ---------------------------------------------------------------------------------
def make_install(destdir, prefix):
    """`make install` with the binary already built: `-o all` keeps a test from rebuilding (or
    replacing) ./wsring under the rest of the suite; the recipe itself runs as written."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    r = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "-o", "all", "install",
                        f"DESTDIR={destdir}", f"PREFIX={prefix}"],
                       capture_output=True, text=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"make install failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


@pytest.mark.no_wsring
def test_make_install_into_destdir(tmp_path):
    built = REPO / "wsring"
    if not (built.is_file() and os.access(built, os.X_OK)):
        pytest.skip(f"{built} not built (run make)")
    if not shutil.which("make"):
        pytest.skip("make not found")
    dest = tmp_path / "root"
    make_install(dest, "/usr")

    binary = dest / "usr/bin/wsring"
    unit = dest / "lib/systemd/system/wsring.service"
    conf = dest / "etc/wsring/proxy.conf"
    assert binary.read_bytes() == built.read_bytes()
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                          timeout=10).stdout.startswith("wsring ")
    text = unit.read_text()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert ("ExecStart", "/usr/bin/wsring -c /etc/wsring/proxy.conf") in unit_lines(text)
    assert UNIT_BIN not in text
    # Nothing but the binary's path changed.
    assert text == UNIT.read_text().replace(UNIT_BIN, "/usr/bin/wsring")
    assert conf.read_text() == (REPO / "conf/proxy.conf").read_text()
    assert not list(dest.rglob("*.tmp")), "a temporary file was left behind"
    r = subprocess.run([str(binary), "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr

    # A second install replaces the binary and the unit but keeps an edited proxy.conf.
    edited = conf.read_text().replace("listen            127.0.0.1:8080",
                                      "listen            127.0.0.1:8081  # edited")
    assert edited != conf.read_text()
    conf.write_text(edited)
    unit.write_text("stale\n")
    out = make_install(dest, "/usr")
    assert "keeping existing" in out, out
    assert conf.read_text() == edited
    assert unit.read_text() == text

    # The default PREFIX is /usr/local, the path the unit ships with.
    dest2 = tmp_path / "root2"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    r = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "-o", "all", "install",
                        f"DESTDIR={dest2}"], capture_output=True, text=True, timeout=120,
                       env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (dest2 / "usr/local/bin/wsring").is_file()
    assert (dest2 / "lib/systemd/system/wsring.service").read_text() == UNIT.read_text()
