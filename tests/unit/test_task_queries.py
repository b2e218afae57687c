"""list_tasks answered on the head: Ray's filters, order, limits and counts, rows built only for
what is returned."""

import pytest

from zray._private.common import task_states as TS
from zray._private.head import task_queries
from zray._private.head.task_events import TaskEventTable
from zray._private.head.task_queries import query_tasks

NODE, OWNER = b"n" * 28, b"o" * 28
FILTERABLE = ["actor_id", "func_or_class_name", "job_id", "name", "state", "task_id", "type"]
COLUMNS = ["task_id", "name", "state", "attempt_number"]


def task(i: int) -> bytes:
    # Ids that do not sort in submission order: the answer is sorted by task id.
    return bytes([(i * 7) % 256, i % 256, i // 256]) + bytes(17) + b"\x01\x00\x00\x00"


def table_of(n: int, **kwargs) -> TaskEventTable:
    table = TaskEventTable(1000, **kwargs)
    events = []
    for i in range(n):
        name = "even" if i % 2 == 0 else "odd"
        info = [TS.NORMAL_TASK, name, f"mod.{name}", b"", b"", {"CPU": 1.0}, "", ""]
        events.append([task(i), 0, TS.PENDING_ARGS_AVAIL, i + 1, info])
        if i % 3 == 0:
            events.append([task(i), 0, TS.FINISHED, i + 2, None])
    table.add(NODE, OWNER, 1, events, 0)
    return table


def ask(table, filters=(), limit=100, source_limit=10_000, columns=COLUMNS):
    return query_tasks(table, {}, list(filters), limit, columns, FILTERABLE, source_limit)


def test_the_limit_keeps_the_first_rows_by_task_id_with_the_counts_ray_quotes():
    found = ask(table_of(30), limit=5)
    everything = ask(table_of(30), limit=1000)
    assert [r["task_id"] for r in found.rows] == sorted(r["task_id"] for r in everything.rows)[:5]
    assert (found.total, found.num_after_truncation, found.num_filtered) == (30, 30, 30)
    assert set(found.rows[0]) == set(COLUMNS)  # only the columns asked for


def test_source_filters_ignore_case_and_support_not_equal():
    table = table_of(30)
    odd = ask(table, [("name", "=", "ODD")])
    assert {r["name"] for r in odd.rows} == {"odd"} and odd.num_filtered == 15
    unfinished = ask(table, [("state", "!=", "finished"), ("name", "=", "even")])
    assert {r["state"] for r in unfinished.rows} == {"PENDING_ARGS_AVAIL"}
    assert unfinished.num_filtered == len([i for i in range(0, 30, 2) if i % 3]) == 10
    # What the source filters drop is not counted in the total, as at Ray's GCS.
    assert (unfinished.total, unfinished.num_after_truncation) == (10, 10)
    assert ask(table, [("task_id", "=", task(4).hex().upper())]).rows[0]["task_id"] == task(4).hex()
    assert ask(table, [("job_id", "=", "01000000")]).num_filtered == 30


def test_other_filters_are_applied_on_the_rows_the_source_kept():
    table = table_of(30)
    found = ask(table, [("func_or_class_name", "=", "mod.odd"), ("type", "!=", "ACTOR_TASK")])
    assert found.num_filtered == 15 and len(found.rows) == 15
    with pytest.raises(ValueError, match="The given filter column worker_pid is not supported"):
        ask(table, [("worker_pid", "=", 1)])
    assert ask(TaskEventTable(10), [("worker_pid", "=", 1)]).rows == []  # nothing to filter


def test_past_the_source_limit_the_latest_attempts_are_kept_and_the_rest_counted():
    table = table_of(30)
    found = ask(table, limit=100, source_limit=10)
    assert {r["task_id"] for r in found.rows} == {task(i).hex() for i in range(20, 30)}
    assert (found.total, found.num_after_truncation, found.num_filtered) == (30, 10, 10)


def test_rows_are_built_only_for_what_is_returned(monkeypatch):
    built = []
    real = task_queries.task_row
    monkeypatch.setattr(
        task_queries, "task_row", lambda *args: built.append(args[0]) or real(*args)
    )
    ask(table_of(300), [("name", "=", "odd"), ("state", "=", "FINISHED")], limit=3)
    assert len(built) == 3


def test_packed_batches_are_merged_before_answering():
    import msgpack

    decode = lambda b: msgpack.unpackb(b, raw=False, use_list=False)  # noqa: E731
    table = TaskEventTable(10, decode=decode)
    batch = [[task(1), 0, TS.FINISHED, 5, None]]
    table.add_packed(NODE, OWNER, 1, msgpack.packb(batch, use_bin_type=True), 3)
    found = ask(table)
    assert [r["state"] for r in found.rows] == ["FINISHED"]
    assert (found.total, found.num_after_truncation) == (1 + 3, 1)  # dropped ones counted


def test_the_summarys_columns_are_read_off_each_attempt_as_its_row_has_them():
    table = table_of(20)
    call = [TS.ACTOR_TASK, "", "Actor.f", b"a" * 16, b"", {}, "", ""]
    table.add(NODE, OWNER, 1, [[task(99), 0, TS.PENDING_ARGS_AVAIL, 5, call]], 0)
    columns = ["name", "func_or_class_name", "type", "state", "actor_id", "job_id", "task_id"]
    built = sorted(table.rows({}), key=lambda row: row["task_id"])
    found = ask(table, columns=columns)
    assert found.rows == [{c: row[c] for c in columns} for row in built]
    assert {row["type"] for row in found.rows} == {"NORMAL_TASK", "ACTOR_TASK"}


def test_the_timeline_is_drawn_from_the_same_fields_as_from_whole_rows():
    from zray._private.common.chrome_trace import chrome_tracing_dump

    table = TaskEventTable(1000)
    events = []
    for i in range(6):
        info = [TS.NORMAL_TASK, f"t{i % 2}", f"mod.t{i % 2}", b"", b"", {}, "", ""]
        events.append([task(i), 0, TS.PENDING_ARGS_AVAIL, 1_000 + i, info])
    table.add(NODE, OWNER, 1, events, 0)
    worker = b"w" * 28
    ran = [[task(i), 0, TS.RUNNING, 2_000_000 + i, 0] for i in range(4)]  # by the worker
    ran += [[task(i), 0, TS.FINISHED, 3_000_000 + i, None] for i in range(4)]
    table.add(NODE, worker, 2, ran, 0)
    ips = {NODE: "10.0.0.1"}
    trace = chrome_tracing_dump(task_queries.trace_rows(table, ips))
    assert trace == chrome_tracing_dump(table.rows(ips))
    assert sum(1 for event in trace if event["ph"] == "X") == 4
