"""`list_tasks` answered where the task events are: the head filters, sorts and limits, and
sends only the rows asked for (a query of 10 rows out of 100,000 attempts ships 10 rows).

What is returned is what Ray 2.60 returns for the same query. Ray's GCS applies the filters on
`job_id`, `task_id`, `actor_id`, `name` and `state` and keeps the latest
`RAY_MAX_LIMIT_FROM_DATA_SOURCE` (10,000) attempts that pass, counting the rest as dropped;
its API server then applies every filter, sorts by task id and keeps `limit`. The counts that
Ray's warnings quote (`total`, `num_after_truncation`, `num_filtered`) are computed the same
way. The source filters are read off each record without building its row, so the cost of a
query is a pass over the attempts plus a row per attempt returned (or per attempt the other
filters must look at).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from zray._private.common import task_states as TS
from zray._private.common.state_filters import matches
from zray._private.head.task_events import (
    INFO,
    NO_INFO,
    TaskEventTable,
    run_profile,
    state_name,
    task_row,
)

DATA_SOURCE_LIMIT = 10_000  # Ray's RAY_MAX_LIMIT_FROM_DATA_SOURCE
SOURCE_COLUMNS = frozenset(("job_id", "task_id", "actor_id", "name", "state"))
# Columns read off an attempt without building its row: a query wanting only these (the tasks'
# summary) builds none.
LIGHT_COLUMNS = SOURCE_COLUMNS | {"func_or_class_name", "type"}


class TaskQueryResult(NamedTuple):
    rows: list[dict[str, Any]]
    total: int  # what the source held: returned by it, plus dropped or past its limit
    num_after_truncation: int  # returned by the source (Ray: the GCS)
    num_filtered: int  # of those, passing every filter (before `limit`)


def _source_value(column: str, task_id: bytes, record: dict[int, Any], info: Any) -> Any:
    if column == "task_id":
        return task_id.hex()
    if column == "job_id":
        return task_id[-4:].hex()
    if column == "state":
        return state_name(record)
    kind, name, func_name, actor_id = (info or NO_INFO)[:4]
    if column == "actor_id":
        return bytes(actor_id).hex() if actor_id else None
    if column == "func_or_class_name":
        return func_name
    if column == "type":
        return TS.TYPE_NAMES.get(kind, "NORMAL_TASK")
    return name


def query_tasks(
    table: TaskEventTable,
    node_ips: dict[bytes, str],
    filters: list[tuple[str, str, Any]],
    limit: int,
    columns: list[str],
    filterable: list[str],
    source_limit: int = DATA_SOURCE_LIMIT,
) -> TaskQueryResult:
    """The rows of `list_tasks(filters, limit)` with `columns` only. `filters`: (column,
    predicate, value) with values already typed by the asker; ValueError naming a column not
    in `filterable`, as Ray's API server raises it (when there is a row to filter)."""
    table.merge()
    filters = [(col.lower(), predicate, value) for col, predicate, value in filters]
    source = [f for f in filters if f[0] in SOURCE_COLUMNS]
    rest = [f for f in filters if f[0] not in SOURCE_COLUMNS]
    infos = table.infos()
    kept: list[tuple[bytes, int, dict[int, Any], Any]] = []
    past_limit = 0
    for (task_id, attempt), record in reversed(table.records.items()):  # newest first
        info = record.get(INFO) or infos.get(task_id)
        if source:
            light = {c: _source_value(c, task_id, record, info) for c, _p, _v in source}
            if not all(matches(light, c, p, v) for c, p, v in source):
                continue
        if len(kept) < source_limit:
            kept.append((task_id, attempt, record, info))
        else:
            past_limit += 1
    kept.reverse()  # oldest first, then sorted by task id: attempts in the order they came
    returned = len(kept)
    total = returned + past_limit + table.stats()["num_status_task_events_dropped"]
    if rest and kept:
        for col, _p, _v in rest:
            if col not in filterable:
                raise ValueError(
                    f"The given filter column {col} is not supported. "
                    "Enter filters with –-filter key=value "
                    "or –-filter key!=value "
                    f"Supported filter columns: {filterable}"
                )
        rows = [task_row(t, a, r, i, node_ips) for t, a, r, i in kept]
        rows = [row for row in rows if all(matches(row, c, p, v) for c, p, v in rest)]
        rows.sort(key=lambda row: row["task_id"])
        num_filtered = len(rows)
        rows = rows[: max(limit, 0)]
    else:
        kept.sort(key=lambda entry: entry[0])  # bytes sort as their hex does
        num_filtered = len(kept)
        if LIGHT_COLUMNS.issuperset(columns):
            rows = [
                {c: _source_value(c, t, r, i) for c in columns}
                for t, _a, r, i in kept[: max(limit, 0)]
            ]
            return TaskQueryResult(rows, total, returned, num_filtered)
        rows = [task_row(t, a, r, i, node_ips) for t, a, r, i in kept[: max(limit, 0)]]
    return TaskQueryResult(
        [{c: row.get(c) for c in columns} for row in rows], total, returned, num_filtered
    )


def trace_rows(table: TaskEventTable, node_ips: dict[bytes, str]) -> list[dict[str, Any]]:
    """The fields of each attempt that ran which the timeline draws (task_row's, without
    building the rest of the row): the trace is made on the head from these."""
    table.merge()
    infos = table.infos()
    rows = []
    for (task_id, attempt), record in table.records.items():
        kind, name, func_name, actor_id = (record.get(INFO) or infos.get(task_id) or NO_INFO)[:4]
        profile = run_profile(task_id, func_name, name, record, node_ips)
        if profile:
            rows.append(
                {
                    "task_id": task_id.hex(),
                    "job_id": task_id[-4:].hex(),
                    "attempt_number": attempt,
                    "func_or_class_name": func_name,
                    "actor_id": bytes(actor_id).hex() if actor_id else None,
                    "profiling_data": profile,
                }
            )
    return rows
