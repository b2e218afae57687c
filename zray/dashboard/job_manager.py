"""The Jobs API's work in the dashboard process (Ray's JobManager): a submitted job gets its
record in the head's KV (PENDING), then a detached supervisor actor (job_supervisor.py) in the
job's runtime env, on the head node unless the job reserves resources, that runs the
entrypoint and records every later status.

Creating actors needs a driver: the dashboard joins the cluster as one, in Ray's internal
namespace `_ray_internal_dashboard` (hidden from job lists), at the first job it is given. A
monitor thread watches each supervisor's `run` call (a restarted dashboard, which holds no such
call, each live supervisor's `wait_ended`): a supervisor that dies, cannot be
scheduled or whose runtime env fails to set up marks its job FAILED with the reason, and a job
PENDING longer than `job_start_timeout_seconds` fails as in Ray. Calls block; the routes run
them on threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from zray._private.common import kept_job_logs
from zray.dashboard.job_store import JobInfoStore
from zray.job_submission.common import (
    JOB_ACTOR_NAME_TEMPLATE,
    SUPERVISOR_ACTOR_RAY_NAMESPACE,
    JobErrorType,
    JobInfo,
    JobStatus,
    JobSubmitRequest,
    _reserves_resources,
    generate_job_id,
)

logger = logging.getLogger(__name__)

DASHBOARD_NAMESPACE = "_ray_internal_dashboard"
MONITOR_PERIOD_S = 1.0
# The head's death reason for an actor whose runtime env failed (head/service.py).
RUNTIME_ENV_DEATH = "its runtime env failed to set up:"
# run, stop, ping and wait_ended of one supervisor may all be in flight at once.
SUPERVISOR_CONCURRENCY = 4
# How long one wait_ended call of a restarted dashboard blocks before it is asked again.
REWATCH_S = 30.0
# How long a job's deletion waits for the nodes to remove the job's kept logs.
FORGET_TIMEOUT_S = 10.0


class JobManager:
    def __init__(self, connection, head_address: str, session_dir: str):
        self._store = JobInfoStore(connection)
        self._head_address = head_address
        self._logs_dir = os.path.join(session_dir, "logs")
        self._lock = threading.Lock()
        self._monitored: dict = {}  # run() ref -> submission id
        # wait_ended() ref -> (submission id, supervisor): jobs a previous dashboard started
        self._rewatched: dict = {}
        self._monitor = None
        self._closed = threading.Event()

    @property
    def store(self) -> JobInfoStore:
        return self._store

    def _driver(self):
        import zray

        with self._lock:
            if not zray.is_initialized():
                zray.init(
                    address=self._head_address,
                    namespace=DASHBOARD_NAMESPACE,
                    log_to_driver=False,
                    configure_logging=False,
                )
            if self._monitor is None:
                self._monitor = threading.Thread(
                    target=self._watch, name="zray-job-monitor", daemon=True
                )
                self._monitor.start()
        return zray

    def close(self):
        self._closed.set()
        import zray

        if zray.is_initialized():
            zray.shutdown()

    # ------------------------------------------------------------------ submit

    def submit(self, req: JobSubmitRequest) -> str:
        from zray._private.common import runtime_env as RE

        if req.entrypoint_label_selector:
            raise ValueError("entrypoint_label_selector is not supported by zray")
        runtime_env = req.runtime_env or {}
        RE.parse(runtime_env)  # typed error (400) before anything is recorded
        submission_id = req.submission_id or req.job_id or generate_job_id()
        if not submission_id or "/" in submission_id or "\0" in submission_id:
            # It names the job's log file in the logs directory, and nothing outside it.
            raise ValueError(f"submission_id must be a file name, without '/': {submission_id!r}")
        info = JobInfo(
            entrypoint=req.entrypoint,
            status=JobStatus.PENDING,
            start_time=int(time.time() * 1000),
            metadata=req.metadata,
            runtime_env=req.runtime_env,
            entrypoint_num_cpus=req.entrypoint_num_cpus or 0,
            entrypoint_num_gpus=req.entrypoint_num_gpus or 0,
            entrypoint_memory=req.entrypoint_memory or 0,
            entrypoint_resources=req.entrypoint_resources,
        )
        if not self._store.put_info(submission_id, info, overwrite=False):
            raise ValueError(
                f"Job with submission_id {submission_id} already exists. "
                "Please use a different submission_id."
            )
        resources_specified = any(
            [
                info.entrypoint_num_cpus > 0,
                info.entrypoint_num_gpus > 0,
                info.entrypoint_memory > 0,
                info.entrypoint_resources not in (None, {}),
            ]
        )
        try:
            zray = self._driver()
            from zray.dashboard.job_supervisor import JobSupervisor

            options = dict(
                lifetime="detached",
                name=JOB_ACTOR_NAME_TEMPLATE.format(job_id=submission_id),
                namespace=SUPERVISOR_ACTOR_RAY_NAMESPACE,
                num_cpus=info.entrypoint_num_cpus,
                num_gpus=info.entrypoint_num_gpus,
                max_concurrency=SUPERVISOR_CONCURRENCY,
                runtime_env=runtime_env or None,
            )
            if info.entrypoint_memory:
                options["memory"] = info.entrypoint_memory
            if info.entrypoint_resources:
                options["resources"] = info.entrypoint_resources
            from zray._config import config

            if not resources_specified and not config.job_allow_driver_on_worker_nodes:
                # As Ray: the driver runs on the head node.
                from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    self._head_node_id(), soft=False
                )
            supervisor = (
                zray.remote(JobSupervisor)
                .options(**options)
                .remote(submission_id, req.entrypoint, req.metadata or {}, self._logs_dir)
            )
            run = supervisor.run.remote(resources_specified=resources_specified)
            with self._lock:
                self._monitored[run] = submission_id
        except Exception as exc:
            logger.exception("job %s: the supervisor could not be started", submission_id)
            self._fail(
                submission_id,
                f"Failed to start supervisor actor {submission_id}: '{exc}'",
                JobErrorType.JOB_SUPERVISOR_ACTOR_START_FAILURE,
            )
        return submission_id

    def _head_node_id(self) -> str:
        """The head node's id (the dashboard's driver may be attached to another node of
        this machine)."""
        from zray._private.wire import protocol as P

        nodes = self._store.connection.ask_head(P.GetNodes(False), 30.0).nodes
        return next(n["node_id"].hex() for n in nodes if n["is_head"])

    def _fail(self, submission_id: str, message: str, error_type: JobErrorType):
        try:
            self._store.put_status(
                submission_id, JobStatus.FAILED, message=message, error_type=error_type
            )
        except RuntimeError:  # it ended meanwhile: its own ending stands
            return
        name = f"job-driver-{submission_id}.log"
        path = os.path.join(self._logs_dir, name)
        if not os.path.exists(path):  # the log of a session now gone, if it ran here
            path = kept_job_logs.find(os.path.dirname(self._logs_dir), name) or path
        try:
            with open(path, "a") as f:
                f.write(message + "\n")
        except OSError:
            pass

    # ------------------------------------------------------------------ stop, delete

    def _supervisor(self, submission_id: str):
        zray = self._driver()
        try:
            return zray.get_actor(
                JOB_ACTOR_NAME_TEMPLATE.format(job_id=submission_id),
                namespace=SUPERVISOR_ACTOR_RAY_NAMESPACE,
            )
        except ValueError:
            return None

    def stop(self, submission_id: str) -> bool:
        """True if the job was running (its supervisor lives and was told to stop)."""
        supervisor = self._supervisor(submission_id)
        if supervisor is None:
            return False
        supervisor.stop.remote()
        return True

    def delete(self, submission_id: str) -> bool:
        info = self._store.get_info(submission_id)
        status = info.status if info is not None else None
        if status is None or not status.is_terminal():
            raise RuntimeError(
                f"Attempted to delete job '{submission_id}', "
                f"but it is in a non-terminal state {status}."
            )
        deleted = self._store.delete_info(submission_id) or True
        self._forget_logs(submission_id)
        return deleted

    def _forget_logs(self, submission_id: str) -> None:
        """Every live node removes the copies of the job's log kept from its machine's
        earlier sessions (common/kept_job_logs.py); best effort, as the record is gone."""
        from zray._private.wire import protocol as P

        connection = self._store.connection
        try:
            nodes = connection.ask_head(P.GetNodes(False), FORGET_TIMEOUT_S).nodes
        except Exception:  # the head is away: the kept logs' cap removes them in time
            logger.warning("job %s: its kept logs were not removed", submission_id)
            return
        alive = [n["address"] for n in nodes]  # the live ones only
        replies = connection.gather(
            [(address, P.ForgetJobLog(submission_id)) for address in alive], FORGET_TIMEOUT_S
        )
        for address, reply in zip(alive, replies):
            if not isinstance(reply, P.Ok):
                logger.warning(
                    "job %s: the node at %s did not remove its kept logs: %s",
                    submission_id,
                    address,
                    reply,
                )

    # ------------------------------------------------------------------ recovery

    def recover(self) -> int:
        """At the dashboard's start (a head restarted on its state, or a dashboard restarted):
        a job left PENDING or RUNNING whose supervisor no longer exists is FAILED, as Ray's
        JobManager does on recovery (a head's restart ends its node's workers, supervisors
        among them); one whose supervisor lives (only the dashboard restarted) is watched
        again. Joins the cluster as a driver only if such a job exists. Returns the
        number of jobs failed."""
        from zray._private.wire import protocol as P

        rows = self._store.connection.ask_head(P.GetStateTable("jobs"), 30.0).rows
        unfinished = [
            row["submission_id"]
            for row in rows
            if row["type"] == "SUBMISSION" and not JobStatus(row["status"]).is_terminal()
        ]
        failed = 0
        for submission_id in unfinished:
            supervisor = self._supervisor(submission_id)
            if supervisor is not None:  # a dashboard restarted: watch its jobs as it did
                self._rewatch(submission_id, supervisor)
            else:
                self._fail(
                    submission_id,
                    "Unexpected error occurred: failed to get job supervisor.",
                    JobErrorType.JOB_SUPERVISOR_ACTOR_START_FAILURE,
                )
                failed += 1
        return failed

    # ------------------------------------------------------------------ monitoring

    def _rewatch(self, submission_id: str, supervisor):
        ref = supervisor.wait_ended.remote(REWATCH_S)
        with self._lock:
            self._rewatched[ref] = (submission_id, supervisor)

    def _watch(self):
        import zray

        while not self._closed.is_set():
            with self._lock:
                refs = list(self._monitored) + list(self._rewatched)
            if not refs:
                self._closed.wait(MONITOR_PERIOD_S)
                continue
            try:
                done, _ = zray.wait(refs, num_returns=len(refs), timeout=MONITOR_PERIOD_S)
            except Exception:
                if self._closed.is_set():
                    return
                logger.exception("job monitor: wait failed")
                self._closed.wait(MONITOR_PERIOD_S)
                continue
            for ref in done:
                with self._lock:
                    submission_id = self._monitored.pop(ref, None)
                    rewatched = self._rewatched.pop(ref, None)
                if rewatched is not None:
                    submission_id, supervisor = rewatched
                    if self._still_running(ref):
                        self._rewatch(submission_id, supervisor)
                        continue
                self._ended(submission_id, ref)
            self._check_start_timeouts()

    @staticmethod
    def _still_running(wait_ref) -> bool:
        """Whether a finished wait_ended() call only timed out (False), its job going on."""
        import zray

        try:
            return zray.get(wait_ref, timeout=10) is False
        except Exception:  # the supervisor died: _ended says how
            return False

    def _ended(self, submission_id: str, ref):
        """The supervisor's run() returned or failed: a job not in a terminal status by now
        lost its supervisor."""
        import zray
        from zray import exceptions as E

        try:
            zray.get(ref, timeout=10)
            error = None
        except Exception as exc:
            error = exc
        info = self._store.get_info(submission_id)
        if info is None or info.status.is_terminal():
            return
        env_failed = str(error).partition(RUNTIME_ENV_DEATH)[2].strip()
        if isinstance(error, E.RuntimeEnvSetupError):
            message = f"runtime_env setup failed: {error}"
            kind = JobErrorType.RUNTIME_ENV_SETUP_FAILURE
        elif isinstance(error, E.RayActorError) and env_failed:
            # zray reports an actor whose runtime env failed as dead with this reason, where
            # Ray raises RuntimeEnvSetupError: the job's error is Ray's either way.
            message = f"runtime_env setup failed: {env_failed}"
            kind = JobErrorType.RUNTIME_ENV_SETUP_FAILURE
        elif isinstance(error, E.ActorUnschedulableError):
            message = f"Job supervisor actor could not be scheduled: {error}"
            kind = JobErrorType.JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE
        elif isinstance(error, E.RayActorError):
            message, kind = (
                f"Job supervisor actor died: {error}",
                JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
            )
        else:
            message = f"Unexpected error occurred: {error}"
            kind = JobErrorType.JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE
        self._fail(submission_id, message, kind)

    def _check_start_timeouts(self):
        from zray._config import config

        timeout = config.job_start_timeout_seconds
        with self._lock:
            watched = list(self._monitored.values())
            watched += [submission_id for submission_id, _ in self._rewatched.values()]
        for submission_id in watched:
            info = self._store.get_info(submission_id)
            if info is None or info.status != JobStatus.PENDING:
                continue
            if time.time() - (info.start_time or 0) / 1000 <= timeout:
                continue
            message = (
                f"Job supervisor actor failed to start within {timeout} seconds. This timeout "
                "can be configured by setting the environment variable "
                "RAY_JOB_START_TIMEOUT_SECONDS."
            )
            if _reserves_resources(info):
                message += (
                    " This may be because the job entrypoint's specified resources "
                    "(entrypoint_num_cpus, entrypoint_num_gpus, entrypoint_resources, "
                    "entrypoint_memory)aren't available on the cluster. Try checking the "
                    "cluster's available resources with `zray status` and specifying fewer "
                    "resources for the job entrypoint."
                )
            self._fail(submission_id, message, JobErrorType.JOB_SUPERVISOR_ACTOR_START_TIMEOUT)
            supervisor = self._supervisor(submission_id)
            if supervisor is not None:
                import zray

                zray.kill(supervisor, no_restart=True)
