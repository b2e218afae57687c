"""A `zray start` cluster on this machine's loopback, for the tests that need several nodes: a
head, nodes that join it (each its own daemon, killable on its own), and this process as a
remote driver. Stopping it checks that nothing was left behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import connect_remote_driver, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT


class LoopbackCluster:
    def __init__(self, ray, env: dict):
        self.ray = ray
        self.env = env
        self.address = ""
        self.token = ""
        self.pids: dict = {}  # the name a test gave a node -> its daemon's pid

    def start_head(self, cpus: int, resources: dict | None = None, flags: tuple = ()):
        args = ["start", "--head", "--port", "0", "--num-cpus", str(cpus), *flags]
        if resources:
            args += ["--resources", json.dumps(resources)]
        head = zray_cli(*args, env=self.env)
        assert head.returncode == 0, head.stderr
        self.address = re.search(r"Head address: (\S+)", head.stdout).group(1)
        self.token = token_of(head.stdout)

    def join(self, name: str, resources: dict, cpus: int = 1, flags: tuple = ()) -> int:
        """Starts a node that joins the cluster (`flags`: more `zray start` flags); returns (and
        records) its daemon's pid."""
        joined = zray_cli(
            "start",
            f"--address={self.address}",
            "--num-cpus",
            str(cpus),
            "--resources",
            json.dumps(resources),
            "--token",
            self.token,
            *flags,
            env=self.env,
        )
        assert joined.returncode == 0, joined.stderr
        self.pids[name] = int(re.search(r"\(pid (\d+)\)", joined.stdout).group(1))
        return self.pids[name]

    def connect(self):
        """Connects this process as a driver and waits (bounded) for every node to be alive."""
        connect_remote_driver(self.ray, self.address, self.token, len(self.pids) + 1)

    def node_of(self, resource: str) -> str:
        for node in self.ray.nodes():
            if node["Alive"] and resource in node["Resources"]:
                return node["NodeID"]
        raise AssertionError(f"no live node has {resource!r}")


@contextlib.contextmanager
def loopback_cluster(
    head_cpus: int = 1,
    head_resources: dict | None = None,
    nodes: dict | None = None,
    node_cpus: int = 1,
    node_death_timeout_s: float | None = None,
    head_flags: tuple = (),
    node_flags: dict | None = None,
):
    """Yields a started LoopbackCluster with a driver connected: a head with `head_cpus`, then
    one node per entry of `nodes` (name -> resources). `head_flags`, and `node_flags` (name ->
    flags), add `zray start` flags, e.g. `--node-ip-address 127.0.0.2` for a node whose
    transfers count as crossing hosts. On the way out, or if the start fails, every daemon is
    stopped and the test fails if a process, segment or session is left."""
    import zray

    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")  # Unix socket paths must stay short
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    if node_death_timeout_s is not None:
        env["ZRAY_NODE_DEATH_TIMEOUT_S"] = str(node_death_timeout_s)
    before = (zray_segments(), zray_sessions())
    cluster = LoopbackCluster(zray, env)
    try:
        cluster.start_head(head_cpus, head_resources, head_flags)
        for name, resources in (nodes or {}).items():
            cluster.join(name, resources, node_cpus, (node_flags or {}).get(name, ()))
        cluster.connect()
    except BaseException:
        zray.shutdown()
        zray_cli("stop", "--force", env=env)  # a failed start never reaches the teardown
        raise
    try:
        yield cluster
    finally:
        zray.shutdown()
        zray_cli("stop", env=env)
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)
