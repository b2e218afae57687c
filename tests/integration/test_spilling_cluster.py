"""Spilling across nodes (a second node on 127.0.0.2): a spilled object is served to another
node, copies pulled from other nodes leave before primary copies are spilled, and a cluster
killed with SIGKILL leaves nothing once the next one starts, even in a configured spill dir."""

import gc
import os
import re
import shutil

import numpy as np
import pytest

from tests.conftest import assert_no_leaks, exited, zray_segments, zray_sessions
from tests.integration.test_cli import (
    short_tmp,
    zray_cli,
)
from tests.integration.test_lifecycle import ROOT, run_script
from tests.integration.test_objects import wait_until
from tests.loopback_cluster import loopback_cluster

STORE = 200 * 2**20


@pytest.fixture(scope="module")
def cluster():
    store = ("--object-store-memory", str(STORE))
    with loopback_cluster(
        head_resources={"head": 1},
        nodes={"w2": {"w2": 1}},
        head_flags=store,
        node_flags={"w2": (*store, "--node-ip-address", "127.0.0.2")},
    ) as started:
        yield started.ray


def stats_of(ray, resource):
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    node = [n for n in ray.nodes() if resource in n["Resources"]][0]
    reply, _ = runtime.core.requests.call(node["ObjectStoreSocketName"], P.GetNodeStats(0), 10)
    return reply.stats


def test_spilled_object_as_argument_on_another_node(cluster):
    ray = cluster

    @ray.remote(resources={"w2": 1})
    def checksum(arr):
        return int(arr.sum()), ray.get_runtime_context().get_node_id()

    n = 10 * 2**20
    first = ray.put(np.arange(n, dtype=np.int64))  # 80 MiB on the driver's (head) node
    others = [ray.put(np.ones(n)) for _ in range(4)]  # 320 MiB more: the first goes to disk
    assert wait_until(lambda: stats_of(ray, "head")["spill"]["spilling_bytes"] == 0)
    assert stats_of(ray, "head")["store"]["spilled"] >= 1
    total, where = ray.get(checksum.remote(first), timeout=60)  # restored on head, pulled to w2
    assert total == n * (n - 1) // 2
    assert where == [x for x in ray.nodes() if "w2" in x["Resources"]][0]["NodeID"]
    assert stats_of(ray, "head")["spill"]["objects_restored"] >= 1
    del first, others


def test_copies_from_other_nodes_go_before_primaries_are_spilled(cluster):
    ray = cluster

    @ray.remote(resources={"w2": 1})
    def total(*arrays):
        return sum(float(a.sum()) for a in arrays)

    @ray.remote(resources={"w2": 1})
    def make(count, mib):
        return [ray.put(np.full(mib * 2**20 // 8, i, dtype=np.int64)) for i in range(count)]

    gc.collect()
    assert wait_until(lambda: stats_of(ray, "w2")["store"]["used"] < 2**20)
    inputs = [ray.put(np.ones(40 * 2**20 // 8)) for _ in range(3)]
    assert ray.get(total.remote(*inputs), timeout=60) == 3 * 40 * 2**20 // 8
    w2 = stats_of(ray, "w2")
    assert w2["store"]["secondary"] == 3  # 120 MiB of copies pulled from the head node
    before = w2["spill"]
    # 100 MiB of primaries on w2: past the 160 MiB threshold, so something must leave memory.
    made = ray.get(make.remote(4, 25), timeout=60)
    assert wait_until(lambda: stats_of(ray, "w2")["spill"]["spilling_bytes"] == 0)
    after = stats_of(ray, "w2")
    assert after["spill"]["secondary_evicted"] - before["secondary_evicted"] >= 2
    assert after["spill"]["bytes_spilled"] == before["bytes_spilled"]  # no primary went to disk
    assert after["store"]["used"] <= 0.8 * STORE
    # The directory forgot the deleted copies: w2 pulls them again from the head node.
    assert ray.get(total.remote(*inputs), timeout=60) == 3 * 40 * 2**20 // 8
    assert [int(ray.get(r)[0]) for r in made] == [0, 1, 2, 3]
    del inputs, made


def test_sigkilled_cluster_spill_files_are_removed_at_next_start():
    tmp = short_tmp()
    spill_dir = os.path.join(tmp, "spill")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=tmp, ZRAY_SPILL_DIR=spill_dir)
    before = (zray_segments(), zray_sessions())
    first = zray_cli(
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "1",
        "--object-store-memory",
        str(STORE),
        env=env,
    )
    assert first.returncode == 0, first.stderr
    pid = int(re.search(r"\(pid (\d+)\)", first.stdout).group(1))
    session = re.search(r"in (\S+session_\S+)", first.stdout).group(1)
    result = run_script(
        f"""
        import os, signal, time
        import numpy as np
        import zray as ray
        ray.init(address="auto")
        refs = [ray.put(np.ones(50 * 2**20 // 8)) for _ in range(6)]  # 300 MiB: spills
        deadline = time.monotonic() + 10
        while not any(files for _, _, files in os.walk({spill_dir!r})):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill({pid}, signal.SIGKILL)  # the whole cluster dies with the refs still held
        os._exit(0)
    """,
        env={"ZRAY_SESSION_DIR_ROOT": tmp, "ZRAY_SPILL_DIR": spill_dir},
    )
    assert result.returncode == 0, result.stderr
    assert exited(pid)
    [left] = os.listdir(spill_dir)  # a crash leaves its spill files behind ...
    assert left.startswith(os.path.basename(session)) and os.listdir(os.path.join(spill_dir, left))
    assert os.path.isdir(session)
    second = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1", env=env)
    assert second.returncode == 0, second.stderr
    assert os.listdir(spill_dir) == [] and not os.path.exists(session)  # ... the next start not
    zray_cli("stop", env=env)
    assert_no_leaks(*before)
    shutil.rmtree(tmp)


def test_shutdown_removes_spill_files_in_a_configured_dir():
    tmp = short_tmp()
    spill_dir = os.path.join(tmp, "spill")
    result = run_script(
        """
        import os
        import numpy as np
        import zray as ray
        from zray._config import config
        ray.init(num_cpus=1, object_store_memory=200 * 2**20)
        refs = [ray.put(np.ones(50 * 2**20 // 8)) for _ in range(6)]
        assert all(ray.get(r)[0] == 1 for r in refs)
        print(sum(len(files) for _, _, files in os.walk(config.spill_dir)))
        ray.shutdown()
        print(sum(len(files) for _, _, files in os.walk(config.spill_dir)))
    """,
        env={"ZRAY_SESSION_DIR_ROOT": tmp, "ZRAY_SPILL_DIR": spill_dir},
    )
    assert result.returncode == 0, result.stderr
    during, after = map(int, result.stdout.split())
    assert during > 0 and after == 0 and os.listdir(spill_dir) == []
    shutil.rmtree(tmp)
