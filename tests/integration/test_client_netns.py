"""A ray:// client on "another machine": a network namespace of its own, joined to this one by a
veth pair, from which only the client server's port answers (the cluster binds 127.0.0.1, which
there is the namespace's own loopback), and a mount namespace whose working_dir the cluster
cannot read. The client holds no listening socket, so nothing can dial it back: everything it
does goes through its one connection, including its runtime_env's working_dir upload.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import short_tmp, stopped_on_failure
from tests.integration.test_client import ClientCluster
from tests.integration.test_lifecycle import ROOT

CLIENT_SCRIPT = r"""
import json, os, socket, sys, time
import numpy as np
import psutil
import zray as ray

host, port, head_port, workdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {}
probe = socket.socket()
probe.settimeout(2)
try:
    probe.connect((host, head_port))
    out["head_port_reachable"] = True
except OSError:
    out["head_port_reachable"] = False
finally:
    probe.close()

os.makedirs(os.path.join(workdir, "pkg"))
with open(os.path.join(workdir, "data.txt"), "w") as f:
    f.write("only on the client")
with open(os.path.join(workdir, "pkg", "__init__.py"), "w") as f:
    f.write("VALUE = 41\n")

ctx = ray.init(f"ray://{host}:{port}", namespace="netns",
               runtime_env={"working_dir": workdir, "env_vars": {"JOB_VAR": "job"}})
out["initialized"] = ray.is_initialized()

@ray.remote
def read_workdir():
    import pkg
    with open("data.txt") as f:
        return f.read(), pkg.VALUE + 1, os.environ.get("JOB_VAR"), os.environ.get("TASK_VAR")

out["runtime_env"] = list(ray.get(read_workdir.remote(), timeout=120))
out["task_env"] = ray.get(
    read_workdir.options(runtime_env={"env_vars": {"TASK_VAR": "task"}}).remote(), timeout=120
)[3]

@ray.remote
def add(a, b):
    return a + b

ref = ray.put(np.arange(1000))
out["task"] = int(ray.get(add.remote(ref, 1), timeout=60).sum())
out["nested"] = ray.get(ray.remote(lambda refs: sum(ray.get(refs))).remote(
    [ray.put(i) for i in range(4)]), timeout=60)
ready, rest = ray.wait([add.remote(1, 1), add.remote(2, 2)], num_returns=2, timeout=60)
out["wait"] = sorted(ray.get(ready, timeout=60))

@ray.remote
class Store:
    def __init__(self):
        self.items = {}
    def set(self, k, v):
        self.items[k] = v
    def get(self, k):
        return self.items[k]

store = Store.options(name="netns-store").remote()
ray.get(store.set.remote("a", 1), timeout=60)
out["named"] = ray.get(ray.get_actor("netns-store").get.remote("a"), timeout=60)
try:
    ray.get(store.get.remote("missing"), timeout=60)
except KeyError as exc:
    out["error"] = [type(exc).__name__, isinstance(exc, ray.exceptions.RayTaskError),
                    "in get" in str(exc)]
ray.kill(store)
try:
    ray.get(store.get.remote("a"), timeout=60)
except ray.exceptions.RayActorError:
    out["killed"] = True

big = np.ones(20 * 2**20, dtype=np.uint8)
out["big"] = int(ray.get(ray.put(big), timeout=120).sum())
out["cpus"] = ray.cluster_resources()["CPU"]
out["nodes"] = len(ray.nodes())
out["namespace"] = ray.get_runtime_context().namespace
out["listening"] = [c.laddr for c in psutil.Process().net_connections("inet")
                    if c.status == psutil.CONN_LISTEN]
ray.shutdown()
out["after_shutdown"] = ray.is_initialized()
print("RESULT " + json.dumps(out))
"""


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def netns():
    """(namespace name, this side's address): a namespace that reaches only this machine's
    veth address."""
    tag = os.getpid() % 10000
    name, outer, inner = f"zrc{tag}", f"zrh{tag}", f"zrn{tag}"
    subnet = f"10.{200 + tag % 50}.{tag % 250}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(
            f"NOT TESTED: the ray:// client in its own network namespace needs `ip netns` "
            f"(root, CAP_SYS_ADMIN): {detail.strip()}"
        )
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("addr", "add", f"{subnet}.1/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/30", "dev", inner)
        _ip("netns", "exec", name, "ip", "link", "set", inner, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name, f"{subnet}.1"
    finally:
        _ip("netns", "del", name, check=False)  # takes the veth pair with it
        _ip("link", "del", outer, check=False)


def test_a_client_in_another_network_namespace_uses_the_whole_api(netns):
    name, host = netns
    before = (zray_segments(), zray_sessions())
    root = short_tmp()
    client_root = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    with stopped_on_failure(env):
        cluster = ClientCluster(root)
    head_port = int(
        [
            json.load(open(os.path.join(root, entry, "cluster.json")))["head_address"]
            for entry in os.listdir(root)
            if entry.startswith("session_")
        ][0].rsplit(":", 1)[1]
    )
    workdir = os.path.join(client_root, "private", "wd")
    try:
        os.makedirs(os.path.dirname(workdir))
        # A private tmpfs over the working_dir's parent: only the client sees those files.
        command = (
            f"mount -t tmpfs zray-client {os.path.dirname(workdir)} && exec {sys.executable} "
            f"-c {_quote(textwrap.dedent(CLIENT_SCRIPT))} {host} {cluster.port} {head_port} "
            f"{workdir}"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", name, "unshare", "--mount", "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(
                os.environ,
                PYTHONPATH=ROOT,
                ZRAY_TOKEN=cluster.token,
                ZRAY_SESSION_DIR_ROOT=client_root,
            ),
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert not os.listdir(os.path.dirname(workdir))  # the files were the client's alone
        out = json.loads(result.stdout.split("RESULT ", 1)[1])
    finally:
        cluster.stop()
    assert out == {
        "head_port_reachable": False,
        "initialized": True,
        "runtime_env": ["only on the client", 42, "job", None],
        "task_env": "task",
        "task": 500500,
        "nested": 6,
        "wait": [2, 4],
        "named": 1,
        "error": ["RayTaskError(KeyError)", True, True],
        "killed": True,
        "big": 20 * 2**20,
        "cpus": 2.0,
        "nodes": 1,
        "namespace": "netns",
        "listening": [],
        "after_shutdown": False,
    }
    assert_no_leaks(*before)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(client_root, ignore_errors=True)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
