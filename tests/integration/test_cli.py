"""`zray start/status/stop` and joining a running cluster with init(address=...)."""
import contextlib
import os
import subprocess
import sys
import time

from tests.conftest import assert_no_leaks, exited, zray_segments, zray_sessions
from tests.integration.test_lifecycle import ROOT, run_script


def zray_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "zray.scripts.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def token_of(head_stdout: str) -> str:
    """The cluster token `zray start --head` printed, which joining nodes must present."""
    return [l for l in head_stdout.splitlines() if l.startswith("Cluster token:")][0].split()[-1]


def connect_remote_driver(zray, address: str, token: str, nodes: int):
    """init() into a CLI-started cluster as a remote driver would (this process keeps its
    sessions elsewhere, so it is given the token as ZRAY_TOKEN would), then wait (bounded) until
    `nodes` nodes are alive."""
    from zray._config import config

    config.token = token
    try:
        zray.init(address=address)
    finally:
        config.token = ""
    deadline = time.monotonic() + 10
    while len([n for n in zray.nodes() if n["Alive"]]) < nodes and time.monotonic() < deadline:
        time.sleep(0.1)


@contextlib.contextmanager
def stopped_on_failure(env):
    """Around a fixture's cluster start: if anything fails before the cluster is handed over,
    stop every daemon started so far (a failed setup never reaches the teardown)."""
    try:
        yield
    except BaseException:
        zray_cli("stop", "--force", env=env)
        raise


def short_tmp():
    import tempfile

    return tempfile.mkdtemp(prefix="zt", dir="/tmp")  # Unix socket paths must stay short


def test_start_status_join_stop():
    tmp_path = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=str(tmp_path))
    before = (zray_segments(), zray_sessions())
    started = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1",
                       "--resources", '{"special": 2}', env=env)
    assert started.returncode == 0, started.stderr
    address = [l for l in started.stdout.splitlines() if l.startswith("Head address:")][0].split()[-1]
    try:
        status = zray_cli("status", env=env)
        assert status.returncode == 0, status.stderr
        assert "1 alive" in status.stdout and "0/2 special" in status.stdout
        for how in ("auto", address):
            result = run_script(f"""
                import zray as ray
                ray.init(address={how!r})
                @ray.remote(resources={{"special": 1}})
                def f(x):
                    return x * 2
                print(ray.get(f.remote(21)), ray.cluster_resources()["special"])
                ray.shutdown()
            """, env={"ZRAY_SESSION_DIR_ROOT": str(tmp_path)})
            assert result.returncode == 0, result.stderr
            assert result.stdout.split()[-2:] == ["42", "2.0"]
    finally:
        stopped = zray_cli("stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped 1" in stopped.stdout
    assert not [n for n in os.listdir(tmp_path) if n.startswith("session_")]
    assert_no_leaks(*before)
    import shutil

    shutil.rmtree(tmp_path)


def test_init_auto_without_cluster_says_so(tmp_path):
    result = run_script("""
        import zray as ray
        try:
            ray.init(address="auto")
        except ConnectionError as exc:
            print("refused:", exc)
    """, env={"ZRAY_SESSION_DIR_ROOT": str(tmp_path)})
    assert "Could not find any running zray instance" in result.stdout, result.stderr


def test_zray_node_requires_head_or_address():
    result = subprocess.run([sys.executable, "-m", "zray.scripts.node"], capture_output=True,
                            text=True, timeout=30, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode != 0 and "--head" in result.stderr


def test_sigkilled_cluster_is_cleaned_at_next_start():
    import re
    import signal
    import shutil

    tmp_path = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=tmp_path)
    before = (zray_segments(), zray_sessions())
    first = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1", env=env)
    assert first.returncode == 0, first.stderr
    pid = int(re.search(r"\(pid (\d+)\)", first.stdout).group(1))
    session = re.search(r"in (\S+session_\S+)", first.stdout).group(1)
    result = run_script("""
        import numpy as np
        import zray as ray
        ray.init(address="auto")
        ray.put(np.ones(2**20))  # the arena gets pages
    """, env={"ZRAY_SESSION_DIR_ROOT": tmp_path})
    assert result.returncode == 0, result.stderr
    os.kill(pid, signal.SIGKILL)
    assert exited(pid)
    assert os.path.isdir(session)  # a crash leaves its session behind ...
    second = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1", env=env)
    assert second.returncode == 0, second.stderr
    assert not os.path.exists(session)  # ... and the next start removes it
    zray_cli("stop", env=env)
    assert_no_leaks(*before)
    shutil.rmtree(tmp_path)
