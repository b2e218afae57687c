"""Owners' frees across a head restart: a node sends again the frees the old head may not
have heard, and only those; a free the old head did act on must not be replayed onto an
object recomputed since (same id, a live copy again)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.conftest import exited
from tests.head_cluster import driven_cluster, wait_for


@pytest.fixture
def cluster(monkeypatch):
    with driven_cluster(monkeypatch, {"w1": {}, "w2": {"spot": 1}, "w3": {"spot": 1}}) as both:
        yield both


def _stored(ray, name: str) -> int:
    from zray._config import config
    from zray._private.core import runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    reply, _ = core.requests.call(core.head_address, P.GetNodes(False), config.rpc_timeout_s)
    address = next(n["address"] for n in reply.nodes if n["alive"] and name in n["resources"])
    reply, _ = core.requests.call(address, P.GetNodeStats(0), 30)
    return reply.stats["store"]["objects"]


def test_a_free_the_old_head_acted_on_is_not_replayed_onto_a_recomputed_object(cluster, tmp_path):
    """x and w are freed (their lineage kept for z); w2, holding z, dies; recomputing z
    recomputes x, then w (slowly), and the head restarts meanwhile. x's old free, which the
    old head had carried out, must not free x's new copy before z's rerun reads it: x is
    computed twice in all, not three times."""
    import numpy as np

    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray, cluster = cluster
    w2 = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "w2" in n["Resources"])
    spot = dict(resources={"spot": 0.1}, max_retries=3)
    on_w2 = NodeAffinitySchedulingStrategy(w2, soft=True)  # then w3, the other spot node
    runs_of_x = tmp_path / "runs_of_x"
    w_again = tmp_path / "w_again"

    @ray.remote(**spot, scheduling_strategy=on_w2)
    def make_x(log):
        with open(log, "a") as out:
            out.write("x\n")
        return np.ones(2**20, dtype=np.int64)  # 8 MiB: in shared memory

    @ray.remote(**spot, scheduling_strategy=on_w2)
    def make_w(marker):
        if os.path.exists(marker + ".first"):  # recomputed: slow, the head restarts meanwhile
            open(marker, "w").close()
            time.sleep(8)
        open(marker + ".first", "w").close()
        return np.ones(2**20, dtype=np.int64)

    @ray.remote(**spot, scheduling_strategy=on_w2)
    def combine(x, w):
        return x + w

    x = make_x.remote(str(runs_of_x))
    w = make_w.remote(str(w_again))
    z = combine.remote(x, w)
    ray.wait([z], timeout=60, fetch_local=False)
    del x, w
    wait_for(lambda: _stored(ray, "w2") == 1, 30, "x's and w's values freed, z's kept")

    results = []
    getter = threading.Thread(target=lambda: results.append(ray.get(z, timeout=120)))
    node_pid = cluster.node_pids.pop("w2")
    os.kill(node_pid, signal.SIGKILL)
    assert exited(node_pid)
    getter.start()
    wait_for(w_again.exists, 60, "w being recomputed, after x")
    assert runs_of_x.read_text().count("x") == 2
    cluster.kill_head()
    cluster.start_head()
    getter.join(timeout=150)
    assert results and int(results[0][0]) == 2
    assert runs_of_x.read_text().count("x") == 2  # not freed once too often, made a 3rd time
