"""Placement group bundles across a head restart: a bundle whose node died while the head was
down (no node reports it when the head is back) is placed again, as Ray does when a bundle's
node dies: the group goes RESCHEDULING, then CREATED; an actor in it restarts there."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import exited
from tests.head_cluster import driven_cluster, wait_for


@pytest.fixture
def cluster(monkeypatch):
    with driven_cluster(monkeypatch, {"w1": {}, "w2": {"spot": 1}, "w3": {"spot": 1}}) as both:
        yield both


def test_a_bundle_whose_node_died_while_the_head_was_down_is_placed_again(cluster):
    from zray.util.placement_group import placement_group, placement_group_table
    from zray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray, cluster = cluster
    name_of = {
        n["NodeID"]: name
        for n in ray.nodes()
        if n["Alive"]
        for name in ("w2", "w3")
        if name in n["Resources"]
    }
    group = placement_group([{"CPU": 1, "spot": 0.5}])
    assert group.wait(60)

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Where:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    in_group = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
    actor = Where.options(
        num_cpus=1, resources={"spot": 0.5}, scheduling_strategy=in_group
    ).remote()
    first = ray.get(actor.node.remote(), timeout=60)
    assert placement_group_table(group)["bundles_to_node_id"][0] == first
    victim = name_of[first]

    cluster.kill_head()
    node_pid = cluster.node_pids.pop(victim)
    os.kill(node_pid, signal.SIGKILL)
    assert exited(node_pid)
    back_at = time.monotonic()
    cluster.start_head()  # returns once the head listens

    def placed_elsewhere():
        table = placement_group_table(group)
        return table["state"] == "CREATED" and table["bundles_to_node_id"][0] != first

    wait_for(placed_elsewhere, 60, "the bundle placed again on the other spot node")
    print(f"bundle placed again {time.monotonic() - back_at:.2f} s after `zray start --head` began")
    table = placement_group_table(group)
    assert name_of[table["bundles_to_node_id"][0]] != victim
    assert ray.get(actor.node.remote(), timeout=60) == table["bundles_to_node_id"][0]
    print(f"its actor answered from there {time.monotonic() - back_at:.2f} s after")
