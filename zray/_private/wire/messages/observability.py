"""Records the state API, task events, metrics and log files travel in.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


# --------------------------------------------------------------------------- metrics


@message(130)
class MetricsReport(NamedTuple):
    """Driver or worker to its node, at most once per `metrics_report_interval_s` and only when
    something changed: the process's `zray.util.metrics` series and task counts, each as its
    current total (so a lost or repeated report does no harm). `metrics`: rows
    [kind, name, description, tag_keys, boundaries, series], series [[tag values], value]
    (a histogram's value: [bucket counts, sum, count]); `tasks`: rows
    [name, state, source, is_retry, count]."""

    worker_id: bytes
    metrics: list
    tasks: list


# --------------------------------------------------------------------------- state API


@message(110)
class GetStateTable(NamedTuple):
    """`zray.util.state` to the head (kind: actors, nodes, jobs, placement_groups, tasks,
    task_events_stats, timeline) or to a node (workers); answered StateTable."""

    kind: str


@message(111)
class StateTable(NamedTuple):
    """A whole table: rows with Ray's state field names (detail ones included), or for
    `timeline` the Chrome trace events of the task runs (Ray's chrome_tracing_dump)."""

    kind: str
    rows: list


# --------------------------------------------------------------------------- task events


@message(120)
class AddTaskEvents(NamedTuple):
    """Any driver or worker to the head, about once a second: the task events it recorded,
    a msgpack array packed apart (the head unpacks it itself, see HeadService), each
    `[task_id, attempt, state, time_ns, extra]` (zray/_private/core/task_events.py);
    `node_id`, `worker_id`, `pid`: the sender, where its RUNNING events ran. `dropped`: events
    it dropped since the last batch. One-way, or answered `Ok` when sent as a request (the
    last batch of a process that exits)."""

    node_id: bytes
    worker_id: bytes
    pid: int
    events: bytes
    dropped: int


@message(220)
class ListState(NamedTuple):
    """`zray.util.state` to where the rows are: the head (kind: tasks, actors, nodes, jobs,
    placement_groups) or each live node (workers, objects). It filters, sorts by the kind's id
    and sends the first `limit` rows with `columns` only (head/task_queries.py for tasks,
    common/state_rows.py for the rest); `filters`: [column, "=" or "!=", value] typed by the
    asker; `filterable`: the columns a filter may name; `timeout_ms`: how long a node waits
    for its processes' reference tables (objects). `summarize`: answer Ray's summary of the
    listing instead of its rows (tasks and actors at the head, a part per node for objects;
    common/state_summaries.py). Answered StateRows, or Error(ValueError) for a bad query."""

    kind: str
    filters: list
    limit: int
    columns: list
    filterable: list
    timeout_ms: int
    summarize: bool


@message(221)
class StateRows(NamedTuple):
    """The answer to ListState: the rows (or `[summary]`), and the counts Ray's warnings quote
    (`total` held by the source, dropped task events included; `num_after_truncation`
    returned by the source before the other filters; `num_filtered` passing every filter,
    before `limit`)."""

    rows: list
    total: int
    num_after_truncation: int
    num_filtered: int


# --------------------------------------------------------------------------- log files
# The dashboard's logs page, `zray logs` and zray.util.state.list_logs/get_log, from any
# machine, to the node whose log files they want (zray/_private/node/log_files.py).


LOG_LISTING_MAX_FILES = 10_000  # most names a node lists in one LogList
LOG_CHUNK_MAX_BYTES = 256 * 1024  # most bytes a node answers to one ReadLog


@message(140)
class ListLogs(NamedTuple):
    """To a node: its log files, at most `limit`; answered LogList."""

    limit: int


@message(141)
class LogList(NamedTuple):
    """Node to the asker: [[name, size, mtime], ...] of `<session>/logs/`, by name."""

    files: list


@message(250)
class ForgetJobLog(NamedTuple):
    """Dashboard to every live node, when a submitted job is deleted: remove the copies of its
    driver's log kept from this machine's earlier sessions, and keep the live session's copy
    (readable until the session ends, as Ray keeps it) from being kept past it
    (common/kept_job_logs.py); answered Ok, or Error(ValueError) for an id no log is named by."""

    submission_id: str


@message(142)
class ReadLog(NamedTuple):
    """To a node: up to `max_bytes` (at most LOG_CHUNK_MAX_BYTES) of log file `name` from
    `offset`, or its last 64 KiB when `offset` < 0; answered LogChunk, or Error(FileNotFound)
    for a name the node's log directory does not hold."""

    name: str
    offset: int
    max_bytes: int


@message(143)
class LogChunk(NamedTuple):
    """Node to the asker: `data` read; `offset` is where the next read continues, `size`
    the file's size, `truncated` whether a tail left the file's beginning out."""

    name: str
    data: bytes
    offset: int
    size: int
    truncated: bool
