"""The state API's schemas with Ray 2.60's names, fields and column roles
(`ray.util.state.common`): which fields are filterable, and which appear only with `detail`.

Results are dataclasses that also read like dicts (`actor["state"]`, `actor.get("pid")`), as
Ray's are.
"""

from __future__ import annotations

import datetime
import warnings
from dataclasses import asdict, dataclass, field, fields
from enum import Enum, unique
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from zray._private.common.state_filters import convert as _convert
from zray._private.common.state_filters import matches as _matches

DEFAULT_RPC_TIMEOUT = 30
DEFAULT_LIMIT = 100
# Ray's RAY_MAX_LIMIT_FROM_API_SERVER: the largest `limit` a list call accepts.
MAX_LIMIT = 10 * 1000

SupportedFilterType = Union[str, bool, int, float]
PredicateType = str  # "=" or "!="


@unique
class StateResource(Enum):
    ACTORS = "actors"
    JOBS = "jobs"
    PLACEMENT_GROUPS = "placement_groups"
    NODES = "nodes"
    WORKERS = "workers"
    TASKS = "tasks"
    OBJECTS = "objects"
    RUNTIME_ENVS = "runtime_envs"
    CLUSTER_EVENTS = "cluster_events"


@unique
class SummaryResource(Enum):
    ACTORS = "actors"
    TASKS = "tasks"
    OBJECTS = "objects"


class Humanify:
    """Ray's formatting of some columns for people (the CLI's table and yaml output)."""

    @staticmethod
    def timestamp(x: float) -> str:
        return str(datetime.datetime.fromtimestamp(x / 1000))

    @staticmethod
    def memory(x: int) -> str:
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if x >= scale:
                return f"{x / scale:.3f} {unit}"
        return f"{x:.3f} B"

    @staticmethod
    def events(events: List[dict]) -> List[dict]:
        for event in events:
            if "created_ms" in event:
                event["created_ms"] = Humanify.timestamp(event["created_ms"])
        return events

    @staticmethod
    def node_resources(resources: dict) -> dict:
        return {k: Humanify.memory(v) if "memory" in k else v for k, v in resources.items()}


def state_column(*, filterable: bool, detail: bool = False, format_fn=None, **kwargs: Any):
    """A dataclass field with its column roles; detail-only columns default to None."""
    if detail and "default" not in kwargs:
        kwargs["default"] = None
    kwargs["metadata"] = {"detail": detail, "filterable": filterable, "format_fn": format_fn}
    return field(**kwargs)


class StateSchema:
    """Column roles of a state dataclass, and dict-like access to its values."""

    @classmethod
    def list_columns(cls, detail: bool = True) -> List[str]:
        return [
            f.name
            for f in fields(cls)  # type: ignore[arg-type]
            if detail or not f.metadata.get("detail", False)
        ]

    @classmethod
    def columns(cls) -> Set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def filterable_columns(cls) -> Set[str]:
        return {
            f.name
            for f in fields(cls)  # type: ignore[arg-type]
            if f.metadata.get("filterable", False)
        }

    @classmethod
    def base_columns(cls) -> Set[str]:
        return set(cls.list_columns(detail=False))

    @classmethod
    def detail_columns(cls) -> Set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def column_type(cls, name: str) -> str:
        """The column's annotation as written ('int', 'Optional[int]', ...)."""
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == name:
                return str(f.type)
        return ""

    @classmethod
    def humanify(cls, state: dict) -> dict:
        for f in fields(cls):  # type: ignore[arg-type]
            fn = f.metadata.get("format_fn")
            if fn is not None and state.get(f.name) is not None:
                state[f.name] = fn(state[f.name])
        return state

    def asdict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, value):
        setattr(self, key, value)

    def get(self, key, default=None):
        return getattr(self, key, default)


@dataclass
class ActorState(StateSchema):
    actor_id: str = state_column(filterable=True)
    class_name: str = state_column(filterable=True)
    # DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, RESTARTING or DEAD
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    name: Optional[str] = state_column(filterable=True)
    node_id: Optional[str] = state_column(filterable=True)
    pid: Optional[int] = state_column(filterable=True)
    ray_namespace: Optional[str] = state_column(filterable=True)
    serialized_runtime_env: Optional[str] = state_column(filterable=False, detail=True)
    required_resources: Optional[dict] = state_column(filterable=False, detail=True)
    death_cause: Optional[dict] = state_column(filterable=False, detail=True)
    is_detached: Optional[bool] = state_column(filterable=False, detail=True)
    placement_group_id: Optional[str] = state_column(detail=True, filterable=True)
    repr_name: Optional[str] = state_column(detail=True, filterable=True)
    num_restarts: int = state_column(filterable=False, detail=True)
    num_restarts_due_to_lineage_reconstruction: int = state_column(filterable=False, detail=True)
    num_restarts_due_to_node_preemption: int = state_column(filterable=False, detail=True)
    call_site: Optional[str] = state_column(detail=True, filterable=False)
    label_selector: Optional[dict] = state_column(detail=True, filterable=False)
    fallback_strategy: Optional[dict] = state_column(detail=True, filterable=False)


@dataclass
class PlacementGroupState(StateSchema):
    placement_group_id: str = state_column(filterable=True)
    name: str = state_column(filterable=True)
    creator_job_id: str = state_column(filterable=True)
    # PENDING, PREPARED, CREATED, REMOVED or RESCHEDULING
    state: str = state_column(filterable=True)
    bundles: Optional[List[dict]] = state_column(filterable=False, detail=True)
    is_detached: Optional[bool] = state_column(filterable=True, detail=True)
    stats: Optional[dict] = state_column(filterable=False, detail=True)
    topology_strategy: Optional[dict] = state_column(filterable=False, detail=True)
    topology_assignments: Optional[dict] = state_column(filterable=False, detail=True)


@dataclass
class NodeState(StateSchema):
    node_id: str = state_column(filterable=True)
    node_ip: str = state_column(filterable=True)
    is_head_node: bool = state_column(filterable=True)
    state: str = state_column(filterable=True)  # ALIVE or DEAD
    state_message: Optional[str] = state_column(filterable=False)
    node_name: str = state_column(filterable=True)
    resources_total: dict = state_column(filterable=False, format_fn=Humanify.node_resources)
    labels: dict = state_column(filterable=False)
    start_time_ms: Optional[int] = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    end_time_ms: Optional[int] = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )


@dataclass
class DriverInfo:
    id: str
    node_ip_address: str
    pid: str

    def dict(self) -> dict:
        return asdict(self)


_JOB_BASE_COLUMNS = [
    "job_id",
    "submission_id",
    "entrypoint",
    "type",
    "status",
    "message",
    "error_type",
    "driver_info",
]


@dataclass(kw_only=True)
class JobState(StateSchema):
    """Ray's JobState is its Jobs API's JobDetails; zray has driver jobs only (no Jobs API)."""

    type: str  # DRIVER (SUBMISSION jobs come from Ray's Jobs API)
    job_id: Optional[str] = None
    submission_id: Optional[str] = None
    driver_info: Optional[DriverInfo] = None
    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED
    entrypoint: str
    message: Optional[str] = None
    error_type: Optional[str] = None
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    metadata: Optional[Dict[str, str]] = None
    runtime_env: Optional[Dict[str, Any]] = None
    driver_agent_http_address: Optional[str] = None
    driver_node_id: Optional[str] = None
    driver_exit_code: Optional[int] = None

    def __post_init__(self):
        if isinstance(self.driver_info, dict):
            self.driver_info = DriverInfo(**self.driver_info)

    @classmethod
    def filterable_columns(cls) -> Set[str]:
        return {"job_id", "type", "status", "submission_id"}

    @classmethod
    def list_columns(cls, detail: bool = True) -> List[str]:
        return [f.name for f in fields(cls)] if detail else list(_JOB_BASE_COLUMNS)

    @classmethod
    def humanify(cls, state: dict) -> dict:
        return state

    def dict(self) -> dict:
        return asdict(self)


@dataclass
class WorkerState(StateSchema):
    worker_id: str = state_column(filterable=True)
    is_alive: bool = state_column(filterable=True)
    worker_type: str = state_column(filterable=True)  # WORKER, DRIVER, SPILL_/RESTORE_WORKER
    exit_type: Optional[str] = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    exit_detail: Optional[str] = state_column(detail=True, filterable=False)
    worker_launch_time_ms: Optional[int] = state_column(
        filterable=False, detail=True, format_fn=lambda x: "" if x == -1 else Humanify.timestamp(x)
    )
    worker_launched_time_ms: Optional[int] = state_column(
        filterable=False, detail=True, format_fn=lambda x: "" if x == -1 else Humanify.timestamp(x)
    )
    start_time_ms: Optional[int] = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    end_time_ms: Optional[int] = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    debugger_port: Optional[int] = state_column(filterable=True, detail=True)
    num_paused_threads: Optional[int] = state_column(filterable=True, detail=True)


@dataclass
class TaskState(StateSchema):
    """One attempt of a task, from the task events the head keeps (Ray's TaskState)."""

    task_id: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    name: str = state_column(filterable=True)
    # PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER, RUNNING, FINISHED,
    # FAILED, ... (Ray's TaskStatus); the highest one an event reported
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    actor_id: Optional[str] = state_column(filterable=True)
    type: str = state_column(filterable=True)  # NORMAL_TASK, ACTOR_CREATION_TASK, ACTOR_TASK
    func_or_class_name: str = state_column(filterable=True)
    parent_task_id: str = state_column(filterable=True)
    node_id: Optional[str] = state_column(filterable=True)
    worker_id: Optional[str] = state_column(filterable=True)
    worker_pid: Optional[int] = state_column(filterable=True)
    error_type: Optional[str] = state_column(filterable=True)
    language: Optional[str] = state_column(detail=True, filterable=True)
    required_resources: Optional[dict] = state_column(detail=True, filterable=False)
    runtime_env_info: Optional[dict] = state_column(detail=True, filterable=False)
    placement_group_id: Optional[str] = state_column(detail=True, filterable=True)
    events: Optional[List[dict]] = state_column(
        detail=True, filterable=False, format_fn=Humanify.events
    )
    profiling_data: Optional[dict] = state_column(detail=True, filterable=False)
    creation_time_ms: Optional[int] = state_column(
        detail=True, filterable=False, format_fn=Humanify.timestamp
    )
    start_time_ms: Optional[int] = state_column(
        detail=True, filterable=False, format_fn=Humanify.timestamp
    )
    end_time_ms: Optional[int] = state_column(
        detail=True, filterable=False, format_fn=Humanify.timestamp
    )
    task_log_info: Optional[dict] = state_column(detail=True, filterable=False)
    error_message: Optional[str] = state_column(detail=True, filterable=False)
    is_debugger_paused: Optional[bool] = state_column(detail=True, filterable=True)
    call_site: Optional[str] = state_column(detail=True, filterable=False)
    label_selector: Optional[dict] = state_column(detail=True, filterable=False)
    fallback_strategy: Optional[dict] = state_column(detail=True, filterable=False)


@dataclass
class ObjectState(StateSchema):
    object_id: str = state_column(filterable=True)
    object_size: int = state_column(filterable=True, format_fn=Humanify.memory)
    task_status: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    reference_type: str = state_column(filterable=True)
    call_site: str = state_column(filterable=True)
    type: str = state_column(filterable=True)  # DRIVER or WORKER: the process holding it
    pid: int = state_column(filterable=True)
    ip: str = state_column(filterable=True)


SCHEMAS: Dict[StateResource, Any] = {
    StateResource.ACTORS: ActorState,
    StateResource.JOBS: JobState,
    StateResource.NODES: NodeState,
    StateResource.OBJECTS: ObjectState,
    StateResource.PLACEMENT_GROUPS: PlacementGroupState,
    StateResource.TASKS: TaskState,
    StateResource.WORKERS: WorkerState,
}


def resource_to_schema(resource: StateResource):
    return SCHEMAS[resource]


# ---------------------------------------------------------------------------- options


@dataclass
class ListApiOptions:
    limit: int = DEFAULT_LIMIT
    timeout: int = DEFAULT_RPC_TIMEOUT
    detail: bool = False
    filters: Optional[List[Tuple[str, PredicateType, SupportedFilterType]]] = field(
        default_factory=list
    )
    exclude_driver: bool = True

    def __post_init__(self):
        if self.filters is None:
            self.filters = []
        for filter in self.filters:
            _, predicate, _ = filter  # Ray's unpacking error for a filter of another length
            if predicate != "=" and predicate != "!=":
                raise ValueError(
                    f"Unsupported filter predicate {predicate} is given. "
                    "Available predicates: =, !=."
                )

    def has_conflicting_filters(self) -> bool:
        """Two '=' filters on one key with different values: nothing can match."""
        equal: dict = {}
        for key, predicate, value in self.filters or []:
            if predicate != "=":
                continue
            if key in equal and equal[key] != value:
                warnings.warn(
                    "There are multiple '=' filters with the same "
                    f"key '{key}' but different values"
                    f"'{equal[key]}' & '{value}'. "
                    "Empty result set will be returned",
                    UserWarning,
                    stacklevel=5,
                )
                return True
            equal.setdefault(key, value)
        return False


# ---------------------------------------------------------------------------- filtering


_TYPE_HINTS = {
    "int": (int, "a int", "an integer filter `--filter {col} [int]`"),
    "float": (float, "a float", "an integer filter `--filter {col} [float]`"),
    "bool": (
        bool,
        "a boolean",
        "`--filter {col} [True|true|1]` for True or `--filter {col} [False|false|0]` for False.",
    ),
}


def typed_filters(filters: list, schema) -> list:
    """Filter values arrive as text, as they do over Ray's HTTP API; columns declared int, float
    or bool convert them first (Ray's errors for values that do not convert)."""
    out = []
    for col, predicate, value in filters:
        value = str(value)
        hint = _TYPE_HINTS.get(schema.column_type(col))
        if hint is not None:
            to, kind, advice = hint
            try:
                value = _convert(value, to)
            except ValueError:
                raise ValueError(
                    f"Invalid filter `--filter {col} {value}` for {kind} type column. "
                    f"Please provide {advice.format(col=col)}"
                ) from None
        out.append((col, predicate, value))
    return out


def do_filter(data: list, filters: list, schema, detail: bool) -> list:
    """The rows that pass every filter, with the schema's columns only (None where missing)."""
    filters = typed_filters(filters, schema)
    filterable = schema.filterable_columns()
    columns = schema.list_columns(detail=detail)
    result = []
    for datum in data:
        keep = True
        for col, predicate, value in filters:
            col = col.lower()
            if col not in filterable:
                raise ValueError(
                    f"The given filter column {col} is not supported. "
                    "Enter filters with –-filter key=value "
                    "or –-filter key!=value "
                    f"Supported filter columns: {filterable}"
                )
            if not _matches(datum, col, predicate, value):
                keep = False
                break
        if keep:
            result.append({c: datum.get(c) for c in columns})
    return result
