"""Four nodes on loopback with the same-host shortcut off (ZRAY_SAME_HOST_TRANSFER=0), so every
pull streams over a transfer connection as between hosts: exact bytes for odd and large sizes,
a copy made by one pull serves the next (and a broadcast fans out), nothing is left behind."""

import hashlib
import os
import shutil
import tempfile
import time

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import connect_remote_driver, stopped_on_failure, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT

NODES = 4
MIB = 2**20


@pytest.fixture(scope="module")
def cluster():
    import zray

    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root, ZRAY_SAME_HOST_TRANSFER="0")
    before = (zray_segments(), zray_sessions())
    common = ["--num-cpus", "1", "--object-store-memory", str(400 * MIB)]
    with stopped_on_failure(env):
        head = zray_cli(
            "start", "--head", "--port", "0", *common, "--resources", '{"n0": 1}', env=env
        )
        assert head.returncode == 0, head.stderr
        address = [line for line in head.stdout.splitlines() if line.startswith("Head address:")][
            0
        ].split()[-1]
        for i in range(1, NODES):
            joined = zray_cli(
                "start",
                f"--address={address}",
                *common,
                "--resources",
                f'{{"n{i}": 1}}',
                "--token",
                token_of(head.stdout),
                env=env,
            )
            assert joined.returncode == 0, joined.stderr
        connect_remote_driver(zray, address, token_of(head.stdout), NODES)
    yield zray
    zray.shutdown()
    stopped = zray_cli("stop", env=env)
    assert f"Stopped {NODES}" in stopped.stdout, stopped.stdout + stopped.stderr
    assert_no_leaks(*before)
    shutil.rmtree(root, ignore_errors=True)


def stats_by_node(ray):
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    out = {}
    for node in ray.nodes():
        name = [r for r in node["Resources"] if r.startswith("n") and r[1:].isdigit()][0]
        reply, _ = runtime.core.requests.call(node["ObjectStoreSocketName"], P.GetNodeStats(0), 10)
        out[name] = reply.stats["transfer"]
    return out


def sent_by(stats):
    return stats["connections"].get("bytes_sent", 0)


def settled(ray, timeout=10.0):
    """Waits (bounded) until no node holds a grant, a transfer pin or a pull."""
    deadline = time.monotonic() + timeout
    while True:
        busy = {
            name: (s["pulling"], s["serving"], s["connections"].get("grants", 0))
            for name, s in stats_by_node(ray).items()
        }
        if all(v == (0, 0, 0) for v in busy.values()):
            return
        assert time.monotonic() < deadline, f"transfer state left behind: {busy}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "nbytes", [1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 64 * MIB + 12_345, 150 * MIB + 7]
)
def test_streamed_objects_arrive_exact(cluster, nbytes):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"n1": 1})
    def produce(n):
        data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
        return data, hashlib.sha256(data).hexdigest()

    @ray.remote(resources={"n1": 1})
    def produce_array(n):
        return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)

    @ray.remote(resources={"n2": 1})
    def digest(data):
        return hashlib.sha256(data).hexdigest(), data.nbytes

    before = stats_by_node(ray)
    pair = produce.remote(nbytes)
    data, expected = ray.get(pair, timeout=120)  # n1 -> the driver's node (n0)
    assert data.nbytes == nbytes and hashlib.sha256(data).hexdigest() == expected
    # A value produced on n1, consumed on n2: the argument streams n1 -> n2.
    got, size = ray.get(digest.remote(produce_array.remote(nbytes)), timeout=120)
    assert (got, size) == (expected, nbytes)
    after = stats_by_node(ray)
    if nbytes > 100 * 1024:  # smaller values travel inline, not through the arena
        assert after["n0"]["streamed"] > before["n0"]["streamed"]
        assert after["n0"]["copied_from_shared_memory"] == before["n0"]["copied_from_shared_memory"]
        assert after["n2"]["streamed"] > before["n2"]["streamed"]
    del data, pair
    settled(ray)


def test_a_copy_made_by_one_pull_serves_the_next(cluster):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"n0": 1})
    def produce():
        return np.arange(40 * MIB // 8, dtype=np.int64)

    @ray.remote
    def total(arr):
        return int(arr.sum())

    ref = produce.remote()
    ray.wait([ref], timeout=60, fetch_local=False)
    expected = (40 * MIB // 8) * (40 * MIB // 8 - 1) // 2
    assert ray.get(total.options(resources={"n1": 1}).remote(ref), timeout=60) == expected
    before = stats_by_node(ray)
    # n0 (the primary) and n1 (a pulled copy) are equally idle: the directory sends n2 to n1.
    assert ray.get(total.options(resources={"n2": 1}).remote(ref), timeout=60) == expected
    after = stats_by_node(ray)
    assert sent_by(after["n1"]) - sent_by(before["n1"]) >= 40 * MIB
    assert sent_by(after["n0"]) == sent_by(before["n0"])
    del ref
    settled(ray)


def test_broadcast_to_every_node_arrives_exact(cluster):
    import numpy as np

    ray = cluster

    @ray.remote(resources={"n0": 1})
    def produce():
        return np.random.default_rng(5).random(100 * MIB // 8)

    @ray.remote
    def digest(arr):
        return hashlib.sha256(arr).hexdigest()

    ref = produce.remote()
    ray.wait([ref], timeout=60, fetch_local=False)
    before = stats_by_node(ray)
    digests = ray.get(
        [digest.options(resources={f"n{i}": 1}).remote(ref) for i in range(1, NODES)],
        timeout=120,
    )
    assert len(set(digests)) == 1
    assert digests[0] == hashlib.sha256(np.random.default_rng(5).random(100 * MIB // 8)).hexdigest()
    after = stats_by_node(ray)
    served = {n: sent_by(after[n]) - sent_by(before[n]) for n in after}
    assert sum(served.values()) >= 3 * 100 * MIB
    # Not all three from the primary's node: at least one copy came from another puller.
    assert served["n0"] < 3 * 100 * MIB, served
    del ref
    settled(ray)
