"""The Jobs API's records, as Ray 2.60 has them (ray/dashboard/modules/job/common.py): a job's
status and error type, its JobInfo as stored in the head's KV (JSON, Ray's key names), and the
REST requests and replies. Shared by the SDK, the CLI, the dashboard's routes and the
supervisor actor; no I/O here."""

from __future__ import annotations

import random
import string
import time
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any, Dict, Optional, Union

# Ray's names, public in its snapshot API: the driver's JobConfig metadata carries them.
JOB_ID_METADATA_KEY = "job_submission_id"
JOB_NAME_METADATA_KEY = "job_name"
RAY_INTERNAL_NAMESPACE_PREFIX = "_ray_internal_"
JOB_ACTOR_NAME_TEMPLATE = f"{RAY_INTERNAL_NAMESPACE_PREFIX}job_actor_" + "{job_id}"
SUPERVISOR_ACTOR_RAY_NAMESPACE = "SUPERVISOR_ACTOR_RAY_NAMESPACE"
JOB_LOGS_PATH_TEMPLATE = "job-driver-{submission_id}.log"
# Where job records live in the head's KV (Ray's KV_NAMESPACE_JOB and JOB_DATA_KEY), so a
# head restarted on its persisted tables still knows every job.
KV_NAMESPACE_JOB = "job"
JOB_DATA_KEY_PREFIX = f"{RAY_INTERNAL_NAMESPACE_PREFIX}job_info_"
# The environment variable through which the supervisor hands the driver its job's
# runtime_env and metadata; zray.init() reads it as Ray's does.
RAY_JOB_CONFIG_JSON_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class JobStatus(str, Enum):
    """An enumeration for describing the status of a job."""

    #: The job has not started yet, likely waiting for the runtime_env to be set up.
    PENDING = "PENDING"
    #: The job is currently running.
    RUNNING = "RUNNING"
    #: The job was intentionally stopped by the user.
    STOPPED = "STOPPED"
    #: The job finished successfully.
    SUCCEEDED = "SUCCEEDED"
    #: The job failed.
    FAILED = "FAILED"

    def __str__(self) -> str:
        return f"{self.value}"

    def is_terminal(self) -> bool:
        """Whether this status is terminal (STOPPED, SUCCEEDED or FAILED): a job in one never
        moves to another."""
        return self.value in {"STOPPED", "SUCCEEDED", "FAILED"}


class JobErrorType(str, Enum):
    """An enumeration for describing the error type of a job."""

    RUNTIME_ENV_SETUP_FAILURE = "RUNTIME_ENV_SETUP_FAILURE"
    JOB_SUPERVISOR_ACTOR_START_TIMEOUT = "JOB_SUPERVISOR_ACTOR_START_TIMEOUT"
    JOB_SUPERVISOR_ACTOR_START_FAILURE = "JOB_SUPERVISOR_ACTOR_START_FAILURE"
    JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE = "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"
    JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE = "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"
    JOB_SUPERVISOR_ACTOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"
    JOB_ENTRYPOINT_COMMAND_START_ERROR = "JOB_ENTRYPOINT_COMMAND_START_ERROR"
    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"


def _reserves_resources(info) -> bool:
    return any(
        [
            info.entrypoint_num_cpus is not None and info.entrypoint_num_cpus > 0,
            info.entrypoint_num_gpus is not None and info.entrypoint_num_gpus > 0,
            info.entrypoint_memory is not None and info.entrypoint_memory > 0,
            info.entrypoint_resources not in [None, {}],
        ]
    )


@dataclass
class JobInfo:
    """A class for recording information associated with a job and its execution."""

    #: The status of the job.
    status: JobStatus
    #: The entrypoint command for this job.
    entrypoint: str
    #: A message describing the status in more detail.
    message: Optional[str] = None
    #: Internal error, user script error
    error_type: Optional[JobErrorType] = None
    #: The time when the job was started.  A Unix timestamp in ms.
    start_time: Optional[int] = None
    #: The time when the job moved into a terminal state.  A Unix timestamp in ms.
    end_time: Optional[int] = None
    #: Arbitrary user-provided metadata for the job.
    metadata: Optional[Dict[str, str]] = None
    #: The runtime environment for the job.
    runtime_env: Optional[Dict[str, Any]] = None
    #: The quantity of CPU cores to reserve for the entrypoint command.
    entrypoint_num_cpus: Optional[Union[int, float]] = None
    #: The number of GPUs to reserve for the entrypoint command.
    entrypoint_num_gpus: Optional[Union[int, float]] = None
    #: The amount of memory for workers requesting memory for the entrypoint command.
    entrypoint_memory: Optional[int] = None
    #: The quantity of various custom resources to reserve for the entrypoint command.
    entrypoint_resources: Optional[Dict[str, float]] = None
    #: Driver agent http address
    driver_agent_http_address: Optional[str] = None
    #: The node id that driver running on.
    driver_node_id: Optional[str] = None
    #: The driver process exit code after the driver executed.
    driver_exit_code: Optional[int] = None

    def __post_init__(self):
        if isinstance(self.status, str):
            self.status = JobStatus(self.status)
        if self.message is None:
            if self.status == JobStatus.PENDING:
                self.message = "Job has not started yet."
                if _reserves_resources(self):
                    self.message += (
                        " It may be waiting for resources "
                        "(CPUs, GPUs, memory, custom resources) to become available."
                    )
                if self.runtime_env not in [None, {}]:
                    self.message += " It may be waiting for the runtime environment to be set up."
            elif self.status == JobStatus.RUNNING:
                self.message = "Job is currently running."
            elif self.status == JobStatus.STOPPED:
                self.message = "Job was intentionally stopped."
            elif self.status == JobStatus.SUCCEEDED:
                self.message = "Job finished successfully."
            elif self.status == JobStatus.FAILED:
                self.message = "Job failed."

    def to_json(self) -> Dict[str, Any]:
        """A JSON-serializable dict; runtime_env goes as a JSON string, `runtime_env_json`."""
        import json

        out = asdict(self)
        out["status"] = str(out["status"])
        out["error_type"] = out["error_type"].value if out.get("error_type") else None
        runtime_env = out.pop("runtime_env")
        if runtime_env is not None:
            out["runtime_env_json"] = json.dumps(runtime_env)
        return out

    @classmethod
    def from_json(cls, json_dict: Dict[str, Any]) -> "JobInfo":
        import json

        json_dict = dict(json_dict)
        json_dict["status"] = JobStatus(json_dict["status"])
        json_dict["error_type"] = (
            JobErrorType(json_dict["error_type"]) if json_dict.get("error_type") else None
        )
        if "runtime_env_json" in json_dict:
            raw = json_dict.pop("runtime_env_json")
            if raw is not None:
                json_dict["runtime_env"] = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json_dict.items() if k in known})

    def with_status(
        self,
        status: JobStatus,
        message: Optional[str] = None,
        driver_exit_code: Optional[int] = None,
        error_type: Optional[JobErrorType] = None,
        **more,
    ) -> "JobInfo":
        """This record moved to `status` (Ray's put_status): end_time set for a terminal one;
        moving out of a terminal status is an error."""
        if status != self.status and self.status.is_terminal():
            raise RuntimeError(
                f"Attempted to change job status from a terminal state: {self.status} -> {status}"
            )
        new = replace(
            self,
            status=status,
            message=message,
            driver_exit_code=driver_exit_code,
            error_type=error_type,
            **more,
        )
        if status.is_terminal():
            new.end_time = int(time.time() * 1000)
        return new


def job_data_key(submission_id: str) -> bytes:
    return f"{JOB_DATA_KEY_PREFIX}{submission_id}".encode()


def generate_job_id() -> str:
    """A submission id of the form 'raysubmit_XYZ' (Ray's: no confusable characters)."""
    rand = random.SystemRandom()
    possible = sorted(set(string.ascii_letters + string.digits) - {"I", "l", "o", "O", "0"})
    return "raysubmit_" + "".join(rand.choices(possible, k=16))


def _check_str_dict(name: str, value, value_types, value_words: str):
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {type(value)}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise TypeError(f"{name} keys must be strings, got {type(k)}")
        if value_types is not None and not isinstance(v, value_types):
            raise TypeError(f"{name} values must be {value_words}, got {type(v)}")


@dataclass
class JobSubmitRequest:
    """The body of POST /api/jobs/ (Ray's field names and checks)."""

    entrypoint: str
    submission_id: Optional[str] = None
    job_id: Optional[str] = None  # deprecated by Ray: submission_id
    runtime_env: Optional[Dict[str, Any]] = None
    metadata: Optional[Dict[str, str]] = None
    entrypoint_num_cpus: Optional[Union[int, float]] = None
    entrypoint_num_gpus: Optional[Union[int, float]] = None
    entrypoint_memory: Optional[int] = None
    entrypoint_resources: Optional[Dict[str, float]] = None
    entrypoint_label_selector: Optional[Dict[str, str]] = None

    def __post_init__(self):
        if not isinstance(self.entrypoint, str):
            raise TypeError(f"entrypoint must be a string, got {type(self.entrypoint)}")
        for name in ("submission_id", "job_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string if provided, got {type(value)}")
        _check_str_dict("runtime_env", self.runtime_env, None, "")
        _check_str_dict("metadata", self.metadata, str, "strings")
        for name in ("entrypoint_num_cpus", "entrypoint_num_gpus"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise TypeError(f"{name} must be a number, got {type(value)}")
        if self.entrypoint_memory is not None and not isinstance(self.entrypoint_memory, int):
            raise TypeError(
                f"entrypoint_memory must be an integer, got {type(self.entrypoint_memory)}"
            )
        _check_str_dict("entrypoint_resources", self.entrypoint_resources, (int, float), "numbers")
        _check_str_dict("entrypoint_label_selector", self.entrypoint_label_selector, str, "strings")


@dataclass
class JobSubmitResponse:
    job_id: str  # deprecated by Ray: submission_id
    submission_id: str


@dataclass
class JobStopResponse:
    stopped: bool


@dataclass
class JobDeleteResponse:
    deleted: bool


@dataclass
class JobLogsResponse:
    logs: str
