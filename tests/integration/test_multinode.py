"""Three node daemons on loopback forming one cluster: placement, spillback, strategies."""
import os
import shutil
import tempfile
import time

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import zray_cli
from tests.integration.test_lifecycle import ROOT


@pytest.fixture(scope="module")
def cluster():
    import zray

    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    before = (zray_segments(), zray_sessions())
    head = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1", "--resources",
                    '{"head": 1}', env=env)
    assert head.returncode == 0, head.stderr
    address = [l for l in head.stdout.splitlines() if l.startswith("Head address:")][0].split()[-1]
    for name in ("w1", "w2"):
        joined = zray_cli("start", f"--address={address}", "--num-cpus", "1", "--resources",
                          f'{{"{name}": 1}}', env=env)
        assert joined.returncode == 0, joined.stderr
    zray.init(address=address)
    deadline = time.monotonic() + 10
    while len([n for n in zray.nodes() if n["Alive"]]) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    yield zray
    zray.shutdown()
    stopped = zray_cli("stop", env=env)
    assert "Stopped 3" in stopped.stdout, stopped.stdout + stopped.stderr
    assert_no_leaks(*before)
    shutil.rmtree(root, ignore_errors=True)


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
        assert ray.get(where.options(resources={name: 0.5}).remote(), timeout=30) == \
            node_of(ray, name)


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

    spread = ray.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(6)],
                     timeout=30)
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
