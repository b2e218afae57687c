"""Task events on a live cluster: list_tasks, get_task, summarize_tasks and timeline()."""

import contextlib
import json
import os
import time
import warnings

import pytest

from zray._private.common import task_states as TS
from zray._private.wire import protocol as P
from zray.util import state
from zray.util.state import common
from zray.util.state.exception import RayStateApiException
from tests.head_cluster import wait_for


def tasks_named(name, detail=False):
    return state.list_tasks(filters=[("name", "=", name)], detail=detail, limit=10000)


@contextlib.contextmanager
def batch_held():
    """The driver's task events, with its next batch held back meanwhile (read them here)."""
    from zray._private.core import runtime

    events = runtime.core.task_events
    saved = events.interval_s
    events.interval_s, events._next_flush = 600.0, time.monotonic() + 600.0
    try:
        yield events
    finally:
        events.interval_s, events._next_flush = saved, time.monotonic()


def batch_of(events) -> list:
    """The batch `events` (a held TaskEvents) would send next, decoded; it is sent still."""
    import msgpack

    from zray._private.core.task_events import _failure_wire

    packed, dropped = events.events.take(_failure_wire)
    events.core.endpoint.send(
        events.core.head_address,
        P.AddTaskEvents(events.core.node_id, events.core.worker_id, os.getpid(), b"", dropped),
        payload=[packed],
    )
    return msgpack.unpackb(packed, use_list=False)


def test_normal_and_failed_tasks_with_filters_and_detail(ray):
    @ray.remote
    def ev_square(x):
        return x * x, os.getpid()

    @ray.remote
    def ev_boom():
        raise ValueError("boom from a task")

    refs = [ev_square.remote(i) for i in range(3)]
    pids = {pid for _, pid in ray.get(refs)}
    with pytest.raises(ValueError):
        ray.get(ev_boom.remote())

    def all_reported():
        # The owner reports the end, the worker the run (pid): each within a second.
        rows = tasks_named("ev_square")
        ok = len(rows) == 3 and all(t.state == "FINISHED" and t.worker_pid for t in rows)
        return rows if ok else None

    done = wait_for(all_reported)
    context = ray.get_runtime_context()
    for task in done:
        assert type(task) is common.TaskState
        assert (task.type, task.func_or_class_name, task.attempt_number) == (
            "NORMAL_TASK",
            "ev_square",
            0,
        )
        assert task.job_id == context.get_job_id() and task.actor_id is None
        assert task.node_id == context.get_node_id() and task.worker_pid in pids
        assert task.error_type is None and task.start_time_ms is None  # a detail column
    assert sorted(t.task_id for t in done) == sorted(r.task_id().hex() for r in refs)

    [failed] = wait_for(
        lambda: [t for t in tasks_named("ev_boom") if t.state == "FAILED" and t.worker_pid]
    )
    assert failed.error_type == "TASK_EXECUTION_EXCEPTION"
    detailed = state.get_task(failed.task_id)
    assert "ValueError: boom from a task" in detailed.error_message
    assert "\x1b[" not in detailed.error_message
    assert [e["state"] for e in detailed.events] == [
        "PENDING_ARGS_AVAIL",
        "PENDING_NODE_ASSIGNMENT",
        "SUBMITTED_TO_WORKER",
        "RUNNING",
        "FAILED",
    ]
    assert detailed.creation_time_ms <= detailed.start_time_ms <= detailed.end_time_ms
    assert detailed.required_resources == {"CPU": 1.0} and detailed.language == "PYTHON"

    # Filters: = and != on any filterable column, case-insensitive values; limit; by ref.
    failed_ids = {t.task_id for t in state.list_tasks(filters=[("state", "=", "failed")])}
    assert failed.task_id in failed_ids and not failed_ids & {t.task_id for t in done}
    not_square = state.list_tasks(filters=[("func_or_class_name", "!=", "ev_square")])
    assert all(t.func_or_class_name != "ev_square" for t in not_square)
    assert len(state.list_tasks(limit=2)) == 2
    assert state.get_task(refs[0]).task_id == refs[0].task_id().hex()
    assert state.get_task("ab" * 24) is None
    with pytest.raises(RayStateApiException, match="not supported"):
        state.list_tasks(filters=[("events", "=", "x")])


def test_actor_creation_actor_tasks_and_summary(ray):
    @ray.remote
    class EvCounter:
        def __init__(self):
            self.n = 0

        def add(self):
            self.n += 1
            return self.n

        def fail(self):
            raise KeyError("no such key")

    counter = EvCounter.remote()
    assert ray.get([counter.add.remote() for _ in range(3)]) == [1, 2, 3]
    with pytest.raises(KeyError):
        ray.get(counter.fail.remote())
    actor_id = counter._actor_id.hex()

    def of_actor():
        rows = state.list_tasks(filters=[("actor_id", "=", actor_id)], limit=10000)
        ended = all(r.state in ("FINISHED", "FAILED") and r.worker_pid for r in rows)
        return rows if len(rows) == 5 and ended else None

    rows = wait_for(of_actor)
    by_name = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    [creation] = by_name["EvCounter.__init__"]
    assert (creation.type, creation.state, creation.task_id) == (
        "ACTOR_CREATION_TASK",
        "FINISHED",
        "ff" * 8 + actor_id,
    )
    assert [r.type for r in by_name["EvCounter.add"]] == ["ACTOR_TASK"] * 3
    assert {r.worker_pid for r in rows} == {creation.worker_pid}
    [fail] = by_name["EvCounter.fail"]
    assert (fail.state, fail.error_type) == ("FAILED", "TASK_EXECUTION_EXCEPTION")

    summary = state.summarize_tasks()["cluster"]
    assert summary["summary_by"] == "func_name"
    assert summary["summary"]["EvCounter.add"] == {
        "func_or_class_name": "EvCounter.add",
        "type": "ACTOR_TASK",
        "state_counts": {"FINISHED": 3},
    }
    assert summary["total_actor_scheduled"] >= 1 and summary["total_actor_tasks"] >= 4
    ray.kill(counter)


def test_dead_worker_retries_and_opting_out(ray):
    @ray.remote(max_retries=1)
    def ev_dies():
        os._exit(1)

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(ev_dies.remote(), timeout=60)

    seen = []

    def both_attempts():
        rows = tasks_named("ev_dies", detail=True)
        seen[:] = [(r.attempt_number, r.state, r.error_type) for r in rows]
        return rows if [r.state for r in rows] == ["FAILED", "FAILED"] else None

    try:
        attempts = wait_for(both_attempts)
    except AssertionError:
        raise AssertionError(f"the attempts seen: {seen}") from None
    assert [r.attempt_number for r in attempts] == [0, 1]
    assert {r.error_type for r in attempts} == {"WORKER_DIED"}
    assert isinstance(state.get_task(attempts[0].task_id), list)  # one entry per attempt

    @ray.remote
    def ev_silent():
        return 1

    @ray.remote(enable_task_events=False)
    class EvQuiet:
        def hush(self):
            return 2

    @ray.remote
    def ev_marker():
        return 3

    quiet = EvQuiet.remote()
    assert ray.get([ev_silent.options(enable_task_events=False).remote(), quiet.hush.remote()])
    ray.get(ev_marker.remote())  # submitted last: once it shows, the others would have
    wait_for(lambda: [t for t in tasks_named("ev_marker") if t.state == "FINISHED"])
    time.sleep(1.2)  # the quiet actor's worker would have sent its events by now
    assert tasks_named("ev_silent") == [] and tasks_named("EvQuiet.hush") == []
    assert state.list_tasks(filters=[("actor_id", "=", quiet._actor_id.hex())]) == []


def test_timeline_has_every_finished_task_once(ray, tmp_path):
    @ray.remote
    def ev_traced(x):
        return x

    refs = [ev_traced.remote(i) for i in range(6)]
    ray.get(refs)
    trace = ray.timeline()
    spans = [e for e in trace if e["ph"] == "X" and e["cat"] == "task::ev_traced"]
    assert sorted(e["args"]["task_id"] for e in spans) == sorted(r.task_id().hex() for r in refs)
    for span in spans:
        assert set(span) == {"cat", "name", "pid", "tid", "ts", "dur", "cname", "args", "ph"}
        assert span["name"] == "ev_traced" and span["dur"] >= 0 and span["ts"] > 1e15
        assert isinstance(span["pid"], int) and isinstance(span["tid"], int)
        assert span["args"]["attempt_number"] == 0
    meta = [e for e in trace if e["ph"] == "M"]
    assert {e["name"] for e in meta} == {"process_name", "thread_name"}
    assert any(e["args"]["name"] == "Node 127.0.0.1" for e in meta)
    path = tmp_path / "trace.json"
    assert ray.timeline(filename=str(path)) is None
    written = json.loads(path.read_text())
    assert {e["args"]["task_id"] for e in written if e.get("cat") == "task::ev_traced"} == {
        e["args"]["task_id"] for e in spans
    }


def test_an_exiting_actor_sends_its_events_first(ray):
    """The constructor's end is reported by the actor's worker alone: exiting at once must not
    lose it."""

    @ray.remote
    class EvLeaver:
        def leave(self):
            ray.actor.exit_actor()

    leaver = EvLeaver.remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(leaver.leave.remote(), timeout=60)
    creation_id = "ff" * 8 + leaver._actor_id.hex()

    def constructed():
        creation = state.get_task(creation_id)
        return creation if creation is not None and creation.state == "FINISHED" else None

    assert wait_for(constructed).start_time_ms is not None


def test_an_actor_call_costs_its_owner_one_event(ray):

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

    echo = Echo.remote()
    assert ray.get(echo.echo.remote(-1), timeout=60) == -1
    with batch_held() as events:
        refs = [echo.echo.remote(i) for i in range(20)]
        assert ray.get(refs, timeout=60) == list(range(20))
        ids = {ref.task_id().binary() for ref in refs}
        # Its end says when it was sent, with its description (PENDING_ARGS_AVAIL).
        ends = [e for e in batch_of(events) if e[0] in ids]
        assert [e[2] for e in ends] == [TS.FINISHED] * 20
        # One description for all: a batch sends it in full once, then by its number
        described = [e[4][1] for e in ends if e[4] and e[4][1] is not None]
        assert len({d for d in described if type(d) is int}) <= 1
        assert len([d for d in described if type(d) is not int]) <= 1

    def listed():
        rows = tasks_named("Echo.echo")
        ended = all(r.state == "FINISHED" and r.worker_pid for r in rows)  # both processes'
        return rows if len(rows) == 21 and ended else None

    rows = wait_for(listed)
    [row] = [r for r in rows if r.task_id == refs[0].task_id().hex()]
    detail = state.get_task(row.task_id)
    assert [e["state"] for e in detail.events] == [
        "PENDING_ARGS_AVAIL",
        "SUBMITTED_TO_WORKER",
        "RUNNING",
        "FINISHED",
    ]
    ray.kill(echo)


def test_an_actor_call_in_flight_is_listed_with_its_description(ray, tmp_path):
    @ray.remote
    class Blocker:
        def hold(self, path):
            deadline = time.monotonic() + 60
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.05)
            return 1

    blocker = Blocker.remote()
    go = str(tmp_path / "go")
    ref = blocker.hold.remote(go)

    def running():  # the owner's report of its sending and the worker's of its run
        rows = tasks_named("Blocker.hold", detail=True)
        states = [e["state"] for e in rows[0].events] if rows else []
        return rows if states[1:] == ["SUBMITTED_TO_WORKER", "RUNNING"] else None

    [row] = wait_for(running)
    assert row.type == "ACTOR_TASK" and row.actor_id == blocker._actor_id.hex()
    assert (row.state, row.events[0]["state"]) == ("RUNNING", "PENDING_ARGS_AVAIL")
    open(go, "w").close()
    assert ray.get(ref, timeout=60) == 1
    ray.kill(blocker)


def test_a_task_costs_its_owner_one_event(ray):

    @ray.remote
    def double(x):
        return 2 * x

    assert ray.get(double.remote(-1), timeout=60) == -2
    with batch_held() as events:
        refs = [double.remote(i) for i in range(20)]
        assert ray.get(refs, timeout=60) == [2 * i for i in range(20)]
        ids = {ref.task_id().binary() for ref in refs}
        # Its end says when it was submitted and pushed, where, and its description.
        ends = [e for e in batch_of(events) if e[0] in ids]
        assert [e[2] for e in ends] == [TS.FINISHED] * 20
        described = [e[4][1] for e in ends]  # one description, sent once a batch
        assert len({d for d in described if type(d) is int}) == 1
        assert len([d for d in described if type(d) is not int]) <= 1

    def listed():
        rows = tasks_named("double")
        ended = all(r.state == "FINISHED" and r.worker_pid for r in rows)
        return rows if len(rows) == 21 and ended else None

    rows = wait_for(listed)
    [row] = [r for r in rows if r.task_id == refs[0].task_id().hex()]
    detail = state.get_task(row.task_id)
    assert [e["state"] for e in detail.events] == [
        "PENDING_ARGS_AVAIL",
        "PENDING_NODE_ASSIGNMENT",
        "SUBMITTED_TO_WORKER",
        "RUNNING",
        "FINISHED",
    ]
    assert detail.node_id and detail.worker_id and detail.func_or_class_name == "double"


def test_tasks_on_their_way_are_listed_with_their_description(ray, tmp_path):
    """A running task and one queued behind it (one CPU each, more tasks than CPUs): the
    owner's next batch reports their sending, which their ends have not said yet."""

    @ray.remote(num_cpus=1)
    def hold(path):
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        return 1

    go = str(tmp_path / "go")
    cpus = int(ray.cluster_resources().get("CPU", 1))
    refs = [hold.remote(go) for _ in range(cpus + 1)]

    def listed():
        rows = tasks_named("hold", detail=True)
        states = sorted(r.state for r in rows)
        return rows if states.count("RUNNING") == cpus and len(rows) == cpus + 1 else None

    rows = wait_for(listed)
    [queued] = [r for r in rows if r.state != "RUNNING"]
    assert queued.state == "PENDING_NODE_ASSIGNMENT" and queued.func_or_class_name == "hold"
    for row in rows:
        assert row.required_resources == {"CPU": 1.0}
        assert row.events[0]["state"] == "PENDING_ARGS_AVAIL"
    open(go, "w").close()
    assert ray.get(refs, timeout=60) == [1] * (cpus + 1)


def test_the_head_filters_and_limits_so_only_the_rows_asked_for_travel(ray):
    from zray.util.state.api import StateApiClient
    from zray.util.state.common import ListApiOptions, StateResource

    @ray.remote
    def ev_many(i):
        return i

    refs = [ev_many.remote(i) for i in range(30)]
    assert ray.get(refs, timeout=60) == list(range(30))
    wait_for(lambda: len([t for t in tasks_named("ev_many") if t.state == "FINISHED"]) == 30)

    name = [("name", "=", "EV_MANY")]  # Ray: string filters ignore case
    response = StateApiClient()._listed(
        StateResource.TASKS, ListApiOptions(limit=5, filters=name + [("state", "!=", "FAILED")])
    )
    assert len(response.rows) == 5 and response.num_filtered == 30
    assert [r["task_id"] for r in response.rows] == sorted(r.task_id().hex() for r in refs)[:5]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = state.list_tasks(filters=name, limit=5, _explain=True)
    assert len(rows) == 5
    assert any("Limit last 5 entries (Total 30)" in str(w.message) for w in caught)
    with pytest.raises(RayStateApiException, match="filter column call_site is not supported"):
        state.list_tasks(filters=name + [("call_site", "=", "x")])
    with pytest.raises(RayStateApiException, match="Invalid filter `--filter attempt_number x`"):
        state.list_tasks(filters=[("attempt_number", "=", "x")])
