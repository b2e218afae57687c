"""Starting, stopping and crashing: nothing may be left behind."""

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_script(code: str, timeout: float = 60, env=None, **kwargs):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        **kwargs,
    )


def test_init_shutdown_cycles(fresh):
    ray = fresh
    for i in range(3):
        ray.init(num_cpus=1)
        assert ray.is_initialized()

        @ray.remote
        def f(x):
            return x + 1

        assert ray.get(f.remote(i)) == i + 1
        ray.shutdown()
        assert not ray.is_initialized()


def test_init_refuses_a_runtime_env_it_cannot_honour(fresh):
    with pytest.raises(NotImplementedError, match="'container'"):
        fresh.init(num_cpus=1, runtime_env={"container": {"image": "x"}})
    assert not fresh.is_initialized()
    fresh.init(num_cpus=1, runtime_env={})  # asks for nothing: fine
    fresh.shutdown()


def test_exit_without_shutdown_cleans_up():
    before = (zray_segments(), zray_sessions())
    result = run_script("""
        import zray as ray
        ray.init(num_cpus=1)
        @ray.remote
        def f():
            return 1
        print(ray.get(f.remote()))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("1")
    assert_no_leaks(*before)


def test_auto_init_on_first_use():
    result = run_script("""
        import zray as ray
        @ray.remote
        def f():
            return "auto"
        print(ray.get(f.remote()))
        print(ray.is_initialized())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["auto", "True"]


def test_killed_driver_takes_its_cluster_down_and_leftovers_are_cleaned():
    before = (zray_segments(), zray_sessions())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import sys, time
        import numpy as np
        import zray as ray
        ray.init(num_cpus=1)
        ref = ray.put(np.ones(10**6))
        print("ready", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert descendants
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    # The embedded node noticed its driver died and removed its session and arena.
    assert_no_leaks(*before)


def test_start_removes_leftovers_of_a_crashed_session(fresh):
    from zray._config import config

    root = config.session_dir_root
    os.makedirs(root, exist_ok=True)
    stale = os.path.join(root, "session_2000-01-01_00-00-00_999999")
    os.makedirs(os.path.join(stale, "nodes"), exist_ok=True)
    with open(os.path.join(stale, "nodes", "ab"), "w") as f:
        f.write("999999")  # a pid that does not exist
    segment = "/dev/shm/zray-session_2000-01-01_00-00-00_999999-abcdef"
    with open(segment, "wb") as f:
        f.write(b"x" * 10)
    fresh.init(num_cpus=1)
    assert not os.path.exists(stale)
    assert not os.path.exists(segment)


def test_pure_python_twins_run_the_same_workload():
    """ZRAY_FAST=0 selects the pure-Python _fast twins everywhere (driver, node, workers)."""
    result = run_script(
        """
        import numpy as np
        import zray as ray
        from zray import _fast
        assert _fast.IMPLEMENTATION == "python", _fast.IMPLEMENTATION
        ray.init(num_cpus=2)
        @ray.remote
        def double(a):
            return a * 2
        @ray.remote
        def which():
            from zray import _fast
            return _fast.IMPLEMENTATION
        big = np.arange(2_000_000)
        assert int(ray.get(double.remote(big))[-1]) == 3_999_998
        assert ray.get(double.remote(21)) == 42
        out = ray.get(ray.put(big))
        assert np.array_equal(out, big) and not out.flags.writeable
        assert ray.get(which.remote()) == "python"
        ray.shutdown()
        print("pure ok")
    """,
        env={"ZRAY_FAST": "0"},
    )
    assert result.returncode == 0, result.stderr
    assert "pure ok" in result.stdout


def test_children_use_the_drivers_zray_not_one_in_the_working_directory(tmp_path):
    """A `zray/` folder in the working directory (another checkout, a user package) must not
    be what the node, zygote and workers import."""
    stray = tmp_path / "zray"
    stray.mkdir()
    (stray / "__init__.py").write_text("raise ImportError('the stray zray was imported')\n")
    (tmp_path / "helper_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    script = tmp_path / "job" / "job.py"
    script.parent.mkdir()
    script.write_text(
        textwrap.dedent("""
        import zray as ray
        ray.init(num_cpus=1)
        import helper_mod  # from the working directory, as workers must find it too

        @ray.remote
        def f(x):
            return helper_mod.triple(x)

        print("result", ray.get(f.remote(14), timeout=60))
        ray.shutdown()
    """)
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=str(tmp_path),
    )
    assert "result 42" in result.stdout, result.stdout + result.stderr
