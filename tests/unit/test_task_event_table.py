"""The head's task event history: merged per attempt, bounded, rows with Ray's fields."""

import msgpack
import pytest

from zray._private.common import task_states as TS
from zray._private.head.task_events import TaskEventTable

NODE, WORKER, OWNER = b"n" * 28, b"w" * 28, b"o" * 28


def task(i: int) -> bytes:
    return bytes([i]) * 20 + b"\x01\x00\x00\x00"


def info(name="f", kind=TS.NORMAL_TASK):
    return [kind, name, name, b"", b"p" * 24, {"CPU": 1.0}, "", ""]


def owner_batch(table, events):
    table.add(NODE, OWNER, 10, events, 0)


def worker_batch(table, events):
    table.add(NODE, WORKER, 42, events, 0)


def test_owner_and_worker_events_merge_into_one_row_in_any_order():
    table = TaskEventTable(10)
    # The worker's batch arrives first: its row has no description until the owner's does.
    worker_batch(table, [[task(1), 0, TS.RUNNING, 3_000_000, 4_000_000]])
    [row] = table.rows({NODE: "10.0.0.1"})
    assert (row["state"], row["name"], row["worker_pid"]) == ("RUNNING", "", 42)
    owner_batch(
        table,
        [
            [task(1), 0, TS.PENDING_ARGS_AVAIL, 1_000_000, info()],
            [task(1), 0, TS.PENDING_NODE_ASSIGNMENT, 1_500_000, None],
            [task(1), 0, TS.SUBMITTED_TO_WORKER, 2_000_000, [NODE, WORKER]],
            [task(1), 0, TS.FINISHED, 5_000_000, None],
        ],
    )
    [row] = table.rows({NODE: "10.0.0.1"})
    assert row["task_id"] == task(1).hex() and row["job_id"] == "01000000"
    assert (row["state"], row["name"], row["type"], row["attempt_number"]) == (
        "FINISHED",
        "f",
        "NORMAL_TASK",
        0,
    )
    assert (row["node_id"], row["worker_id"], row["worker_pid"]) == (NODE.hex(), WORKER.hex(), 42)
    assert [e["state"] for e in row["events"]] == [
        "PENDING_ARGS_AVAIL",
        "PENDING_NODE_ASSIGNMENT",
        "SUBMITTED_TO_WORKER",
        "RUNNING",
        "FINISHED",
    ]
    assert (row["creation_time_ms"], row["start_time_ms"], row["end_time_ms"]) == (1, 3, 5)
    [span] = row["profiling_data"]["events"]
    assert (span["event_name"], span["start_time"], span["end_time"]) == ("task::f", 3.0, 4.0)
    assert row["profiling_data"]["node_ip_address"] == "10.0.0.1"
    assert row["error_type"] is None and row["required_resources"] == {"CPU": 1.0}


def test_failed_beats_running_and_carries_the_error():
    table = TaskEventTable(10)
    owner_batch(
        table,
        [
            [task(1), 0, TS.PENDING_ARGS_AVAIL, 1, info()],
            [task(1), 0, TS.FAILED, 9, ["TASK_EXECUTION_EXCEPTION", "ValueError: boom"]],
        ],
    )
    worker_batch(table, [[task(1), 0, TS.RUNNING, 5, 0]])  # arrives after the failure
    [row] = table.rows({})
    assert (row["state"], row["error_type"], row["error_message"]) == (
        "FAILED",
        "TASK_EXECUTION_EXCEPTION",
        "ValueError: boom",
    )


def test_each_attempt_is_a_row_and_later_attempts_borrow_the_description():
    table = TaskEventTable(10)
    owner_batch(
        table,
        [
            [task(1), 0, TS.PENDING_ARGS_AVAIL, 1, info("g")],
            [task(1), 0, TS.FAILED, 2, ["WORKER_DIED", "died"]],
            [task(1), 1, TS.PENDING_NODE_ASSIGNMENT, 3, None],
        ],
    )
    rows = {r["attempt_number"]: r for r in table.rows({})}
    assert (rows[0]["state"], rows[0]["error_type"]) == ("FAILED", "WORKER_DIED")
    assert (rows[1]["state"], rows[1]["name"]) == ("PENDING_NODE_ASSIGNMENT", "g")


def test_history_is_bounded_oldest_evicted_and_counted():
    table = TaskEventTable(3)
    for i in range(5):
        owner_batch(table, [[task(i), 0, TS.PENDING_ARGS_AVAIL, i + 1, info(f"t{i}")]])
    table.add(NODE, WORKER, 42, [], 7)  # a process dropped 7 events before sending
    assert [r["name"] for r in table.rows({})] == ["t2", "t3", "t4"]
    stats = table.stats()
    assert stats["num_task_attempts_evicted"] == 2
    assert stats["num_status_task_events_dropped"] == 2 + 7
    assert stats["num_task_attempts_stored"] == 3
    # An evicted attempt's late events do not bring it back (evicting another in its place).
    worker_batch(table, [[task(0), 0, TS.RUNNING, 9, 10]])
    assert [r["name"] for r in table.rows({})] == ["t2", "t3", "t4"]
    assert table.stats()["num_task_attempts_evicted"] == 2


def test_malformed_events_are_skipped():
    table = TaskEventTable(10)
    owner_batch(
        table,
        [
            "nonsense",
            [task(1)],
            [task(1), 0, TS.FAILED, 1, ["only one"]],
            [task(2), 0, 99, 1, None],  # no such state
            [task(3), 0, TS.FINISHED, 1, None],
        ],
    )
    states = {r["task_id"]: r["state"] for r in table.rows({})}
    assert states == {task(1).hex(): "NIL", task(3).hex(): "FINISHED"}


def test_a_submission_with_its_arguments_ready_is_both_pending_states():
    table = TaskEventTable(10)
    owner_batch(table, [[task(1), 0, TS.PENDING_NODE_ASSIGNMENT, 7_000_000, info("h")]])
    [row] = table.rows({})
    assert (row["name"], row["state"], row["creation_time_ms"]) == (
        "h",
        "PENDING_NODE_ASSIGNMENT",
        7,
    )
    assert [e["state"] for e in row["events"]] == ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT"]


def test_unfinished_tasks_of_an_ended_job_fail():
    table = TaskEventTable(10)
    other_job = b"\x07" * 20 + b"\x02\x00\x00\x00"
    owner_batch(
        table,
        [
            [task(1), 0, TS.PENDING_ARGS_AVAIL, 1, info("done")],
            [task(1), 0, TS.FINISHED, 2, None],
            [task(2), 0, TS.PENDING_ARGS_AVAIL, 1, info("stuck")],
            [other_job, 0, TS.PENDING_ARGS_AVAIL, 1, info("elsewhere")],
        ],
    )
    assert table.fail_unfinished(b"\x01\x00\x00\x00", 5_000_000, "WORKER_DIED", "job ended") == 1
    states = {r["name"]: (r["state"], r["error_type"]) for r in table.rows({})}
    assert states == {
        "done": ("FINISHED", None),
        "stuck": ("FAILED", "WORKER_DIED"),
        "elsewhere": ("PENDING_ARGS_AVAIL", None),
    }


def test_an_actor_call_sent_at_once_is_described_by_its_submitted_event():
    table = TaskEventTable(10)
    owner_batch(
        table, [[task(1), 0, TS.SUBMITTED_TO_WORKER, 4_000_000, info("A.m", TS.ACTOR_TASK)]]
    )
    [row] = table.rows({})
    assert (row["name"], row["type"], row["state"], row["creation_time_ms"]) == (
        "A.m",
        "ACTOR_TASK",
        "SUBMITTED_TO_WORKER",
        4,
    )
    assert row["worker_id"] is None  # the worker names itself when it reports the run


def test_an_actor_calls_end_carries_its_unreported_sending():
    table = TaskEventTable(10)
    described = info("A.m", TS.ACTOR_TASK)
    owner_batch(
        table,
        [
            [task(1), 0, TS.FINISHED, 6_000_000, [4_000_000, described]],
            [task(2), 0, TS.FAILED, 7_000_000, ["ACTOR_DIED", "gone", 5_000_000, described]],
            # Sent after waiting for its arguments: described by its PENDING_ARGS_AVAIL.
            [task(3), 0, TS.PENDING_ARGS_AVAIL, 1_000_000, described],
            [task(3), 0, TS.FINISHED, 3_000_000, [2_000_000, None]],
        ],
    )
    rows = {r["task_id"]: r for r in table.rows({})}
    one, two, three = (rows[task(i).hex()] for i in (1, 2, 3))
    assert [e["state"] for e in one["events"]] == [
        "PENDING_ARGS_AVAIL",
        "SUBMITTED_TO_WORKER",
        "FINISHED",
    ]
    assert (one["name"], one["type"], one["creation_time_ms"], one["end_time_ms"]) == (
        "A.m",
        "ACTOR_TASK",
        4,
        6,
    )
    assert (two["state"], two["error_type"], two["error_message"], two["creation_time_ms"]) == (
        "FAILED",
        "ACTOR_DIED",
        "gone",
        5,
    )
    assert [(e["state"], e["created_ms"]) for e in three["events"]] == [
        ("PENDING_ARGS_AVAIL", 1),
        ("SUBMITTED_TO_WORKER", 2),
        ("FINISHED", 3),
    ]


def packed(events) -> bytes:
    return msgpack.packb(events, use_bin_type=True)


def decode(data: bytes) -> tuple:
    return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)


def test_packed_batches_are_merged_only_when_asked():
    decoded = []
    table = TaskEventTable(10, decode=lambda data: decoded.append(data) or decode(data))
    table.add_packed(NODE, OWNER, 10, packed([[task(1), 0, TS.PENDING_ARGS_AVAIL, 1, info()]]), 0)
    table.add_packed(NODE, WORKER, 42, packed([[task(1), 0, TS.RUNNING, 2, 3]]), 2)
    assert decoded == [] and table.pending_events == 2
    [row] = table.rows({NODE: "10.0.0.1"})
    assert (row["name"], row["state"], row["worker_pid"]) == ("f", "RUNNING", 42)
    assert len(decoded) == 2 and table.pending_events == 0
    assert table.stats()["num_status_task_events_dropped"] == 2


def test_a_batch_kept_as_its_received_frame_is_merged_alike():
    """A batch travels as its own frame and is kept as received (a buffer, not copied)."""
    table = TaskEventTable(10, decode=decode)
    batch = packed([[task(1), 0, TS.PENDING_ARGS_AVAIL, 1, info()]] * 20)  # array16 header
    table.add_packed(NODE, OWNER, 10, memoryview(batch), 0)
    assert table.pending_events == 20
    [row] = table.rows({NODE: "10.0.0.1"})
    assert (row["name"], row["state"]) == ("f", "PENDING_ARGS_AVAIL")


def test_past_the_bound_the_oldest_batches_are_dropped_unmerged_and_counted():
    table = TaskEventTable(2, decode=decode)  # waits for 2 * PENDING_EVENTS_PER_ATTEMPT events
    limit = table.pending_limit
    old = [[task(i), 0, TS.PENDING_ARGS_AVAIL, i + 1, info(f"old{i}")] for i in range(3)]
    table.add_packed(NODE, OWNER, 10, packed(old), 0)
    new = [[task(9), 0, TS.PENDING_ARGS_AVAIL, 1, info("new")]] * limit
    table.add_packed(NODE, OWNER, 10, packed(new), 0)
    assert table.pending_events == limit  # the first batch went, unread
    assert [r["name"] for r in table.rows({})] == ["new"]
    stats = table.stats()
    assert stats["num_task_attempts_evicted"] == 3 and stats["num_task_attempts_stored"] == 1


def test_a_batch_that_is_not_an_array_is_refused_and_a_corrupt_one_skipped():
    table = TaskEventTable(10, decode=decode)
    with pytest.raises(ValueError, match="packed msgpack array"):
        table.add_packed(NODE, OWNER, 10, b"\x01", 0)
    table.add_packed(NODE, OWNER, 10, b"\x91\xc1", 0)  # an array of one unreadable byte
    table.add_packed(NODE, OWNER, 10, packed([[task(1), 0, TS.FINISHED, 1, None]]), 0)
    assert [r["state"] for r in table.rows({})] == ["FINISHED"]
    assert table.batches_unreadable == 1
