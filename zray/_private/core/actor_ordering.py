"""The caller's side of actor call ordering, without I/O (tests/unit/test_actor_ordering.py).

Calls from one caller to one actor go out on one ZeroMQ connection, which keeps their order, so
the actor needs no sequence numbers: ordering is decided here, by what is sent when. A call is
sent only once every call submitted before it was sent (or failed); a call whose arguments are
still resolving holds back the ones after it. When the actor's worker dies, the calls in flight
go back to the front of the queue, in their order, and are sent again to the restarted actor
before any later call.

An actor that executes out of order (Ray's `allow_out_of_order_execution`, the default for
async and threaded actors) gets each call as soon as its arguments are ready: a call still
resolving holds back nothing.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, NamedTuple, Union

from zray._private.common.actor_states import ALIVE, DEAD, PENDING, RESTARTING

ARGUMENTS, RETRIES, DEAD_ACTOR, CANCELLED = "arguments", "retries", "dead", "cancelled"


class Send(NamedTuple):
    call: object
    address: str


class Fail(NamedTuple):
    call: object
    why: str  # ARGUMENTS (an argument is an error), RETRIES (died in flight), DEAD_ACTOR,
    # CANCELLED (cancelled before it was sent, or in flight when its worker died)


Instruction = Union[Send, Fail]


class CallOrder:
    """One actor as one caller sees it. Calls are any objects with `task_id`, `ready`,
    `args_failed` and `retries_left` (-1: unlimited) attributes."""

    def __init__(self, out_of_order: bool = False) -> None:
        self.out_of_order = out_of_order
        self.state = PENDING
        self.address = ""
        self.queue: deque[Any] = deque()
        self.inflight: OrderedDict[bytes, Any] = OrderedDict()
        # After a kill that restarts the actor, an ALIVE published before the head saw the
        # kill names the instance being killed: calls wait for the restart number this is.
        self.restarts_awaited = 0

    @property
    def idle(self) -> bool:
        return not self.queue and not self.inflight

    def submit(self, call: Any) -> list[Instruction]:
        call.ready = False
        self.queue.append(call)
        if self.state == DEAD:
            return self._fail_all()
        return []

    def resolved(self, call: Any, args_failed: bool) -> list[Instruction]:
        """The call's arguments are ready (or one of them is an error)."""
        call.ready, call.args_failed = True, args_failed
        return self._pump()

    def state_changed(self, state: str, address: str, num_restarts: int = 0) -> list[Instruction]:
        if self.state == DEAD:
            return []
        if state == ALIVE and num_restarts < self.restarts_awaited:
            return []  # the instance a kill is ending
        moved = address != self.address and self.inflight
        self.state, self.address = state, address
        if state == DEAD:
            return self._fail_all()
        out: list[Instruction] = []
        if moved or state == RESTARTING:
            out = self._requeue_inflight()
        if state == ALIVE:
            out += self._pump()
        return out

    def killed(self, num_restarts: int) -> list[Instruction]:
        """The caller killed the actor and the head stops its worker (instance number
        `num_restarts`), which restarts it if restarts remain. Calls already sent are retried
        or fail as if the worker had died; later calls wait for the next instance, never the
        one being killed."""
        if self.state == DEAD:
            return []
        self.restarts_awaited = max(self.restarts_awaited, num_restarts + 1)
        return self.state_changed(RESTARTING, "")

    def done(self, task_id: bytes) -> Any:
        """An answer arrived: the call is over wherever it is. An answer from a worker that
        died may arrive after the call was queued again for the restarted actor."""
        call = self.inflight.pop(task_id, None)
        if call is None:
            for queued in self.queue:
                if queued.task_id == task_id:
                    self.queue.remove(queued)
                    return queued
        return call

    def cancel(self, task_id: bytes) -> list[Instruction] | None:
        """Drops a call not sent yet: returns its failure and the calls it held back, or None
        when the call is in flight (its worker decides) or unknown."""
        for queued in self.queue:
            if queued.task_id == task_id:
                self.queue.remove(queued)
                return [Fail(queued, CANCELLED)] + self._pump()
        return None

    def _pump(self) -> list[Instruction]:
        if self.out_of_order:
            return self._pump_every_ready()
        out: list[Instruction] = []
        queue = self.queue
        while queue and queue[0].ready:
            call = queue[0]
            if call.args_failed:
                queue.popleft()
                out.append(Fail(call, ARGUMENTS))
                continue
            if self.state != ALIVE:
                break
            queue.popleft()
            self.inflight[call.task_id] = call
            out.append(Send(call, self.address))
        return out

    def _pump_every_ready(self) -> list[Instruction]:
        """Sends (or fails) every ready call, in submission order among them; the others
        stay queued in theirs."""
        out: list[Instruction] = []
        waiting: deque[Any] = deque()
        for call in self.queue:
            if not call.ready:
                waiting.append(call)
            elif call.args_failed:
                out.append(Fail(call, ARGUMENTS))
            elif self.state != ALIVE:
                waiting.append(call)
            else:
                self.inflight[call.task_id] = call
                out.append(Send(call, self.address))
        self.queue = waiting
        return out

    def _requeue_inflight(self) -> list[Instruction]:
        out: list[Instruction] = []
        retry: list[Any] = []
        for call in self.inflight.values():
            if getattr(call, "cancelled", False):  # cancelled calls are never retried
                out.append(Fail(call, CANCELLED))
            elif call.retries_left != 0:
                call.retries_left -= 1
                retry.append(call)
            else:
                out.append(Fail(call, RETRIES))
        self.inflight.clear()
        self.queue.extendleft(reversed(retry))
        return out

    def _fail_all(self) -> list[Instruction]:
        calls = list(self.inflight.values()) + list(self.queue)
        self.inflight.clear()
        self.queue.clear()
        return [Fail(call, DEAD_ACTOR) for call in calls]
