"""Worker side of generator tasks: each value a task yields goes to its owner as it comes.

Values are stored like returns (inline, or in this node's arena) at stream positions 2, 3, ...
(position 1 is the task's completion, which the usual TaskDone carries after the last item).
An exception the generator raises becomes the last item, so the consumer meets it where it
happened. With back-pressure, the producer pauses once it is that many values ahead of what
the consumer took (GeneratorConsumed); an actor may also cap the values not yet taken across
all of its streams together (`_actor_generator_backpressure_num_objects`), as Ray does.
"""

from __future__ import annotations

import asyncio
import os
import threading

from zray import exceptions as X
from zray._fast import object_id_for
from zray._private.wire import protocol as P
from zray._private.core.reference_counter import distinct
from zray._private.core.serialization import serialize

FIRST_ITEM = 2
PAUSE_CHECK_S = 0.1  # a paused producer looks at cancellation this often


def fixed_returns(num_returns: int) -> int:
    """Returns a TaskDone carries: a stream's is its completion alone."""
    return 1 if num_returns == P.STREAMING else num_returns


class Producer:
    def __init__(self, core):
        self.core = core
        self._consumed: dict[bytes, int] = {}
        self._sent: dict[bytes, int] = {}  # the last position each running stream sent
        self._changed = threading.Condition()
        self.actor_cap = -1  # an actor's cap on untaken values of all its streams (-1: none)

    def on_consumed(self, msg: P.GeneratorConsumed):
        with self._changed:
            if msg.position > self._consumed.get(msg.task_id, 0):
                self._consumed[msg.task_id] = msg.position
                self._changed.notify_all()

    def run(self, task_id: bytes, owner: str, name: str, generator, backpressure: int):
        """Drives a sync generator to its end; returns the number of values sent."""
        index = FIRST_ITEM - 1
        try:
            for value in generator:
                index += 1
                self.send(task_id, owner, name, index, value)
                if backpressure > 0 or self.actor_cap > 0:
                    self._pause(task_id, backpressure)
        except (KeyboardInterrupt, SystemExit):
            raise  # cancelled, or exit_actor(): the task ends as a whole
        except BaseException as exc:  # noqa: BLE001 - the consumer meets it in the stream
            index += 1
            self.send(task_id, owner, name, index, self._error(exc, name), error=True)
        finally:
            with self._changed:
                self._consumed.pop(task_id, None)
                self._sent.pop(task_id, None)
                self._changed.notify_all()  # its untaken values no longer count for the actor
        return index - FIRST_ITEM + 1

    async def run_async(self, task_id: bytes, owner: str, name: str, generator, backpressure: int):
        """The same for an async generator (an async actor's method), on its event loop."""
        index = FIRST_ITEM - 1
        try:
            async for value in generator:
                index += 1
                self.send(task_id, owner, name, index, value)
                while not self._has_room(task_id, backpressure):
                    await asyncio.sleep(0.005)
        except (asyncio.CancelledError, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001
            index += 1
            self.send(task_id, owner, name, index, self._error(exc, name), error=True)
        finally:
            with self._changed:
                self._consumed.pop(task_id, None)
                self._sent.pop(task_id, None)
                self._changed.notify_all()  # its untaken values no longer count for the actor
        return index - FIRST_ITEM + 1

    def send(self, task_id: bytes, owner: str, name: str, index: int, value, error=False):
        core = self.core
        self._sent[task_id] = index
        object_id = object_id_for(task_id, index)
        try:
            meta, buffers, contained = serialize(value)
        except TypeError as exc:
            meta, buffers, contained = serialize(self._error(exc, name))
            error = True
        contained = distinct(contained)
        if contained:
            core.register_borrower(owner, contained)
        entry = core.store_value(object_id, meta, buffers, error=error, owner_address=owner)
        core.endpoint.send(
            owner,
            P.GeneratorItem(
                task_id,
                index,
                [object_id, entry.kind, len(entry.frames), entry.node_id, entry.size],
                [list(r) for r in contained],
                core.address,
            ),
            payload=entry.frames,
        )

    def _untaken(self, task_id: bytes) -> int:
        return self._sent.get(task_id, FIRST_ITEM - 1) - self._consumed.get(task_id, FIRST_ITEM - 1)

    def _has_room(self, task_id: bytes, backpressure: int) -> bool:
        """Whether the stream may produce its next value: fewer than `backpressure`
        of its own values untaken, and fewer than the actor's cap across all its streams."""
        if backpressure > 0 and self._untaken(task_id) >= backpressure:
            return False
        cap = self.actor_cap
        return cap <= 0 or sum(self._untaken(t) for t in list(self._sent)) < cap

    def _pause(self, task_id: bytes, backpressure: int):
        with self._changed:
            while not self._has_room(task_id, backpressure):
                self._changed.wait(PAUSE_CHECK_S)  # a cancel interrupts this thread

    def _error(self, exc: BaseException, name: str):
        return X.RayTaskError.from_exception(exc, name, pid=os.getpid(), ip=self.core.node_ip)
