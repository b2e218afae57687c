"""A node whose process dies is noticed when its connection breaks, not after missing
heartbeats for node_death_timeout_s: its tasks are retried elsewhere within seconds."""

import os
import re
import shutil
import signal
import tempfile
import time

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import connect_remote_driver, stopped_on_failure, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT

HEARTBEAT_TIMEOUT_S = 60.0  # far longer than the test may take: only the connection can tell


def test_a_killed_node_is_declared_dead_within_seconds():
    import zray

    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        ZRAY_SESSION_DIR_ROOT=root,
        ZRAY_NODE_DEATH_TIMEOUT_S=str(HEARTBEAT_TIMEOUT_S),
    )
    before = (zray_segments(), zray_sessions())
    with stopped_on_failure(env):
        head = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1", env=env)
        assert head.returncode == 0, head.stderr
        address = re.search(r"Head address: (\S+)", head.stdout).group(1)
        joined = zray_cli(
            "start",
            f"--address={address}",
            "--num-cpus",
            "1",
            "--resources",
            '{"w": 1, "any": 1}',
            "--token",
            token_of(head.stdout),
            env=env,
        )
        assert joined.returncode == 0, joined.stderr
        victim = int(re.search(r"\(pid (\d+)\)", joined.stdout).group(1))
        other = zray_cli(
            "start",
            f"--address={address}",
            "--num-cpus",
            "1",
            "--resources",
            '{"any": 1}',
            "--token",
            token_of(head.stdout),
            env=env,
        )
        assert other.returncode == 0, other.stderr
    try:
        connect_remote_driver(zray, address, token_of(head.stdout), 3)

        @zray.remote(resources={"any": 1}, max_retries=3)
        def work(i):
            time.sleep(1.0)
            return i

        @zray.remote(resources={"w": 0.5})
        class Keeper:
            def keep(self):
                return [zray.put("kept on the node that dies")]  # the actor owns it

        (inner,) = zray.get(Keeper.remote().keep.remote(), timeout=30)
        refs = [work.remote(i) for i in range(4)]
        time.sleep(0.5)  # running on both nodes with "any"
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 15
        while all(n["Alive"] for n in zray.nodes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        noticed = time.monotonic() - killed
        assert noticed < 5, f"the dead node was noticed only after {noticed:.1f} s"
        assert zray.get(refs, timeout=30) == [0, 1, 2, 3]
        # Its processes are announced dead with it: what they owned is gone, and says so.
        start = time.monotonic()
        with pytest.raises(zray.exceptions.OwnerDiedError):
            zray.get(inner, timeout=30)
        assert time.monotonic() - start < 5
        dead = [n for n in zray.nodes() if not n["Alive"]]
        assert len(dead) == 1 and "connection closed" in dead[0]["DeathReasonMessage"]
        print(f"dead node noticed {noticed:.2f} s after SIGKILL")
    finally:
        zray.shutdown()
        zray_cli("stop", env=env)
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)
