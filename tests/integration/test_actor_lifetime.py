"""Actor lifetimes across drivers on a cluster started with `zray start`."""

import os
import shutil
import tempfile

import pytest

from tests.conftest import assert_no_leaks, exited, zray_segments, zray_sessions
from tests.integration.test_cli import zray_cli
from tests.integration.test_lifecycle import ROOT, run_script


@pytest.fixture(scope="module")
def cluster():
    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    before = (zray_segments(), zray_sessions())
    started = zray_cli("start", "--head", "--port", "0", "--num-cpus", "2", env=env)
    assert started.returncode == 0, started.stderr
    yield {"ZRAY_SESSION_DIR_ROOT": root}
    zray_cli("stop", env=env)
    assert_no_leaks(*before)
    shutil.rmtree(root, ignore_errors=True)


def driver(code: str, env: dict) -> str:
    result = run_script(
        "import zray as ray\nray.init(address='auto', namespace='shared')\n" + code, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_detached_actor_outlives_its_driver(cluster):
    driver(
        """
@ray.remote
class Store:
    def __init__(self):
        self.items = {}
    def put(self, k, v):
        self.items[k] = v
    def get(self, k):
        return self.items.get(k)
s = Store.options(name="store", lifetime="detached").remote()
ray.get(s.put.remote("answer", 42))
""",
        cluster,
    )
    out = driver(
        """
s = ray.get_actor("store")
print("value", ray.get(s.get.remote("answer")))
ray.kill(s)
""",
        cluster,
    )
    assert "value 42" in out


def test_non_detached_actor_dies_with_its_driver(cluster):
    out = driver(
        """
import os
@ray.remote
class Pid:
    def pid(self):
        return os.getpid()
p = Pid.options(name="ephemeral").remote()
print("pid", ray.get(p.pid.remote()))
""",
        cluster,
    )
    pid = int(out.split("pid")[-1].split()[0])
    assert exited(pid), "the actor outlived its driver"
    out = driver(
        """
try:
    ray.get_actor("ephemeral")
except ValueError:
    print("gone")
""",
        cluster,
    )
    assert "gone" in out
