"""Runtime environments with Ray's semantics: job, task and actor envs merged as Ray merges
them, working_dir and py_modules uploaded once and cached per node, workers pooled per env,
setup failures as RuntimeEnvSetupError, unsupported fields refused by name, pip virtualenvs."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reporter():
    def env_report():  # nested: pickled by value, so workers need not import this module
        import zray

        context = zray.get_runtime_context()
        return {
            "A": os.environ.get("A"),
            "B": os.environ.get("B"),
            "C": os.environ.get("C"),
            "cwd": os.getcwd(),
            "path0": sys.path[0],
            "pid": os.getpid(),
            "string": context.get_runtime_env_string(),
            "env": dict(context.runtime_env),
        }

    return env_report


env_report = _reporter()


@pytest.fixture(scope="module")
def ray():
    """A cluster whose job env sets A=job, so every test sees the job-level default."""
    import zray

    before_segments, before_sessions = zray_segments(), zray_sessions()
    zray.init(num_cpus=2, runtime_env={"env_vars": {"A": "job"}})
    yield zray
    zray.shutdown()
    assert_no_leaks(before_segments, before_sessions)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "helper_mod.py").write_text("VALUE = 'from working_dir'\n")
    (root / "data" / "input.txt").write_text("hello\n")
    (root / "data" / "big.bin").write_bytes(b"x" * 1000)
    (root / "logs").mkdir()
    (root / "logs" / "run.log").write_text("log\n")
    return root


def test_job_env_is_the_default_and_task_env_vars_merge_key_by_key(ray):
    report = ray.remote(env_report)
    base = ray.get(report.remote())
    assert base["A"] == "job" and base["B"] is None
    assert json.loads(base["string"]) == {"env_vars": {"A": "job"}}
    assert json.loads(ray.get_runtime_context().get_runtime_env_string()) == {
        "env_vars": {"A": "job"}
    }
    both = ray.get(report.options(runtime_env={"env_vars": {"B": "task"}}).remote())
    assert (both["A"], both["B"]) == ("job", "task")
    assert both["env"] == {"env_vars": {"A": "job", "B": "task"}}
    override = ray.get(report.options(runtime_env={"env_vars": {"A": "task"}}).remote())
    assert override["A"] == "task"
    # Pooled per env: a worker set up for one env never runs another env's task.
    assert both["pid"] != base["pid"] and override["pid"] not in (base["pid"], both["pid"])
    again = ray.get([report.remote() for _ in range(6)])
    assert {r["pid"] for r in again}.isdisjoint({both["pid"], override["pid"]})
    assert all(r["B"] is None and r["A"] == "job" for r in again)


def test_children_inherit_the_parent_env_unless_they_set_their_own(ray):
    report = ray.remote(env_report)

    @ray.remote
    def parent():
        return ray.get(report.remote()), ray.get(
            report.options(runtime_env={"env_vars": {"C": "child"}}).remote()
        )

    inherited, own = ray.get(parent.options(runtime_env={"env_vars": {"B": "parent"}}).remote())
    assert (inherited["A"], inherited["B"], inherited["C"]) == ("job", "parent", None)
    assert (own["A"], own["B"], own["C"]) == ("job", "parent", "child")


def test_actor_env_and_its_methods_and_children(ray):
    report = ray.remote(env_report)

    @ray.remote
    class Actor:
        def report(self):
            return env_report(), ray.get(report.remote())

    actor = Actor.options(runtime_env={"env_vars": {"B": "actor"}}).remote()
    own, child = ray.get(actor.report.remote())
    assert (own["A"], own["B"]) == ("job", "actor")
    assert (child["A"], child["B"]) == ("job", "actor")
    ray.kill(actor)


def test_working_dir_is_cwd_and_importable_and_excludes_apply(ray, project):
    @ray.remote
    def use_it():
        import helper_mod

        with open("data/input.txt") as f:
            text = f.read()
        files = sorted(
            os.path.relpath(os.path.join(d, n), ".") for d, _, names in os.walk(".") for n in names
        )
        return helper_mod.VALUE, text, files, env_report()

    env = {"working_dir": str(project), "excludes": ["*.bin", "logs/"]}
    value, text, files, report = ray.get(use_it.options(runtime_env=env).remote())
    assert (value, text) == ("from working_dir", "hello\n")
    assert files == ["data/input.txt", "helper_mod.py"]
    assert report["cwd"] == report["path0"]
    # The package lives in the session's per-node cache, named by its content hash as in Ray.
    assert "/runtime_resources/working_dir_files/_ray_pkg_" in report["cwd"]
    assert report["env"]["working_dir"].startswith("gcs://_ray_pkg_")
    assert report["env"]["working_dir"].endswith(".zip")
    # Same content, same package: a second options() call reuses the unpacked directory.
    assert ray.get(use_it.options(runtime_env=env).remote())[3]["cwd"] == report["cwd"]
    (project / "helper_mod.py").write_text("VALUE = 'changed'\n")
    changed = ray.get(use_it.options(runtime_env=env).remote())
    assert changed[0] == "changed" and changed[3]["cwd"] != report["cwd"]


def test_working_dir_zip_and_py_modules_directory_and_wheel(ray, tmp_path):
    archive = tmp_path / "wd.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_helper.py", "VALUE = 'zipped'\n")
    package = tmp_path / "mods" / "renv_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("NAME = 'renv_pkg'\n")
    wheel = tmp_path / "renv_wheel-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("renv_wheel/__init__.py", "NAME = 'renv_wheel'\n")

    @ray.remote
    def imports():
        import renv_pkg
        import renv_wheel
        import zipped_helper

        return zipped_helper.VALUE, renv_pkg.NAME, renv_wheel.NAME

    env = {"working_dir": str(archive), "py_modules": [str(package), str(wheel)]}
    assert ray.get(imports.options(runtime_env=env).remote()) == (
        "zipped",
        "renv_pkg",
        "renv_wheel",
    )


def test_job_level_working_dir(project):
    # Its own driver: the module's cluster is this process's one connection.
    code = textwrap.dedent(f"""
        import os
        import zray as ray
        ray.init(num_cpus=1, runtime_env={{"working_dir": {str(project)!r}}})

        @ray.remote
        def read():
            import helper_mod
            return helper_mod.VALUE, os.path.exists("data/input.txt")

        assert ray.get(read.remote()) == ("from working_dir", True)
        assert ray.get_runtime_context().runtime_env["working_dir"].startswith("gcs://")
        print("ok")
        """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_bad_input_fails_where_it_is_given(ray, tmp_path):
    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="is not a valid path"):
        f.options(runtime_env={"working_dir": str(tmp_path / "missing")}).remote()
    with pytest.raises(ValueError, match="is not a valid path"):
        f.options(runtime_env={"py_modules": [str(tmp_path / "missing")]}).remote()
    with pytest.raises(TypeError, match="env_vars"):
        f.options(runtime_env={"env_vars": {"A": 1}}).remote()
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        f.options(runtime_env={"config": {"setup_timeout_seconds": 0}}).remote()
    for field in ("conda", "container", "image_uri", "uv", "java_jars", "my_plugin"):
        with pytest.raises(NotImplementedError, match=repr(field)):
            f.options(runtime_env={field: "x"}).remote()
    with pytest.raises(NotImplementedError, match="'uv'"):
        ray.remote(runtime_env={"uv": ["x"]})(lambda: 1)
    assert ray.get(f.options(runtime_env={"env_vars": {}}).remote()) == 1  # asks for nothing


def test_public_runtime_env_classes(ray):
    from zray.runtime_env import RuntimeEnv, RuntimeEnvConfig

    env = RuntimeEnv(env_vars={"B": "obj"}, config=RuntimeEnvConfig(setup_timeout_seconds=30))
    assert env["config"] == {"setup_timeout_seconds": 30, "eager_install": True, "log_files": []}
    report = ray.get(ray.remote(env_report).options(runtime_env=env).remote())
    assert report["B"] == "obj" and report["env"]["config"]["setup_timeout_seconds"] == 30
    with pytest.raises(NotImplementedError, match="'conda'"):
        RuntimeEnv(conda="env")


def test_a_failing_setup_raises_runtime_env_setup_error_on_get(ray, monkeypatch):
    from zray.exceptions import RuntimeEnvSetupError
    from zray._private.common import packaging

    @ray.remote
    def f():
        return 1

    # A package the cluster never stored: the node cannot fetch it, and says why.
    ref = f.options(runtime_env={"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"}).remote()
    with pytest.raises(RuntimeEnvSetupError, match="_ray_pkg_0123456789abcdef"):
        ray.get(ref, timeout=60)

    @ray.remote
    class Actor:
        def ping(self):
            return 1

    actor = Actor.options(runtime_env={"py_modules": ["gcs://_ray_pkg_00000000deadbeef.zip"]})
    with pytest.raises(ray.exceptions.RayActorError, match="runtime env"):
        ray.get(actor.remote().ping.remote(), timeout=60)
    assert ray.get(f.remote()) == 1  # other envs' tasks are unaffected
    monkeypatch.setattr(packaging, "MAX_PACKAGE_BYTES", 10)
    with pytest.raises(ValueError, match="exceeds the maximum size"):
        ray.get(f.options(runtime_env={"working_dir": os.path.dirname(__file__)}).remote())


@pytest.mark.slow
def test_pip_env_in_a_virtualenv_and_a_failing_install(ray):
    from zray.exceptions import RuntimeEnvSetupError

    @ray.remote
    def where():
        import pyjokes

        return sys.prefix, pyjokes.__version__

    @ray.remote
    def quick():
        return os.getpid()

    ref = where.options(runtime_env={"pip": ["pyjokes==0.6.0"]}).remote()
    # The venv is built in the background: other tasks run meanwhile.
    started = time.monotonic()
    ray.get(quick.remote())
    assert time.monotonic() - started < 2.0
    prefix, version = ray.get(ref, timeout=60)
    assert version == "0.6.0" and "/runtime_resources/pip/" in prefix
    assert ray.get(where.options(runtime_env={"pip": ["pyjokes==0.6.0"]}).remote())[0] == prefix
    # An index that accepts pip's connection and never answers: the install outlasts its 1 s
    # for certain (a real index on a quiet machine installed this in under a second).
    with socket.socket() as silent_index:
        silent_index.bind(("127.0.0.1", 0))
        silent_index.listen()
        index = "http://127.0.0.1:%d/simple" % silent_index.getsockname()[1]
        slow = quick.options(
            runtime_env={
                "pip": {
                    "packages": ["pyjokes==0.5.0"],
                    "pip_install_options": ["--index-url", index, "--timeout", "30"],
                },
                "config": {"setup_timeout_seconds": 1},
            }
        ).remote()
        with pytest.raises(RuntimeEnvSetupError, match="setup_timeout_seconds"):
            ray.get(slow, timeout=60)
    bad = quick.options(runtime_env={"pip": ["zray-surely-no-such-package==0.0.1"]}).remote()
    with pytest.raises(RuntimeEnvSetupError, match="No matching distribution"):
        ray.get(bad, timeout=60)
