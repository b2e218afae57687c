"""State queries answered where the rows are (the head for actors, nodes, jobs, placement
groups, tasks and the summaries of tasks and actors and the timeline; each node for workers,
objects and its part of the objects' summary) give what fetching the whole tables and
filtering in the asker gave, and only the rows asked for cross the wire."""

import pytest

from zray._private.common import state_summaries
from zray._private.common.state_rows import SORT_KEYS, object_rows
from zray._private.wire import protocol as P
from zray.util import state
from zray.util.state import _transport, api, timeline
from zray.util.state.common import StateResource, do_filter, resource_to_schema
from tests.head_cluster import wait_for

ACTORS = 40
TASKS = 150
OBJECTS = 120


@pytest.fixture(scope="module")
def cluster(ray):
    """A cluster with many rows of each kind: dead and live actors, finished tasks of two
    functions, object references held by the driver."""

    @ray.remote(num_cpus=0)
    class Holder:
        def ping(self):
            return 1

    @ray.remote
    def src_square(i):
        return i * i

    @ray.remote
    def src_other(i):
        return i

    for start in range(0, ACTORS, 10):
        batch = [Holder.remote() for _ in range(10)]
        assert ray.get([a.ping.remote() for a in batch], timeout=60) == [1] * 10
        for actor in batch[:-2]:
            ray.kill(actor)
        live = batch[-2:]
    assert len(ray.get([src_square.remote(i) for i in range(TASKS)], timeout=60)) == TASKS
    assert len(ray.get([src_other.remote(i) for i in range(10)], timeout=60)) == 10
    held = [ray.put(i) for i in range(OBJECTS)]
    wait_for(lambda: len(state.list_actors(filters=[("state", "=", "DEAD")], limit=100)) >= 32)
    wait_for(
        lambda: (
            state.summarize_tasks()["cluster"]["summary"]
            .get("src_square", {})
            .get("state_counts", {})
            .get("FINISHED")
            == TASKS
        )
    )
    yield ray, live, held


def _whole_table(resource: StateResource) -> list:
    """The rows as the asker fetched them before: every row with every field."""
    conn = _transport.Connection(None)
    if resource == StateResource.WORKERS:
        nodes = [
            n for n in conn.ask_head(P.GetStateTable("nodes"), 10).rows if n["state"] == "ALIVE"
        ]
        replies = conn.gather([(n["_address"], P.GetStateTable("workers")) for n in nodes], 10)
        return [row for reply in replies for row in reply.rows]
    if resource == StateResource.OBJECTS:
        nodes = [
            n for n in conn.ask_head(P.GetStateTable("nodes"), 10).rows if n["state"] == "ALIVE"
        ]
        replies = conn.gather([(n["_address"], P.GetMemoryReport(8000)) for n in nodes], 10)
        return [row for r in replies for row in object_rows(r.node_ip, r.objects, r.processes)]
    rows = conn.ask_head(P.GetStateTable(resource.value), 10).rows
    if resource == StateResource.ACTORS:
        workers = {w["worker_id"]: w["pid"] for w in _whole_table(StateResource.WORKERS)}
        for row in rows:
            row["pid"] = workers.get(row["_worker_id"], 0)
    return rows


def _old_list(resource: StateResource, filters=(), limit=100, detail=False) -> list:
    """What list_<resource> returned when the asker filtered the whole table."""
    schema = resource_to_schema(resource)
    rows = do_filter(_whole_table(resource), list(filters), schema, detail)
    key = SORT_KEYS[resource.value]
    rows.sort(key=lambda row: row.get(key) or "")
    return [schema(**row) for row in rows[:limit]]


@pytest.mark.parametrize(
    "resource, filters, limit, detail",
    [
        (StateResource.ACTORS, [], 100, False),
        (StateResource.ACTORS, [("state", "=", "dead")], 7, True),
        (
            StateResource.ACTORS,
            [("state", "!=", "DEAD"), ("class_name", "=", "Holder")],
            100,
            False,
        ),
        (StateResource.NODES, [("is_head_node", "=", "true")], 100, True),
        (StateResource.JOBS, [], 100, False),
        (StateResource.PLACEMENT_GROUPS, [], 100, False),
        (StateResource.WORKERS, [("is_alive", "=", "true")], 100, False),
        (StateResource.WORKERS, [], 3, True),
        (StateResource.OBJECTS, [("type", "=", "DRIVER")], 500, False),
        (StateResource.OBJECTS, [], 9, True),
    ],
)
def test_a_listing_equals_the_whole_table_filtered_by_the_asker(
    cluster, resource, filters, limit, detail
):
    listed = api.StateApiClient().list(
        resource,
        state.common.ListApiOptions(limit=limit, filters=filters, detail=detail),
        raise_on_missing_output=False,
    )
    old = _old_list(resource, filters, limit, detail)
    assert listed == old
    if resource in (StateResource.ACTORS, StateResource.OBJECTS) and limit < ACTORS:
        assert len(listed) == limit  # the cluster has more rows than the limit


def test_actors_by_pid_are_filtered_after_the_pids_are_known(cluster):
    ray, live, _held = cluster
    actor_id = live[0]._actor_id.hex()
    [actor] = state.list_actors(filters=[("actor_id", "=", actor_id)])
    assert actor.pid > 0
    assert [a.actor_id for a in state.list_actors(filters=[("pid", "=", str(actor.pid))])] == [
        actor_id
    ]
    assert state.list_actors(filters=[("pid", "=", actor.pid)], limit=0) == []


def test_many_actors_pids_come_from_each_nodes_worker_ids(cluster, monkeypatch):
    monkeypatch.setattr(api, "_PID_QUERIES_MAX", 3)  # past it: one query per node
    assert state.list_actors(limit=100) == _old_list(StateResource.ACTORS, limit=100)
    assert {a.pid for a in state.list_actors(filters=[("state", "=", "ALIVE")])} != {0}


def test_summaries_equal_the_whole_tables_summarized(cluster):
    actors = [a.asdict() for a in _old_list(StateResource.ACTORS, limit=10_000)]
    assert state.summarize_actors() == {"cluster": state_summaries.actor_summary(actors)}
    tasks = sorted(_whole_table(StateResource.TASKS), key=lambda row: row["task_id"])
    summary = state.summarize_tasks()["cluster"]
    assert summary == state_summaries.task_summary(tasks)
    assert summary["summary"]["src_square"]["state_counts"] == {"FINISHED": TASKS}
    objects = [o.asdict() for o in _old_list(StateResource.OBJECTS, limit=10_000)]
    summary = state.summarize_objects()["cluster"]
    old = state_summaries.object_summary([state_summaries.object_summary_part(objects)])
    assert summary == old and summary["total_objects"] >= OBJECTS


def test_an_objects_summary_past_the_limit_summarizes_the_first_listed(cluster, monkeypatch):
    monkeypatch.setattr(api, "MAX_LIMIT", 50)  # the nodes hold more references than this
    objects = [o.asdict() for o in _old_list(StateResource.OBJECTS, limit=50)]
    summary = state.summarize_objects()["cluster"]
    assert summary["total_objects"] == 50
    assert summary == state_summaries.object_summary([state_summaries.object_summary_part(objects)])


def test_the_timeline_equals_the_trace_of_every_task_row(cluster):
    def runs_of_square() -> int:  # the workers' RUNNING events come in their next batch
        trace = timeline.dump(None)
        return sum(1 for e in trace if e["ph"] == "X" and "src_square" in e["name"])

    wait_for(lambda: runs_of_square() == TASKS)
    assert timeline.dump(None) == timeline.chrome_tracing_dump(_whole_table(StateResource.TASKS))


def test_only_the_rows_asked_for_cross_the_wire(cluster, monkeypatch):
    replies: list = []
    gather = _transport.Connection.gather

    def recording(self, requests, timeout):
        answers = gather(self, requests, timeout)
        replies.extend(
            (type(msg).__name__, getattr(msg, "kind", ""), reply)
            for (_address, msg), reply in zip(requests, answers)
        )
        return answers

    monkeypatch.setattr(_transport.Connection, "gather", recording)

    def rows_sent(query) -> list:
        replies.clear()
        query()
        return [
            (kind, len(reply.rows))
            for name, kind, reply in replies
            if hasattr(reply, "rows") and kind != "nodes"  # not where the nodes are
        ]

    [actors, *pid_lookups] = rows_sent(lambda: state.list_actors(limit=5))
    assert actors == ("actors", 5) and len(pid_lookups) <= 5
    assert all(kind == "workers" and rows <= 1 for kind, rows in pid_lookups)
    assert rows_sent(lambda: state.list_objects(limit=4)) == [("objects", 4)]
    assert rows_sent(lambda: state.list_workers(limit=2)) == [("workers", 2)]
    assert rows_sent(lambda: state.list_tasks(limit=3)) == [("tasks", 3)]
    for kind in ("actors", "objects", "tasks"):
        summarize = getattr(state, f"summarize_{kind}")
        assert rows_sent(summarize) == [(kind, 1)]  # one summary, not a row per entry


def test_malformed_queries_get_an_error_and_every_source_keeps_answering(cluster):
    conn = _transport.Connection(None)
    [node] = [n for n in conn.ask_head(P.GetStateTable("nodes"), 10).rows if n["state"] == "ALIVE"]
    bad = [
        P.ListState("workers", [["worker_id"]], 5, ["pid"], ["worker_id"], 100, False),
        P.ListState("workers", [[1, "=", 2, 3]], 5, ["pid"], ["worker_id"], 100, False),
        P.ListState("objects", [["bogus", "=", "x"]], 5, ["pid"], ["pid"], 100, False),
        P.ListState("nothing", [], 5, ["pid"], [], 100, True),
    ]
    replies = conn.gather([(node["_address"], msg) for msg in bad], 10)
    assert all(isinstance(r, P.Error) and r.kind == "ValueError" for r in replies), replies
    replies = conn.gather([(conn.head, msg) for msg in bad[:2] + [bad[3]]], 10)
    assert all(isinstance(r, P.Error) and r.kind == "ValueError" for r in replies), replies
    assert len(state.list_workers(limit=1)) == 1 and len(state.list_actors(limit=1)) == 1
