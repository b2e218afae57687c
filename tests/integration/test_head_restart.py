"""A SIGKILLed head started again on its state (same port) resumes the cluster: worker nodes,
their workers and actors, and drivers attached to them carry on, find the head again and
re-register; running tasks deliver their results; actors keep their state; named and detached
actors are still found; functions exported before the crash still load; actors pending at the
crash get placed. Without a head, calls wait for it, and fail clearly after the window."""

from __future__ import annotations

import threading
import time

import pytest

from tests.head_cluster import RestartableCluster, driven_cluster, wait_for


@pytest.fixture
def cluster(monkeypatch):
    with driven_cluster(monkeypatch, {"w1": {}, "w2": {}}) as both:
        yield both


def test_a_restarted_head_resumes_the_cluster(cluster):
    import numpy as np

    ray, cluster = cluster

    @ray.remote
    class Counter:
        def __init__(self):
            self.count = 0

        def add(self):
            self.count += 1
            return self.count

    @ray.remote
    def slow(seconds, value):
        time.sleep(seconds)
        return value

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def total(array):
        return float(array.sum())

    counter = Counter.options(resources={"w1": 0.1}).remote()
    detached = Counter.options(name="keeper", lifetime="detached", resources={"w2": 0.1}).remote()
    assert ray.get([counter.add.remote(), detached.add.remote()], timeout=60) == [1, 1]
    assert ray.get(square.options(resources={"w1": 0.1}).remote(3), timeout=60) == 9
    big = ray.put(np.ones(2**20))  # in w1's arena: the directory must learn it again
    running = [slow.options(resources={"w2": 0.1}).remote(3, i) for i in range(2)]
    time.sleep(0.5)

    cluster.kill_head()
    down_at = time.monotonic()
    # Calls to the actors need no head: they go on while it is away.
    assert ray.get(counter.add.remote(), timeout=30) == 2
    named_while_down = []
    lookup = threading.Thread(target=lambda: named_while_down.append(ray.get_actor("keeper")))
    lookup.start()  # waits for the head to come back, then finds the actor
    time.sleep(0.5)
    cluster.start_head()
    lookup.join(timeout=60)
    assert named_while_down, "get_actor() while the head was away did not return"

    assert ray.get(running, timeout=60) == [0, 1]  # ran through the restart
    assert ray.get([counter.add.remote(), detached.add.remote()], timeout=60) == [3, 2]
    assert ray.get(named_while_down[0].add.remote(), timeout=60) == 3
    # Exported before the crash, first run on w2 after it: loaded from the restored KV.
    assert ray.get(square.options(resources={"w2": 0.1}).remote(4), timeout=60) == 16
    # w2 pulls `big` from w1: found through the directory w1 rebuilt.
    assert ray.get(total.options(resources={"w2": 0.1}).remote(big), timeout=60) == 2**20
    nodes = wait_for(
        lambda: [n for n in ray.nodes() if n["Alive"]] if len(ray.nodes()) == 4 else None,
        30,
        "the nodes' view",
    )
    assert sorted(name for n in nodes for name in ("w1", "w2") if name in n["Resources"]) == [
        "w1",
        "w2",
    ]
    old_head = [n for n in ray.nodes() if not n["Alive"]]
    assert len(old_head) == 1 and "node:__internal_head__" in old_head[0]["Resources"]
    fresh = Counter.remote()
    assert ray.get(fresh.add.remote(), timeout=60) == 1
    assert time.monotonic() - down_at < 60
    ray.kill(detached)


def test_an_actor_pending_at_the_crash_is_placed_after_it(cluster):
    ray, cluster = cluster

    @ray.remote(resources={"later": 1})
    class Waiting:
        def where(self):
            return "placed"

    waiting = Waiting.remote()  # no node has "later": PENDING
    ready, _ = ray.wait([waiting.where.remote()], timeout=1)
    assert not ready
    cluster.kill_head()
    cluster.start_head()
    cluster.add_node("w3", later=1)
    assert ray.get(waiting.where.remote(), timeout=60) == "placed"


def test_without_a_head_calls_wait_then_fail_clearly(monkeypatch):
    import zray

    from zray._private.wire.head_link import HeadUnavailableError

    cluster = RestartableCluster(reconnect_timeout_s=4.0)
    try:
        cluster.start_head()
        node_pid = cluster.add_node("w1")
        cluster.connect_driver(zray, monkeypatch, "w1")
        cluster.kill_head()
        started = time.monotonic()
        with pytest.raises(HeadUnavailableError, match="head_reconnect_timeout_s=4s"):
            zray.get_actor("nobody")
        assert 3 <= time.monotonic() - started < 30
        # The node gives up as well, as Ray's raylet does.
        from tests.conftest import exited

        assert exited(node_pid, timeout=20)
    finally:
        zray.shutdown()
        cluster.stop()


def test_a_head_terminated_alone_keeps_its_state_and_zray_stop_clears_it():
    """SIGTERM to the head alone (a service manager's restart) keeps its tables, and its node
    comes back to the head started again on them; `zray stop` ends the cluster and clears."""
    import os
    import signal

    from tests.conftest import exited
    from tests.integration.test_cli import zray_cli
    from zray._private.head import store as H

    cluster = RestartableCluster(reconnect_timeout_s=30.0)
    try:
        cluster.start_head()
        cluster.add_node("w1")
        os.kill(cluster.head_pid, signal.SIGTERM)
        assert exited(cluster.head_pid, timeout=30)
        with H.SqliteStore(cluster.state_path) as store:
            assert len(store.load()["nodes"]) == 2
        other = dict(cluster.env, ZRAY_TOKEN="another-token-another-token-012345")
        refused = zray_cli(
            "start", "--head", "--port", str(cluster.port), "--head-state-path",
            cluster.state_path, env=other,
        )  # fmt: skip
        assert refused.returncode != 0 and "another token" in refused.stderr
        cluster.start_head()

        def both_alive():
            status = zray_cli("status", env=cluster.env)
            return "Nodes: 2 alive, 1 dead" in status.stdout

        wait_for(both_alive, 30, "the node to come back to the restarted head", interval=0.5)
        assert zray_cli("stop", env=cluster.env).returncode == 0
        with H.SqliteStore(cluster.state_path) as store:
            assert store.empty()
    finally:
        cluster.stop()


def test_a_node_declared_dead_while_away_stops_when_it_comes_back():
    """A node that did not come back within the window was declared dead (its actors restart
    elsewhere): when it does come back it is refused, and stops, as Ray's raylet does."""
    import os
    import signal

    from tests.conftest import exited

    cluster = RestartableCluster(reconnect_timeout_s=60.0)  # the node waits long
    try:
        cluster.start_head()
        node_pid = cluster.add_node("w1")
        cluster.kill_head()
        os.kill(node_pid, signal.SIGSTOP)  # away: it cannot come back in time
        try:
            cluster.start_head(ZRAY_HEAD_RECONNECT_TIMEOUT_S="3")  # the head does not
            time.sleep(4.0)  # the restarted head's window ends: w1 is declared dead
        finally:
            os.kill(node_pid, signal.SIGCONT)
        assert exited(node_pid, timeout=20)
    finally:
        cluster.stop()


def test_a_node_killed_while_the_head_was_away_is_declared_dead_within_seconds(cluster):
    """The restarted head probes the nodes it awaits: one whose port refuses is dead at once,
    so its objects are recomputed in seconds, not when the reconnect window (30 s) ends."""
    import os
    import signal

    import numpy as np

    from tests.conftest import exited
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray, cluster = cluster

    @ray.remote(max_retries=2)
    def make(value):
        return np.full(300_000, value, dtype=np.int64)  # in its node's arena

    w2 = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "w2" in n["Resources"])
    big = make.options(scheduling_strategy=NodeAffinitySchedulingStrategy(w2, soft=True)).remote(7)
    ready, _ = ray.wait([big], timeout=60, fetch_local=False)
    assert ready

    cluster.kill_head()
    node_pid = cluster.node_pids.pop("w2")
    os.kill(node_pid, signal.SIGKILL)
    assert exited(node_pid)
    cluster.start_head()
    back_at = time.monotonic()
    dead = wait_for(
        lambda: [n for n in ray.nodes() if n["NodeID"] == w2 and not n["Alive"]], 15, "w2 dead"
    )
    assert "refuses connections" in dead[0]["DeathReasonMessage"]
    assert int(ray.get(big, timeout=30)[0]) == 7  # recomputed on w1
    assert time.monotonic() - back_at < cluster.reconnect_timeout_s


def test_bundles_a_crashed_head_prepared_and_never_committed_are_given_back(cluster):
    """Phase one of a placement group's reservation reached w2, then the head died before
    committing: the restarted head learns of the reservation when w2 comes back and returns
    it (it would otherwise hold w2's CPUs for good)."""
    from zray._config import config
    from zray._private.core import runtime
    from zray._private.wire import protocol as P

    ray, cluster = cluster
    core = runtime.core
    reply, _ = core.requests.call(core.head_address, P.GetNodes(False), config.rpc_timeout_s)
    w2 = next(n["address"] for n in reply.nodes if n["alive"] and "w2" in n["resources"])
    free = wait_for(lambda: ray.available_resources().get("CPU") == 5, 30, "every CPU free")
    assert free
    # What the old head's PrepareBundles did on w2 before it died.
    reply, _ = core.requests.call(w2, P.PrepareBundles(b"\x01" * 18, 1, [[0, {"CPU": 2.0}]]), 30)
    assert isinstance(reply, P.BundlesPrepared) and reply.ok
    wait_for(lambda: ray.available_resources().get("CPU") == 3, 30, "w2's CPUs reserved")

    cluster.kill_head()
    cluster.start_head()
    wait_for(lambda: ray.available_resources().get("CPU") == 5, 20, "w2's CPUs given back")
