"""A node killed with SIGKILL mid-job: its tasks and actors move elsewhere, lost objects say so."""

import os
import signal
import time

import pytest

from tests.loopback_cluster import loopback_cluster

DEATH_TIMEOUT_S = 2.0


@pytest.fixture
def cluster():
    nodes = {name: {name: 1, "any": 1} for name in ("w1", "w2")}
    with loopback_cluster(nodes=nodes, node_death_timeout_s=DEATH_TIMEOUT_S) as c:
        yield c.ray, c.pids


def test_job_survives_a_killed_node(cluster):
    import numpy as np

    ray, pids = cluster

    @ray.remote(resources={"any": 1}, max_retries=3)
    def work(i):
        time.sleep(1.0)
        return i * i, ray.get_runtime_context().get_node_id()

    @ray.remote(resources={"w2": 1}, max_retries=0)  # not recomputed: lost for good
    def big_on_w2():
        return np.ones(2**20)

    lost_ref = big_on_w2.remote()
    ray.wait([lost_ref], timeout=30, fetch_local=False)  # its only copy stays on w2
    refs = [work.remote(i) for i in range(6)]
    time.sleep(0.5)
    os.kill(pids["w2"], signal.SIGKILL)
    killed_at = time.monotonic()
    results = ray.get(refs, timeout=60)
    assert [r[0] for r in results] == [i * i for i in range(6)]
    dead = [n for n in ray.nodes() if not n["Alive"]]
    assert len(dead) == 1 and "w2" in dead[0]["Resources"]
    assert time.monotonic() - killed_at < DEATH_TIMEOUT_S + 8
    with pytest.raises(ray.exceptions.ObjectLostError):
        ray.get(lost_ref, timeout=20)
    # The cluster keeps serving.
    assert ray.get(work.remote(7), timeout=30)[0] == 49


def test_actor_restarts_on_another_node(cluster):
    ray, pids = cluster

    @ray.remote(resources={"any": 1}, max_restarts=1)
    class Survivor:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    a = Survivor.remote()
    first = ray.get(a.node.remote(), timeout=30)
    victim = [
        name
        for name in ("w1", "w2")
        if any(n["NodeID"] == first and name in n["Resources"] for n in ray.nodes())
    ][0]
    os.kill(pids[victim], signal.SIGKILL)
    deadline = time.monotonic() + DEATH_TIMEOUT_S + 10
    while all(n["Alive"] for n in ray.nodes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            second = ray.get(a.node.remote(), timeout=10)
            break
        except ray.exceptions.RayActorError:
            time.sleep(0.2)
    else:
        pytest.fail("the actor never came back")
    assert second != first


def test_a_task_whose_argument_was_lost_runs_after_it_is_recomputed(cluster):
    """As in Ray: a task given an object whose every copy died with its node is not failed
    with ObjectLostError; its owner recomputes the argument and runs the task again."""
    import numpy as np

    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray, pids = cluster
    w2 = next(n["NodeID"] for n in ray.nodes() if "w2" in n["Resources"])

    @ray.remote(max_retries=2)
    def make():
        return np.ones(2**20)

    @ray.remote(resources={"w1": 1}, max_retries=0)
    def total(array):
        return float(array.sum())

    ref = make.options(scheduling_strategy=NodeAffinitySchedulingStrategy(w2, soft=True)).remote()
    ray.wait([ref], timeout=30, fetch_local=False)  # its only copy is on w2
    os.kill(pids["w2"], signal.SIGKILL)
    deadline = time.monotonic() + DEATH_TIMEOUT_S + 10
    while all(n["Alive"] for n in ray.nodes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.get(total.remote(ref), timeout=60) == 2**20


@pytest.fixture
def streaming(monkeypatch):
    """Nodes started after this stream objects over TCP as between hosts."""
    monkeypatch.setenv("ZRAY_SAME_HOST_TRANSFER", "0")


def test_stream_pull_from_a_node_that_died_finds_another_copy(streaming, cluster):
    import numpy as np

    ray, pids = cluster

    @ray.remote(resources={"w1": 1})
    def produce():
        return np.arange(4 * 2**20, dtype=np.int64)  # 32 MiB, primary copy on w1

    @ray.remote(resources={"w2": 1})
    def total(arr):
        return int(arr.sum())

    ref = produce.remote()
    expected = (4 * 2**20) * (4 * 2**20 - 1) // 2
    assert ray.get(total.remote(ref), timeout=60) == expected  # a copy on w2 too
    # The directory prefers w2's pulled copy to the primary; w2 dies before we pull, so
    # our node's stream from it never starts and it must go to w1 once w2 is declared dead.
    os.kill(pids["w2"], signal.SIGKILL)
    arr = ray.get(ref, timeout=60)
    assert int(arr.sum()) == expected and arr.size == 4 * 2**20
