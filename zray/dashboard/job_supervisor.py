"""The supervisor of one submitted job: a detached actor on the head node (Ray's JobSupervisor),
created by the dashboard's JobManager in the job's runtime env, so its working_dir, pip packages
and env_vars are set up by the node as for any actor before the entrypoint starts.

`run` starts the entrypoint as a shell command in a session of its own, its stdout and stderr
appended to `<session>/logs/job-driver-<submission id>.log`, with RAY_ADDRESS naming the cluster
(so `zray.init()` in the script joins it) and RAY_JOB_CONFIG_JSON_ENV_VAR carrying the job's
runtime_env and metadata (its submission id among them), then records how it ended. `stop`
ends the whole process tree: the stop signal to every process of it, SIGKILL to what is left
after `job_stop_wait_time_s`. A watchdog process kills the entrypoint's process group should
the supervisor die first (Ray's fate sharing). The actor is threaded (run, stop, ping and
wait_ended at once) and exits when the job ends.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from zray.job_submission.common import (
    JOB_ID_METADATA_KEY,
    JOB_LOGS_PATH_TEMPLATE,
    JOB_NAME_METADATA_KEY,
    RAY_JOB_CONFIG_JSON_ENV_VAR,
    JobErrorType,
    JobStatus,
)

logger = logging.getLogger(__name__)

POLL_S = 0.1
VALID_STOP_SIGNALS = ("SIGINT", "SIGTERM")
NUM_LOG_LINES_ON_ERROR = 10
MAX_LOG_SIZE = 20000
# A worker's own variables: a driver started from one must not take itself for a worker.
WORKER_ONLY_VARIABLES = ("ZRAY_WORKER_CONTEXT",)


def log_path(logs_dir: str, submission_id: str) -> str:
    return os.path.join(logs_dir, JOB_LOGS_PATH_TEMPLATE.format(submission_id=submission_id))


def last_lines(path: str, lines: int = NUM_LOG_LINES_ON_ERROR) -> str:
    """The last `lines` lines of the file, at most MAX_LOG_SIZE characters (Ray's tail)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * MAX_LOG_SIZE))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "".join(text.splitlines(keepends=True)[-lines:])[-MAX_LOG_SIZE:]


class JobSupervisor:
    def __init__(self, submission_id: str, entrypoint: str, user_metadata: dict, logs_dir: str):
        self._submission_id = submission_id
        self._entrypoint = entrypoint
        self._metadata = {JOB_ID_METADATA_KEY: submission_id, JOB_NAME_METADATA_KEY: submission_id}
        self._metadata.update(user_metadata)
        self._logs_dir = logs_dir
        self._stop = threading.Event()
        self._ended = threading.Event()

    def ping(self):
        """The dashboard's question: is the supervisor alive."""

    def wait_ended(self, timeout_s: float) -> bool:
        """True once run() has recorded how the job ended, False after `timeout_s`: what a
        restarted dashboard watches (it holds no ref to the run() its predecessor called),
        asking again while it gets False."""
        return self._ended.wait(timeout_s)

    def stop(self):
        """Ends the job's processes; run() records STOPPED."""
        self._stop.set()

    def run(self, resources_specified: bool = False):
        import zray
        from zray.dashboard.job_store import JobInfoStore
        from zray.util.state._transport import Connection

        store = JobInfoStore(Connection(None))
        try:
            info = store.get_info(self._submission_id)
            if info is None:
                raise RuntimeError(f"Status could not be retrieved for job {self._submission_id}.")
            if info.status != JobStatus.PENDING:
                raise RuntimeError(
                    f"Job {self._submission_id} is not in PENDING state. "
                    f"Current status is {info.status} with message {info.message}."
                )
            context = zray.get_runtime_context()
            store.put_status(
                self._submission_id, JobStatus.RUNNING, driver_node_id=context.get_node_id()
            )
            self._supervise(store, context, info.runtime_env or {})
        except Exception as exc:
            logger.exception("job %s: the entrypoint could not be run", self._submission_id)
            try:
                store.put_status(
                    self._submission_id,
                    JobStatus.FAILED,
                    message=f"{type(exc).__name__}: {exc}",
                    error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR,
                )
            except Exception:
                logger.exception("job %s: failed to record FAILED", self._submission_id)
        self._ended.set()
        zray.actor.exit_actor()

    def _driver_env(self, context, runtime_env: dict) -> dict:
        from zray._config import config

        env = os.environ.copy()
        for name in WORKER_ONLY_VARIABLES:
            env.pop(name, None)
        # The runtime env's python (a pip env's venv) is the entrypoint's `python`, and its
        # working_dir is importable from the driver as from the job's workers.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        if runtime_env.get("working_dir"):
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p
            )
        env[RAY_JOB_CONFIG_JSON_ENV_VAR] = json.dumps(
            {"runtime_env": runtime_env, "metadata": self._metadata}
        )
        env["RAY_ADDRESS"] = context.gcs_address
        env.pop("ZRAY_ADDRESS", None)  # it would win over RAY_ADDRESS
        if config.token:
            env["ZRAY_TOKEN"] = config.token
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start(self, env: dict, path: str) -> subprocess.Popen:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as log_file:
            log_file.write(
                f"Running entrypoint for job {self._submission_id}: {self._entrypoint}\n"
            )
            log_file.flush()
            child = subprocess.Popen(
                self._entrypoint,
                shell=True,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
        # Fate sharing: should this worker die, the entrypoint's whole group dies with it.
        subprocess.Popen(
            f"while kill -s 0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"kill -9 -{child.pid} 2>/dev/null",
            shell=True,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return child

    def _supervise(self, store, context, runtime_env: dict):
        from zray._private.core import runtime

        # This node's own logs directory, where its ReadLog finds the file (each node of a
        # machine has a session of its own, unlike Ray's shared session_latest).
        self._logs_dir = os.path.join(runtime.core.session_dir, "logs")
        path = log_path(self._logs_dir, self._submission_id)
        child = self._start(self._driver_env(context, runtime_env), path)
        while child.poll() is None and not self._stop.is_set():
            self._stop.wait(POLL_S)
        if child.poll() is None:  # stopped
            self._end_tree(child)
            store.put_status(self._submission_id, JobStatus.STOPPED)
            return
        code = child.returncode
        if code == 0:
            store.put_status(self._submission_id, JobStatus.SUCCEEDED, driver_exit_code=0)
            return
        tail = last_lines(path)
        if tail:
            message = (
                f"Job entrypoint command failed with exit code {code}, last available logs "
                "(truncated to 20,000 chars):\n" + tail
            )
        else:
            message = f"Job entrypoint command failed with exit code {code}. No logs available."
        store.put_status(
            self._submission_id,
            JobStatus.FAILED,
            message=message,
            driver_exit_code=code,
            error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_ERROR,
        )

    def _end_tree(self, child: subprocess.Popen):
        import psutil

        from zray._config import config

        name = config.job_stop_signal
        if name not in VALID_STOP_SIGNALS:
            logger.warning("%s not a valid stop signal. Terminating job with SIGTERM.", name)
            name = "SIGTERM"
        try:
            root = psutil.Process(child.pid)
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        self._signal(child.pid, tree, getattr(signal, name))
        deadline = time.monotonic() + config.job_stop_wait_time_s
        while time.monotonic() < deadline:
            _, alive = psutil.wait_procs(tree, timeout=0)
            if not alive and child.poll() is not None:
                return
            time.sleep(POLL_S)
        logger.warning(
            "Attempt to gracefully terminate job %s through %s has timed out after %s seconds. "
            "Job is now being force-killed with SIGKILL.",
            self._submission_id,
            name,
            config.job_stop_wait_time_s,
        )
        self._signal(child.pid, tree, signal.SIGKILL)
        child.wait(timeout=10)

    @staticmethod
    def _signal(group: int, tree: list, sig: int):
        # The session's group too: a process that left its parent (a daemonized grandchild)
        # is in no tree psutil sees, but still in the entrypoint's group.
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for process in tree:
            try:
                os.kill(process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
