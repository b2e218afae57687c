"""The "ray" joblib backend (zray.util.joblib.register_ray) on a real cluster."""

import os

import pytest

# joblib is a test dependency (pyproject's [test] extra); a missing one is reported, not hidden.
joblib = pytest.importorskip("joblib", reason="joblib is not installed: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def backend(ray):
    from zray.util.joblib import register_ray

    register_ray()
    return "ray"


def _local():
    def square_and_pid(x):  # defined in a function so it travels by value
        return x * x, os.getpid()

    return square_and_pid


_square_and_pid = _local()


def test_parallel_runs_on_pool_actors(backend):
    with joblib.parallel_backend(backend):
        results = joblib.Parallel(n_jobs=2)(joblib.delayed(_square_and_pid)(i) for i in range(40))
    assert [value for value, _ in results] == [i * i for i in range(40)]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_n_jobs_minus_one_means_the_cluster_cpus(ray, backend):
    from zray.util.joblib.ray_backend import RayBackend

    assert RayBackend().effective_n_jobs(-1) == int(ray.cluster_resources()["CPU"])
    with joblib.parallel_backend(backend, n_jobs=-1):
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(5)) == [0, 1, 2, 3, 4]


def test_a_failing_call_raises_its_exception(backend):
    def fail_on_two(x):
        if x == 2:
            raise KeyError("two")
        return x

    with joblib.parallel_backend(backend), pytest.raises(KeyError, match="two"):
        joblib.Parallel(n_jobs=2)(joblib.delayed(fail_on_two)(i) for i in range(5))


def test_ray_remote_args_reach_the_actors(ray, backend):
    def where(_):
        return ray.get_runtime_context().get_assigned_resources()

    with joblib.parallel_backend(backend, ray_remote_args={"num_cpus": 1}):
        assigned = joblib.Parallel(n_jobs=2)(joblib.delayed(where)(i) for i in range(4))
    assert all(resources.get("CPU") == 1 for resources in assigned)


def test_n_jobs_one_runs_in_this_process(backend):
    with joblib.parallel_backend(backend):
        results = joblib.Parallel(n_jobs=1)(joblib.delayed(_square_and_pid)(i) for i in range(3))
    assert {pid for _, pid in results} == {os.getpid()}
