"""`zray start/status/stop` and joining a running cluster with init(address=...)."""

import contextlib
import os
import subprocess
import sys
import time

from tests.conftest import assert_no_leaks, exited, zray_segments, zray_sessions
from tests.integration.test_lifecycle import ROOT, run_script


def zray_cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


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
    started = zray_cli(
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "1",
        "--resources",
        '{"special": 2}',
        env=env,
    )
    assert started.returncode == 0, started.stderr
    address = [l for l in started.stdout.splitlines() if l.startswith("Head address:")][0].split()[
        -1
    ]
    try:
        status = zray_cli("status", env=env)
        assert status.returncode == 0, status.stderr
        assert "1 alive" in status.stdout and "0/2 special" in status.stdout
        for how in ("auto", address):
            result = run_script(
                f"""
                import zray as ray
                ray.init(address={how!r})
                @ray.remote(resources={{"special": 1}})
                def f(x):
                    return x * 2
                print(ray.get(f.remote(21)), ray.cluster_resources()["special"])
                ray.shutdown()
            """,
                env={"ZRAY_SESSION_DIR_ROOT": str(tmp_path)},
            )
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
    result = run_script(
        """
        import zray as ray
        try:
            ray.init(address="auto")
        except ConnectionError as exc:
            print("refused:", exc)
    """,
        env={"ZRAY_SESSION_DIR_ROOT": str(tmp_path)},
    )
    assert "Could not find any running zray instance" in result.stdout, result.stderr


def test_zray_node_requires_head_or_address():
    result = subprocess.run(
        [sys.executable, "-m", "zray.scripts.node"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
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
    result = run_script(
        """
        import numpy as np
        import zray as ray
        ray.init(address="auto")
        ray.put(np.ones(2**20))  # the arena gets pages
    """,
        env={"ZRAY_SESSION_DIR_ROOT": tmp_path},
    )
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


def test_cli_without_a_cluster_says_so_in_one_line():
    import socket

    tmp_path = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=tmp_path, ZRAY_JOIN_TIMEOUT_S="2")
    for name in ("ZRAY_ADDRESS", "RAY_ADDRESS", "ZRAY_TOKEN"):
        env.pop(name, None)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = "127.0.0.1:%d" % probe.getsockname()[1]
    try:
        for verb in (("status",), ("memory",)):
            result = zray_cli(*verb, env=env)
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            assert result.stderr.strip() == (
                f"zray {verb[0]}: Could not find any running zray instance. Please specify the "
                "one to connect to by setting `--address` flag or `RAY_ADDRESS` environment "
                "variable."
            )
        for verb in (
            ("status", "--address", nowhere),
            ("memory", "--address", nowhere),
            ("status", "--address", "not an address"),
        ):
            result = zray_cli(*verb, env=env)
            assert result.returncode == 1, result.stderr
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        with_token = dict(env, ZRAY_TOKEN="some-token")
        result = zray_cli("status", "--address", nowhere, env=with_token)
        assert result.returncode == 1 and result.stderr.startswith(
            "zray status: no zray process answered"
        ), result.stderr
        joined = zray_cli("start", f"--address={nowhere}", env=with_token)
        assert joined.returncode == 1 and "Traceback" not in joined.stderr, joined.stderr
        assert f"cannot join the cluster at tcp://{nowhere}" in joined.stderr
        stopped = zray_cli("stop", env=env)
        assert stopped.returncode == 0 and stopped.stderr == ""
        assert stopped.stdout.strip() == "Did not find any active zray processes."
    finally:
        import shutil

        shutil.rmtree(tmp_path)


def test_rays_start_flags_are_acted_on_warned_about_or_refused():
    import psutil
    import re
    import shutil

    tmp_path = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=tmp_path)
    before = (zray_segments(), zray_sessions())
    try:
        refused = zray_cli("start", "--head", "--port", "0", "--labels", "zone=a", env=env)
        assert refused.returncode == 2 and "--labels is not supported" in refused.stderr
        assert not zray_sessions() - before[1]  # nothing was started
        spill = os.path.join(tmp_path, "spill")
        started = zray_cli(
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "1",
            "--memory",
            str(10**9),
            "--object-spilling-directory",
            spill,
            "--dashboard-port",
            "8265",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
            "--log-style",
            "record",
            "-v",
            env=env,
        )
        assert started.returncode == 0, started.stderr
        warned = [line for line in started.stderr.splitlines() if "ignoring" in line]
        assert [re.search(r"ignoring (\S+)", line).group(1) for line in warned] == [
            "--log-style",
            "--verbose",
        ]
        pid = int(re.search(r"\(pid (\d+)\)", started.stdout).group(1))
        assert psutil.Process(pid).environ()["ZRAY_SPILL_DIR"] == spill
        result = run_script(
            """
            import zray as ray
            ray.init()
            print(ray.cluster_resources()["memory"])
            ray.shutdown()
        """,
            env={"ZRAY_SESSION_DIR_ROOT": tmp_path},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == "1000000000.0"
    finally:
        stopped = zray_cli("stop", env=env)
    assert "Stopped 1" in stopped.stdout, stopped.stdout + stopped.stderr
    assert_no_leaks(*before)
    shutil.rmtree(tmp_path)


def test_block_runs_the_node_until_interrupted_and_leaves_nothing():
    import shutil
    import signal

    tmp_path = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=tmp_path)
    before = (zray_segments(), zray_sessions())
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zray.scripts.cli",
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "1",
            "--block",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines = [cli.stdout.readline() for _ in range(2)]  # bounded by the node's start timeout
        assert lines[1].startswith("Head address:"), lines
        status = zray_cli("status", env=env)
        assert "1 alive" in status.stdout, status.stdout + status.stderr
        cli.send_signal(signal.SIGINT)  # to the CLI alone: it must pass it on
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            zray_cli("stop", "--force", env=env)
            cli.kill()
            cli.wait()
        cli.stdout.close()
    assert sorted(os.listdir(tmp_path)) == []  # no session, no record
    assert_no_leaks(*before)
    shutil.rmtree(tmp_path)
