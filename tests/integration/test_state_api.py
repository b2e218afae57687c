"""zray.util.state on a live cluster: Ray's functions, fields, filters and errors."""

import os
import warnings

import pytest

from zray.util import state
from zray.util.state import common
from zray.util.state.exception import RayStateApiException
from tests.head_cluster import wait_for


def test_nodes(ray):
    node_id = ray.get_runtime_context().get_node_id()
    nodes = state.list_nodes()
    assert [type(n) for n in nodes] == [common.NodeState]
    node = nodes[0]
    assert (node.node_id, node.state, node.is_head_node, node["node_ip"]) == (
        node_id,
        "ALIVE",
        True,
        "127.0.0.1",
    )
    assert node.resources_total["CPU"] == 2.0 and node.start_time_ms is None  # detail only
    detailed = state.get_node(node_id)
    assert detailed.start_time_ms > 0 and detailed.end_time_ms == 0
    assert state.get_node("ab" * 28) is None
    assert state.list_nodes(filters=[("is_head_node", "=", True)]) == nodes
    assert state.list_nodes(filters=[("state", "!=", "alive")]) == []


def test_actors_with_filters_pids_and_summary(ray):
    @ray.remote
    class Counter:
        def pid(self):
            return os.getpid()

    alive = Counter.options(name="state-counter").remote()
    pid = ray.get(alive.pid.remote())
    doomed = Counter.remote()
    ray.get(doomed.pid.remote())
    ray.kill(doomed)
    doomed_id = doomed._actor_id.hex()
    wait_for(lambda: state.get_actor(doomed_id).state == "DEAD")

    listed = state.list_actors(filters=[("state", "=", "alive"), ("class_name", "=", "Counter")])
    assert [(a.actor_id, a.name, a.pid, a.job_id) for a in listed] == [
        (alive._actor_id.hex(), "state-counter", pid, ray.get_runtime_context().get_job_id())
    ]
    assert listed[0].num_restarts is None  # a detail column
    assert state.list_actors(filters=[("pid", "=", str(pid))]) == listed
    assert state.list_actors(filters=[("pid", "=", pid)]) == listed
    dead = state.list_actors(filters=[("state", "!=", "ALIVE"), ("class_name", "=", "Counter")])
    assert [a.actor_id for a in dead] == [doomed_id]

    full = state.get_actor(doomed_id)
    assert full.num_restarts == 0 and full.is_detached is False
    assert "ray.kill" in full.death_cause["actor_died_error_context"]["error_message"]
    assert state.get_actor("00" * 16) is None

    summary = state.summarize_actors()["cluster"]
    assert summary["summary_by"] == "class"
    assert summary["summary"]["Counter"]["state_counts"] == {"ALIVE": 1, "DEAD": 1}
    ray.kill(alive)


def test_placement_groups(ray):
    from zray.util.placement_group import placement_group, remove_placement_group

    group = placement_group([{"CPU": 1}], name="state-pg")
    ray.get(group.ready(), timeout=10)
    pg_id = group.id.hex()
    [listed] = state.list_placement_groups(filters=[("name", "=", "state-pg")])
    assert (listed.placement_group_id, listed.state, listed.bundles) == (pg_id, "CREATED", None)
    full = state.get_placement_group(pg_id)
    assert full.bundles[0]["unit_resources"] == {"CPU": 1.0}
    assert full.bundles[0]["node_id"] == ray.get_runtime_context().get_node_id()
    assert full.stats["scheduling_state"] == "FINISHED" and full.is_detached is False
    remove_placement_group(group)
    wait_for(lambda: state.get_placement_group(pg_id).state == "REMOVED")


def test_jobs_and_workers(ray):
    job_id = ray.get_runtime_context().get_job_id()
    [job] = state.list_jobs(filters=[("job_id", "=", job_id)])
    assert (job.type, job.status, job.driver_info.pid) == ("DRIVER", "RUNNING", str(os.getpid()))
    assert job.start_time is None and state.list_jobs(detail=True)[0].start_time > 0

    @ray.remote
    def where():
        return os.getpid()

    task_pid = ray.get(where.remote())
    workers = state.list_workers(filters=[("is_alive", "=", "true")])
    assert {(w.worker_type, w.pid) for w in workers} >= {
        ("DRIVER", os.getpid()),
        ("WORKER", task_pid),
    }

    @ray.remote
    class Doomed:
        def pid(self):
            return os.getpid()

    doomed = Doomed.remote()
    doomed_pid = ray.get(doomed.pid.remote())
    ray.kill(doomed)
    gone = wait_for(
        lambda: state.list_workers(
            filters=[("pid", "=", doomed_pid), ("is_alive", "=", "false")], detail=True
        )
    )
    assert gone[0].exit_type in ("INTENDED_SYSTEM_EXIT", "SYSTEM_ERROR")
    assert gone[0].end_time_ms >= gone[0].start_time_ms > 0


def test_objects_and_summary(ray):
    big = ray.put(b"x" * 300_000)
    object_id = big.hex()
    [entry] = state.list_objects(filters=[("object_id", "=", object_id)])
    assert (entry.pid, entry.type, entry.reference_type, entry.ip) == (
        os.getpid(),
        "DRIVER",
        "LOCAL_REFERENCE",
        "127.0.0.1",
    )
    assert entry.object_size >= 300_000
    assert [e.object_id for e in state.get_objects(object_id)] == [object_id]
    summary = state.summarize_objects()["cluster"]
    assert summary["callsite_enabled"] is False
    assert summary["summary"]["disabled"]["ref_type_counts"]["LOCAL_REFERENCE"] >= 1
    assert summary["total_size_mb"] >= 300_000 / 2**20
    del big
    wait_for(lambda: not state.list_objects(filters=[("object_id", "=", object_id)]))


def test_limit_and_bad_filters(ray):
    @ray.remote
    def noop():
        return None

    ray.get([noop.remote() for _ in range(2)])
    assert len(state.list_workers(limit=1)) == 1
    with pytest.raises(
        ValueError,
        match=r"Unsupported filter predicate > is given. "
        r"Available predicates: =, !=.",
    ):
        state.list_actors(filters=[("state", ">", "ALIVE")])
    with pytest.raises(ValueError, match="not enough values to unpack"):
        state.list_actors(filters=[("state",)])
    with pytest.raises(
        RayStateApiException, match="The given filter column bogus is not supported"
    ):
        state.list_actors(filters=[("bogus", "=", "1")])
    with pytest.raises(RayStateApiException, match="for a boolean type column"):
        state.list_nodes(filters=[("is_head_node", "=", "maybe")])
    with pytest.raises(RayStateApiException, match="exceeds the supported limit 10000"):
        state.list_nodes(limit=10_001)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert state.list_nodes(filters=[("state", "=", "ALIVE"), ("state", "=", "DEAD")]) == []
    assert "multiple '=' filters" in str(caught[0].message)
