"""Starting and stopping the processes behind `init()`: an embedded node daemon (with the head
service) for `init()` without an address, and the driver's connection to a cluster."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from typing import NamedTuple

from zray import exceptions as X
from zray._config import config, environment_for_children
from zray._private.common import session
from zray._private.common.launch import daemon_command


class DashboardOptions(NamedTuple):
    """init()'s include_dashboard, dashboard_host and dashboard_port (Ray's defaults)."""

    include: bool | None = None
    host: str = "127.0.0.1"
    port: int | None = None


class EmbeddedNode:
    """A `zray-node --head` child process owned by this driver."""

    def __init__(
        self,
        creds,
        num_cpus=None,
        num_gpus=None,
        resources=None,
        object_store_memory=None,
        metrics_export_port=None,
        dashboard: DashboardOptions | None = None,
    ):
        dashboard = dashboard or DashboardOptions()
        session.clean_stale_sessions()
        self.session_dir = session.new_session_dir()
        cmd = daemon_command("zray.scripts.node") + [
            "--head",
            "--port",
            "0",
            "--session-dir",
            self.session_dir,
            "--embedded-by",
            str(os.getpid()),
            "--ready-json",
        ]
        if num_cpus is not None:
            cmd += ["--num-cpus", str(num_cpus)]
        if num_gpus is not None:
            cmd += ["--num-gpus", str(num_gpus)]
        if resources:
            cmd += ["--resources", json.dumps(resources)]
        if object_store_memory is not None:
            cmd += ["--object-store-memory", str(int(object_store_memory))]
        if metrics_export_port is not None:
            cmd += ["--metrics-export-port", str(metrics_export_port)]
        include = dashboard.include
        if include is None and not config.include_dashboard:
            include = False
        if include is not None:
            cmd += ["--include-dashboard", "true" if include else "false"]
        if include is not False:
            cmd += ["--dashboard-host", dashboard.host]
            if dashboard.port is not None:
                cmd += ["--dashboard-port", str(int(dashboard.port))]
        self.log_path = os.path.join(self.session_dir, "logs", "node.log")
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=environment_for_children(
                    {  # never argv: every local user can read that
                        "ZRAY_TOKEN": creds.token,
                        "ZRAY_ENCRYPT": "1" if creds.encrypt else "0",
                    }
                ),
                start_new_session=True,
            )
        finally:
            log.close()
        self.info = self._read_ready(config.node_start_timeout_s)

    def _read_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(out.fileno(), 65536)
            if not chunk:  # it is exiting: wait a moment for its code
                try:
                    self.process.wait(2)
                except subprocess.TimeoutExpired:
                    pass
                break
            buffer += chunk
            if b"\n" in buffer:
                out.close()
                return json.loads(buffer.split(b"\n", 1)[0])
        # Read before stop(), which removes the session directory the log is in.
        tail = _tail(self.log_path)
        code = self.process.poll()
        self.stop()
        what = (
            f"exited with code {code}" if code is not None else f"did not start within {timeout}s"
        )
        raise X.RaySystemError(f"the zray node {what}; see {self.log_path}:\n" + tail)

    def stop(self, timeout: float = 5.0):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout and not self.process.stdout.closed:
            self.process.stdout.close()
        session.remove_session(self.session_dir)


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
