"""A worker blocked in get on tasks it submitted runs those still waiting for a lease itself.

A recursive task (a tree reduction, a divide and conquer) blocks in get on its children. If
every blocked parent kept its own process, a tree of n leaves would need about n/2 processes
alive at once. Instead the parent's thread takes its awaited children that no worker was leased
for yet off its own queue (the latest submitted first; leases serve the queue's oldest first,
so other workers take the large subtrees and the parent descends depth first) and runs them
as its worker would: the same executor, the same PushTask and payload, the child's task id and
name in the runtime context, its answer stored through the submitter's usual path (retries,
errors). Only children whose resources fit in what the parent's lease holds are run this way,
only on the thread that executes the parent (the one a cancel interrupts), only in a `get` or
`wait` without a timeout (a child run inline cannot be left when a timeout passes), and only
while the thread's stack is under half of Python's recursion limit (each level adds about
six frames to the same stack; deeper chains block and go to other workers as before).
"""

from __future__ import annotations

import sys
import threading

from zray import exceptions as X
from zray._config import config
from zray._private.worker import log_stream
from zray._private.common import resources as R


def stack_room() -> bool:
    """Whether this thread's stack is under half of the recursion limit: the other half is
    left to the child's own code (a RecursionError would fail a task that runs remotely)."""
    budget = sys.getrecursionlimit() // 2
    frame = sys._getframe(1)
    while frame is not None and budget > 0:
        frame, budget = frame.f_back, budget - 1
    return budget > 0


class _Frame:
    """The payload frame shape the executor reads (`.buffer`), over private bytes."""

    __slots__ = ("buffer",)

    def __init__(self, data):
        # A copy, as a remote worker gets: the child must not share memory with the parent's
        # arguments (it could write into them) and sees read-only buffers, as it would remotely.
        self.buffer = data if type(data) is bytes else bytes(data)


class _AnswerHolder:
    """Stands in for the connection a call came on: keeps the answer for the runner. The
    answer never goes through ZeroMQ, even after the call sent something there: what it
    sent went to other processes (the order that rule keeps matters to a remote owner)."""

    __slots__ = ("answer",)
    in_process = True

    def __init__(self):
        self.answer = None

    def send(self, msg, payload=()) -> bool:
        self.answer = (msg, list(payload))
        return True


class InlineRunner:
    def __init__(self, executor):
        self.executor = executor
        self.core = executor.core
        self.main_thread_id = threading.main_thread().ident
        self.capacity: dict | None = None  # what the running task's lease holds, in units
        self._lease_resources = None  # ... as the task was pushed: converted when first needed

    def task_started(self, resources: dict):
        """A plain task begins on the main thread with a lease holding `resources`. Kept as
        given: most tasks never block in get, and converting costs a microsecond each."""
        self.capacity, self._lease_resources = None, resources

    def task_finished(self):
        self.capacity = self._lease_resources = None

    def _capacity(self) -> dict | None:
        if self.capacity is None and self._lease_resources is not None:
            try:
                self.capacity = R.to_units(self._lease_resources)
            except (TypeError, ValueError, AttributeError):
                self.capacity = None
            self._lease_resources = None
        return self.capacity

    def run_awaited(self, object_ids: list, num_needed: int):
        """Runs, on this thread, the awaited tasks this process owns that still wait for a
        lease, until `num_needed` of `object_ids` are ready or none is left to run."""
        core = self.core
        if (
            self._capacity() is None
            or not config.inline_nested_tasks
            or core.context.task_id is None
            or threading.get_ident() != self.main_thread_id
            or self.executor.actor is not None
            or not stack_room()
        ):
            return
        entries = core.memory_store._entries
        unique = list(dict.fromkeys(object_ids))
        ready = sum(1 for oid in unique if oid in entries)
        take = core.submitter.take_inline
        for object_id in reversed(unique):  # the latest submitted first
            while ready < num_needed and object_id not in entries:
                spec = take(object_id, self.capacity)
                if spec is None:
                    break
                self._run(spec)
                if object_id in entries:
                    ready += 1
            if ready >= num_needed:
                return

    def _run(self, spec):
        core, executor = self.core, self.executor
        submitter = core.submitter
        push, payload = submitter.inline_message(spec)
        frames = [_Frame(f) for f in payload]
        holder = _AnswerHolder()
        context = core.context
        saved_context = context.snapshot()
        saved_gpus = core.gpu_ids
        saved_log_name = log_stream.task_name()
        saved_capacity = self.capacity
        parent_task = executor.running_task
        executor.suspended.append(parent_task)
        try:
            self.task_started(push.resources)
            executor.execute(push, frames, holder)
        except BaseException:
            # The parent was cancelled (KeyboardInterrupt) while its child ran: the child
            # ends cancelled too, as Ray's recursive cancel does; the parent's get unwinds.
            submitter.inline_failed(spec, X.TaskCancelledError(spec.task_id.hex()))
            raise
        finally:
            executor.suspended.pop()
            executor.running_task = parent_task
            self.capacity, self._lease_resources = saved_capacity, None
            context.restore(saved_context)
            executor.show_gpus(saved_gpus)
            log_stream.set_task_name(saved_log_name)
        if holder.answer is not None:
            done, out = holder.answer
            submitter.on_task_done(done, [_Frame(f) for f in out])
