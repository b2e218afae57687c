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


# Ray's data source filters: the "=" filters its GCS applies before its limit (an actor's or
# node's id, state, ...; a worker's liveness, only when asked for live ones). Every filter is
# applied again after the source's, as Ray's API server does.
SOURCE_FILTERS = {
    "actors": frozenset(("actor_id", "state", "job_id")),
    "nodes": frozenset(("node_id", "state", "node_name")),
    "workers": frozenset(("is_alive",)),
}

LIVE_FIRST = frozenset(("actors", "nodes"))


class QueriedRows(NamedTuple):
    rows: list[dict[str, Any]]
    total: int  # Ray's `total`: what the source holds, by its kind's own count
    num_after_truncation: int  # Ray's: what the source returned (+ what its filters skipped)
    num_filtered: int  # of the returned rows, those passing every filter (before the limit)


def unsupported_filter(column: str, filterable: Any) -> ValueError:
    """Ray's API server's error for a filter on a column it cannot filter."""
    return ValueError(
        f"The given filter column {column} is not supported. "
        "Enter filters with –-filter key=value "
        "or –-filter key!=value "
        f"Supported filter columns: {filterable}"
    )


def _is_source_filter(kind: str, column: str, predicate: str, value: Any) -> bool:
    if predicate != "=" or column not in SOURCE_FILTERS.get(kind, ()):
        return False
    # Ray's GCS filters workers on liveness only for the text "True" (its client sends a
    # filter's value as text: True or "True", not "true" nor False).
    return kind != "workers" or value == "True"


def from_source(
    rows: list[dict[str, Any]], kind: str, filters: list, source_limit: int
) -> tuple[list[dict[str, Any]], int, int]:
    """The rows Ray's data source of `kind` returns (its "=" filters applied, at most
    `source_limit` in the source's order), with Ray's `total` and `num_after_truncation` as its
    API server computes them from the source's reply; they differ by kind as in Ray 2.60:
    actors count what the source filters skipped as returned, nodes count it in `total` only,
    workers, placement groups and objects count every row held in `total` (so a filter applied
    at the source reads as truncation, as Ray's does), jobs are never truncated."""
    if kind == "jobs":
        return rows, len(rows), len(rows)
    source = [(c, p, v) for c, p, v in filters if _is_source_filter(kind, c, p, v)]
    if kind in LIVE_FIRST and len(rows) > source_limit:
        # Ray's GCS walks its live actors (nodes) before the dead: past its limit, the dead
        # are the ones left out. (Within the limit the order changes nothing.)
        rows = sorted(rows, key=lambda row: row.get("state") == "DEAD")
    if not source:
        returned, skipped = rows[: max(source_limit, 0)], 0
    else:
        returned, skipped = [], 0
        for row in rows:
            if len(returned) >= source_limit:
                break  # as the GCS: rows past its limit are neither returned nor counted
            if all(matches(row, c, p, v) for c, p, v in source):
                returned.append(row)
            else:
                skipped += 1
    if kind == "actors":
        return returned, len(rows), len(returned) + skipped
    if kind == "nodes":
        return returned, len(returned) + skipped, len(returned)
    return returned, len(rows), len(returned)


def query_rows(
    rows: list[dict[str, Any]],
    kind: str,
    filters: list,
    limit: int,
    columns: list[str],
    filterable: list[str],
    source_limit: int = MAX_LIMIT,
) -> QueriedRows:
    """What Ray's API server answers for `rows` held by a data source: the source's rows
    (`from_source`) that pass every (column, predicate, typed value) filter, ordered by the
    kind's id, the first `limit` of them with `columns` only (None where a row lacks one), and
    Ray's counts. ValueError for a filter on a column not in `filterable`, when there is a row
    to filter (as Ray's)."""
    filters = [(col.lower(), predicate, value) for col, predicate, value in filters]
    returned, total, num_after_truncation = from_source(rows, kind, filters, source_limit)
    if returned:
        for col, _predicate, _value in filters:
            if col not in filterable:
                raise unsupported_filter(col, set(filterable))
    # The source's own filters hold for every row it returned: only the others are left.
    rest = [(c, p, v) for c, p, v in filters if not _is_source_filter(kind, c, p, v)]
    kept = [row for row in returned if all(matches(row, c, p, v) for c, p, v in rest)]
    key = SORT_KEYS[kind]
    kept.sort(key=lambda row: row.get(key) or "")
    return QueriedRows(
        [{c: row.get(c) for c in columns} for row in kept[: max(limit, 0)]],
        total,
        num_after_truncation,
        len(kept),
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
