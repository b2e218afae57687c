"""What a worker knows about cancellation, without I/O: which tasks were cancelled, and which
tasks each running task submitted (for `cancel(recursive=True)`).

A cancel can arrive before its task does (the cancel travels over ZeroMQ, the call over a
direct connection) or after the task finished; both are remembered, in a bounded table, so a
late call never runs and a stale mark never grows memory without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

MAX_REMEMBERED = 10_000
PRUNE_CHILDREN_AT = 1_024  # a long-running parent's list of children is swept of done ones


class Cancellations:
    def __init__(self) -> None:
        self._cancelled: OrderedDict[bytes, None] = OrderedDict()
        self._children: dict[bytes, list[bytes]] = {}
        self._prune_at: dict[bytes, int] = {}  # parent -> list length of its next sweep

    def cancel(self, task_id: bytes) -> None:
        self._cancelled[task_id] = None
        if len(self._cancelled) > MAX_REMEMBERED:
            self._cancelled.popitem(last=False)

    def is_cancelled(self, task_id: bytes) -> bool:
        return bool(self._cancelled) and task_id in self._cancelled

    def note_child(
        self, parent: bytes, child: bytes, still_pending: Callable[[bytes], bool] | None = None
    ) -> None:
        """`parent` submitted `child`. `still_pending(task_id)` tells which children are not
        done yet; it is used to keep the list short for parents that run for long."""
        children = self._children.get(parent)
        if children is None:
            self._children[parent] = [child]
            return
        children.append(child)
        if still_pending is not None and len(children) >= self._prune_at.get(
            parent, PRUNE_CHILDREN_AT
        ):
            children[:] = [c for c in children if still_pending(c)]
            # The next sweep waits for as many new children as are left: amortized O(1) per
            # child. (Sweeping at every power of two was not: a parent whose answers trickle
            # in hovers around one, and swept ~1,000 children per submission: a third of an
            # owner actor's CPU with four such owners on one node.)
            self._prune_at[parent] = max(PRUNE_CHILDREN_AT, 2 * len(children))

    def children_of(self, parent: bytes) -> list[bytes]:
        return list(self._children.get(parent, ()))

    def finished(self, task_id: bytes) -> None:
        """The task's execution here ended: its children are no longer its to cancel."""
        self._children.pop(task_id, None)
        self._prune_at.pop(task_id, None)
        self._cancelled.pop(task_id, None)
