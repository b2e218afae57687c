"""Short tasks queue on a leased worker behind the running one (core/task_pipelining.py); the
worker hands its queue back when the running task blocks in get/wait (worker/hand_back.py).
One CPU, so every task of a shape goes to the same worker unless handed back."""

from __future__ import annotations

import os
import time

import pytest

from zray import exceptions as X


def _submitter():
    import zray._private.core.runtime as runtime

    return runtime.core.submitter


@pytest.fixture
def one_cpu(fresh):
    fresh.init(num_cpus=1)
    # Every task here is short; on a loaded machine its measured run (a round trip included)
    # could pass the 10 ms bound and make the test vacuous.
    _submitter().pipelining.max_task_s = 10.0
    return fresh


def _mailbox(ray):
    @ray.remote(num_cpus=0)
    class Mailbox:
        def __init__(self):
            import threading

            self.event = threading.Event()

        def put(self):
            self.event.set()

        def wait(self):
            return self.event.wait(30)

    return Mailbox.options(max_concurrency=2).remote()


def _step(ray):
    @ray.remote
    def step(box, role):
        if role == "wait":  # blocks until a task queued behind this one has run
            return ray.get(box.wait.remote(), timeout=60)
        if role == "put":
            ray.get(box.put.remote(), timeout=60)
        return role

    return step


def _warm_up(ray, step):
    """Short runs of `step`, one at a time: one lease, and no request for another pending
    (which the node would grant once the running task blocks, leaving nothing to hand back)."""
    for _ in range(10):
        assert ray.get(step.remote(None, "warm"), timeout=60) == "warm"


def test_short_tasks_queue_behind_the_running_one(one_cpu):
    ray = one_cpu

    @ray.remote
    def square(x):
        return x * x

    assert ray.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
    refs = [square.remote(i) for i in range(200)]
    deepest = max(len(lease.inflight) for lease in _submitter().leases.values())
    assert ray.get(refs, timeout=60) == [i * i for i in range(200)]
    assert deepest > 1


def test_a_task_queued_behind_a_blocked_one_is_handed_back(one_cpu):
    ray = one_cpu
    box, step = _mailbox(ray), _step(ray)
    _warm_up(ray, step)
    waiting = step.remote(box, "wait")
    putting = step.remote(box, "put")  # queued behind `waiting` on the one worker
    assert ray.get([waiting, putting], timeout=60) == [True, "put"]
    assert _submitter().handed_back >= 1


def test_a_task_pushed_while_the_running_one_is_blocked_is_handed_back(one_cpu):
    ray = one_cpu
    box, step = _mailbox(ray), _step(ray)
    _warm_up(ray, step)
    waiting = step.remote(box, "wait")
    time.sleep(0.5)  # `waiting` is blocked in its get before the next push arrives
    putting = step.remote(box, "put")
    assert ray.get([waiting, putting], timeout=60) == [True, "put"]
    assert _submitter().handed_back >= 1


def test_tasks_queued_behind_one_that_kills_its_worker_are_not_charged_a_retry(one_cpu):
    ray = one_cpu

    @ray.remote(max_retries=0)
    def maybe_die(die):
        if die:
            os._exit(1)
        return os.getpid()

    ray.get([maybe_die.remote(False) for _ in range(10)])
    dying = maybe_die.remote(True)
    queued = [maybe_die.remote(False) for _ in range(5)]
    with pytest.raises(X.WorkerCrashedError):
        ray.get(dying, timeout=60)
    assert len(ray.get(queued, timeout=60)) == 5


def test_force_cancelling_a_queued_task_spares_the_running_one(one_cpu):
    ray = one_cpu

    @ray.remote(max_retries=0)
    def work(seconds):
        time.sleep(seconds)
        return seconds

    ray.get([work.remote(0) for _ in range(10)])
    running = work.remote(1.0)
    queued = work.remote(0)
    time.sleep(0.2)
    ray.cancel(queued, force=True)
    with pytest.raises(X.TaskCancelledError):
        ray.get(queued, timeout=60)
    assert ray.get(running, timeout=60) == 1.0
