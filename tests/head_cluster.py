"""A loopback cluster started with `zray start` whose head can be SIGKILLed and started again on
its state (same port, same token), for the tests of head restarts. The driver attaches to a
worker node, not the head's: the head node's daemon dies with the head, and so would a driver
attached to it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from contextlib import contextmanager

from tests.conftest import assert_no_leaks, exited, zray_segments, zray_sessions
from tests.integration.test_cli import zray_cli
from tests.integration.test_lifecycle import ROOT

TOKEN = "head-restart-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RestartableCluster:
    def __init__(self, reconnect_timeout_s: float = 30.0, extra_env: dict | None = None):
        self.root = tempfile.mkdtemp(prefix="zt", dir="/tmp")  # short: Unix socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.state_path = os.path.join(self.root, "head-state.sqlite3")
        self.env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            ZRAY_SESSION_DIR_ROOT=self.root,
            ZRAY_TOKEN=TOKEN,
            ZRAY_HEAD_RECONNECT_TIMEOUT_S=str(reconnect_timeout_s),
            **(extra_env or {}),
        )
        self.reconnect_timeout_s = reconnect_timeout_s
        self.before = (zray_segments(), zray_sessions())
        self.head_pid = 0
        self.node_pids: dict[str, int] = {}

    def start_head(self, num_cpus: int = 1, **extra_env) -> int:
        """The first start is given the token; a restart is not, and takes its state's."""
        env = dict(self.env, **extra_env)
        if self.head_pid:
            del env["ZRAY_TOKEN"]
        started = zray_cli(
            "start",
            "--head",
            "--port",
            str(self.port),
            "--num-cpus",
            str(num_cpus),
            "--head-state-path",
            self.state_path,
            env=env,
        )
        assert started.returncode == 0, started.stderr
        assert f"Cluster token: {TOKEN}" in started.stdout
        self.head_pid = int(re.search(r"\(pid (\d+)\)", started.stdout).group(1))
        return self.head_pid

    def add_node(self, name: str, num_cpus: int = 2, **resources) -> int:
        joined = zray_cli(
            "start",
            f"--address={self.address}",
            "--num-cpus",
            str(num_cpus),
            "--resources",
            repr({name: 1, **resources}).replace("'", '"'),
            env=self.env,
        )
        assert joined.returncode == 0, joined.stderr
        self.node_pids[name] = int(re.search(r"\(pid (\d+)\)", joined.stdout).group(1))
        return self.node_pids[name]

    def kill_head(self) -> None:
        os.kill(self.head_pid, signal.SIGKILL)
        assert exited(self.head_pid)

    def connect_driver(self, zray, monkeypatch, node: str):
        """init() attached to the node that has resource `node`."""
        from zray._config import config
        from zray._private.common import cluster_info

        def worker_node(address, creds):
            for entry in cluster_info.fetch_nodes(address, creds):
                if entry["alive"] and node in entry["resources"]:
                    return entry
            raise AssertionError(f"no live node with resource {node}")

        monkeypatch.setattr(cluster_info, "local_node_of", worker_node)
        monkeypatch.setattr(config, "token", TOKEN)
        monkeypatch.setattr(config, "head_reconnect_timeout_s", self.reconnect_timeout_s)
        zray.init(address=self.address)

    def stop(self, check_leaks: bool = True) -> None:
        keep = os.environ.get("ZRAY_TEST_KEEP_LOGS")  # a directory: node logs go there
        if keep:
            for entry in os.listdir(self.root):
                logs = os.path.join(self.root, entry, "logs")
                if os.path.isdir(logs):
                    shutil.copytree(logs, os.path.join(keep, entry), dirs_exist_ok=True)
        zray_cli("stop", "--force", env=self.env)
        try:
            if check_leaks:
                assert_no_leaks(*self.before, timeout=20)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def driven_cluster(monkeypatch, nodes: dict, extra_env: dict | None = None):
    """A RestartableCluster (30 s reconnect window, its processes given `extra_env`) with the
    worker nodes `nodes` names ({name: add_node keyword arguments}), zray's driver attached to
    the first of them; yields (zray, cluster) and tears both down."""
    import zray

    cluster = RestartableCluster(reconnect_timeout_s=30.0, extra_env=extra_env)
    try:
        cluster.start_head()
        for name, options in nodes.items():
            cluster.add_node(name, **options)
        cluster.connect_driver(zray, monkeypatch, next(iter(nodes)))
        yield zray, cluster
    finally:
        zray.shutdown()
        cluster.stop()


def wait_for(predicate, timeout: float = 30.0, what: str = "", interval: float = 0.1):
    """`predicate()`'s first truthy value, asked every `interval` s; fails the test past
    `timeout` (generous: these machines are loaded, and most waits end in well under a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate.__name__}"
            )
        time.sleep(interval)
