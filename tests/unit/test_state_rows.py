"""The state queries' filters, order, limit and summaries as the head and nodes apply them
(common/state_rows.py, common/state_summaries.py)."""

import pytest

from zray._private.common import state_summaries
from zray._private.common.state_rows import query_rows

ROWS = [
    {"actor_id": "c3", "state": "DEAD", "class_name": "A", "pid": 7},
    {"actor_id": "a1", "state": "ALIVE", "class_name": "B", "pid": 8},
    {"actor_id": "b2", "state": "DEAD", "class_name": "A", "pid": 9},
]
FILTERABLE = ["actor_id", "state", "class_name", "pid"]


def test_filtered_sorted_by_id_limited_and_trimmed():
    found = query_rows(ROWS, "actors", [("STATE", "=", "dead")], 1, ["actor_id"], FILTERABLE)
    assert found.rows == [{"actor_id": "b2"}] and found.num_filtered == 2
    found = query_rows(ROWS, "actors", [("pid", "!=", 8)], 10, ["actor_id", "name"], FILTERABLE)
    assert found.rows == [{"actor_id": "b2", "name": None}, {"actor_id": "c3", "name": None}]
    assert query_rows(ROWS, "actors", [], -1, ["actor_id"], FILTERABLE) == ([], 3, 3, 3)


def test_a_filter_on_a_column_not_filterable_is_refused_when_there_are_rows():
    with pytest.raises(ValueError, match="The given filter column bogus is not supported"):
        query_rows(ROWS, "actors", [("bogus", "=", "1")], 10, ["actor_id"], FILTERABLE)
    assert query_rows([], "actors", [("bogus", "=", "1")], 10, ["actor_id"], FILTERABLE) == (
        [],
        0,
        0,
        0,
    )


def _counts(rows, kind, filters=(), source_limit=10_000, filterable=FILTERABLE):
    found = query_rows(rows, kind, list(filters), 100, ["state"], filterable, source_limit)
    return found.total, found.num_after_truncation, found.num_filtered


# The counts below are what Ray 2.60's GCS and API server answered for the same tables (two
# actors, one dead; one live node; four workers, two exited), measured with Ray's own client.
def test_actors_count_what_the_source_filtered_as_returned_and_truncate_past_its_limit():
    actors = [{"actor_id": "a", "state": "ALIVE"}, {"actor_id": "b", "state": "DEAD"}]
    assert _counts(actors, "actors") == (2, 2, 2)
    assert _counts(actors, "actors", [("state", "=", "DEAD")]) == (2, 2, 1)
    assert _counts(actors, "actors", [("state", "!=", "DEAD")]) == (2, 2, 1)  # not at source
    assert _counts(actors, "actors", source_limit=1) == (2, 1, 1)
    # The live first, as Ray's GCS walks them: past the limit, the dead are left out.
    found = query_rows(actors[::-1], "actors", [], 10, ["actor_id"], ["state"], 1)
    assert found.rows == [{"actor_id": "a"}]


def test_nodes_count_what_the_source_filtered_in_the_total_only():
    nodes = [{"node_id": "n", "state": "ALIVE"}]
    filterable = ["node_id", "state"]
    assert _counts(nodes, "nodes", [("state", "=", "DEAD")], filterable=filterable) == (1, 0, 0)
    assert _counts(nodes, "nodes", [("state", "!=", "DEAD")], filterable=filterable) == (1, 1, 1)


def test_workers_asked_alive_at_the_source_read_as_truncated_as_rays_do():
    workers = [{"worker_id": str(i), "is_alive": i < 2, "state": ""} for i in range(4)]
    filterable = ["is_alive", "worker_id"]
    assert _counts(workers, "workers", filterable=filterable) == (4, 4, 4)
    assert _counts(workers, "workers", [("is_alive", "=", "True")], filterable=filterable) == (
        4,
        2,
        2,
    )
    for other in ("true", True, False):  # typed by the asker, or not Ray's exact text
        assert _counts(workers, "workers", [("is_alive", "=", other)], filterable=filterable)[
            :2
        ] == (4, 4)


def test_placement_groups_and_objects_truncate_at_the_source_and_jobs_never():
    groups = [{"placement_group_id": str(i), "state": "CREATED"} for i in range(5)]
    assert _counts(groups, "placement_groups", source_limit=3) == (5, 3, 3)
    objects = [{"object_id": str(i), "state": ""} for i in range(5)]
    assert _counts(objects, "objects", source_limit=2) == (5, 2, 2)
    jobs = [{"job_id": str(i), "state": ""} for i in range(5)]
    assert _counts(jobs, "jobs", source_limit=2) == (5, 5, 5)


def _object(oid, pid, ip, size, reference="LOCAL_REFERENCE"):
    return {
        "object_id": oid,
        "object_size": size,
        "task_status": "NIL",
        "attempt_number": 1,
        "reference_type": reference,
        "call_site": "disabled",
        "type": "WORKER",
        "pid": pid,
        "ip": ip,
    }


def test_object_summary_parts_merge_to_the_summary_of_all_rows():
    node_a = [_object("o1", 10, "10.0.0.1", 3), _object("o2", 11, "10.0.0.1", -1)]
    node_b = [
        _object("o1", 10, "10.0.0.2", 2**20, "PINNED_IN_MEMORY"),  # the same pid elsewhere
        _object("o3", 12, "10.0.0.2", 5),
    ]
    merged = state_summaries.object_summary(
        [state_summaries.object_summary_part(node_a), state_summaries.object_summary_part(node_b)]
    )
    whole = state_summaries.object_summary([state_summaries.object_summary_part(node_a + node_b)])
    assert merged == whole
    entry = merged["summary"]["disabled"]
    assert (entry["total_objects"], entry["total_num_workers"], entry["total_num_nodes"]) == (
        4,
        3,
        2,
    )
    assert entry["ref_type_counts"] == {"LOCAL_REFERENCE": 3, "PINNED_IN_MEMORY": 1}
    assert entry["task_attempt_number_counts"] == {"1": 4}
    assert merged["total_size_mb"] == (3 + 2**20 + 5) / 2**20
    assert merged["callsite_enabled"] is False and merged["summary_by"] == "callsite"


def test_summaries_of_nothing():
    assert state_summaries.object_summary([]) == {
        "summary": {},
        "total_objects": 0,
        "total_size_mb": 0.0,
        "callsite_enabled": True,
        "summary_by": "callsite",
    }
    assert state_summaries.actor_summary([]) == {
        "summary": {},
        "total_actors": 0,
        "summary_by": "class",
    }
