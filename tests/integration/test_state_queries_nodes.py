"""Workers and objects listed and summarized by each node: the asker merges the nodes' first
`limit` rows into the cluster's first `limit`, and their summary parts into Ray's summary, as
filtering the nodes' whole tables did."""

import pytest

from tests.head_cluster import driven_cluster
from tests.integration.test_state_queries_at_source import _old_list, _whole_table
from zray._private.common import state_summaries
from zray.util import state
from zray.util.state.common import StateResource


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
