"""dashboard.log and client_server.log rotate with Ray's variables, as node.log does: each
process checks its own log once a second and, past RAY_ROTATION_MAX_BYTES, renames it `.1`
(older ones shifting, RAY_ROTATION_BACKUP_COUNT kept) and writes to a new file from then on."""

from __future__ import annotations

import glob
import os
import shutil

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.head_cluster import free_port, wait_for
from tests.integration.test_cli import short_tmp, stopped_on_failure, zray_cli
from tests.integration.test_jobs_dashboard_restart import dashboard_pid
from tests.integration.test_lifecycle import ROOT

MAX_BYTES = 1000


def writes_to(pid: int, path: str) -> list:
    """The files `pid`'s stdout and stderr are."""
    return [os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in (1, 2)]


def test_dashboard_and_client_server_logs_rotate():
    root = short_tmp()
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        ZRAY_SESSION_DIR_ROOT=root,
        RAY_ROTATION_MAX_BYTES=str(MAX_BYTES),
        RAY_ROTATION_BACKUP_COUNT="2",
    )
    env.pop("ZRAY_TOKEN", None)
    before = (zray_segments(), zray_sessions())
    try:
        with stopped_on_failure(env):
            started = zray_cli(
                "start", "--head", "--port", "0", "--num-cpus", "1",
                "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
                env=env,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
        [session] = glob.glob(os.path.join(root, "session_*"))
        logs = os.path.join(session, "logs")
        with open(os.path.join(session, "client_server.pid")) as f:
            processes = {"client_server.log": (int(f.read()), [False, True])}  # stdout: a pipe
        processes["dashboard.log"] = (dashboard_pid(env), [True, True])
        for name, (pid, redirected) in processes.items():
            path = os.path.join(logs, name)
            assert writes_to(pid, path) == redirected
            # Three times past the limit: two backups, the oldest dropped.
            for round in range(3):
                with open(path, "a") as f:  # as the process's own lines would grow it
                    f.write(f"round {round}\n" + "x" * MAX_BYTES + "\n")
                wait_for(lambda: os.path.getsize(path) == 0, 30, f"{name} rotated")
            assert sorted(n for n in os.listdir(logs) if n.startswith(name)) == [
                name, f"{name}.1", f"{name}.2",
            ]  # fmt: skip
            with open(os.path.join(logs, f"{name}.1")) as f:
                assert f.read().startswith("round 2\n")
            assert writes_to(pid, path) == redirected  # the new file, not the renamed one
    finally:
        zray_cli("stop", "--force", env=env)
        assert_no_leaks(*before, timeout=20)
        shutil.rmtree(root, ignore_errors=True)
