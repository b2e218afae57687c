"""`zray.util.state`: Ray's state API (`ray.util.state`) over zray's own tables.

Each query is answered where its rows are: the head filters, sorts and limits its tables
(actors, nodes, jobs, placement groups, task attempts) and summarizes tasks and actors; each
node does the same for its workers and the objects its processes hold, and summarizes those
objects into a part merged here. Only the rows asked for cross the wire; this side types the
filters, merges what several nodes sent and raises Ray's errors and warnings from the counts.
"""

from __future__ import annotations

import logging
import threading
import warnings
from contextlib import contextmanager
from typing import List, Optional, Tuple

from zray._private.common import state_summaries
from zray._private.common.state_rows import SORT_KEYS, query_rows
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
    resource_to_schema,
    typed_filters,
)
from zray.util.state import _transport
from zray.util.state.exception import RayStateApiException, ServerUnavailable

logger = logging.getLogger(__name__)

Filters = Optional[List[Tuple[str, PredicateType, SupportedFilterType]]]

# Where each resource's rows are: the head's tables, or every live node's.
_ON_NODES = {StateResource.WORKERS, StateResource.OBJECTS}
_ID_KEY = {
    StateResource.NODES: "node_id",
    StateResource.ACTORS: "actor_id",
    StateResource.PLACEMENT_GROUPS: "placement_group_id",
    StateResource.WORKERS: "worker_id",
    StateResource.TASKS: "task_id",
    StateResource.OBJECTS: "object_id",
    StateResource.JOBS: "submission_id",
}
# What each summary reads of a row.
_SUMMARIZED_COLUMNS = {
    SummaryResource.TASKS: ["name", "func_or_class_name", "type", "state"],
    SummaryResource.ACTORS: ["class_name", "state"],
}
# The head learns an actor's worker by id, not its pid: the pid comes from that worker's node.
_ACTOR_WORKER_COLUMNS = ["_worker_id", "_node_address"]
_PID_COLUMNS = ["worker_id", "pid"]
# Up to this many actors listed, their pids are asked for one by one (a row each); past it,
# each node sends the ids and pids of all its workers (at most 1,000 exited and the live).
_PID_QUERIES_MAX = 100
# Ray's warning of a task summary that counts fewer tasks than were listed for it.
_MISSING_IN_AGGREGATION = (
    "There is missing data in this aggregation. "
    "Possibly due to task data being evicted to preserve memory."
)
_NO_CALLSITE = "Callsite is not being recorded. zray does not record where ObjectRefs are created."
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
    """What the sources returned, with Ray's counts (its ListApiResponse): `total` what they
    held (dropped task events included), `num_after_truncation` what they returned,
    `num_filtered` of those passing every filter before the limit."""

    def __init__(
        self,
        rows: list,
        total: int,
        num_after_truncation: int,
        num_filtered: int,
        partial_failure_warning: str = "",
    ):
        self.rows = rows
        self.total = total
        self.num_after_truncation = num_after_truncation
        self.num_filtered = num_filtered
        self.partial_failure_warning = partial_failure_warning
        self.warnings: list = []

    def asdict(self, result) -> dict:
        """Ray's ListApiResponse (or SummaryApiResponse) as its API server sends it."""
        return {
            "total": self.total,
            "num_after_truncation": self.num_after_truncation,
            "num_filtered": self.num_filtered,
            "result": result,
            "partial_failure_warning": self.partial_failure_warning or "",
            "warnings": list(self.warnings) or None,
        }


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
        with self._slow_notes(f"/api/v0/{resource.value}", options.timeout, _explain):
            response = self._list_response(resource, options)
        _check(resource, response, raise_on_missing_output, _explain, stacklevel=4)
        schema = resource_to_schema(resource)
        return [schema(**row) for row in response.rows]

    def _list_response(self, resource: StateResource, options: ListApiOptions) -> _Response:
        """Ray's ListApiResponse of `list(resource, options)`: the rows and Ray's counts (what
        the dashboard's /api/v0/<resource> sends)."""
        if options.limit > MAX_LIMIT:
            raise _server_error(
                f"Given limit {options.limit} exceeds the supported limit {MAX_LIMIT}. Use a "
                f"lower limit, or set the `RAY_MAX_LIMIT_FROM_API_SERVER` environment variable "
                f"to a larger value."
            )
        if resource.value not in SORT_KEYS:
            raise NotImplementedError(f"zray's state API cannot list {resource.value} yet")
        return self._listed(resource, options)

    def get(self, resource: StateResource, id: str, options, _explain: bool = False):
        if resource not in _ID_KEY:
            raise ValueError(f"Can't get {resource.name} by id.")
        timeout = getattr(options, "timeout", DEFAULT_RPC_TIMEOUT)
        with self._slow_notes(f"/api/v0/{resource.value}", timeout, _explain):
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
        """Ray's summary of what `list(resource, limit=10,000)` returns, computed where the
        rows are, with that listing's errors and warnings (no warning of the limit: Ray's
        summaries have none)."""
        timeout = getattr(options, "timeout", None) or DEFAULT_RPC_TIMEOUT
        with self._slow_notes(f"/api/v0/{resource.value}/summarize", timeout, _explain):
            response = self._summary_response(resource, timeout)
        listed = StateResource(resource.value)
        _check(listed, response, raise_on_missing_output, _explain, stacklevel=4, limit=False)
        return {"cluster": response.rows[0]}

    def _summary_response(self, resource: SummaryResource, timeout=None) -> _Response:
        """Ray's SummaryApiResponse: `rows` holds the one summary, the counts are those of
        the listing summarized (what the dashboard's /api/v0/<resource>/summarize sends)."""
        timeout = DEFAULT_RPC_TIMEOUT if timeout is None else timeout
        listed = StateResource(resource.value)
        if resource == SummaryResource.OBJECTS:
            summary, response = self._object_summary(timeout)
            response.rows = [summary]
            return response
        schema = resource_to_schema(listed)
        query = P.ListState(
            listed.value,
            [],
            MAX_LIMIT,
            _SUMMARIZED_COLUMNS[resource],
            sorted(schema.filterable_columns()),
            _node_wait_ms(timeout),
            True,
        )
        response = self._answered(
            self._connection.gather([(self._connection.head, query)], timeout)[0], timeout
        )
        summary = response.rows[0]
        if resource == SummaryResource.TASKS:
            summarized = (
                summary["total_tasks"]
                + summary["total_actor_tasks"]
                + summary["total_actor_scheduled"]
            )
            if summarized < response.num_filtered:
                response.warnings.append(_MISSING_IN_AGGREGATION)
        return response

    @contextmanager
    def _slow_notes(self, endpoint: str, timeout: float, explain: bool):
        """Ray's notes (logged at INFO, with `_explain` only) that an answer is slow: once an
        eighth, a quarter and half of the timeout have passed without it."""
        if not explain:
            yield
            return
        address = self._connection.head

        def note(elapsed: float):
            logger.info(
                f"({round(elapsed, 2)} / {timeout} seconds) "
                "Waiting for the response from the API server "
                f"address {address}{endpoint}.",
            )

        timers = [threading.Timer(timeout / i, note, args=[timeout / i]) for i in (2, 4, 8)]
        try:
            for timer in timers:
                timer.daemon = True  # never keeps a process that exits meanwhile alive
                timer.start()
            yield
        finally:
            for timer in timers:
                timer.cancel()

    # ------------------------------------------------------------------ data sources

    def _filters(self, options: ListApiOptions, schema) -> list:
        given = options.filters or []
        try:
            typed = [list(f) for f in typed_filters(given, schema)]
        except ValueError as exc:
            raise _server_error(str(exc)) from None
        for entry, (_col, _predicate, value) in zip(typed, given):
            if entry[0].lower() == "is_alive" and str(value) == "True":
                # Sent as the text Ray's client sends: Ray's GCS filters workers on liveness
                # at the source for exactly this text, and the node does as it does.
                entry[2] = "True"
        return typed

    def _listed(self, resource: StateResource, options: ListApiOptions) -> _Response:
        """The rows of `list(resource)` from the head or every live node, each source sending
        its first `limit` rows by id that pass the filters."""
        schema = resource_to_schema(resource)
        filters = self._filters(options, schema)
        limit = max(options.limit, 0)
        columns = schema.list_columns(detail=options.detail)
        # The pid of an actor is filled in here, after the head's filters: a filter on it is
        # applied here too, over every actor passing the others.
        pid_filters = [
            f for f in filters if resource == StateResource.ACTORS and f[0].lower() == "pid"
        ]
        if pid_filters:
            filters = [f for f in filters if f not in pid_filters]
            limit = MAX_LIMIT
        query = P.ListState(
            resource.value,
            filters,
            limit,
            columns + (_ACTOR_WORKER_COLUMNS if resource == StateResource.ACTORS else []),
            sorted(schema.filterable_columns()),
            _node_wait_ms(options.timeout),
            False,
        )
        if resource in _ON_NODES:
            response = self._from_nodes(query, options.timeout)
        else:
            reply = self._connection.gather([(self._connection.head, query)], options.timeout)[0]
            response = self._answered(reply, options.timeout)
        if resource == StateResource.OBJECTS:
            response.warnings.append(_NO_CALLSITE)
        if resource == StateResource.ACTORS:
            self._fill_actor_pids(response.rows, options.timeout)
            if pid_filters:
                found = query_rows(
                    response.rows, "actors", pid_filters, options.limit, columns, ["pid"]
                )
                # The head's counts stand: the pid is one more filter after its own.
                response.rows = found.rows
                response.num_filtered = found.num_filtered
        return response

    def _answered(self, reply, timeout: float) -> _Response:
        if reply is None:
            raise ServerUnavailable(
                f"The head at {self._connection.head} did not answer within {timeout}s."
            )
        if isinstance(reply, P.Error):
            raise _server_error(reply.message)
        return _Response(reply.rows, reply.total, reply.num_after_truncation, reply.num_filtered)

    def _alive_nodes(self, timeout: float) -> list:
        rows = self._connection.ask_head(P.GetStateTable("nodes"), timeout).rows
        return [row for row in rows if row["state"] == "ALIVE"]

    def _ask_nodes(self, msg, timeout: float) -> Tuple[list, str]:
        """The answers of every live node that answered, and Ray's warning naming how many did
        not (its error when none did). A node's ValueError is the query's: raised."""
        nodes = self._alive_nodes(timeout)
        replies = self._connection.gather([(n["_address"], msg) for n in nodes], timeout)
        answers = []
        failures = 0
        for reply in replies:
            if isinstance(reply, P.Error) and reply.kind == "ValueError":
                raise _server_error(reply.message)
            if reply is None or isinstance(reply, P.Error):
                failures += 1
            else:
                answers.append(reply)
        warning = ""
        if failures:
            text = _QUERY_FAILURE.format(
                type="raylet", total=len(nodes), failures=failures, log="node.log"
            )
            if failures == len(nodes):
                raise _server_error(text)
            warning = f"The returned data may contain incomplete result. {text}"
        return answers, warning

    def _from_nodes(self, query: P.ListState, timeout: float) -> _Response:
        """Every node's first `limit` rows merged: the first `limit` of them all by id."""
        answers, warning = self._ask_nodes(query, timeout)
        rows = [row for reply in answers for row in reply.rows]
        key = SORT_KEYS[query.kind]
        rows.sort(key=lambda row: row.get(key) or "")
        return _Response(
            rows[: query.limit],
            sum(r.total for r in answers),
            sum(r.num_after_truncation for r in answers),
            sum(r.num_filtered for r in answers),
            warning,
        )

    def _object_summary(self, timeout: float) -> Tuple[dict, _Response]:
        """Ray's summary of the 10,000 object references listed first: each node's part, merged;
        when the nodes hold more than that, of the listed ones."""
        query = P.ListState(
            "objects",
            [],
            MAX_LIMIT,
            ObjectState.list_columns(detail=False),
            sorted(ObjectState.filterable_columns()),
            _node_wait_ms(timeout),
            True,
        )
        answers, warning = self._ask_nodes(query, timeout)
        summarized = sum(reply.num_filtered for reply in answers)
        if summarized > MAX_LIMIT:
            listed = self._listed(
                StateResource.OBJECTS, ListApiOptions(limit=MAX_LIMIT, timeout=timeout)
            )
            parts = [state_summaries.object_summary_part(listed.rows)]
            response = listed
        else:
            parts = [reply.rows[0] for reply in answers]
            response = _Response(
                [],
                sum(reply.total for reply in answers),
                sum(reply.num_after_truncation for reply in answers),
                summarized,
                warning,
            )
            response.warnings.append(_NO_CALLSITE)
        return state_summaries.object_summary(parts), response

    def _fill_actor_pids(self, rows: list, timeout: float) -> None:
        """The pids of the actors in `rows`, from the worker tables of the nodes that ran them
        (the head leases workers by id and never learns their pids): a query per actor for a
        few (one row each), else each node's worker ids and pids only."""
        ran = [row for row in rows if row["_worker_id"] and row["_node_address"]]
        filterable = sorted(WorkerState.filterable_columns())
        wait = _node_wait_ms(timeout)
        if len(ran) <= _PID_QUERIES_MAX:
            requests = [
                (
                    row["_node_address"],
                    P.ListState(
                        "workers",
                        [["worker_id", "=", row["_worker_id"]]],
                        1,
                        _PID_COLUMNS,
                        filterable,
                        wait,
                        False,
                    ),
                )
                for row in ran
            ]
        else:
            addresses = sorted({row["_node_address"] for row in ran})
            requests = [
                (a, P.ListState("workers", [], MAX_LIMIT, _PID_COLUMNS, filterable, wait, False))
                for a in addresses
            ]
        replies = self._connection.gather(requests, timeout)
        pids = {
            w["worker_id"]: w["pid"]
            for reply in replies
            if isinstance(reply, P.StateRows)
            for w in reply.rows
        }
        for row in rows:
            worker_id = row.pop("_worker_id")
            row.pop("_node_address")
            row["pid"] = pids.get(worker_id, 0)


def _node_wait_ms(timeout: float) -> int:
    """How long a node waits for its processes: room left for it to answer in `timeout`."""
    return int(timeout * 1000 * 0.8)


def _check(
    resource: StateResource,
    response: _Response,
    raise_on_missing_output: bool,
    _explain: bool,
    stacklevel: int,
    limit: bool = True,
) -> None:
    """Ray's errors for a listing with missing output, and its warnings with `_explain`
    (`limit`: whether rows left out by the limit are warned of; not for a summary)."""
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
    if not _explain:
        return
    if response.partial_failure_warning:
        warnings.warn(response.partial_failure_warning, stacklevel=stacklevel)
    if response.total > response.num_after_truncation:
        kept = response.num_after_truncation
        warnings.warn(
            "The returned data may contain incomplete result. "
            f"{kept} ({response.total} total from the cluster) "
            f"{resource.value} are retrieved from the data source. "
            f"{response.total - kept} entries have been truncated. "
            f"Max of {kept} entries are retrieved "
            "from data source to prevent over-sized payloads.",
            stacklevel=stacklevel,
        )
    if limit and response.num_filtered > len(response.rows):
        warnings.warn(
            f"Limit last {len(response.rows)} entries (Total {response.num_filtered}). Use "
            "`--filter` to reduce the amount of data to return or setting a higher limit with "
            "`--limit` to see all data. ",
            stacklevel=stacklevel,
        )
    for text in response.warnings:
        warnings.warn(text, stacklevel=stacklevel)


# ---------------------------------------------------------------------------- Ray's functions
# One path for every resource: each public function is made from the table below with Ray's
# signature, and calls StateApiClient as Ray's do.


def _make_list(resource: StateResource, schema, doc: str):
    def list_state(
        address: Optional[str] = None,
        filters: Filters = None,
        limit: int = DEFAULT_LIMIT,
        timeout: int = DEFAULT_RPC_TIMEOUT,
        detail: bool = False,
        raise_on_missing_output: bool = True,
        _explain: bool = False,
    ):
        return StateApiClient(address=address).list(
            resource,
            options=ListApiOptions(limit=limit, timeout=timeout, filters=filters, detail=detail),
            raise_on_missing_output=raise_on_missing_output,
            _explain=_explain,
        )

    list_state.__annotations__["return"] = List[schema]
    return _named(list_state, f"list_{resource.value}", doc)


def _make_get(resource: StateResource, name: str, returns, doc: str):
    def get_state(
        id: str,
        address: Optional[str] = None,
        timeout: int = DEFAULT_RPC_TIMEOUT,
        _explain: bool = False,
    ):
        if resource == StateResource.TASKS and not isinstance(id, str):
            id = id.task_id().hex()  # an ObjectRef the task returned
        return StateApiClient(address=address).get(
            resource, id, ListApiOptions(timeout=timeout), _explain=_explain
        )

    get_state.__annotations__["return"] = returns
    return _named(get_state, name, doc)


def _make_summary(resource: SummaryResource, doc: str):
    def summarize_state(
        address: Optional[str] = None,
        timeout: int = DEFAULT_RPC_TIMEOUT,
        raise_on_missing_output: bool = True,
        _explain: bool = False,
    ) -> dict:
        return StateApiClient(address=address).summary(
            resource,
            options=ListApiOptions(timeout=timeout),
            raise_on_missing_output=raise_on_missing_output,
            _explain=_explain,
        )

    return _named(summarize_state, f"summarize_{resource.value}", doc)


def _named(function, name: str, doc: str):
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


list_actors = _make_list(
    StateResource.ACTORS,
    ActorState,
    "Actors of the cluster, dead ones included; see ActorState for the fields.",
)
list_placement_groups = _make_list(
    StateResource.PLACEMENT_GROUPS, PlacementGroupState, "Placement groups of the cluster."
)
list_nodes = _make_list(StateResource.NODES, NodeState, "Nodes of the cluster, dead ones included.")
list_jobs = _make_list(StateResource.JOBS, JobState, "Jobs: drivers and submitted jobs.")
list_workers = _make_list(
    StateResource.WORKERS,
    WorkerState,
    "Drivers and workers of every live node: live ones and each node's latest exited.",
)
list_objects = _make_list(
    StateResource.OBJECTS,
    ObjectState,
    "One entry per object reference per process holding it, as `zray memory` shows them.",
)
list_tasks = _make_list(
    StateResource.TASKS,
    TaskState,
    "Task attempts the head has events of (the latest `task_events_max_num_task_in_gcs`), "
    "one entry per attempt; see TaskState for the fields.",
)
get_actor = _make_get(StateResource.ACTORS, "get_actor", Optional[ActorState], "An actor by id.")
get_node = _make_get(StateResource.NODES, "get_node", Optional[NodeState], "A node by id.")
get_placement_group = _make_get(
    StateResource.PLACEMENT_GROUPS,
    "get_placement_group",
    Optional[PlacementGroupState],
    "A placement group by id.",
)
get_worker = _make_get(
    StateResource.WORKERS, "get_worker", Optional[WorkerState], "A worker by id."
)
get_objects = _make_get(
    StateResource.OBJECTS,
    "get_objects",
    List[ObjectState],
    "Every reference to an object, one per process holding it.",
)
get_task = _make_get(
    StateResource.TASKS,
    "get_task",
    Optional[TaskState],
    "A task by id (a hex string, or an ObjectRef it returned): its TaskState, a list of "
    "them when it ran more than once, or None.",
)
summarize_actors = _make_summary(
    SummaryResource.ACTORS,
    """{"cluster": {"summary": {class name: {"class_name", "state_counts"}}, "total_actors",
    "summary_by": "class"}}, as Ray returns it.""",
)
summarize_objects = _make_summary(
    SummaryResource.OBJECTS,
    """{"cluster": {"summary": {call site: counts}, "total_objects", "total_size_mb",
    "callsite_enabled", "summary_by": "callsite"}}, as Ray returns it.""",
)
summarize_tasks = _make_summary(
    SummaryResource.TASKS,
    """{"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}},
    "total_tasks", "total_actor_tasks", "total_actor_scheduled", "summary_by": "func_name"}},
    as Ray returns it.""",
)
