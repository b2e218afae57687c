"""A state query answered where its rows are: the head for its tables (actors, nodes, jobs,
placement groups), each node for its workers and the objects its processes hold. Filters,
sort and limit are applied there, as Ray's API server applies them, so only the rows asked
for cross the wire (a `list_actors(limit=10)` among 1,000 actors ships 10 rows).

Pure functions over rows with Ray's state field names; the asker types the filter values
first (`zray.util.state.common.typed_filters`) and checks the counts for Ray's warnings.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from zray._private.common.state_filters import matches

# Ray's RAY_MAX_LIMIT_FROM_API_SERVER: what a summary lists at most.
MAX_LIMIT = 10_000
# How each listed resource is ordered before its limit is taken (Ray: by id).
SORT_KEYS = {
    "actors": "actor_id",
    "nodes": "node_id",
    "placement_groups": "placement_group_id",
    "workers": "worker_id",
    "jobs": "job_id",
    "objects": "object_id",
    "tasks": "task_id",
}
# Ray's reference types, strongest first, for zray's reasons a process holds an object.
REFERENCE_ORDER = (
    "PINNED_IN_MEMORY",
    "USED_BY_PENDING_TASK",
    "LOCAL_REFERENCE",
    "CAPTURED_IN_OBJECT",
)


class QueriedRows(NamedTuple):
    rows: list[dict[str, Any]]
    num_filtered: int  # rows passing every filter, before the limit


def unsupported_filter(column: str, filterable: Any) -> ValueError:
    """Ray's API server's error for a filter on a column it cannot filter."""
    return ValueError(
        f"The given filter column {column} is not supported. "
        "Enter filters with –-filter key=value "
        "or –-filter key!=value "
        f"Supported filter columns: {filterable}"
    )


def query_rows(
    rows: list[dict[str, Any]],
    kind: str,
    filters: list,
    limit: int,
    columns: list[str],
    filterable: list[str],
) -> QueriedRows:
    """`rows` that pass every (column, predicate, typed value) filter, ordered by the kind's id,
    the first `limit` of them with `columns` only (None where a row lacks one). ValueError for
    a filter on a column not in `filterable`, when there is a row to filter (as Ray's)."""
    filters = [(col.lower(), predicate, value) for col, predicate, value in filters]
    if rows:
        for col, _predicate, _value in filters:
            if col not in filterable:
                raise unsupported_filter(col, set(filterable))
    kept = [row for row in rows if all(matches(row, c, p, v) for c, p, v in filters)]
    key = SORT_KEYS[kind]
    kept.sort(key=lambda row: row.get(key) or "")
    return QueriedRows(
        [{c: row.get(c) for c in columns} for row in kept[: max(limit, 0)]], len(kept)
    )


def object_rows(node_ip: str, objects: list, processes: list) -> list[dict[str, Any]]:
    """One ObjectState row per (process, object) it holds, as Ray's memory table has them,
    from a node's memory report (`objects`: its store's rows, `processes`: each client's
    reference table)."""
    sizes = {oid: size for oid, size, *_ in objects}
    rows = []
    for pid, kind, _address, table in processes:
        for oid, _owner, size, reasons, _borrowers in table:
            reference = next((r for r in REFERENCE_ORDER if r in reasons), "UNKNOWN_STATUS")
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
                    "ip": node_ip,
                }
            )
    return rows
