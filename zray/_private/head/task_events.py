"""The head's history of task events: every process's batches (`AddTaskEvents`) merged per
task attempt, at most `max_attempts` attempts (the oldest evicted and counted, as Ray's GCS
keeps `RAY_task_events_max_num_task_in_gcs`), turned into Ray 2.60's TaskState rows on demand.

A state machine: batches in, rows out, no I/O. Batches are kept packed as they came and merged
only when someone asks (rows, stats, a job's end): a cluster nobody looks at pays for
receiving them and nothing per event. Past `pending_limit` events waiting, the oldest batches
are dropped unmerged (their attempts counted as evicted: they would be the oldest ones).
Merging is the per-event work, kept to a dict lookup and a few stores.
"""

from __future__ import annotations

import gc
from collections import OrderedDict, deque
from typing import Any, Callable

from zray._private.common import task_states as TS

# A record is one dict per attempt: the time of each state it reached under the state's number
# (0-13) and its other fields under these negative keys. Only atoms and tuples of atoms go in,
# so the garbage collector stops tracking it (and the key tuples) after one look: a table of
# 100,000 tracked lists made every full collection walk them, which tripled the cost of
# merging events (perf/bench_task_events.py).
INFO, NODE, WORKER, PID, ERROR_TYPE, ERROR_MESSAGE, RUN_END = range(-1, -8, -1)
Record = dict[int, Any]

_RUNTIME_ENV_CONFIG = {"setup_timeout_seconds": 600, "eager_install": True, "log_files": []}


# Events waiting unmerged, per attempt kept: a task's attempt has 2 to 5 events (owner and
# executor), so this keeps every attempt the merged table would.
PENDING_EVENTS_PER_ATTEMPT = 5


def batch_length(packed: bytes | memoryview) -> int:
    """How many events a packed batch holds, from its msgpack array header (not unpacked);
    ValueError if it is not an array. `packed`: bytes, or a received frame's buffer."""
    if not isinstance(packed, (bytes, memoryview)) or not len(packed):
        raise ValueError("a task event batch must be a packed msgpack array")
    packed = bytes(packed[:5])  # the header
    first = packed[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(packed) >= 3:
        return int.from_bytes(packed[1:3], "big")
    if first == 0xDD and len(packed) >= 5:
        return int.from_bytes(packed[1:5], "big")
    raise ValueError("a task event batch must be a packed msgpack array")


class TaskEventTable:
    def __init__(
        self, max_attempts: int, decode: Callable[[bytes | memoryview], Any] = lambda b: ()
    ):
        """`decode`: a packed batch's events, a sequence of tuples (HeadService's decoder: the
        codec stays out of this state machine)."""
        self.max_attempts = max(1, max_attempts)
        self.decode = decode
        # Batches not merged yet, oldest first: (node_id, worker_id, pid, packed, length).
        self.pending: deque[tuple[bytes, bytes, int, bytes | memoryview, int]] = deque()
        self.pending_events = 0
        self.pending_limit = self.max_attempts * PENDING_EVENTS_PER_ATTEMPT
        self.batches_unreadable = 0
        # (task_id, attempt) -> record, oldest first
        self.records: OrderedDict[tuple[bytes, int], Record] = OrderedDict()
        # The latest evicted attempts (as many as are kept), whose late events are ignored:
        # otherwise each would come back and evict another, counted twice.
        self.evicted: OrderedDict[tuple[bytes, int], None] = OrderedDict()
        self.attempts_dropped = 0  # evicted to stay within max_attempts
        self.events_dropped = 0  # dropped by the processes that recorded them

    def add_packed(
        self, node_id: bytes, worker_id: bytes, pid: int, packed: bytes | memoryview, dropped: int
    ) -> None:
        """Keeps one process's batch (`AddTaskEvents.events`) to merge when asked; ValueError
        if it is not a packed array."""
        length = batch_length(packed)
        self.events_dropped += dropped
        self.pending.append((node_id, worker_id, pid, packed, length))
        self.pending_events += length
        pending = self.pending
        while len(pending) > 1 and self.pending_events - pending[0][4] >= self.pending_limit:
            _node, _worker, _pid, _oldest, length = pending.popleft()
            self.pending_events -= length
            # Counted as Ray counts evicted attempts (its total), one per event: an owner's
            # batch holds about one per attempt, as does an executor's, and the attempts the
            # two name are the same (counting them apart said as much). Counting them exactly
            # meant decoding the batch, which cost the head ~0.5 us per task of a long job
            # nobody queried (every new batch dropped an old one).
            self.attempts_dropped += length

    def merge(self) -> None:
        """Merges every batch waiting, oldest first."""
        pending = self.pending
        if not pending:
            return
        # Collections held off: a batch's thousands of new objects would otherwise outlive
        # young collections and set off full ones over the whole head process (the most of
        # what merging cost, measured); records end up as atoms it stops tracking.
        collecting = gc.isenabled()
        gc.disable()
        try:
            while pending:
                node_id, worker_id, pid, packed, length = pending.popleft()
                self.pending_events -= length
                try:
                    events = self.decode(packed)
                except Exception:  # noqa: BLE001 - a corrupt batch is skipped, counted
                    self.batches_unreadable += 1
                    continue
                self.add(node_id, worker_id, pid, events, 0)
        finally:
            if collecting:
                gc.enable()

    def add(self, node_id: bytes, worker_id: bytes, pid: int, events: Any, dropped: int) -> None:
        """Merges one process's batch. Malformed events are skipped, never raised on."""
        self.events_dropped += dropped
        records = self.records
        find = records.get
        evicted = self.evicted
        limit = self.max_attempts
        # Locals: this loop runs once per event of every task of the cluster.
        running, failed, submitted = TS.RUNNING, TS.FAILED, TS.SUBMITTED_TO_WORKER
        finished = TS.FINISHED
        args_avail, node_assignment = TS.PENDING_ARGS_AVAIL, TS.PENDING_NODE_ASSIGNMENT
        highest = TS.GETTING_AND_PINNING_ARGS
        # The shared values (descriptions, leases) the batch sent in full, in its order: the
        # later events name them by number (core/task_events.py, EventStream).
        shared: list[tuple[Any, ...]] = []
        for event in events:
            try:
                task_id, attempt, state, ts, extra = event
                if type(state) is not int or not 0 <= state <= highest:
                    continue
                key = (task_id, attempt)
                record = find(key)
                if record is None:
                    if key in evicted:
                        _keep_shared(state, extra, shared)  # later events may name them
                        continue
                    record = records[key] = {}
                    if len(records) > limit:
                        evicted[records.popitem(last=False)[0]] = None
                        if len(evicted) > limit:
                            evicted.popitem(last=False)
                        self.attempts_dropped += 1
                if extra is None:
                    record[state] = ts
                elif state == finished:  # an actor call's or task's end, with its sending
                    record[state] = ts
                    described = _take(extra[1], shared)
                    if len(extra) == 4:  # a task's: its submission and lease too
                        record[args_avail] = record[node_assignment] = extra[2]
                        lease = _take(extra[3], shared)
                        if lease is not None and len(lease) == 2 and WORKER not in record:
                            record[NODE], record[WORKER] = lease
                    _sent(record, extra[0], described)
                elif state == running:
                    # The process that ran it sent this: it names the node, worker and pid.
                    record[running] = ts
                    record[NODE], record[WORKER], record[PID] = node_id, worker_id, pid
                    if extra:
                        record[RUN_END] = extra
                elif state == args_avail or state == node_assignment:
                    # The submission (with its arguments ready: the earlier state too).
                    record[state] = ts
                    record.setdefault(args_avail, ts)
                    described = _take(extra, shared)
                    if described is not None and len(described) == 8:
                        record[INFO] = described
                elif state == submitted:
                    # A task's lease, or an actor call's description (sent when submitted).
                    record[state] = ts
                    value = _take(extra, shared)
                    if value is None:
                        pass
                    elif len(value) == 8:
                        record.setdefault(args_avail, ts)
                        record[INFO] = value
                    elif len(value) == 2 and WORKER not in record:
                        record[NODE], record[WORKER] = value
                elif state == failed:
                    record[ERROR_TYPE], record[ERROR_MESSAGE] = str(extra[0]), str(extra[1])
                    record[state] = ts
                    if len(extra) == 4:
                        _sent(record, extra[2], _take(extra[3], shared))
            except (TypeError, ValueError, IndexError, AttributeError):
                continue

    def fail_unfinished(self, job_id: bytes, ts: int, error_type: str, message: str) -> int:
        """Marks every attempt of `job_id` that has not ended FAILED with this error (Ray, once
        a job's driver exits); returns how many."""
        self.merge()
        failed = 0
        for (task_id, _attempt), record in self.records.items():
            if task_id[-4:] != job_id or TS.FINISHED in record or TS.FAILED in record:
                continue
            record[TS.FAILED] = ts
            record[ERROR_TYPE], record[ERROR_MESSAGE] = error_type, message
            failed += 1
        return failed

    def stats(self) -> dict[str, int]:
        """Counts Ray's GetTaskEvents reply carries (num_status_task_events_dropped, ...)."""
        self.merge()
        return {
            "num_status_task_events_dropped": self.attempts_dropped + self.events_dropped,
            "num_profile_task_events_dropped": 0,
            "num_task_attempts_evicted": self.attempts_dropped,
            "num_task_attempts_stored": len(self.records),
            "max_num_task_attempts": self.max_attempts,
        }

    # ------------------------------------------------------------------ rows

    def rows(self, node_ips: dict[bytes, str]) -> list[dict[str, Any]]:
        """Ray's TaskState dicts (detail fields included), one per attempt; `node_ips`: node
        id -> IP, for the profiling data that `timeline()` reads."""
        self.merge()
        infos = self.infos()
        return [
            task_row(task_id, attempt, record, record.get(INFO) or infos.get(task_id), node_ips)
            for (task_id, attempt), record in self.records.items()
        ]

    def infos(self) -> dict[bytes, Any]:
        """task id -> its description, for attempts whose own events did not carry it (a
        retry's: the owner describes a task once)."""
        infos: dict[bytes, Any] = {}
        for (task_id, _attempt), record in self.records.items():
            if INFO in record:
                infos[task_id] = record[INFO]
        return infos


def _info(extra: Any) -> tuple[Any, ...]:
    """A task's description as kept: resources as pairs (a tuple holding a dict is never
    untracked by the garbage collector)."""
    kind, name, func, actor, parent, resources, group, env = extra
    if not resources:  # an actor call's: ()
        pairs: tuple[Any, ...] = ()
    elif type(resources) is dict:
        pairs = tuple(resources.items())
    else:  # a task's: [name, amount] pairs
        pairs = tuple((str(key), amount) for key, amount in resources)
    return (kind, name, func, actor, parent, pairs, group, env)


def _take(value: Any, shared: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """A shared value (EventStream): sent in full (a description's 8 items, a lease's node and
    worker ids), kept and numbered; or named by its number. None for none, or for a number
    naming nothing; a malformed value sent in full is numbered all the same (as `()`), so
    the values after it keep their numbers."""
    if value is None:
        return None
    if type(value) is int:
        return shared[value] if 0 <= value < len(shared) else None
    kept: tuple[Any, ...] = ()
    try:
        if len(value) == 8:
            kept = _info(value)
        elif len(value) == 2:
            kept = (bytes(value[0]), bytes(value[1]))
    except (TypeError, ValueError):
        pass
    shared.append(kept)
    return kept


def _keep_shared(state: Any, extra: Any, shared: list[tuple[Any, ...]]) -> None:
    """Numbers the shared values a skipped event sends in full, for the events naming them."""
    if extra is None:
        return
    if state == TS.FINISHED:
        _take(extra[1], shared)
        if len(extra) == 4:
            _take(extra[3], shared)
    elif state == TS.FAILED:
        if len(extra) == 4:
            _take(extra[3], shared)
    elif state in (TS.PENDING_ARGS_AVAIL, TS.PENDING_NODE_ASSIGNMENT, TS.SUBMITTED_TO_WORKER):
        _take(extra, shared)


def _sent(record: Record, sent_ns: Any, described: tuple[Any, ...] | None) -> None:
    """An actor call's or task's SUBMITTED_TO_WORKER carried by its end (and, with its
    description, PENDING_ARGS_AVAIL: an actor call was sent as soon as submitted)."""
    if not sent_ns:
        return
    record[TS.SUBMITTED_TO_WORKER] = sent_ns
    if described is not None and len(described) == 8:
        record.setdefault(TS.PENDING_ARGS_AVAIL, sent_ns)
        record[INFO] = described


def _hex_or_none(value: Any) -> str | None:
    return bytes(value).hex() if value else None


def _ms(ns: Any) -> int | None:
    return int(ns) // 1_000_000 if ns else None


def state_name(record: Record) -> str:
    """Ray's state of an attempt: the highest state number it reached."""
    reached = [k for k in record if k >= 0]
    return TS.STATE_NAMES.get(max(reached), "NIL") if reached else "NIL"


NO_INFO = (TS.NORMAL_TASK, "", "", b"", b"", (), "", "")  # its owner's events not in (yet)


def task_row(
    task_id: bytes, attempt: int, record: Record, info: Any, node_ips: dict[bytes, str]
) -> dict[str, Any]:
    """Ray's TaskState dict of one attempt, detail fields included."""
    states = record
    ordered = sorted(k for k in record if k >= 0)  # Ray: by state number, the last is the state
    state = TS.STATE_NAMES.get(ordered[-1], "NIL") if ordered else "NIL"
    if info is None:
        info = NO_INFO
    kind, name, func_name, actor_id, parent, resources, group, runtime_env = info
    node_id, worker_id = record.get(NODE, b""), record.get(WORKER, b"")
    failed = state == "FAILED"
    return {
        "task_id": task_id.hex(),
        "attempt_number": attempt,
        "name": name,
        "state": state,
        "job_id": task_id[-4:].hex(),
        "actor_id": _hex_or_none(actor_id),
        "type": TS.TYPE_NAMES.get(kind, "NORMAL_TASK"),
        "func_or_class_name": func_name,
        "parent_task_id": bytes(parent).hex() if parent else "",
        "node_id": _hex_or_none(node_id),
        "worker_id": _hex_or_none(worker_id),
        "worker_pid": record.get(PID) or None,
        "error_type": record.get(ERROR_TYPE) if failed else None,
        "language": "PYTHON",
        "required_resources": dict(resources or {}),
        "runtime_env_info": {
            "serialized_runtime_env": runtime_env or "{}",
            "runtime_env_config": dict(_RUNTIME_ENV_CONFIG),
        },
        "placement_group_id": group.split(":")[0] if group else None,
        "events": [
            {"state": TS.STATE_NAMES.get(s, "NIL"), "created_ms": _ms(states[s])} for s in ordered
        ],
        "profiling_data": run_profile(task_id, func_name, name, record, node_ips),
        "creation_time_ms": _ms(states.get(TS.PENDING_ARGS_AVAIL)),
        "start_time_ms": _ms(states.get(TS.RUNNING)),
        "end_time_ms": _ms(states.get(TS.FAILED) or states.get(TS.FINISHED)),
        "task_log_info": None,
        "error_message": record.get(ERROR_MESSAGE) if failed else None,
        "is_debugger_paused": None,
        "call_site": None,
        "label_selector": {},
        "fallback_strategy": None,
    }


def run_profile(
    task_id: bytes, func_name: str, name: str, record: Record, node_ips: dict[bytes, str]
) -> dict[str, Any]:
    """The run as Ray's profile events describe it (times in ms), what `timeline()` draws:
    from RUNNING to the end the worker reported, else to the owner's FINISHED or FAILED."""
    start = record.get(TS.RUNNING)
    end = record.get(RUN_END) or record.get(TS.FINISHED) or record.get(TS.FAILED)
    if not start or not end or WORKER not in record:
        return {}
    short = func_name or name
    return {
        "component_type": "worker",
        "component_id": bytes(record[WORKER]).hex(),
        "node_ip_address": node_ips.get(bytes(record.get(NODE, b"")), ""),
        "events": [
            {
                "event_name": f"task::{short}",
                "start_time": start / 1e6,
                "end_time": max(start, end) / 1e6,
                "extra_data": {"name": name or short, "task_id": task_id.hex()},
            }
        ],
    }
