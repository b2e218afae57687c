"""An object whose owner died raises OwnerDiedError at once (Ray's error), not at the get's
timeout."""

import os
import time

import numpy as np
import pytest


def test_a_get_of_an_object_whose_owner_died_fails_fast(ray):
    @ray.remote
    class Maker:
        def make(self, big):
            value = np.ones(2**20) if big else "small"
            return [ray.put(value)], os.getpid()  # the actor owns the object

    for big in (False, True):
        maker = Maker.remote()
        (inner,), pid = ray.get(maker.make.remote(big), timeout=30)
        ray.kill(maker)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the news of its death reaches this driver through its node and the head
        start = time.monotonic()
        with pytest.raises(ray.exceptions.OwnerDiedError) as raised:
            ray.get(inner, timeout=30)
        assert time.monotonic() - start < 10
        assert isinstance(raised.value, ray.exceptions.ObjectLostError)
        assert inner.hex() in str(raised.value)


def test_a_tasks_large_return_outlives_the_worker_that_made_it(ray):
    """The caller owns a task's returns: the worker that stored one in the arena dying later
    (killed, crashed, or retired) must not free it (found by tests/integration/test_chaos.py)."""
    import signal

    @ray.remote(num_returns=2)
    def make():
        return np.ones(2**20), os.getpid()

    array_ref, pid_ref = make.remote()
    pid = ray.get(pid_ref, timeout=30)
    assert ray.get(array_ref, timeout=30).sum() == 2**20
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # its node has announced its death by now
    assert ray.get(array_ref, timeout=10).sum() == 2**20
