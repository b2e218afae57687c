"""Task events: each process's record of the state changes of the tasks it owns (submitted,
queued for a lease, pushed, finished or failed) and of those it runs (running, and when the
run ended), sent to the head in batches for `zray.util.state.list_tasks` and `zray.timeline`.

Recording is on the hot path of every task, so it only hands an event
`(task_id, attempt, state, time_ns, extra)` to the batch being written (`EventStream`,
compiled), from any thread: an `Event` (or a `Finished`, which says the call's sending too),
an object the garbage collector does not count (zray/_fast/untracked.pyx says why it
matters), or a tuple for the rare event holding an error. The batch packs it at once, so the
I/O thread's flush, every `task_events_report_interval_ms` (or sooner once
`task_events_flush_batch` events wait), only takes the bytes and sends them as one
`AddTaskEvents`; the few events whose `extra` is not wire-ready (a failure's error, turned into
Ray's error type and message) are converted then, off the hot path. What the head does with
them: zray/_private/head/task_events.py.

`extra` by state (the wire form, docs/protocol.md). A *shared* value (a kind of task's
description, a lease's `[node_id, worker_id]`) is one `Shared` object in every event holding
it; a batch sends it in full where it first holds it and names it after that by its number,
the n-th value the batch sent in full, counted from 0 in the batch's order (`EventStream`):
- PENDING_ARGS_AVAIL (at submission): the task's description, shared, a list
  `[type, name, func_or_class_name, actor_id, parent_task_id, required_resources,
  placement_group_id, runtime_env]` (resources as `[name, amount]` pairs); a task submitted
  with its arguments ready sends it with PENDING_NODE_ASSIGNMENT instead, one event for both;
- SUBMITTED_TO_WORKER: the lease the task was pushed to, shared `[node_id, worker_id]`;
- RUNNING (from the process that runs it; the batch names that process): the time the run
  ended in ns, or 0 while it still runs;
- FINISHED: None; or, for an actor call whose sending no event reported yet,
  `[sent_ns, description or None]`: its SUBMITTED_TO_WORKER (and PENDING_ARGS_AVAIL with the
  description), so a call costs its owner one event, not two; for a task, `[pushed_ns,
  description, submitted_ns, lease]`: its PENDING_ARGS_AVAIL and PENDING_NODE_ASSIGNMENT
  (submitted with its arguments ready) and its SUBMITTED_TO_WORKER, so a task costs its owner
  one event, not three;
- FAILED: `[error_type, error_message]` (Ray's ErrorType name), followed by `sent_ns,
  description or None` as for FINISHED;
- otherwise None.

An actor call in flight when a batch is sent is reported then (`ActorSubmitter.
report_in_flight`): its SUBMITTED_TO_WORKER, and its end later without it.
"""

from __future__ import annotations

import logging
import os
import re
import time

from zray._config import config
from zray._fast import Event, EventStream, Runs, Shared
from zray._private.common import task_states as TS
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)

now = _now = time.time_ns


class Failure:
    """A FAILED event's extra before it is wire-ready (EventStream.take): the error entry (or
    exception) and `(sent_ns, description)` of the call's sending, if no event reported it
    yet. Not a tuple: the batch would pack it as one."""

    __slots__ = ("error", "sent")

    def __init__(self, error: object, sent: tuple | None):
        self.error = error
        self.sent = sent


class TaskEvents:
    """One process's buffer of task events. `enabled` is read by the recorders before they
    build anything, so a disabled buffer costs one attribute test per event."""

    def __init__(self, core):
        self.core = core
        interval_ms = config.task_events_report_interval_ms
        # Ray turns task events off with a report interval of 0 as well.
        self.enabled = bool(config.enable_task_events and interval_ms > 0)
        self.interval_s = interval_ms / 1000.0
        self.batch = max(1, config.task_events_flush_batch)
        # Never replaced (a flush takes its bytes), so hot paths may keep `record`, its bound
        # `add`: one compiled call per event. Past the capacity (a head that cannot keep up)
        # newer events are dropped and counted.
        self.events = EventStream(max(self.batch, config.task_events_max_buffer))
        self.record = self.events.add
        # The runs in progress here (task_id -> (attempt, start ns) in `running`), reported as
        # RUNNING at each flush so a long task shows RUNNING before it ends, and their ends.
        runs = Runs(self.events, TS.RUNNING)
        self.running: dict = runs.running
        # run_started(task_id, attempt) -> start ns; run_ended(task_id, attempt, start,
        # end=0), `end` when the run ended if that was before this call (taken before the
        # answer left, recorded after it). Compiled: an executor pays both on every task.
        self.run_started = runs.started
        self.run_ended = runs.ended
        self._reported_running: set = set()
        self._next_flush = time.monotonic() + self.interval_s

    # ------------------------------------------------------------------ owner side

    def submitted(self, task_id: bytes, attempt: int, info: Shared):
        """`info`: the description, Shared as every one a batch sends (a batch numbers
        only those: a plain tuple in its place would shift the numbers of the rest)."""
        if type(info) is not Shared:
            raise TypeError(f"a task's description is Shared, not {type(info).__name__}")
        self.record(Event(task_id, attempt, TS.PENDING_ARGS_AVAIL, _now(), info))

    def state(self, task_id: bytes, attempt: int, state: int, extra=None):
        self.record(Event(task_id, attempt, state, _now(), extra))

    def ended(self, task_id: bytes, attempt: int, error_entry):
        """The owner's view of an attempt's end: FINISHED, or FAILED with the error entry (a
        memory-store Entry of kind error, or an exception), decoded at flush time."""
        if error_entry is None:
            self.record(Event(task_id, attempt, TS.FINISHED, _now(), None))
        else:
            # A tuple: an error may refer back to anything (Event holds atoms only).
            self.record((task_id, attempt, TS.FAILED, _now(), error_entry))

    # ------------------------------------------------------------------ flushing

    def waiting(self) -> bool:
        """Whether the next flush has anything to send: events, or actor calls in flight."""
        if not self.enabled:
            return False
        submitter = getattr(self.core, "actor_submitter", None)
        tasks = getattr(self.core, "submitter", None)
        return bool(
            self.events
            or (submitter is not None and submitter.calls)
            or (tasks is not None and tasks.tasks)  # queued or pushed: a flush lists them
        )

    def wait_s(self) -> float:
        """How long the I/O thread may sleep before the next batch is due."""
        return max(0.0, self._next_flush - time.monotonic())

    def due(self, now: float) -> bool:
        return now >= self._next_flush or len(self.events) >= self.batch

    def flush(self, final: bool = False):
        """Sends what was recorded since the last flush (I/O thread, or the thread shutting
        the process down: `final` waits for the head to take it, at most a second)."""
        self._next_flush = time.monotonic() + self.interval_s
        if getattr(self.core, "head_address", None) is None:
            return  # not registered with a node yet: nowhere to send them
        record = self.record
        submitter = getattr(self.core, "actor_submitter", None)
        if submitter is not None:
            submitter.report_in_flight(record)
        tasks = getattr(self.core, "submitter", None)
        if tasks is not None:
            tasks.report_in_flight(record)
        for task_id, (attempt, start) in list(self.running.items()):
            if task_id not in self._reported_running:
                self._reported_running.add(task_id)
                record((task_id, attempt, TS.RUNNING, start, 0))
        if self._reported_running:
            self._reported_running.intersection_update(self.running)
        if not len(self.events) and not self.events.dropped:
            return
        # Events other threads record meanwhile go with it, or with the next batch.
        packed, dropped = self.events.take(_failure_wire)
        core = self.core
        # The batch travels as its own frame, sent without a copy: a second's batch is
        # megabytes, and copying it into the message, then into ZeroMQ, faulted in fresh
        # pages each time while the flush held the GIL.
        batch = [packed]
        msg = P.AddTaskEvents(core.node_id, core.worker_id, os.getpid(), b"", dropped)
        try:
            if final:
                core.requests.call(core.head_address, msg, 1.0, payload=batch)
            else:
                core.endpoint.send(core.head_address, msg, payload=batch)
        except Exception as exc:  # noqa: BLE001 - events are best effort, never a failure
            logger.debug("task events not sent: %s", exc)


def _failure_wire(value) -> list:
    """A FAILED event's extra: a Failure, or an error entry or exception alone."""
    if type(value) is Failure:
        failure = error_info(value.error)
        return failure + list(value.sent) if value.sent else failure
    return error_info(value)


def error_info(error) -> list:
    """[Ray's ErrorType name, message] of an error entry or exception."""
    if not isinstance(error, BaseException):
        from zray._private.core.serialization import deserialize

        try:
            error = deserialize(error.frames[0], error.frames[1:])
        except Exception as exc:  # noqa: BLE001 - an undecodable error is still a failure
            return [TS.TASK_EXECUTION_EXCEPTION, f"(the error could not be decoded: {exc})"]
    name = type(error).__name__
    return [TS.error_type_of(name), _plain(str(error))]


def _plain(text: str) -> str:
    """Without the ANSI colour codes of a RayTaskError's text, as Ray's state API strips them."""
    return _ANSI.sub("", text)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
