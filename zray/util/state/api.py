"""`zray.util.state`: Ray's state API (`ray.util.state`) over zray's own tables.

The head answers for actors, nodes, jobs and placement groups; each node for its workers and, as
for `zray memory`, for the objects its processes hold. Filtering, sorting, limits and dropping
detail columns happen here, in the asker, as Ray's API server does them, with Ray's errors.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

from zray._private.wire import protocol as P
from zray.util.state.common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    MAX_LIMIT,
    ActorState,
    JobState,
    ListApiOptions,
    NodeState,
    ObjectState,
    PlacementGroupState,
    PredicateType,
    StateResource,
    SummaryResource,
    SupportedFilterType,
    TaskState,
    WorkerState,
    do_filter,
    resource_to_schema,
    typed_filters,
)
from zray.util.state import _transport
from zray.util.state.exception import RayStateApiException, ServerUnavailable

Filters = Optional[List[Tuple[str, PredicateType, SupportedFilterType]]]

_SORT_KEY = {
    StateResource.ACTORS: "actor_id",
    StateResource.NODES: "node_id",
    StateResource.PLACEMENT_GROUPS: "placement_group_id",
    StateResource.WORKERS: "worker_id",
    StateResource.JOBS: "job_id",
    StateResource.OBJECTS: "object_id",
    StateResource.TASKS: "task_id",
}
_HEAD_TABLES = {
    StateResource.ACTORS,
    StateResource.NODES,
    StateResource.JOBS,
    StateResource.PLACEMENT_GROUPS,
}
_ID_KEY = {
    StateResource.NODES: "node_id",
    StateResource.ACTORS: "actor_id",
    StateResource.PLACEMENT_GROUPS: "placement_group_id",
    StateResource.WORKERS: "worker_id",
    StateResource.TASKS: "task_id",
    StateResource.OBJECTS: "object_id",
    StateResource.JOBS: "submission_id",
}
# Ray's reference types, strongest first, for zray's reasons a process holds an object.
_REFERENCE_ORDER = (
    "PINNED_IN_MEMORY",
    "USED_BY_PENDING_TASK",
    "LOCAL_REFERENCE",
    "CAPTURED_IN_OBJECT",
)
_QUERY_FAILURE = (
    "Failed to query data from {type}. Queried {total} {type} and {failures} "
    "{type} failed to reply. It is due to (1) {type} is unexpectedly failed. "
    "(2) {type} is overloaded. (3) There's an unexpected network issue. Please "
    "check the {log} to find the root cause."
)


def _server_error(message: str) -> RayStateApiException:
    """What Ray's client raises when its API server rejects a request (HTTP 400)."""
    return RayStateApiException(
        f"API server internal error. See dashboard.log file for more details. Error: {message}"
    )


class _Response:
    def __init__(
        self,
        rows: list,
        partial_failure_warning: str = "",
        warnings_: Optional[list] = None,
        dropped: int = 0,
    ):
        self.rows = rows
        self.num_after_truncation = len(rows)
        # Ray's total: what the source had, with what it dropped (task events evicted).
        self.total = len(rows) + dropped
        self.partial_failure_warning = partial_failure_warning
        self.warnings = warnings_ or []


class StateApiClient:
    """Ray's client for the state API; `address` as in Ray: None (this process's cluster, else
    the one this machine knows), "auto" or "host:port" of the head."""

    def __init__(self, address: Optional[str] = None, cookies=None, headers=None):
        self._connection = _transport.Connection(address)

    @classmethod
    def _over(cls, connection) -> "StateApiClient":
        """A client asking through `connection` (the dashboard's long-lived one)."""
        client = cls.__new__(cls)
        client._connection = connection
        return client

    # ------------------------------------------------------------------ Ray's methods

    def list(
        self,
        resource: StateResource,
        options: ListApiOptions,
        raise_on_missing_output: bool,
        _explain: bool = False,
    ) -> list:
        if options.has_conflicting_filters():
            return []
        if options.limit > MAX_LIMIT:
            raise _server_error(
                f"Given limit {options.limit} exceeds the supported limit {MAX_LIMIT}. Use a "
                f"lower limit, or set the `RAY_MAX_LIMIT_FROM_API_SERVER` environment variable "
                f"to a larger value."
            )
        if resource not in _SORT_KEY:
            raise NotImplementedError(f"zray's state API cannot list {resource.value} yet")
        schema = resource_to_schema(resource)
        if resource == StateResource.TASKS:  # filtered, sorted and limited by the head
            response, num_filtered = self._tasks_on_head(options)
            rows = response.rows
        else:
            response = self._fetch(resource, options.timeout)
            try:
                rows = do_filter(response.rows, options.filters or [], schema, options.detail)
            except ValueError as exc:
                raise _server_error(str(exc)) from None
        if raise_on_missing_output and response.partial_failure_warning:
            raise RayStateApiException(
                f"Failed to retrieve all {resource.value} from the cluster because"
                "they are not reachable due to query failures to the data sources. "
                "To avoid raising an exception and allow having missing output, "
                "set `raise_on_missing_output=False`. "
            )
        if raise_on_missing_output and response.total != response.num_after_truncation:
            raise RayStateApiException(
                f"Failed to retrieve all {response.total} {resource.value} from the cluster "
                "because they are not reachable due to data truncation. It happens "
                "when the returned data is too large "
                f"(> {response.num_after_truncation}) "
                "To avoid raising an exception and allow having missing output, "
                "set `raise_on_missing_output=False`. "
            )
        if resource != StateResource.TASKS:
            key = _SORT_KEY[resource]
            rows.sort(key=lambda row: row.get(key) or "")
            num_filtered = len(rows)
            rows = rows[: max(options.limit, 0)]
        if _explain:
            if response.partial_failure_warning:
                warnings.warn(response.partial_failure_warning, stacklevel=4)
            if response.total > response.num_after_truncation:
                kept = response.num_after_truncation
                warnings.warn(
                    "The returned data may contain incomplete result. "
                    f"{kept} ({response.total} total from the cluster) "
                    f"{resource.value} are retrieved from the data source. "
                    f"{response.total - kept} entries have been truncated. "
                    f"Max of {kept} entries are retrieved "
                    "from data source to prevent over-sized payloads.",
                    stacklevel=4,
                )
            if num_filtered > len(rows):
                warnings.warn(
                    f"Limit last {len(rows)} entries (Total {num_filtered}). Use `--filter` to "
                    "reduce the amount of data to return or setting a higher limit with "
                    "`--limit` to see all data. ",
                    stacklevel=4,
                )
            for text in response.warnings:
                warnings.warn(text, stacklevel=4)
        return [schema(**row) for row in rows]

    def get(self, resource: StateResource, id: str, options, _explain: bool = False):
        if resource not in _ID_KEY:
            raise ValueError(f"Can't get {resource.name} by id.")
        timeout = getattr(options, "timeout", DEFAULT_RPC_TIMEOUT)
        found = self.list(
            resource,
            ListApiOptions(
                limit=MAX_LIMIT,
                timeout=timeout,
                detail=True,
                filters=[(_ID_KEY[resource], "=", id)],
            ),
            raise_on_missing_output=False,
        )
        if resource == StateResource.OBJECTS:
            return found  # one entry per process holding the object
        if resource == StateResource.TASKS and len(found) > 1:
            return found  # one entry per attempt, as Ray returns a retried task
        return found[0] if found else None

    def summary(
        self,
        resource: SummaryResource,
        *,
        options=None,
        raise_on_missing_output: bool,
        _explain: bool = False,
    ) -> dict:
        timeout = getattr(options, "timeout", DEFAULT_RPC_TIMEOUT)
        listed = StateResource(resource.value)
        entries = [
            s.asdict()
            for s in self.list(
                listed,
                ListApiOptions(limit=MAX_LIMIT, timeout=timeout),
                raise_on_missing_output=raise_on_missing_output,
                _explain=_explain,
            )
        ]
        if resource == SummaryResource.ACTORS:
            return {"cluster": _actor_summary(entries)}
        if resource == SummaryResource.OBJECTS:
            return {"cluster": _object_summary(entries)}
        return {"cluster": _task_summary(entries)}

    # ------------------------------------------------------------------ data sources

    def _fetch(self, resource: StateResource, timeout: float) -> _Response:
        conn = self._connection
        if resource == StateResource.TASKS:
            return self._tasks(timeout)
        if resource in _HEAD_TABLES:
            rows = conn.ask_head(P.GetStateTable(resource.value), timeout).rows
            if resource == StateResource.ACTORS:
                return self._with_actor_pids(rows, timeout)
            return _Response(rows)
        if resource == StateResource.WORKERS:
            return self._from_nodes(
                P.GetStateTable("workers"), timeout, "raylet", lambda reply, node: reply.rows
            )
        timeout_ms = int(timeout * 1000 * 0.8)  # room for the node to answer after its clients
        response = self._from_nodes(P.GetMemoryReport(timeout_ms), timeout, "raylet", _object_rows)
        response.warnings.append(
            "Callsite is not being recorded. zray does not record where ObjectRefs are created."
        )
        return response

    def _tasks_on_head(self, options: ListApiOptions) -> Tuple[_Response, int]:
        """list_tasks' rows as the head filtered, sorted and limited them (Ray's order and
        counts), and how many passed the filters before the limit."""
        try:
            filters = typed_filters(options.filters or [], TaskState)
        except ValueError as exc:
            raise _server_error(str(exc)) from None
        conn = self._connection
        query = P.ListTasks(
            [list(f) for f in filters],
            max(options.limit, 0),
            TaskState.list_columns(detail=options.detail),
            sorted(TaskState.filterable_columns()),
        )
        [reply] = conn.gather([(conn.head, query)], options.timeout)
        if reply is None:
            raise ServerUnavailable(
                f"The head at {conn.head} did not answer within {options.timeout}s."
            )
        if isinstance(reply, P.Error):
            raise _server_error(reply.message)
        response = _Response(reply.rows)
        response.num_after_truncation = reply.num_after_truncation
        response.total = reply.total
        return response, reply.num_filtered

    def _tasks(self, timeout: float) -> _Response:
        """The head's task attempts, with how many it dropped (evicted, or dropped by the
        processes that recorded them) as Ray counts them into the total."""
        conn = self._connection
        head = conn.head
        replies = conn.gather(
            [(head, P.GetStateTable("tasks")), (head, P.GetStateTable("task_events_stats"))],
            timeout,
        )
        if any(reply is None for reply in replies):
            raise ServerUnavailable(f"The head at {head} did not answer within {timeout}s.")
        rows, stats = (_transport._checked(reply).rows for reply in replies)
        dropped = stats[0]["num_status_task_events_dropped"] if stats else 0
        return _Response(rows, dropped=dropped)

    def _alive_nodes(self, timeout: float) -> list:
        rows = self._connection.ask_head(P.GetStateTable("nodes"), timeout).rows
        return [row for row in rows if row["state"] == "ALIVE"]

    def _from_nodes(self, msg, timeout: float, kind: str, rows_of) -> _Response:
        nodes = self._alive_nodes(timeout)
        replies = self._connection.gather([(n["_address"], msg) for n in nodes], timeout)
        rows: list = []
        failures = 0
        for node, reply in zip(nodes, replies):
            if reply is None or isinstance(reply, P.Error):
                failures += 1
            else:
                rows += rows_of(reply, node)
        warning = ""
        if failures:
            text = _QUERY_FAILURE.format(
                type=kind, total=len(nodes), failures=failures, log="node.log"
            )
            if failures == len(nodes):
                raise _server_error(text)
            warning = f"The returned data may contain incomplete result. {text}"
        return _Response(rows, warning)

    def _with_actor_pids(self, rows: list, timeout: float) -> _Response:
        """Actors' pids, from the worker tables of the nodes that ran them (the head leases
        workers by id and never learns their pids)."""
        addresses = sorted(
            {row["_node_address"] for row in rows if row["_worker_id"] and row["_node_address"]}
        )
        replies = self._connection.gather(
            [(a, P.GetStateTable("workers")) for a in addresses], timeout
        )
        pids = {
            w["worker_id"]: w["pid"]
            for reply in replies
            if isinstance(reply, P.StateTable)
            for w in reply.rows
        }
        for row in rows:
            row["pid"] = pids.get(row["_worker_id"], 0)
        return _Response(rows)


def _object_rows(report, node) -> list:
    """One ObjectState row per (process, object) it holds, as Ray's memory table has them."""
    sizes = {oid: size for oid, size, *_ in report.objects}
    rows = []
    for pid, kind, _address, table in report.processes:
        for oid, _owner, size, reasons, _borrowers in table:
            reference = next((r for r in _REFERENCE_ORDER if r in reasons), "UNKNOWN_STATUS")
            rows.append(
                {
                    "object_id": oid.hex(),
                    "object_size": size if size >= 0 else sizes.get(oid, -1),
                    # Without task events the status of the task that made it is not known here.
                    "task_status": "NIL",
                    "attempt_number": 1,
                    "reference_type": reference,
                    "call_site": "disabled",
                    "type": "DRIVER" if kind == "driver" else "WORKER",
                    "pid": pid,
                    "ip": report.node_ip,
                }
            )
    return rows


def _actor_summary(actors: list) -> dict:
    summary: dict = {}
    for actor in actors:
        entry = summary.setdefault(
            actor["class_name"], {"class_name": actor["class_name"], "state_counts": {}}
        )
        counts = entry["state_counts"]
        counts[actor["state"]] = counts.get(actor["state"], 0) + 1
    return {"summary": summary, "total_actors": len(actors), "summary_by": "class"}


def _object_summary(objects: list) -> dict:
    summary: dict = {}
    workers: dict = {}
    nodes: dict = {}
    total_mb = 0.0
    enabled = True
    for obj in objects:
        key = obj["call_site"]
        enabled = enabled and key != "disabled"
        entry = summary.setdefault(
            key,
            {
                "total_objects": 0,
                "total_size_mb": 0.0,
                "total_num_workers": 0,
                "total_num_nodes": 0,
                "task_state_counts": {},
                "task_attempt_number_counts": {},
                "ref_type_counts": {},
            },
        )
        for counts, value in (
            (entry["task_state_counts"], obj["task_status"]),
            (entry["task_attempt_number_counts"], str(obj["attempt_number"])),
            (entry["ref_type_counts"], obj["reference_type"]),
        ):
            counts[value] = counts.get(value, 0) + 1
        entry["total_objects"] += 1
        if obj["object_size"] != -1:
            entry["total_size_mb"] += obj["object_size"] / 1024**2
            total_mb += obj["object_size"] / 1024**2
        workers.setdefault(key, set()).add(obj["pid"])
        nodes.setdefault(key, set()).add(obj["ip"])
    for key, entry in summary.items():
        entry["total_num_workers"] = len(workers[key])
        entry["total_num_nodes"] = len(nodes[key])
    return {
        "summary": summary,
        "total_objects": len(objects),
        "total_size_mb": total_mb,
        "callsite_enabled": enabled,
        "summary_by": "callsite",
    }


# ---------------------------------------------------------------------------- Ray's functions


def _list(resource, address, filters, limit, timeout, detail, raise_on_missing_output, _explain):
    return StateApiClient(address=address).list(
        resource,
        options=ListApiOptions(limit=limit, timeout=timeout, filters=filters, detail=detail),
        raise_on_missing_output=raise_on_missing_output,
        _explain=_explain,
    )


def list_actors(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[ActorState]:
    """Actors of the cluster, dead ones included; see ActorState for the fields."""
    return _list(
        StateResource.ACTORS,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def list_placement_groups(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[PlacementGroupState]:
    return _list(
        StateResource.PLACEMENT_GROUPS,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def list_nodes(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[NodeState]:
    return _list(
        StateResource.NODES,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def list_jobs(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[JobState]:
    return _list(
        StateResource.JOBS,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def list_workers(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[WorkerState]:
    """Drivers and workers of every live node: live ones and each node's latest exited."""
    return _list(
        StateResource.WORKERS,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def list_objects(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[ObjectState]:
    """One entry per object reference per process holding it, as `zray memory` shows them."""
    return _list(
        StateResource.OBJECTS,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def _get(resource, id, address, timeout, _explain):
    return StateApiClient(address=address).get(
        resource, id, ListApiOptions(timeout=timeout), _explain=_explain
    )


def get_actor(
    id: str,
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    _explain: bool = False,
) -> Optional[ActorState]:
    return _get(StateResource.ACTORS, id, address, timeout, _explain)


def get_node(
    id: str,
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    _explain: bool = False,
) -> Optional[NodeState]:
    return _get(StateResource.NODES, id, address, timeout, _explain)


def get_placement_group(
    id: str,
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    _explain: bool = False,
) -> Optional[PlacementGroupState]:
    return _get(StateResource.PLACEMENT_GROUPS, id, address, timeout, _explain)


def get_worker(
    id: str,
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    _explain: bool = False,
) -> Optional[WorkerState]:
    return _get(StateResource.WORKERS, id, address, timeout, _explain)


def get_objects(
    id: str,
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    _explain: bool = False,
) -> List[ObjectState]:
    return _get(StateResource.OBJECTS, id, address, timeout, _explain)


def _summary(resource, address, timeout, raise_on_missing_output, _explain):
    return StateApiClient(address=address).summary(
        resource,
        options=ListApiOptions(timeout=timeout),
        raise_on_missing_output=raise_on_missing_output,
        _explain=_explain,
    )


def summarize_actors(
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict:
    """{"cluster": {"summary": {class name: {"class_name", "state_counts"}}, "total_actors",
    "summary_by": "class"}}, as Ray returns it."""
    return _summary(SummaryResource.ACTORS, address, timeout, raise_on_missing_output, _explain)


def summarize_objects(
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict:
    """{"cluster": {"summary": {call site: counts}, "total_objects", "total_size_mb",
    "callsite_enabled", "summary_by": "callsite"}}, as Ray returns it."""
    return _summary(SummaryResource.OBJECTS, address, timeout, raise_on_missing_output, _explain)


def _task_summary(tasks: list) -> dict:
    """Ray's TaskSummaries.to_summary_by_func_name."""
    summary: dict = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_CREATION_TASK": 0, "ACTOR_TASK": 0}
    for task in tasks:
        key = task.get("name") or task.get("func_or_class_name")
        entry = summary.setdefault(
            key, {"func_or_class_name": key, "type": task["type"], "state_counts": {}}
        )
        counts = entry["state_counts"]
        counts[task["state"]] = counts.get(task["state"], 0) + 1
        if task["type"] in totals:
            totals[task["type"]] += 1
    return {
        "summary": summary,
        "total_tasks": totals["NORMAL_TASK"],
        "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
        "summary_by": "func_name",
    }


def list_tasks(
    address: Optional[str] = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> List[TaskState]:
    """Task attempts the head has events of (the latest `task_events_max_num_task_in_gcs`),
    one entry per attempt; see TaskState for the fields."""
    return _list(
        StateResource.TASKS,
        address,
        filters,
        limit,
        timeout,
        detail,
        raise_on_missing_output,
        _explain,
    )


def get_task(
    id,
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    _explain: bool = False,
):
    """A task by id (a hex string, or an ObjectRef it returned): its TaskState, a list of
    them when it ran more than once, or None."""
    str_id = id if isinstance(id, str) else id.task_id().hex()
    return _get(StateResource.TASKS, str_id, address, timeout, _explain)


def summarize_tasks(
    address: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict:
    """{"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}},
    "total_tasks", "total_actor_tasks", "total_actor_scheduled", "summary_by": "func_name"}},
    as Ray returns it."""
    return _summary(SummaryResource.TASKS, address, timeout, raise_on_missing_output, _explain)
