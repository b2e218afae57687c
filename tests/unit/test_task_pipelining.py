"""task_pipelining.Pipelining: which tasks may queue on a worker behind those in flight."""

from __future__ import annotations

from dataclasses import dataclass

from zray._private.core.task_pipelining import MAX_FUNCTIONS, Pipelining
from zray._private.wire.protocol import STREAMING


@dataclass
class Spec:
    function_id: bytes
    num_returns: int = 1


def test_only_functions_seen_to_be_short_queue_behind_short_ones():
    policy = Pipelining(depth=4, max_task_s=0.002)
    short, long_, unseen = Spec(b"short"), Spec(b"long"), Spec(b"unseen")
    policy.finished(b"short", 0.0005)
    policy.finished(b"long", 0.5)
    assert policy.may_queue(short, [short])
    assert not policy.may_queue(unseen, [short])  # never seen: might be long
    assert not policy.may_queue(long_, [short])
    assert not policy.may_queue(short, [long_])  # would wait behind a long one
    assert not policy.may_queue(short, [short, unseen])


def test_depth_bounds_the_tasks_in_flight():
    policy = Pipelining(depth=3)
    spec = Spec(b"f")
    policy.finished(b"f", 0.0001)
    assert policy.may_queue(spec, [spec, spec])
    assert not policy.may_queue(spec, [spec, spec, spec])
    assert not Pipelining(depth=1).may_queue(spec, [spec])


def test_a_full_worker_is_refused_without_looking_at_its_tasks():
    """The owner asks for every queued task and every lease while its workers are full (a
    thousand-task batch): that answer must not cost a walk over the tasks in flight."""
    policy = Pipelining(depth=3)
    spec = Spec(b"f")
    policy.finished(b"f", 0.0001)

    class Inflight(list):
        walked = 0

        def __iter__(self):
            Inflight.walked += 1
            return super().__iter__()

    assert not policy.may_queue(spec, Inflight([spec, spec, spec]))
    assert Inflight.walked == 0
    assert policy.may_queue(spec, Inflight([spec, spec]))


def test_streams_never_queue_and_nothing_queues_behind_them():
    policy = Pipelining(depth=4)
    policy.finished(b"f", 0.0001)
    stream, spec = Spec(b"f", STREAMING), Spec(b"f")
    assert not policy.may_queue(stream, [spec])
    assert not policy.may_queue(spec, [stream])


def test_a_function_that_blocked_never_queues_again():
    policy = Pipelining(depth=4)
    spec = Spec(b"f")
    policy.finished(b"f", 0.0001)
    policy.blocked(b"f")
    policy.finished(b"f", 0.0001)  # a later short run does not clear it
    assert not policy.may_queue(spec, [Spec(b"g")])
    assert not policy.short(b"f")


def test_a_function_that_got_slow_stops_queuing():
    policy = Pipelining(depth=4, max_task_s=0.002)
    spec = Spec(b"f")
    policy.finished(b"f", 0.0001)
    assert policy.may_queue(spec, [spec])
    policy.finished(b"f", 0.01)
    assert not policy.may_queue(spec, [spec])


def test_the_table_of_durations_is_bounded():
    policy = Pipelining(depth=4)
    for index in range(MAX_FUNCTIONS + 5):
        policy.finished(index.to_bytes(8, "little"), 0.0001)
    assert len(policy._seconds) <= MAX_FUNCTIONS
