"""Finding a `zray start` cluster on this machine: nodes joining without --token, init() without
an address (the recorded cluster, RAY_ADDRESS, ZRAY_ADDRESS), stale records, and --temp-dir."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import short_tmp, zray_cli
from tests.integration.test_lifecycle import ROOT

# What a driver saw: whether it announced an attach, and the custom resources it can use.
DRIVER = """
import zray as ray
ray.init()
print("resources:", sorted(k for k in ray.cluster_resources() if k.startswith("c_")),
      len(ray.nodes()))
ray.shutdown()
"""
AUTO = """
import zray as ray
try:
    ray.init(address="auto")
except ConnectionError as exc:
    print("refused:", exc)
"""


def cli_env(root, **extra):
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root, **extra)
    for name in ("ZRAY_TOKEN", "ZRAY_ADDRESS", "RAY_ADDRESS"):
        if name not in extra:
            env.pop(name, None)
    return env


def head_address(stdout: str) -> str:
    return re.search(r"^Head address: (\S+)$", stdout, re.M).group(1)


@contextlib.contextmanager
def cli_root():
    """A fresh session root whose every `zray start` is stopped and checked for leaks."""
    root = short_tmp()
    before = (zray_segments(), zray_sessions())
    try:
        yield root, cli_env(root)
    finally:
        zray_cli("stop", env=cli_env(root))
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)


def start(env, *flags):
    result = zray_cli("start", "--num-cpus", "1", *flags, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def driver(root, **env):
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(root, **env),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("resources:")[-1].strip(), result.stderr


def test_node_on_the_heads_machine_joins_without_token():
    with cli_root() as (root, env):
        head = start(env, "--head", "--port", "0", "--resources", '{"c_head": 1}')
        address = head_address(head.stdout)
        assert f"zray start --address={address}\n" in head.stdout  # the same-host join
        joined = start(env, f"--address={address}", "--resources", '{"c_w": 1}')
        assert "Started zray node" in joined.stdout
        status = zray_cli("status", env=env)
        assert "2 alive" in status.stdout, status.stdout + status.stderr
        # The token goes only to the address the head recorded, not to another spelling of it.
        port = address.rsplit(":", 1)[1]
        guessed = zray_cli("start", f"--address=localhost:{port}", "--num-cpus", "1", env=env)
        assert guessed.returncode == 1 and "needs its token" in guessed.stderr, guessed.stderr
        # A machine without the cluster's sessions (another root) still needs the token.
        elsewhere = short_tmp()
        try:
            refused = zray_cli(
                "start", f"--address={address}", "--num-cpus", "1", env=cli_env(elsewhere)
            )
        finally:
            shutil.rmtree(elsewhere, ignore_errors=True)
        assert refused.returncode == 1 and "needs its token" in refused.stderr, refused.stderr


def test_init_without_address_attaches_to_the_started_cluster_until_stop():
    with cli_root() as (root, env):
        head = start(env, "--head", "--port", "0", "--resources", '{"c_started": 1}')
        seen, log = driver(root)
        assert seen == "['c_started'] 1"
        assert f"Connecting to existing zray cluster at address: {head_address(head.stdout)}" in log
        stopped = zray_cli("stop", env=env)
        assert "Stopped 1" in stopped.stdout
        seen, log = driver(root)  # the record went with the cluster: a new local one
        assert seen == "[] 1" and "Connecting to existing" not in log


def test_ray_address_then_zray_address_pick_the_cluster():
    with cli_root() as (root, env):
        first = head_address(
            start(env, "--head", "--port", "0", "--resources", '{"c_first": 1}').stdout
        )
        second = head_address(
            start(env, "--head", "--port", "0", "--resources", '{"c_second": 1}').stdout
        )
        assert driver(root)[0] == "['c_second'] 1"  # the cluster started last
        assert driver(root, RAY_ADDRESS=first)[0] == "['c_first'] 1"
        assert driver(root, RAY_ADDRESS=first, ZRAY_ADDRESS=second)[0] == "['c_second'] 1"


def test_stale_record_falls_back_to_a_new_local_cluster():
    with cli_root() as (root, env):
        head = start(env, "--head", "--port", "0", "--resources", '{"c_dead": 1}')
        pid = int(re.search(r"\(pid (\d+)\)", head.stdout).group(1))
        os.kill(pid, signal.SIGKILL)
        seen, log = driver(root, ZRAY_JOIN_TIMEOUT_S="5")
        assert seen == "[] 1" and "Connecting to existing" not in log
        auto = subprocess.run(
            [sys.executable, "-c", AUTO],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(root),
        )
        assert "Could not find any running zray instance" in auto.stdout, auto.stderr


def test_temp_dir_keeps_sessions_apart_and_the_cluster_findable():
    with cli_root() as (root, env):
        temp_dir = os.path.join(root, "t")
        head = start(
            env, "--head", "--port", "0", "--temp-dir", temp_dir, "--resources", '{"c_temp": 1}'
        )
        assert f"in {temp_dir}/session_" in head.stdout
        address = head_address(head.stdout)
        joined = start(env, f"--address={address}", "--temp-dir", temp_dir)
        assert f"in {temp_dir}/session_" in joined.stdout
        assert not [s for s in os.listdir(root) if s.startswith("session_")]
        assert driver(root)[0] == "['c_temp'] 2"  # found from the default root
        assert driver(temp_dir)[0] == "['c_temp'] 2"  # and from the cluster's own
        stopped = zray_cli("stop", env=env)
        assert "Stopped 2" in stopped.stdout, stopped.stdout + stopped.stderr
        assert not [s for s in os.listdir(temp_dir) if s.startswith("session_")]


def test_record_whose_head_is_gone_falls_back_to_a_new_local_cluster():
    """A node joined from another machine (root) outlives its head: its record is live, yet
    init() without an address must not fail; with address="auto" it must say so."""
    with cli_root() as (head_root, head_env), cli_root() as (node_root, node_env):
        head = start(head_env, "--head", "--port", "0")
        token = re.search(r"^Cluster token: (\S+)$", head.stdout, re.M).group(1)
        start(node_env, f"--address={head_address(head.stdout)}", "--token", token)
        assert "Stopped 1" in zray_cli("stop", env=head_env).stdout
        seen, log = driver(node_root, ZRAY_JOIN_TIMEOUT_S="2")
        assert seen == "[] 1", log
        assert "starting a new local cluster" in log
        auto = subprocess.run(
            [sys.executable, "-c", AUTO],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(node_root, ZRAY_JOIN_TIMEOUT_S="2"),
        )
        assert "refused: no zray process answered" in auto.stdout, auto.stdout + auto.stderr
