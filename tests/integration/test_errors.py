"""Task failures: exceptions, propagation, crashes with retries, cancellation."""

import os
import time

import pytest


def test_exception_is_both_ray_task_error_and_cause(ray):
    @ray.remote
    def boom():
        raise ValueError("boom happened")

    with pytest.raises(ValueError) as info:
        ray.get(boom.remote())
    err = info.value
    assert isinstance(err, ray.exceptions.RayTaskError)
    assert "boom happened" in str(err)
    assert "raise ValueError" in str(err)  # the remote traceback
    assert isinstance(err.cause, ValueError)


def test_error_flows_through_dependent_tasks(ray):
    @ray.remote
    def boom():
        raise KeyError("upstream")

    @ray.remote
    def consume(x):
        return x

    with pytest.raises(KeyError, match="upstream"):
        ray.get(consume.remote(consume.remote(boom.remote())))


def test_custom_exception_class(ray):
    class MyError(Exception):
        def __init__(self, code, detail):
            super().__init__(code, detail)
            self.code = code

    @ray.remote
    def fail():
        raise MyError(7, "bad")

    with pytest.raises(MyError) as info:
        ray.get(fail.remote())
    assert info.value.cause.code == 7


def test_worker_crash_is_retried(ray, tmp_path):
    marker = tmp_path / "attempts"

    @ray.remote(max_retries=2)
    def crash_once(path):
        with open(path, "a") as f:
            f.write("x")
        if os.path.getsize(path) == 1:
            os._exit(1)
        return "survived"

    assert ray.get(crash_once.remote(str(marker)), timeout=60) == "survived"
    assert marker.read_text() == "xx"


def test_worker_crash_beyond_retries(ray):
    @ray.remote(max_retries=1)
    def always_crash():
        os._exit(3)

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(always_crash.remote(), timeout=60)


def test_crashed_worker_is_replaced(ray):
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    @ray.remote
    def pid():
        return os.getpid()

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(die.remote(), timeout=60)
    assert ray.get([pid.remote() for _ in range(4)], timeout=60)


def test_retry_exceptions(ray, tmp_path):
    marker = tmp_path / "tries"

    @ray.remote(max_retries=3, retry_exceptions=True)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        if os.path.getsize(path) < 3:
            raise RuntimeError("not yet")
        return os.path.getsize(path)

    assert ray.get(flaky.remote(str(marker)), timeout=60) == 3

    @ray.remote(max_retries=3, retry_exceptions=[KeyError])
    def wrong_kind():
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        ray.get(wrong_kind.remote(), timeout=60)


def test_cancel_queued_task(ray):
    @ray.remote(num_cpus=2)
    def hog():
        time.sleep(1.5)
        return 1

    @ray.remote(num_cpus=2)
    def queued():
        return 2

    first = hog.remote()
    second = queued.remote()
    time.sleep(0.2)
    ray.cancel(second)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(second, timeout=10)
    assert ray.get(first, timeout=10) == 1


def test_cancel_running_task(ray):
    @ray.remote
    def sleeper():
        time.sleep(30)
        return "finished"

    ref = sleeper.remote()
    time.sleep(0.5)
    start = time.monotonic()
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=10)
    assert time.monotonic() - start < 5


def test_force_cancel_kills_worker(ray):
    @ray.remote(max_retries=3)
    def spin():
        while True:
            pass

    ref = spin.remote()
    time.sleep(0.5)
    ray.cancel(ref, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=10)

    @ray.remote
    def ok():
        return "ok"

    assert ray.get(ok.remote(), timeout=30) == "ok"


def test_get_timeout(ray):
    @ray.remote
    def slow():
        time.sleep(2)

    ref = slow.remote()
    start = time.monotonic()
    with pytest.raises(ray.exceptions.GetTimeoutError) as info:
        ray.get(ref, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 1.5


def test_get_raises_a_failed_objects_error_without_waiting_for_the_rest(ray):
    @ray.remote
    class Gate:
        def wait_closed(self):
            time.sleep(60)

    @ray.remote
    def boom():
        raise ValueError("failed first")

    gate = Gate.remote()
    pending = gate.wait_closed.remote()
    failed = boom.remote()
    # Pending first: the error is not merely the first entry looked at. Waiting for every
    # value would end in GetTimeoutError after 30 s instead.
    with pytest.raises(ValueError, match="failed first"):
        ray.get([pending, failed], timeout=30)
    with pytest.raises(ValueError, match="failed first"):
        ray.get([pending, failed])  # no timeout: waiting for all would hang (pytest's limit)
    ray.kill(gate)
