"""A node that cannot start workers says so and fails what waits for one (own cluster: the
setting must reach the node when it starts)."""

import pytest

import zray


def test_workers_that_never_register_fail_their_tasks(fresh, monkeypatch):
    # Every start misses its deadline: after a few the node stops forking and says why,
    # instead of forking replacements for ever while the caller waits.
    monkeypatch.setenv("ZRAY_WORKER_START_TIMEOUT_S", "0.001")
    fresh.init(num_cpus=1)

    @fresh.remote
    def f():
        return 1

    with pytest.raises(zray.exceptions.RaySystemError, match="could not start a worker"):
        fresh.get(f.remote(), timeout=60)
