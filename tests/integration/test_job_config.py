"""`init(job_config=JobConfig(...))` with Ray's meaning: the job's runtime env, namespace,
default actor lifetime and metadata, `init`'s own arguments winning; fields zray cannot honour
refused by name."""

import os

import pytest

from zray.job_config import JobConfig


def _env_var(name):
    def read():  # nested: pickled by value, so workers need not import this module
        return os.environ.get(name)

    return read


def test_the_job_runtime_env_comes_from_the_job_config(fresh):
    ray = fresh
    ray.init(num_cpus=1, job_config=JobConfig(runtime_env={"env_vars": {"JOB_X": "from-config"}}))
    assert ray.get(ray.remote(_env_var("JOB_X")).remote(), timeout=60) == "from-config"


def test_init_runtime_env_and_namespace_replace_the_job_configs(fresh):
    ray = fresh
    config = JobConfig(runtime_env={"env_vars": {"JOB_X": "config"}}, ray_namespace="from-config")
    ray.init(
        num_cpus=1,
        job_config=config,
        runtime_env={"env_vars": {"JOB_Y": "init"}},
        namespace="from-init",
    )
    assert ray.get_runtime_context().namespace == "from-init"
    read_x, read_y = ray.remote(_env_var("JOB_X")), ray.remote(_env_var("JOB_Y"))
    assert ray.get([read_x.remote(), read_y.remote()], timeout=60) == [None, "init"]


def test_the_namespace_comes_from_the_job_config(fresh):
    ray = fresh
    ray.init(num_cpus=1, job_config=JobConfig(ray_namespace="team-a"))
    assert ray.get_runtime_context().namespace == "team-a"

    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    keep = Named.options(name="svc").remote()  # noqa: F841 - a named actor lives while held
    assert ray.get(ray.get_actor("svc", namespace="team-a").ping.remote(), timeout=60) == "pong"


def test_default_actor_lifetime_detached_applies_in_the_driver_and_in_tasks(fresh):
    ray = fresh
    from zray.util.state import list_actors

    ray.init(num_cpus=2, job_config=JobConfig(default_actor_lifetime="detached"))

    @ray.remote(num_cpus=0)
    class Holder:
        def ping(self):
            return 1

    @ray.remote(num_cpus=0)
    def make_one():
        handle = Holder.options(name="made-in-task").remote()
        return ray.get(handle.ping.remote(), timeout=60)

    default = Holder.options(name="default").remote()
    explicit = Holder.options(name="explicit", lifetime="non_detached").remote()
    assert ray.get([default.ping.remote(), explicit.ping.remote()], timeout=60) == [1, 1]
    assert ray.get(make_one.remote(), timeout=60) == 1
    detached = {row["name"]: row["is_detached"] for row in list_actors(detail=True)}
    assert detached == {"default": True, "explicit": False, "made-in-task": True}
    for name in detached:
        ray.kill(ray.get_actor(name))


def test_job_metadata_is_listed(fresh):
    ray = fresh
    from zray.util.state import list_jobs

    config = JobConfig(metadata={"team": "search"})
    config.set_metadata("run", "7")
    ray.init(num_cpus=1, job_config=config)
    (job,) = [row for row in list_jobs(detail=True) if row["status"] == "RUNNING"]
    assert job["metadata"] == {"team": "search", "run": "7"}


def test_what_zray_cannot_honour_is_refused_by_name(fresh):
    ray = fresh
    with pytest.raises(ValueError, match="code_search_path"):
        ray.init(num_cpus=1, job_config=JobConfig(code_search_path=["/opt/jars"]))
    with pytest.raises(ValueError, match="_py_driver_sys_path"):
        ray.init(num_cpus=1, job_config=JobConfig(_py_driver_sys_path=["/x"]))
    with pytest.raises(TypeError, match="JobConfig"):
        ray.init(num_cpus=1, job_config={"runtime_env": {}})
    with pytest.raises(ValueError, match="detached"):
        JobConfig(default_actor_lifetime="forever")
    with pytest.raises(TypeError, match="code search path"):
        JobConfig(code_search_path="/opt/jars")
    assert not ray.is_initialized()
