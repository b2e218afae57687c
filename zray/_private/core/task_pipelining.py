"""Which tasks an owner may push to a leased worker that is still running another one
(pipelining): the owner's side of docs/design.md, "Pipelined tasks". A state machine without
I/O; the submitter asks it and feeds it completions.

With one task in flight per worker, every task costs its worker a full round trip of idle
time (the answer travels to the owner, the next push back). Queuing a few more on the worker
hides that, but a task queued behind a long one waits for it while other workers may idle,
and one queued behind a task blocked in get could be the very thing it waits for. So only
short tasks queue: a task is queued behind others only if its function and every function
already in flight on that worker last ran in under `max_task_s`. A function never seen
does not qualify, and one whose task blocked in get/wait (the worker handed its queue back)
never does again. Streaming tasks are never queued and nothing queues behind them: a
generator paused by back-pressure waits for its consumer, who may wait for a queued task.
"""

from __future__ import annotations

from typing import Any, Collection

MAX_TASK_S = 0.01  # a task this short or shorter may have others queued behind it (the
# owner measures from push or previous answer to answer, so a round trip is included: ~0.1 ms
# on an idle machine, a few ms on a loaded one)
MAX_FUNCTIONS = 10_000  # durations remembered; the table starts over past this
BLOCKS = float("inf")


class Pipelining:
    def __init__(self, depth: int, max_task_s: float = MAX_TASK_S) -> None:
        self.depth = max(1, depth)
        self.max_task_s = max_task_s
        self._seconds: dict[bytes, float] = {}  # function id -> its last task's duration

    def finished(self, function_id: bytes, seconds: float) -> None:
        """A task of `function_id` ran for about `seconds` (the owner's view: from the
        moment its worker could start it to its answer)."""
        seconds_now = self._seconds
        if seconds_now.get(function_id) is BLOCKS:
            return
        if len(seconds_now) >= MAX_FUNCTIONS and function_id not in seconds_now:
            seconds_now.clear()
        seconds_now[function_id] = seconds

    def blocked(self, function_id: bytes) -> None:
        """A task of `function_id` blocked in get/wait with others queued behind it."""
        self._seconds[function_id] = BLOCKS

    def short(self, function_id: bytes) -> bool:
        return self._seconds.get(function_id, BLOCKS) <= self.max_task_s

    def may_queue(self, spec: Any, inflight: Collection[Any]) -> bool:
        """Whether `spec` may be pushed to a worker running (or queuing) `inflight`, the
        specs in flight there (not empty): only below the depth, only short tasks that are
        not streams, behind short ones."""
        if spec.num_returns < 0 or len(inflight) >= self.depth:
            return False  # a full worker answers at once: the owner asks for every queued task
        if not self.short(spec.function_id):
            return False
        for other in inflight:
            if other.num_returns < 0 or not self.short(other.function_id):
                return False
        return True
