"""A task owner's task events (core/task_events.py records and sends them): the submission's
description, shared per kind of task, and the sending of a task with its arguments ready
(submitted, pushed to a lease) kept on its spec until its end reports it with itself, or a
flush reports it while the task is still on its way. A mixin of TaskSubmitter, whose lock,
`_record` and tables it uses (docs/design.md, "Task events")."""

from __future__ import annotations

from typing import Any, Callable

from zray._fast import Event, Shared, TaskSpec, record_finished
from zray._private.common import task_states as TS
from zray._private.core.memory_store import KIND_ERROR
from zray._private.core.task_events import now

MAX_DESCRIPTIONS = 1024  # task descriptions kept for the submission events (_description)


class TaskSubmissionEvents:
    # TaskSubmitter's: the submitter's lock (pushes hold it), task events' bound `add`, the
    # shared descriptions, the queues of tasks waiting for a lease (by shape) and the leases
    # (their `inflight`: the tasks pushed to them).
    lock: Any
    _record: Callable[[tuple], None]
    _descriptions: dict
    shapes: dict
    leases: dict

    def _record_submitted(self, spec: TaskSpec, state: int = 0):
        """The task's description, at PENDING_ARGS_AVAIL; with `state` PENDING_NODE_ASSIGNMENT
        (arguments ready at once: one event for both, the head sets both)."""
        self._record(
            Event(
                spec.task_id,
                spec.event_attempt,
                state or TS.PENDING_ARGS_AVAIL,
                now(),
                self._description(spec),
            )
        )

    def _description(self, spec: TaskSpec) -> Shared:
        """The task's description for task events: one Shared value per kind of task (see
        `_descriptions`)."""
        # The key note_pushed (compiled) looks a description up by, before it calls this.
        key = (spec.name, spec.func_name, spec.parent_task_id, spec.key, spec.placement_group)
        description = self._descriptions.get(key)
        if description is None:
            if len(self._descriptions) >= MAX_DESCRIPTIONS:  # parents come and go: a bound
                self._descriptions.clear()
            # Shared: a batch sends it once (task_events.py, EventStream), and the collector never
            # tracks it (a tracked description kept every event holding it tracked).
            description = self._descriptions[key] = Shared(
                (
                    TS.NORMAL_TASK,
                    spec.name,
                    spec.func_name,
                    b"",
                    spec.parent_task_id,
                    tuple(spec.resources.items()),
                    spec.placement_group,
                    spec.runtime_env,
                )
            )
        return description

    def _described(self, spec: TaskSpec) -> Shared:
        """The spec's description, computed now if the submission has not yet (it does so
        after the push, which a failure to send comes before)."""
        description = spec.description
        if not description:  # () until then
            description = spec.description = self._description(spec)
        return description

    def _pushed_reported(self, spec: TaskSpec, where: Shared):
        """`spec`, whose submission a flush reported already, was pushed to the lease `where`
        (its node and worker ids): SUBMITTED_TO_WORKER. The usual push builds the end event
        instead, which says the sending with the end (`note_pushed`, compiled, in
        TaskSubmitter._push)."""
        self._record((spec.task_id, spec.event_attempt, TS.SUBMITTED_TO_WORKER, now(), where))

    def _report_sending(self, spec: TaskSpec, record=None):
        """Records (with `record`, else as any event), as separate events, the sending of
        `spec` that its end was to report (PENDING_NODE_ASSIGNMENT with its description, and
        SUBMITTED_TO_WORKER if it was pushed): for the paths that end or move a task
        otherwise (retries, failures, an inline run) and for the flush of tasks on their way."""
        submitted = spec.submitted_ns
        if not submitted:
            return
        spec.submitted_ns = 0
        built, spec.finished = spec.finished, None  # its push, if it was pushed
        attempt = spec.event_attempt
        record = record or self._record
        record(
            Event(
                spec.task_id, attempt, TS.PENDING_NODE_ASSIGNMENT, submitted, self._described(spec)
            )
        )
        if built is not None:
            record(Event(spec.task_id, attempt, TS.SUBMITTED_TO_WORKER, built.sent_ns, built.lease))

    def report_in_flight(self, record: Callable):
        """A flush's part (I/O thread), so the state API shows tasks on their way, recorded
        with `record`: each task queued for a lease since the last flush at
        PENDING_NODE_ASSIGNMENT with its description, once, its end still saying its whole
        sending (a burst of async tasks is mostly queued at any flush: three events each
        instead of one cost them ~10%); and the sending of each task pushed and not ended (its
        lease's `inflight`), which its end then no longer says. Under the lock, which pushes
        hold: a push and its report do not interleave (a task ending meanwhile may say it
        too: the head keeps one time per state). The queues are read here, not filled into a
        table on the hot path (`_unlisted`)."""
        with self.lock:
            queued = [spec for shape in self.shapes.values() for spec in _unlisted(shape.tasks)]
            pushed = [spec for lease in self.leases.values() for spec in lease.inflight.values()]
        for start in range(0, len(queued), 1000):  # the lock in turns: submitters wait
            with self.lock:
                for spec in queued[start : start + 1000]:
                    if spec.submitted_ns and spec.finished is None:  # still queued
                        record(
                            Event(
                                spec.task_id,
                                spec.event_attempt,
                                TS.PENDING_NODE_ASSIGNMENT,
                                spec.submitted_ns,
                                self._described(spec),
                            )
                        )
        with self.lock:
            for spec in pushed:
                if spec.submitted_ns:
                    self._report_sending(spec, record)

    def _record_end(self, spec: TaskSpec, first):
        """The attempt's end as a task event: FAILED with the error entry `first`, or
        FINISHED, which also says the sending when no event reported it yet (one event for
        the whole attempt; the wire form: docs/protocol.md)."""
        if first is not None and first.kind == KIND_ERROR:
            self._report_sending(spec)
            self._record((spec.task_id, spec.event_attempt, TS.FAILED, now(), first))
            return
        if not record_finished(spec, self._record):  # built at its push, stamped now
            self._report_sending(spec)
            self._record(Event(spec.task_id, spec.event_attempt, TS.FINISHED, now(), None))


def _unlisted(queue) -> list:
    """The tasks of a lease queue (oldest first) that no flush listed yet: those after the
    last one a flush listed. A task is queued at the end, and a flush describes each task
    it lists (`_described`), so the walk from the newest end stops at the first one queued
    and described: a million queued tasks cost a flush that finds none new nothing. A retry
    (its submission recorded apart, `submitted_ns` 0) does not stop it."""
    found = []
    for spec in reversed(queue):
        if spec.submitted_ns and spec.description:
            break
        found.append(spec)
    return found
