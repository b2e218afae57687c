"""Workers and objects listed and summarized by each node: the asker merges the nodes' first
`limit` rows into the cluster's first `limit`, and their summary parts into Ray's summary, as
filtering the nodes' whole tables did."""

import warnings

import pytest

from tests.head_cluster import driven_cluster, wait_for
from tests.integration.test_state_queries_at_source import _old_list, _whole_table
from zray._private.common import state_summaries
from zray._private.common.state_rows import object_rows
from zray._private.wire import protocol as P
from zray.util import state
from zray.util.state import _transport
from zray.util.state.api import StateApiClient
from zray.util.state.common import ListApiOptions, StateResource
from zray.util.state.exception import RayStateApiException

SOURCE_LIMIT = 4


@pytest.fixture
def cluster(monkeypatch):
    with driven_cluster(monkeypatch, {"w1": {}, "w2": {}}) as (zray, _):
        yield zray


def test_nodes_rows_and_summary_parts_merge_as_the_whole_tables(cluster):
    ray = cluster

    @ray.remote(num_cpus=0)
    class Keeper:
        def keep(self, n):
            self.refs = [ray.put(i) for i in range(n)]
            return len(self.refs)

    keepers = [Keeper.options(resources={node: 0.1}).remote() for node in ("w1", "w2", "w2")]
    assert ray.get([k.keep.remote(15) for k in keepers], timeout=60) == [15, 15, 15]
    held = [ray.put(i) for i in range(10)]
    ips = {o.ip for o in state.list_objects(limit=1000)}
    pids = {o.pid for o in state.list_objects(limit=1000)}
    assert len(pids) == 4 and len(ips) == 1  # both nodes on 127.0.0.1

    for limit in (1, 7, 1000):
        assert state.list_objects(limit=limit) == _old_list(StateResource.OBJECTS, limit=limit)
        assert state.list_workers(limit=limit) == _old_list(StateResource.WORKERS, limit=limit)
    worker = [("worker_type", "=", "WORKER")]
    assert state.list_workers(filters=worker, detail=True) == _old_list(
        StateResource.WORKERS, worker, detail=True
    )
    summary = state.summarize_objects()["cluster"]
    objects = _whole_table(StateResource.OBJECTS)
    assert summary == state_summaries.object_summary([state_summaries.object_summary_part(objects)])
    assert summary["summary"]["disabled"]["total_num_workers"] == 4
    assert summary["total_objects"] >= len(held) + 45


def _rows_per_node() -> list:
    """How many object rows each live node holds (its whole table, untruncated)."""
    conn = _transport.Connection(None)
    nodes = [n for n in conn.ask_head(P.GetStateTable("nodes"), 10).rows if n["state"] == "ALIVE"]
    replies = conn.gather([(n["_address"], P.GetMemoryReport(8000)) for n in nodes], 10)
    return [len(object_rows(r.node_ip, r.objects, r.processes)) for r in replies]


def test_each_node_truncates_its_own_rows_and_the_counts_add_up(monkeypatch):
    """Ray's counts across nodes: `total` all the nodes hold, `num_after_truncation` what
    each returned (at most its source limit), summed."""
    limit_env = {"ZRAY_MAX_LIMIT_FROM_DATA_SOURCE": str(SOURCE_LIMIT)}
    with driven_cluster(monkeypatch, {"w1": {}, "w2": {}}, limit_env) as (ray, _):

        @ray.remote(num_cpus=0)
        class Keeper:
            def keep(self, n):
                self.refs = [ray.put(i) for i in range(n)]
                return len(self.refs)

        keepers = [Keeper.options(resources={node: 0.1}).remote() for node in ("w1", "w2")]
        assert ray.get([k.keep.remote(6) for k in keepers], timeout=60) == [6, 6]

        def settled():  # the answer of tables that did not change while it was asked
            before = _rows_per_node()
            response = StateApiClient()._list_response(
                StateResource.OBJECTS, ListApiOptions(limit=1000)
            )
            return (before, response) if _rows_per_node() == before else None

        per_node, response = wait_for(settled)
        total, returned = sum(per_node), sum(min(n, SOURCE_LIMIT) for n in per_node)
        assert total > returned >= 2 * SOURCE_LIMIT  # both worker nodes truncated
        assert (response.total, response.num_after_truncation) == (total, returned)
        assert response.num_filtered == len(response.rows) == returned
        with pytest.raises(RayStateApiException, match=f"Failed to retrieve all {total} objects"):
            state.list_objects()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state.summarize_objects(raise_on_missing_output=False, _explain=True)
        said = [str(w.message) for w in caught]
        assert any(f"{returned} ({total} total from the cluster) objects" in t for t in said)
