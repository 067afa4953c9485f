"""Helpers for test_zookeeper.py: a real ZooKeeper 3.8 server (Debian's `zookeeper` package, run
as a bare JVM as /work/shared/REAL-SERVERS.md §2 measured), backends registered the way Curator
does (zk_register.py, one ZooKeeper session per backend), and wsring confs with a
`zookeeper` block."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from helpers import HERE, PYTHON, Backend, free_ports

ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
ZK_READY_TIMEOUT = 30.0  # measured 0.6-6.2 s under load (REAL-SERVERS §2)
TICK_MS = 200  # sessions clamp to 400..4000 ms: backends' sessions expire in about 1 s


def zk_available():
    """None, or why a ZooKeeper server cannot run here."""
    if not shutil.which("java"):
        return "java not found (install default-jre-headless)"
    for jar in ZK_CLASSPATH.split(":"):
        if not Path(jar).is_file():
            return f"{jar} not found (install zookeeper)"
    try:
        import kazoo  # noqa: F401
    except ImportError:
        return "python3-kazoo not installed"
    return None


def srvr(port, timeout=1.0):
    """The `srvr` four-letter word's answer ('' when the server does not answer in time)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"srvr")
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out.decode(errors="replace")
                out += chunk
    except OSError:
        return ""


class ZooKeeper:
    """One standalone server on a loopback port with its own data dir; stopped by pid."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.data = self.dir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.cfg = self.dir / "zoo.cfg"
        self.cfg.write_text(
            f"dataDir={self.data}\nclientPort={self.port}\nclientPortAddress=127.0.0.1\n"
            f"tickTime={TICK_MS}\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n"
            "maxClientCnxns=0\nmaxSessionTimeout=30000\n")
        self.log = self.dir / "zookeeper.log"
        self.popen = None
        self.starts = 0

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        """Starts the server (on the same data dir every time) and waits until it serves."""
        self.starts += 1
        with open(self.log, "ab") as logf:
            self.popen = subprocess.Popen(
                ["java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                 "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", ZK_CLASSPATH,
                 "org.apache.zookeeper.server.ZooKeeperServerMain", str(self.cfg)],
                stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + ZK_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"ZooKeeper exited with {self.popen.returncode}:\n"
                                     f"{self.log.read_text(errors='replace')[-3000:]}")
            if "Mode: standalone" in srvr(self.port):
                return time.monotonic() - (deadline - ZK_READY_TIMEOUT)
            time.sleep(0.05)
        raise AssertionError(f"ZooKeeper not ready within {ZK_READY_TIMEOUT}s:\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")

    def send(self, sig):
        os.kill(self.popen.pid, sig)

    def stopped(self):
        """True while the JVM is stopped by SIGSTOP."""
        try:
            return Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(") ", 1)[1][0] == "T"
        except (OSError, IndexError):
            return False

    def stop(self):
        if self.popen is None or self.popen.poll() is not None:
            return
        if self.stopped():
            self.kill()
            return
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self):
        """SIGKILL, also while stopped (SIGSTOP): the JVM dies at once."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


class Registration:
    """A backend's ephemeral node, held by its own zk_register.py process (own session)."""

    def __init__(self, env, zk, path, backend, rid, weight=None, public_url=None, spring=False,
                 raw=None, timeout=1.0):
        argv = [PYTHON, str(HERE / "zk_register.py"), "--hosts", zk.hosts, "--path", path,
                "--id", rid, "--port", str(backend.port if backend else 1),
                "--timeout", str(timeout)]
        if weight is not None:
            argv += ["--weight", str(weight)]
        if public_url:
            argv += ["--public-url", public_url]
        if spring:
            argv.append("--spring")
        if raw is not None:
            argv += ["--raw", raw]
        self.env, self.rid, self.path = env, rid, path
        self.proc = env.spawn(f"zkreg-{rid}", argv, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        self.session = self._line("READY", 20)

    def _line(self, want, timeout=10):
        import select
        fd = self.proc.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode()
                    assert line.startswith(want), f"{self.proc.name}: {line!r}"
                    return line.split(" ", 1)[1] if " " in line else ""
            elif self.proc.popen.poll() is not None:
                break
        raise AssertionError(f"{self.proc.name}: no {want} line:\n{self.proc.log_text()}")

    def command(self, text):
        self.proc.popen.stdin.write((text + "\n").encode())
        self.proc.popen.stdin.flush()
        self._line("DONE")

    def delete(self):
        self.command("delete")

    def close(self):
        """Closes the session cleanly: the server deletes the node at once."""
        self.proc.popen.stdin.close()
        self.proc.popen.wait(10)

    def kill(self):
        """The backend's process dies: the node stays until its session expires."""
        self.env.kill(self.proc)


def zk_body(zk, path, ring_hold="200ms", session_timeout="4s", extra=""):
    """Directives for Env.wsring(): routing on ?user=, discovery from ZooKeeper (ZK is a
    ZooKeeper or a `hosts` string)."""
    hosts = zk if isinstance(zk, str) else zk.hosts
    return (f"key query:user\nring_hold {ring_hold}\ndiscovery zookeeper\n{extra}"
            f"zookeeper {{\n    hosts {hosts}\n    path {path}\n"
            f"    session_timeout {session_timeout}\n}}\n")


def backend(env, rid):
    """A Python websockets backend that reports RID (the ring id) as its name."""
    argv = [PYTHON, str(HERE / "backend_py.py"), "--name", rid, "--port", "0"]
    proc = env.spawn("backend-" + rid, argv, stdout=subprocess.PIPE)
    return Backend(rid, env.read_ready(proc), proc, "py")
