"""Nested tasks on clusters of their own: a child that needs what its blocked parent holds can
only run inline (zray/_private/worker/inline_tasks.py), so its context, output and cancellation are
checked here; and a pool too small for blocked parents is reported to the driver."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.worker_output import worker_output
from zray import exceptions as X


@pytest.fixture
def slot_cluster(fresh):
    """One CPU and one "slot": a child that needs the slot its blocked parent holds can only
    run inline (the node never lends custom resources out of a blocked lease)."""
    fresh.init(num_cpus=1, resources={"slot": 1})
    return fresh


def test_child_needing_what_its_parent_holds_runs_with_its_own_context(slot_cluster):
    ray = slot_cluster

    @ray.remote(resources={"slot": 1})
    def child():
        context = ray.get_runtime_context()
        return (
            context.get_task_id(),
            context.get_task_name() if hasattr(context, "get_task_name") else None,
            os.getpid(),
        )

    @ray.remote(resources={"slot": 1})
    def parent():
        context = ray.get_runtime_context()
        before = context.get_task_id()
        ref = child.options(name="the_child").remote()
        child_id, child_name, child_pid = ray.get(ref)
        return (
            before,
            context.get_task_id(),
            child_id,
            ref.task_id().hex(),
            child_name,
            child_pid,
            os.getpid(),
        )

    before, after, child_id, child_ref_task, child_name, child_pid, pid = ray.get(
        parent.remote(), timeout=60
    )
    assert after == before  # the parent's context is back after its get
    assert child_id == child_ref_task != before
    assert child_name in (None, "the_child")
    assert child_pid == pid  # it did run in the blocked parent's process


def test_withdrawn_lease_requests_leave_no_pending_callbacks(slot_cluster):
    """Each inline child withdraws the lease request sent for it; the node answers the
    withdrawal, so the owner's table of requests awaiting an answer does not grow per child."""
    ray = slot_cluster

    @ray.remote(resources={"slot": 1})
    def child(i):
        return i

    @ray.remote(resources={"slot": 1})
    def parent(n):
        from zray._private.core import runtime

        assert sum(ray.get(child.remote(i)) for i in range(n)) == n * (n - 1) // 2
        deadline = time.monotonic() + 10
        while len(runtime.core.requests._pending) > 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(runtime.core.requests._pending)

    assert ray.get(parent.remote(200), timeout=60) <= 5


def test_inline_child_output_carries_its_own_name(slot_cluster, capfd):
    ray = slot_cluster

    @ray.remote(resources={"slot": 1})
    def speaker():
        print("from the child")
        return os.getpid()

    @ray.remote(resources={"slot": 1})
    def parent():
        pid = ray.get(speaker.remote())
        print("from the parent")
        return pid

    with worker_output() as output:
        pid = ray.get(parent.remote(), timeout=60)
        output.wait_for("from the child", "from the parent")
    out = capfd.readouterr().out
    assert f"(speaker pid={pid}) from the child" in out
    assert f"(parent pid={pid}) from the parent" in out


def test_cancelling_the_parent_cancels_its_inline_child(slot_cluster, tmp_path):
    ray = slot_cluster
    started = tmp_path / "child started"

    @ray.remote(resources={"slot": 1})
    def sleeper():
        started.write_text("yes")
        time.sleep(60)
        return "finished"

    @ray.remote(resources={"slot": 1})
    def parent():
        return ray.get(sleeper.remote())

    ref = parent.remote()
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    ray.cancel(ref)
    with pytest.raises(X.TaskCancelledError):
        ray.get(ref, timeout=20)

    @ray.remote(resources={"slot": 1})
    def after():
        return "the worker and the slot are usable again"

    assert ray.get(after.remote(), timeout=30) == "the worker and the slot are usable again"


def test_cancelling_an_inline_child_raises_in_its_parent(slot_cluster, tmp_path):
    ray = slot_cluster
    started = tmp_path / "child started"

    @ray.remote(resources={"slot": 1})
    def sleeper():
        started.write_text("yes")
        time.sleep(60)
        return "finished"

    @ray.remote(resources={"slot": 1})
    def parent():
        ref = sleeper.remote()

        def cancel_when_started():
            deadline = time.monotonic() + 30
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            ray.cancel(ref)

        thread = threading.Thread(target=cancel_when_started)
        thread.start()
        try:
            return ray.get(ref)
        except X.TaskCancelledError:
            return "child cancelled"
        finally:
            thread.join(35)

    assert ray.get(parent.remote(), timeout=60) == "child cancelled"


def test_deep_recursion_with_one_cpu_and_few_spare_workers(fresh, monkeypatch):
    """A chain and a tree far deeper than the pool: before inline execution every level
    held a process, and the sixth level already found the pool full."""
    monkeypatch.setenv("ZRAY_WORKER_POOL_MAX_EXTRA", "4")
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def chain(n):
        return 0 if n == 0 else 1 + ray.get(chain.remote(n - 1))

    @ray.remote
    def tree_sum(lo, hi):
        if hi - lo <= 1:
            return lo
        mid = (lo + hi) // 2
        return sum(ray.get([tree_sum.remote(lo, mid), tree_sum.remote(mid, hi)]))

    # Past half the recursion limit (~100 levels) a chain blocks and the next levels go to
    # another worker, which runs them inline in turn.
    assert ray.get(chain.remote(250), timeout=60) == 250
    assert ray.get(tree_sum.remote(0, 256), timeout=60) == 256 * 255 // 2


def test_full_pool_is_reported_on_the_driver(fresh, monkeypatch, capfd):
    monkeypatch.setenv("ZRAY_INLINE_NESTED_TASKS", "0")
    monkeypatch.setenv("ZRAY_WORKER_POOL_MAX_EXTRA", "1")
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def chain(n):
        return 0 if n == 0 else 1 + ray.get(chain.remote(n - 1))

    with worker_output() as output:
        with pytest.raises(X.GetTimeoutError):
            ray.get(chain.remote(5), timeout=3)
        output.wait_for("ZRAY_WORKER_POOL_MAX_EXTRA")
    err = capfd.readouterr().err
    assert "limit of 2 worker processes" in err
    assert "ZRAY_WORKER_POOL_MAX_EXTRA" in err
    assert err.count("limit of 2 worker processes") == 1
