"""Three node daemons on loopback forming one cluster: placement, spillback, strategies."""

import os
import time

import pytest

from tests.loopback_cluster import loopback_cluster


@pytest.fixture(scope="module")
def cluster():
    # w2 advertises another loopback address, so transfers with it count as crossing hosts
    # (lz4 compression is tried) although everything runs on this machine.
    with loopback_cluster(
        head_resources={"head": 1},
        nodes={"w1": {"w1": 1}, "w2": {"w2": 1}},
        node_flags={"w2": ("--node-ip-address", "127.0.0.2")},
    ) as started:
        yield started.ray


def node_of(ray, resource):
    for node in ray.nodes():
        if resource in node["Resources"]:
            return node["NodeID"]
    raise AssertionError(resource)


def test_cluster_view(cluster):
    ray = cluster
    nodes = ray.nodes()
    assert len(nodes) == 3 and all(n["Alive"] for n in nodes)
    total = ray.cluster_resources()
    assert total["CPU"] == 3.0 and total["w1"] == 1.0 and total["w2"] == 1.0


def test_custom_resources_route_work(cluster):
    ray = cluster

    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    for name in ("head", "w1", "w2"):
        assert ray.get(where.options(resources={name: 0.5}).remote(), timeout=30) == node_of(
            ray, name
        )


def test_load_spreads_over_nodes(cluster):
    ray = cluster

    @ray.remote
    def nap():
        time.sleep(1.0)
        return ray.get_runtime_context().get_node_id()

    ray.get([nap.remote() for _ in range(3)], timeout=30)  # warm a worker on every node
    start = time.monotonic()
    nodes = ray.get([nap.remote() for _ in range(6)], timeout=60)
    elapsed = time.monotonic() - start
    assert len(set(nodes)) == 3
    assert elapsed < 3.5, elapsed  # three at a time, not six in a row


def test_spread_and_node_affinity(cluster):
    ray = cluster
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def where():
        return ray.get_runtime_context().get_node_id()

    spread = ray.get(
        [where.options(scheduling_strategy="SPREAD").remote() for _ in range(6)], timeout=30
    )
    assert len(set(spread)) == 3
    target = node_of(ray, "w2")
    pinned = where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(target, soft=False))
    assert set(ray.get([pinned.remote() for _ in range(4)], timeout=30)) == {target}


def test_actor_placed_by_resource(cluster):
    ray = cluster

    @ray.remote(resources={"w1": 1})
    class Where:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    a = Where.remote()
    assert ray.get(a.node.remote(), timeout=30) == node_of(ray, "w1")
    ray.kill(a)


def test_actor_node_affinity(cluster):
    """Soft affinity places an actor on its node while that node can host it (the default
    would pick the head: every node has one free CPU, and ties go to the head); hard affinity
    too; soft affinity to an unknown node or one that lacks a resource goes elsewhere."""
    ray = cluster
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Affinity

    @ray.remote
    class Where:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    w1, w2, head = node_of(ray, "w1"), node_of(ray, "w2"), node_of(ray, "head")
    placed = {
        "soft to w2": (Where.options(scheduling_strategy=Affinity(w2, soft=True)), w2),
        "hard to w1": (Where.options(scheduling_strategy=Affinity(w1, soft=False)), w1),
        "soft to a node that lacks 'head'": (
            Where.options(resources={"head": 0.5}, scheduling_strategy=Affinity(w2, soft=True)),
            head,
        ),
    }
    actors = []
    for case, (cls, expected) in placed.items():
        actor = cls.remote()
        actors.append(actor)
        assert ray.get(actor.node.remote(), timeout=30) == expected, case
    unknown = Where.options(scheduling_strategy=Affinity("ab" * 28, soft=True)).remote()
    actors.append(unknown)
    assert ray.get(unknown.node.remote(), timeout=30) in (w1, w2, head)
    for actor in actors:
        ray.kill(actor)


def node_stats(ray, address=None):
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    reply, _ = core.requests.call(address or core.node_address, P.GetNodeStats(0), 10)
    return reply.stats


def test_transfer_100mb_both_ways(cluster):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"w1": 1})
    def produce(n):
        return np.arange(n, dtype=np.int64)

    @ray.remote(resources={"w2": 1})
    def checksum(arr):
        return int(arr.sum()), arr.size, ray.get_runtime_context().get_node_id()

    n = 100 * 2**20 // 8
    arr = ray.get(produce.remote(n), timeout=60)  # pulled from w1 to the driver's node
    assert arr.size == n and np.array_equal(arr, np.arange(n, dtype=np.int64))
    data = np.random.default_rng(0).integers(0, 2**62, n, dtype=np.int64)
    total, size, where = ray.get(checksum.remote(data), timeout=60)  # driver's node -> w2
    assert (total, size) == (int(data.sum()), n) and where == node_of(ray, "w2")
    # A task's output consumed on a third node moves there directly.
    total, size, _ = ray.get(checksum.remote(produce.remote(n)), timeout=60)
    assert total == n * (n - 1) // 2


def test_compressible_transfer_across_hosts(cluster):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"w2": 1})
    def zeros_with_a_mark():
        arr = np.zeros(32 * 2**20 // 8)
        arr[-1] = 7.0
        return arr

    before = node_stats(ray)["transfer"]
    arr = ray.get(zeros_with_a_mark.remote(), timeout=60)
    assert arr[-1] == 7.0 and arr[:-1].sum() == 0
    after = node_stats(ray)["transfer"]
    assert after["bytes_pulled"] - before["bytes_pulled"] >= 32 * 2**20
    assert after["compressed_chunks"] - before["compressed_chunks"] >= 8  # all 4 MiB chunks
    w2 = [n for n in ray.nodes() if "w2" in n["Resources"]][0]
    assert w2["NodeManagerAddress"] == "127.0.0.2"


def test_wait_fetch_local_pulls_objects_here(cluster):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"w1": 0.5})
    def produce(seed):
        return np.full(4 * 2**20, seed, dtype=np.uint8)  # in w1's shared memory

    def pulled():
        return node_stats(ray)["transfer"]["bytes_pulled"]

    refs = [produce.remote(i) for i in range(2)]
    before = pulled()
    ready, _ = ray.wait(refs, num_returns=2, timeout=30, fetch_local=False)
    assert len(ready) == 2 and pulled() == before  # ready where they are: nothing moved
    ready, _ = ray.wait(refs, num_returns=2, timeout=30)
    assert ready == refs and pulled() - before >= 8 * 2**20  # both are on this node now
    assert [int(a[0]) for a in ray.get(refs, timeout=30)] == [0, 1]
    assert pulled() - before < 12 * 2**20  # get found them here: no second pull


def test_copies_everywhere_are_freed(cluster):
    import gc

    import numpy as np

    ray = cluster

    @ray.remote(resources={"w1": 1})
    def produce():
        return np.ones(4 * 2**20)

    def objects_everywhere():
        return sum(
            node_stats(ray, n["ObjectStoreSocketName"])["store"]["objects"] for n in ray.nodes()
        )

    gc.collect()
    time.sleep(0.3)
    baseline = objects_everywhere()
    ref = produce.remote()
    assert ray.get(ref, timeout=30).sum() == 4 * 2**20  # a copy on w1 and one on ours
    assert objects_everywhere() >= baseline + 2
    del ref
    gc.collect()
    deadline = time.monotonic() + 10
    while objects_everywhere() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert objects_everywhere() == baseline


def test_pending_get_released_by_directory_callback(cluster):
    import numpy as np

    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    ray = cluster

    @ray.remote(resources={"w1": 1})
    def slow_big():
        time.sleep(1.0)
        return np.full(2**20, 3, dtype=np.int64)

    ref = slow_big.remote()
    core = runtime.core
    copied = node_stats(ray)["transfer"]["copied_from_shared_memory"]
    # Ask our node for the object before it exists anywhere and without saying where it will
    # be: the node subscribes in the head's directory and is called back when w1 seals it.
    start = time.monotonic()
    reply, _ = core.requests.call(core.node_address, P.GetObjects([ref.binary()], 20.0, [b""]), 30)
    assert reply.offsets[0] is not None
    assert time.monotonic() - start >= 0.9
    # The directory named w1, on this machine: copied out of its arena, not streamed.
    assert node_stats(ray)["transfer"]["copied_from_shared_memory"] == copied + 1
    core.endpoint.send(core.node_address, P.ReleaseObjects([ref.binary()]))
    assert int(ray.get(ref, timeout=10)[0]) == 3


def test_tasks_run_where_their_arguments_are(cluster):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"w2": 1})
    def produce():
        return np.ones(8 * 2**20)  # 64 MiB, sealed on w2

    @ray.remote
    def where(arr):
        return ray.get_runtime_context().get_node_id()

    data = produce.remote()
    ray.wait([data], timeout=30)
    assert ray.get(where.remote(data), timeout=30) == node_of(ray, "w2")


def test_borrowed_across_nodes_then_freed_everywhere(cluster):
    """An actor on w2 borrows a driver-owned object through a nested ref and pulls a copy; the
    object outlives the driver's ref, and once the actor lets go every copy on every node goes."""
    import gc

    import numpy as np

    ray = cluster

    @ray.remote(resources={"w2": 1})
    class Holder:
        def hold(self, refs):
            self.ref = refs[0]
            return float(ray.get(self.ref).sum())  # pulls a copy to w2

        def read(self):
            return float(ray.get(self.ref).sum())

        def drop(self):
            self.ref = None
            return True

    def objects_everywhere():
        return sum(
            node_stats(ray, n["ObjectStoreSocketName"])["store"]["objects"]
            for n in ray.nodes()
            if n["Alive"]
        )

    holder = Holder.remote()
    assert ray.get(holder.drop.remote(), timeout=30)
    gc.collect()
    time.sleep(0.3)
    baseline = objects_everywhere()
    ref = ray.put(np.ones(2**20))
    assert ray.get(holder.hold.remote([ref]), timeout=30) == 2**20
    del ref
    gc.collect()
    time.sleep(0.5)
    assert ray.get(holder.read.remote(), timeout=30) == 2**20  # still alive, borrowed on w2
    assert objects_everywhere() == baseline + 2  # the primary here and the copy on w2
    assert ray.get(holder.drop.remote(), timeout=30)
    deadline = time.monotonic() + 10
    while objects_everywhere() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert objects_everywhere() == baseline
    ray.kill(holder)


def test_logs_of_a_worker_on_another_node(cluster):
    ray = cluster
    from zray.util.state import get_log, list_logs

    @ray.remote(resources={"w2": 1})
    def there():
        print("printed on w2")
        return os.getpid()

    pid = ray.get(there.remote(), timeout=60)
    found = list_logs(node_ip="127.0.0.2", glob_filter=f"*-{pid}.out")
    assert len(found["worker_out"]) == 1
    assert not list_logs(node_ip="127.0.0.2", glob_filter="no-such-*")
    deadline = time.monotonic() + 15
    text = ""
    while "printed on w2" not in text and time.monotonic() < deadline:
        text = "".join(get_log(pid=pid))  # found among every node's files
        time.sleep(0.05)
    assert "printed on w2" in text
