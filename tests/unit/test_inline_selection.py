"""TaskSubmitter.take_inline: which queued tasks a worker blocked in get may run itself, and the
lease requests it withdraws when it does (a fake core records what would be sent)."""

from __future__ import annotations

from zray._fast import object_id_for
from zray._private.wire import protocol as P
from zray._private.common import resources as R
from zray._private.core.task_events import TaskEvents
from zray._private.core.task_submitter import TaskSpec, TaskSubmitter


class FakeRequests:
    def __init__(self):
        self.sent = []

    def send(self, address, msg, callback, payload=()):
        self.sent.append((address, msg, callback))
        return len(self.sent)


class FakeEndpoint:
    def __init__(self):
        self.sent = []

    def send(self, address, msg, seq=0, flags=0, payload=()):
        self.sent.append((address, msg))


class FakeCore:
    node_address = "node"
    node_id = b"n" * 28
    job_id = b"\x01\x00\x00\x00"
    address = "me"
    runtime_env: dict = {}

    def __init__(self):
        self.requests = FakeRequests()
        self.endpoint = FakeEndpoint()
        self._cancel_handler = None
        self.task_events = TaskEvents(self)


def spec(n: int, strategy: str = "DEFAULT", **resources) -> TaskSpec:
    resources = resources or {"CPU": 1.0}
    task_id = bytes([n]) * 24
    return TaskSpec(
        task_id=task_id,
        function_id=b"f" * 28,
        name=f"t{n}",
        num_returns=1,
        return_ids=[object_id_for(task_id, 1)],
        frames=[b"args"],
        top_refs=[],
        nested=[],
        resources=resources,
        key=R.shape_key(R.to_units(resources)) + (strategy,),
        max_retries=0,
        retry_exceptions=False,
        strategy=strategy,
    )


def queued(submitter: TaskSubmitter, *specs):
    for s in specs:
        submitter.tasks[s.task_id] = s
        submitter._enqueue(s, [], [], None)
    return specs


CPU1 = R.to_units({"CPU": 1})


def test_takes_an_awaited_queued_task_and_withdraws_its_lease_request():
    core = FakeCore()
    submitter = TaskSubmitter(core)
    first, second = queued(submitter, spec(1), spec(2))
    assert [type(m).__name__ for _, m, _ in core.requests.sent] == ["RequestLease"] * 2
    taken = submitter.take_inline(second.return_ids[0], CPU1)
    assert taken is second
    assert (second.state, second.inline, second.lease_id) == ("running", True, 0)
    assert list(submitter.shapes[second.key].tasks) == [first]
    # One request per queued task is enough: the newest one is withdrawn.
    withdrawn = [m for _, m in core.endpoint.sent if isinstance(m, P.CancelLeaseRequest)]
    assert withdrawn == [P.CancelLeaseRequest(2)]
    assert list(submitter.shapes[second.key].pending_requests) == [1]
    assert submitter.take_inline(second.return_ids[0], CPU1) is None  # already running


def test_only_what_fits_the_blocked_lease_and_the_default_strategy():
    core = FakeCore()
    submitter = TaskSubmitter(core)
    gpu, spread, affinity, half = queued(
        submitter,
        spec(1, CPU=1.0, GPU=1.0),
        spec(2, "SPREAD"),
        spec(3, "NODE_AFFINITY:" + "ab" * 28 + ":1"),
        spec(4, CPU=0.5),
    )
    for s in (gpu, spread, affinity):
        assert submitter.take_inline(s.return_ids[0], CPU1) is None
        assert s.state == "queued"
    assert submitter.take_inline(half.return_ids[0], R.to_units({"CPU": 0.25})) is None
    assert submitter.take_inline(half.return_ids[0], CPU1) is half
    assert submitter.take_inline(gpu.return_ids[0], R.to_units({"CPU": 2, "GPU": 1})) is gpu


def test_not_owned_or_not_yet_resolved_tasks_stay_where_they_are():
    core = FakeCore()
    submitter = TaskSubmitter(core)
    assert submitter.take_inline(object_id_for(b"z" * 24, 1), CPU1) is None
    resolving = spec(5)
    submitter.tasks[resolving.task_id] = resolving  # its arguments are not ready yet
    assert submitter.take_inline(resolving.return_ids[0], CPU1) is None


def test_a_retried_inline_task_is_queued_for_a_lease_again():
    core = FakeCore()
    submitter = TaskSubmitter(core)
    (task,) = queued(submitter, spec(6))
    assert submitter.take_inline(task.return_ids[0], CPU1) is task
    submitter._retry(task, RuntimeError("its worker died"))
    assert (task.state, task.inline) == ("queued", False)
    assert list(submitter.shapes[task.key].tasks) == [task]
    assert submitter.take_inline(task.return_ids[0], CPU1) is task
