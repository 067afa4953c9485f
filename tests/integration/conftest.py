"""Fixtures: `env` starts backends and wsring (from an inline conf) and kills them afterwards;
`node_ws` makes sure Node's `ws` package is installed (or skips). Helpers live in helpers.py."""
import os
import shutil
import signal
import subprocess

import pytest

from etcd_helpers import Etcd, require_etcd
from helpers import HERE, NODE, Env, require_wsring
from zk_helpers import ZooKeeper, zk_available

TEST_TIMEOUT = 240  # seconds; no test may hang the suite


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running acceptance test (still run by default)")
    config.addinivalue_line("markers", "no_wsring: runs without the wsring binary (backends only)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline():
    def on_alarm(_sig, _frame):
        raise DeadlineExceeded(f"test ran longer than {TEST_TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def env(tmp_path, request):
    if request.node.get_closest_marker("no_wsring") is None:
        require_wsring()  # skip before starting any backend
    e = Env(tmp_path)
    yield e
    e.cleanup()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== logs of the processes this test started ({tmp_path}) =====")
        print(e.logs())


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    """An Env shared by the tests of one module (for read-only setups such as the error cases)."""
    require_wsring()
    e = Env(tmp_path_factory.mktemp("shared"))
    yield e
    e.cleanup()


@pytest.fixture(autouse=True)
def _shared_env_logs(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if "shared_env" in request.fixturenames and rep is not None and rep.failed:
        print("\n===== logs of the module's shared processes =====")
        print(request.getfixturevalue("shared_env").logs())


_node_state = {}


@pytest.fixture(scope="session")
def node_ws():
    """Node with the `ws` package in tests/integration/node_modules; skips if unavailable."""
    if "skip" in _node_state:
        pytest.skip(_node_state["skip"])
    if "ok" in _node_state:
        return NODE
    why = None
    if not (NODE and os.access(NODE, os.X_OK)):
        why = "node not found"
    elif not (HERE / "node_modules" / "ws" / "package.json").is_file():
        npm = shutil.which("npm")
        if not npm:
            why = "npm not found (needed to install Node's ws package)"
        else:
            try:
                r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock"],
                                   cwd=HERE, capture_output=True, text=True, timeout=180,
                                   stdin=subprocess.DEVNULL)
                if r.returncode != 0 or not (HERE / "node_modules" / "ws").is_dir():
                    why = f"npm install failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}"
            except (OSError, subprocess.TimeoutExpired) as e:
                why = f"npm install failed: {e}"
    if why is None:
        r = subprocess.run([NODE, "-e", "require('ws')"], cwd=HERE, capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            why = f"node cannot load ws: {r.stderr[-300:]}"
    if why:
        _node_state["skip"] = why
        pytest.skip(why)
    _node_state["ok"] = True
    return NODE


# One etcd and one ZooKeeper per session, shared by every module that asks (test_etcd,
# test_zookeeper, test_sources_agree): each test works under its own prefix or path.
@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    require_etcd()
    e = Etcd(str(tmp_path_factory.mktemp("etcd")))
    e.start()
    yield e
    e.stop()


@pytest.fixture(scope="session")
def zk(tmp_path_factory):
    why = zk_available()
    if why:
        pytest.skip(why)
    server = ZooKeeper(tmp_path_factory.mktemp("zookeeper"))
    took = server.start()
    print(f"ZooKeeper ready in {took:.2f}s on {server.hosts}")
    yield server
    server.stop()


@pytest.fixture
def zk_up(zk):
    """The session's server, running (a test that stopped it restarts it on the same data dir)."""
    if zk.popen.poll() is not None:
        zk.start()
    yield zk
    if zk.stopped():
        zk.kill()
    if zk.popen.poll() is not None:
        zk.start()
