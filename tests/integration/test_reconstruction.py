"""Lineage reconstruction: outputs lost with their node are recomputed by their owner,
transparently to a waiting get; puts and max_retries=0 tasks are not (ObjectLostError)."""

import os
import signal
import time

import numpy as np
import pytest

from tests.loopback_cluster import loopback_cluster


@pytest.fixture
def cluster():
    with loopback_cluster(nodes={"a": {"a": 1}, "b": {"b": 1}}, node_death_timeout_s=5) as c:
        yield c.ray, c.pids


def test_a_chain_of_lost_outputs_is_recomputed(cluster):
    ray, pids = cluster
    # Never the driver's own node: a driver dies with its node, as in Ray.
    victim, _, (first, _, third, unretried) = _chain_on_victim(ray, unretried=True)
    os.kill(pids[victim], signal.SIGKILL)
    start = time.monotonic()
    value = ray.get(third, timeout=120)  # most likely asked before the death is noticed
    elapsed = time.monotonic() - start
    assert value[0] == 2 and value[-1] == 2**20 + 1
    assert int(ray.get(first, timeout=60)[-1]) == 2**20 - 1  # recomputed on the way
    print(f"chain of 3 recomputed {elapsed:.1f} s after the node died")
    with pytest.raises(ray.exceptions.ObjectLostError):
        ray.get(unretried, timeout=60)


def test_a_borrower_has_the_owner_recompute_what_was_lost(cluster):
    ray, pids = cluster
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_of = {
        name: n["NodeID"] for n in ray.nodes() for name in ("a", "b") if name in n["Resources"]
    }
    on_victim = NodeAffinitySchedulingStrategy(node_of["a"], soft=True)

    @ray.remote(scheduling_strategy=on_victim, max_retries=2)
    def produce():
        return np.arange(2**20, dtype=np.int64)  # 8 MiB: in shared memory

    @ray.remote(resources={"b": 0.1})
    class Borrower:
        def total(self, boxed):  # boxed: the ref arrives as a borrowed ref, not its value
            return int(ray.get(boxed[0], timeout=90).sum())

    borrower = Borrower.remote()
    recomputable = produce.remote()
    unretried = produce.options(max_retries=0).remote()
    ray.wait([recomputable, unretried], num_returns=2, timeout=60, fetch_local=False)
    os.kill(pids["a"], signal.SIGKILL)
    assert ray.get(borrower.total.remote([recomputable]), timeout=120) == (2**20 - 1) * 2**19
    with pytest.raises(ray.exceptions.ObjectLostError):
        ray.get(borrower.total.remote([unretried]), timeout=120)


def test_an_actor_call_output_is_recomputed_by_the_restarted_actor(cluster):
    ray, pids = cluster
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    victim_node = [n["NodeID"] for n in ray.nodes() if "a" in n["Resources"]][0]
    on_victim = NodeAffinitySchedulingStrategy(victim_node, soft=True)

    @ray.remote(num_cpus=0, scheduling_strategy=on_victim)
    class Maker:
        def __init__(self):
            self.calls = 0

        def make(self, n):
            self.calls += 1
            return np.full(2**20, n, dtype=np.int64)  # 8 MiB: in shared memory

        def node(self):
            return ray.get_runtime_context().get_node_id()

    restartable = Maker.options(max_restarts=1, max_task_retries=1).remote()
    fragile = Maker.remote()  # no restarts: its outputs cannot be recomputed, as in Ray
    assert ray.get([restartable.node.remote(), fragile.node.remote()]) == [victim_node] * 2
    kept, lost = restartable.make.remote(7), fragile.make.remote(8)
    ray.wait([kept, lost], num_returns=2, timeout=60, fetch_local=False)
    os.kill(pids["a"], signal.SIGKILL)
    value = ray.get(kept, timeout=120)
    assert value[0] == 7 and len(value) == 2**20
    assert ray.get(restartable.node.remote(), timeout=60) != victim_node
    with pytest.raises(ray.exceptions.ObjectLostError):
        ray.get(lost, timeout=60)


def _chain_on_victim(ray, unretried: bool = False):
    """a -> b -> c, all on a node other than the driver's (the victim), every copy left there;
    returns (victim name, its node address, the tasks' refs, and with `unretried` the ref of
    an `a` that may not be retried)."""
    victim, address, on_victim = _victim(ray)

    @ray.remote(scheduling_strategy=on_victim, max_retries=2)
    def produce():
        return np.arange(2**20, dtype=np.int64)  # 8 MiB: in shared memory

    @ray.remote(scheduling_strategy=on_victim, max_retries=2)
    def add_one(array):
        return array + 1

    first = produce.remote()
    second = add_one.remote(first)
    third = add_one.remote(second)
    refs = (first, second, third)
    if unretried:
        refs += (produce.options(max_retries=0).remote(),)
    ray.wait(list(refs), num_returns=len(refs), timeout=60, fetch_local=False)
    return victim, address, refs


def _victim(ray):
    """(name, node address, soft affinity to it) of a node other than the driver's."""
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    victim, victim_node = [
        (name, n["NodeID"])
        for n in ray.nodes()
        for name in ("a", "b")
        if name in n["Resources"] and n["NodeID"] != here
    ][0]
    on_victim = NodeAffinitySchedulingStrategy(victim_node, soft=True)
    return victim, _node_address(victim_node), on_victim


def _stored(address: str) -> int:
    from zray._private.core import runtime
    from zray._private.wire import protocol as P

    reply, _ = runtime.core.requests.call(address, P.GetNodeStats(0), 30)
    return reply.stats["store"]["objects"]


def test_freed_arguments_are_recomputed_from_their_kept_lineage(cluster):
    """As Ray's lineage pinning: the driver drops a and b; their values are freed at once (not
    held for as long as c might need recomputing), their lineage is kept, and c lost with its
    node is recomputed from it, a and b first."""
    from tests.head_cluster import wait_for

    ray, pids = cluster
    victim, address, (first, second, third) = _chain_on_victim(ray)
    assert _stored(address) == 3
    del first, second
    wait_for(lambda: _stored(address) == 1, 30, "a's and b's values freed, c's kept")
    os.kill(pids[victim], signal.SIGKILL)
    value = ray.get(third, timeout=120)
    assert value[0] == 2 and value[-1] == 2**20 + 1


def test_a_lost_output_whose_freed_arguments_lineage_was_evicted_fails_as_in_ray(cluster):
    from zray._private.core import runtime

    ray, pids = cluster
    runtime.core.submitter.lineage.max_bytes = 1  # keeps only the newest spec
    victim, _, (first, second, third) = _chain_on_victim(ray)
    del first, second
    os.kill(pids[victim], signal.SIGKILL)
    with pytest.raises(
        ray.exceptions.ObjectReconstructionFailedError, match="LINEAGE_EVICTED"
    ) as e:
        ray.get(third, timeout=120)
    assert third.hex() in str(e.value)  # c cannot be made again, for b's reason


def test_a_task_that_failed_on_a_lost_argument_leaves_the_others_in_no_arena(cluster):
    """The worker fetched one argument, then found the other lost: the task failed, and the
    fetched argument's value must not stay mapped (pinned in its node's arena) by the frames
    of the error's traceback once its owner frees it."""
    from tests.head_cluster import wait_for
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray, pids = cluster
    here = ray.get_runtime_context().get_node_id()
    node_of = {
        name: n["NodeID"] for n in ray.nodes() for name in ("a", "b") if name in n["Resources"]
    }
    assert here not in node_of.values()  # the driver survives either node

    def on(name):
        return NodeAffinitySchedulingStrategy(node_of[name], soft=False)

    @ray.remote(max_retries=0)  # no lineage: once lost, lost for good
    def produce(value):
        return np.full(2**20, value, dtype=np.int64)

    @ray.remote(max_retries=0)
    def total(first, second):
        return int(first.sum() + second.sum())

    # Several pairs: the worker asks its node for both arguments at once and meets them in an
    # order set by their ids' hashes; each kept one must be let go whether it came before the
    # lost one or after it (one that came after stayed pinned).
    lost = [produce.options(scheduling_strategy=on("a")).remote(1) for _ in range(6)]
    kept = [produce.options(scheduling_strategy=on("b")).remote(2) for _ in range(6)]
    ray.wait([*lost, *kept], num_returns=12, timeout=60, fetch_local=False)
    os.kill(pids["a"], signal.SIGKILL)
    wait_for(
        lambda: not any(n["NodeID"] == node_of["a"] for n in ray.nodes() if n["Alive"]),
        30,
        "a dead",
    )
    for one_kept, one_lost in zip(kept, lost):
        with pytest.raises(ray.exceptions.RayError):
            ray.get(total.options(resources={"b": 0.1}).remote(one_kept, one_lost), timeout=60)
    address = _node_address(node_of["b"])
    del kept, lost, one_kept, one_lost
    wait_for(lambda: _stored(address) == 0, 30, "b's arena empty")


def _node_address(node_hex: str) -> str:
    from zray._config import config
    from zray._private.core import runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    reply, _ = core.requests.call(core.head_address, P.GetNodes(False), config.rpc_timeout_s)
    return next(n["address"] for n in reply.nodes if n["node_id"].hex() == node_hex)


def test_an_actor_call_pins_its_arguments_lineage_not_their_values(cluster):
    """As Ray's lineage pinning, for actor calls too: once the call is done and the driver
    dropped its big argument, the argument's value is freed (the call's kept spec does not hold
    it), and the call's output, lost with its node, is recomputed from the argument's kept
    lineage by the restarted actor."""
    from tests.head_cluster import wait_for

    ray, pids = cluster
    victim, address, on_victim = _victim(ray)

    @ray.remote(scheduling_strategy=on_victim, max_retries=2)
    def produce():
        return np.arange(2**20, dtype=np.int64)  # 8 MiB: in shared memory

    @ray.remote(num_cpus=0, scheduling_strategy=on_victim)
    class Doubler:
        def double(self, array):
            return array * 2

    doubler = Doubler.options(max_restarts=1, max_task_retries=1).remote()
    argument = produce.remote()
    doubled = doubler.double.remote(argument)
    ray.wait([doubled], timeout=60, fetch_local=False)
    assert _stored(address) == 2
    del argument
    wait_for(lambda: _stored(address) == 1, 30, "the argument's value freed, the output kept")
    os.kill(pids[victim], signal.SIGKILL)
    value = ray.get(doubled, timeout=120)
    assert value[0] == 0 and value[-1] == (2**20 - 1) * 2


def test_a_retried_actor_call_has_its_lost_argument_recomputed(cluster, tmp_path):
    """The call's node dies while it runs, with the only copy of its argument: the restarted
    actor runs it again (max_task_retries) once its owner has recomputed the argument."""
    from tests.head_cluster import wait_for

    ray, pids = cluster
    victim, _, on_victim = _victim(ray)
    started = tmp_path / "started"

    @ray.remote(scheduling_strategy=on_victim, max_retries=2)
    def produce():
        return np.arange(2**20, dtype=np.int64)  # 8 MiB: in shared memory

    @ray.remote(num_cpus=0, scheduling_strategy=on_victim)
    class Doubler:
        def double_slowly(self, array, marker):
            if not os.path.exists(marker):  # the first attempt waits to be killed
                open(marker, "w").close()
                time.sleep(60)
            return array * 2

    doubler = Doubler.options(max_restarts=1, max_task_retries=1).remote()
    argument = produce.remote()
    ray.wait([argument], timeout=60, fetch_local=False)
    doubled = doubler.double_slowly.remote(argument, str(started))
    wait_for(started.exists, 60, "the first attempt running")
    os.kill(pids[victim], signal.SIGKILL)
    value = ray.get(doubled, timeout=120)
    assert value[0] == 0 and value[-1] == (2**20 - 1) * 2
