"""The common actor call's short path (zray/_private/core/plain_calls.py): plain calls to a live
actor are sent and answered by it, and behave as the general path's calls do: in order with
calls that are not plain, seen by the state API, failed or cancelled alike."""

import time

import pytest

from zray.util import state
from tests.head_cluster import wait_for


@pytest.fixture
def counted(monkeypatch):
    """Counts the calls sent and the answers stored by the short path."""
    import zray.actor
    from zray._private.core import channel_reading, plain_calls

    counts = {"sent": 0, "answered": 0}

    def submit(*args):
        ref = plain_calls.submit_plain(*args)
        counts["sent"] += ref is not None
        return ref

    def answer(*args):
        taken = plain_calls.answer_plain(*args)
        counts["answered"] += taken
        return taken

    monkeypatch.setattr(zray.actor, "submit_plain", submit)
    monkeypatch.setattr(channel_reading, "answer_plain", answer)
    return counts


def test_plain_calls_take_the_short_path(ray, counted):
    @ray.remote
    class Plain:
        def value(self):
            return b"ok"

        def add(self, a, b=0):
            return a | b if isinstance(a, frozenset) else a + b

    actor = Plain.remote()
    assert ray.get(actor.value.remote(), timeout=60) == b"ok"  # alive, connection open
    counted.update(sent=0, answered=0)
    assert ray.get([actor.value.remote() for _ in range(300)], timeout=60) == [b"ok"] * 300
    assert ray.get([actor.add.remote(i, b=1) for i in range(100)], timeout=60) == list(
        range(1, 101)
    )
    assert counted == {"sent": 400, "answered": 400}
    # Not plain: options, a ref or a value that is no builtin scalar; the general path's.
    assert ray.get(actor.add.options(name="x").remote(1), timeout=60) == 1
    assert ray.get(actor.add.remote(ray.put(2)), timeout=60) == 2
    assert ray.get(actor.add.remote(frozenset({1}), b=frozenset({2})), timeout=60) == {1, 2}
    # Their answers are plain but for the one with a ref argument (the answer path looks at
    # the call it ends, however it was sent).
    assert counted == {"sent": 400, "answered": 402}


def test_plain_and_general_calls_keep_their_order(ray, counted):
    @ray.remote
    def slow(x):
        time.sleep(0.5)
        return x

    @ray.remote
    class Log:
        def __init__(self):
            self.seen = []

        def note(self, x):
            self.seen.append(x)

        def seen_so_far(self):
            return self.seen

    log = Log.remote()
    ray.get(log.note.remote(-1), timeout=60)
    refs = []
    for i in range(60):
        if i % 20 == 5:
            refs.append(log.note.remote(slow.remote(i)))  # waits: the calls after it too
        elif i % 20 == 11:
            refs.append(log.note.options(num_returns=1).remote(i))
        else:
            refs.append(log.note.remote(i))
    ray.get(refs, timeout=60)
    assert ray.get(log.seen_so_far.remote(), timeout=60) == [-1] + list(range(60))
    assert counted["sent"] > 0


def test_plain_calls_show_in_list_tasks(ray, counted):
    @ray.remote
    class Shown:
        def shown_call(self):
            return 1

    actor = Shown.remote()
    ray.get(actor.shown_call.remote(), timeout=60)
    ray.get([actor.shown_call.remote() for _ in range(20)], timeout=60)
    assert counted["sent"] >= 20

    def finished():
        rows = state.list_tasks(filters=[("name", "=", "Shown.shown_call")], limit=1000)
        return len(rows) == 21 and all(r.state == "FINISHED" for r in rows)

    wait_for(finished, what="21 finished calls in list_tasks")


def test_plain_calls_fail_and_cancel_as_others_do(ray, counted):
    @ray.remote(max_restarts=0)
    class Fragile:
        def ok(self):
            return 1

        def boom(self):
            raise ValueError("boom")

        def nap(self):
            time.sleep(1)
            return "slept"

        def die(self):
            import os

            os._exit(1)

    actor = Fragile.remote()
    assert ray.get(actor.ok.remote(), timeout=60) == 1
    with pytest.raises(ValueError, match="boom"):
        ray.get(actor.boom.remote(), timeout=60)
    napping = actor.nap.remote()
    queued = actor.ok.remote()  # behind the nap at the worker
    ray.cancel(queued)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(queued, timeout=60)
    assert ray.get(napping, timeout=60) == "slept"
    in_flight = [actor.ok.remote() for _ in range(5)] + [actor.die.remote()]
    after = [actor.ok.remote() for _ in range(5)]
    assert counted["sent"] >= 5
    assert ray.get(in_flight[:5], timeout=60) == [1] * 5
    for ref in [in_flight[-1]] + after:
        with pytest.raises(ray.exceptions.ActorDiedError):
            ray.get(ref, timeout=60)


def test_a_get_of_many_actor_answers_reads_them_in_batches(ray, monkeypatch):
    """A get waiting for many actor calls' answers sleeps a moment before each read of its
    connections, so one read takes many answers; a get of one value, or one while tasks of
    ours are queued or running (their answers free the next pushes), never does."""
    from zray._private.core import channel_reading

    slept = []
    real_sleep = time.sleep

    class Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            slept.append(seconds)
            real_sleep(seconds)

    monkeypatch.setattr(channel_reading, "time", Clock())

    @ray.remote
    class Busy:
        def value(self, seconds=0.0):
            real_sleep(seconds)
            return 1

    @ray.remote
    def task(seconds):
        real_sleep(seconds)
        return 2

    actor = Busy.remote()
    ray.get(actor.value.remote(), timeout=60)
    slept.clear()
    for _ in range(3):  # one at a time: never more than one value to wait for
        assert ray.get(actor.value.remote(0.05), timeout=60) == 1
    assert slept == []
    refs = [actor.value.remote(0.001) for _ in range(200)]
    assert ray.get(refs, timeout=60) == [1] * 200
    assert channel_reading.GATHER_S in slept
    slept.clear()
    refs = [actor.value.remote(0.001) for _ in range(100)] + [task.remote(2.0)]
    assert ray.get(refs, timeout=60) == [1] * 100 + [2]
    assert channel_reading.GATHER_S not in slept
