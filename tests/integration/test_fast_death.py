"""A node whose process dies is noticed when its connection breaks, not after missing
heartbeats for node_death_timeout_s: its tasks are retried elsewhere within seconds."""

import os
import signal
import time

import pytest

from tests.loopback_cluster import loopback_cluster

HEARTBEAT_TIMEOUT_S = 60.0  # far longer than the test may take: only the connection can tell


def test_a_killed_node_is_declared_dead_within_seconds():
    nodes = {"w": {"w": 1, "any": 1}, "other": {"any": 1}}
    with loopback_cluster(nodes=nodes, node_death_timeout_s=HEARTBEAT_TIMEOUT_S) as cluster:
        zray, victim = cluster.ray, cluster.pids["w"]

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
