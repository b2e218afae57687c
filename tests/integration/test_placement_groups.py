"""Placement groups on a three-node loopback cluster: strategies, bundle targeting, child capture,
pending groups placed when a node joins, removal, node death with rescheduling, detached
lifetime and Ray's errors for bad input."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.integration.test_cli import zray_cli
from tests.loopback_cluster import loopback_cluster
from tests.integration.test_lifecycle import ROOT

DEATH_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def cluster():
    nodes = {name: {name: 1} for name in ("w1", "w2")}
    with loopback_cluster(
        head_cpus=2,
        head_resources={"head": 1},
        nodes=nodes,
        node_cpus=2,
        node_death_timeout_s=DEATH_TIMEOUT_S,
    ) as c:
        yield c


def pg_api():
    import importlib

    # `zray.util.placement_group` is the function (as in Ray); the module is in sys.modules.
    return importlib.import_module("zray.util.placement_group")


def strategy(pg, index=-1, capture=None):
    from zray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(pg, index, capture)


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    "name,bundles,distinct",
    [
        ("STRICT_SPREAD", [{"CPU": 1}] * 3, 3),
        ("STRICT_PACK", [{"CPU": 1}] * 2, 1),
        ("PACK", [{"CPU": 1}] * 2, 1),
        ("SPREAD", [{"CPU": 1}] * 3, 3),
    ],
)
def test_strategies_place_bundles_as_named(cluster, name, bundles, distinct):
    ray, api = cluster.ray, pg_api()
    free_before = ray.available_resources()["CPU"]
    pg = api.placement_group(bundles, strategy=name)
    assert ray.get(pg.ready(), timeout=30) == pg
    row = api.placement_group_table(pg)
    assert row["state"] == "CREATED" and row["strategy"] == name
    assert len(set(row["bundles_to_node_id"].values())) == distinct
    wait_until(
        lambda: ray.available_resources()["CPU"] == free_before - len(bundles),
        10,
        "the bundles' CPUs to be taken",
    )
    assert not any("_group_" in name for name in ray.cluster_resources())  # as in Ray 2.60
    api.remove_placement_group(pg)
    wait_until(
        lambda: ray.available_resources()["CPU"] == free_before,
        10,
        "the bundles' CPUs to come back",
    )
    assert api.placement_group_table(pg)["state"] == "REMOVED"


def test_status_shows_what_groups_reserve_as_ray_status_does(cluster):
    ray, api = cluster.ray, pg_api()
    pg = api.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    assert pg.wait(30)

    @ray.remote
    def busy():
        return 1

    ray.get(busy.options(scheduling_strategy=strategy(pg, 0)).remote(), timeout=30)
    out = zray_cli("status", env=cluster.env).stdout
    assert re.search(r"2/6 CPU \(\d used of 2 reserved in placement groups\)", out), out
    assert "_group_" not in out
    api.remove_placement_group(pg)


def test_strict_spread_cannot_fit_more_bundles_than_nodes(cluster, capfd):
    ray, api = cluster.ray, pg_api()
    pg = api.placement_group([{"CPU": 0.1}] * 4, strategy="STRICT_SPREAD")
    assert pg.wait(1) is False
    assert api.placement_group_table(pg)["state"] == "PENDING"
    # Warned on the driver's stderr, as an infeasible task is.
    wait_until(lambda: "cannot be created" in capfd.readouterr().err, 10, "the warning")
    api.remove_placement_group(pg)
    with pytest.raises(ray.exceptions.RaySystemError, match="removed before it was created"):
        ray.get(pg.ready(), timeout=10)


def test_tasks_and_actors_run_in_their_bundle(cluster):
    ray, api = cluster.ray, pg_api()
    pg = api.placement_group(
        [{"CPU": 1, "w1": 1}, {"CPU": 1, "w2": 1}], strategy="SPREAD", name="gang"
    )
    assert pg.wait(30)
    nodes = api.placement_group_table(pg)["bundles_to_node_id"]
    assert nodes[0] == cluster.node_of("w1") and nodes[1] == cluster.node_of("w2")

    @ray.remote
    def where():
        context = ray.get_runtime_context()
        return (
            context.get_node_id(),
            context.get_assigned_resources(),
            api.get_current_placement_group(),
        )

    for index in (0, 1):
        node, held, current = ray.get(
            where.options(scheduling_strategy=strategy(pg, index)).remote(), timeout=30
        )
        assert node == nodes[index] and held == {"CPU": 1.0} and current == pg
    # Any bundle (-1): on one of the group's nodes.
    assert (
        ray.get(where.options(scheduling_strategy=strategy(pg)).remote(), timeout=30)[0]
        in nodes.values()
    )
    # Ray's older options form, with Ray's deprecation warning.
    with pytest.warns(DeprecationWarning) as warned:
        older = where.options(placement_group=pg, placement_group_bundle_index=1).remote()
    assert sorted(str(w.message).split()[0] for w in warned) == [
        "placement_group",
        "placement_group_bundle_index",
    ]
    assert ray.get(older, timeout=30)[0] == nodes[1]

    @ray.remote
    class Worker:
        def where(self):
            context = ray.get_runtime_context()
            return context.get_node_id(), context.get_placement_group_id()

    actor = Worker.options(scheduling_strategy=strategy(pg, 1)).remote()
    assert ray.get(actor.where.remote(), timeout=30) == (nodes[1], pg.id.hex())
    assert api.get_placement_group("gang") == pg
    # The group's two CPUs are taken while it lives, whatever runs in it.
    assert ray.available_resources().get("CPU", 0) <= 4.0
    api.remove_placement_group(pg)

    def actor_is_dead():  # calls on their way before the news of its death still run
        try:
            ray.get(actor.where.remote(), timeout=30)
        except ray.exceptions.RayActorError:
            return True
        return False

    wait_until(actor_is_dead, 30, "the group's actor to die with it")
    with pytest.raises(ValueError, match="Failed to look up placement group"):
        api.get_placement_group("gang")


def test_children_stay_in_the_group_when_captured(cluster):
    ray, api = cluster.ray, pg_api()
    pg = api.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(30)
    nodes = set(api.placement_group_table(pg)["bundles_to_node_id"].values())

    @ray.remote(num_cpus=0.5)
    def child():
        return api.get_current_placement_group(), ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=0.5)
    def parent():
        return ray.get(
            child.remote(), timeout=30
        ), ray.get_runtime_context().should_capture_child_tasks_in_placement_group()

    (group, node), captures = ray.get(
        parent.options(scheduling_strategy=strategy(pg, 0, capture=True)).remote(), timeout=30
    )
    assert group == pg and node in nodes and captures
    (group, _), captures = ray.get(
        parent.options(scheduling_strategy=strategy(pg, 0)).remote(), timeout=30
    )
    assert group is None and not captures
    api.remove_placement_group(pg)


def test_bad_input_gets_rays_errors(cluster):
    ray, api = cluster.ray, pg_api()
    with pytest.raises(ValueError, match="Got empty list instead"):
        api.placement_group([])
    with pytest.raises(ValueError, match="Bundles cannot be an empty dictionary"):
        api.placement_group([{}])
    with pytest.raises(ValueError, match="only 0 values"):
        api.placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="must be a list"):
        api.placement_group("x")
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        api.placement_group([{"CPU": 1}], strategy="X")
    with pytest.raises(ValueError, match="lifetime"):
        api.placement_group([{"CPU": 1}], lifetime="forever")
    with pytest.raises(ValueError):
        api.placement_group([{"CPU": -1}])
    pg = api.placement_group([{"CPU": 1}], name="once")
    with pytest.raises(ValueError, match="already taken"):
        api.placement_group([{"CPU": 1}], name="once")

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="bundle index 5 is invalid"):
        f.options(scheduling_strategy=strategy(pg, 5)).remote()
    with pytest.raises(ValueError, match="cannot fit into any bundles"):
        f.options(num_cpus=2, scheduling_strategy=strategy(pg, 0)).remote()
    with pytest.raises(ValueError, match="deprecated"):
        f.options(placement_group=pg, scheduling_strategy="SPREAD").remote()
    api.remove_placement_group(pg)


def test_pending_group_is_placed_when_a_node_joins_and_rescheduled_when_it_dies(cluster):
    ray, api = cluster.ray, pg_api()
    pg = api.placement_group([{"CPU": 1}, {"CPU": 1, "late": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(1) is False
    assert api.placement_group_table(pg)["state"] == "PENDING"
    first = cluster.join("late-1", {"late": 1})
    assert ray.get(pg.ready(), timeout=30) == pg
    late_node = cluster.node_of("late")
    assert api.placement_group_table(pg)["bundles_to_node_id"][1] == late_node

    @ray.remote(max_restarts=1, max_task_retries=-1)
    class Survivor:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    survivor = Survivor.options(scheduling_strategy=strategy(pg, 1)).remote()
    assert ray.get(survivor.node.remote(), timeout=30) == late_node
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: api.placement_group_table(pg)["state"] == "RESCHEDULING",
        DEATH_TIMEOUT_S + 10,
        "the group to lose its bundle",
    )
    second = cluster.join("late-2", {"late": 1})
    try:
        wait_until(
            lambda: api.placement_group_table(pg)["state"] == "CREATED",
            30,
            "the lost bundle to be placed again",
        )
        new_node = api.placement_group_table(pg)["bundles_to_node_id"][1]
        assert new_node == cluster.node_of("late") != late_node
        # The actor had a restart left: it comes back in the bundle's new home.
        assert ray.get(survivor.node.remote(), timeout=30) == new_node
    finally:
        api.remove_placement_group(pg)
        os.kill(second, signal.SIGTERM)


def test_detached_groups_outlive_their_job_and_others_do_not(cluster):
    api = pg_api()
    script = textwrap.dedent(f"""
        import zray
        from tests.integration.test_cli import connect_remote_driver
        from zray.util.placement_group import placement_group
        connect_remote_driver(zray, {cluster.address!r}, {cluster.token!r}, 3)
        kept = placement_group([{{"CPU": 0.5}}], name="kept", lifetime="detached")
        gone = placement_group([{{"CPU": 0.5}}], name="gone")
        assert kept.wait(30) and gone.wait(30)
        zray.shutdown()
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(cluster.env, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    by_name = {}
    wait_until(
        lambda: (
            by_name.update({row["name"]: row for row in api.placement_group_table().values()})
            or by_name.get("gone", {}).get("state") == "REMOVED"
        ),
        10,
        "the job's group to go with it",
    )
    assert by_name["kept"]["state"] == "CREATED"
    kept = api.PlacementGroup(
        cluster.ray.PlacementGroupID.from_hex(by_name["kept"]["placement_group_id"])
    )
    api.remove_placement_group(kept)
    assert api.placement_group_table(kept)["state"] == "REMOVED"
