"""Owner side of generator tasks: the values a task yields, as a stream of ObjectRefs.

A streaming task has one fixed return, position 1: its completion (None, or the error that
ended it). Each value it yields arrives earlier, in a GeneratorItem, as position 2, 3, ...;
items and the completion come over one ordered channel, so once the completion is here every
item is too. `next(gen)` hands out the next position's ref as soon as it arrives; after the
last one it hands out the completion if it is an error (once), then raises StopIteration.

Until the consumer takes an item, the stream pins it; dropping the generator unpins what is
left and cancels the task if it still runs (Ray's behaviour).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from zray._fast import object_id_for
from zray._private.wire import protocol as P
from zray._private.core.dependencies import returned_entries
from zray._private.core.memory_store import KIND_ERROR, KIND_PLASMA
from zray.object_ref import ObjectRef

FIRST_ITEM = 2  # stream position of the first yielded value; 1 is the completion


class StreamState:
    """What the owner knows of one generator task's stream (touched by the I/O thread, which
    adds items, and the consumer's thread, which takes them)."""

    __slots__ = (
        "task_id",
        "received",
        "next_index",
        "raised",
        "backpressure",
        "worker",
        "lock",
        "dropped",
        "__weakref__",
    )

    def __init__(self, task_id: bytes, backpressure: int = -1):
        self.task_id = task_id
        self.received: set = set()
        self.next_index = FIRST_ITEM
        self.raised = False
        self.backpressure = backpressure
        self.worker = ""
        self.lock = threading.Lock()
        self.dropped = False


class Streams:
    """The streams one process owns, by task id."""

    def __init__(self, core):
        self.core = core
        self.streams: dict[bytes, StreamState] = {}

    def open(self, task_id: bytes, backpressure: int = -1) -> StreamState:
        state = StreamState(task_id, backpressure)
        self.streams[task_id] = state
        return state

    def on_item(self, msg: P.GeneratorItem, payload):
        core = self.core
        state = self.streams.get(msg.task_id)
        ((object_id, entry),) = returned_entries([msg.item], payload)
        with state.lock if state is not None else _NO_LOCK:
            fresh = state is not None and not state.dropped and msg.position not in state.received
            if fresh:
                state.received.add(msg.position)
                state.worker = msg.worker_address
        if not fresh:  # a retry's repeat, or nobody will read it: drop it
            if entry.kind == KIND_PLASMA and state is None:
                core.endpoint.send(core.node_address, P.FreeObjects([object_id], True))
            return
        core.refs.add_owned(object_id)
        core.refs.pin([object_id])  # held by the stream until the consumer takes it
        if msg.contained:
            core.apply_released(
                core.refs.receive_contained(object_id, [tuple(r) for r in msg.contained])
            )
        core.memory_store.put(object_id, entry)

    def close(self, state: StreamState):
        """The generator is gone: unpin what the consumer never took."""
        with state.lock:
            state.dropped = True
            left = [
                object_id_for(state.task_id, i) for i in state.received if i >= state.next_index
            ]
        self.streams.pop(state.task_id, None)
        if left:
            self.core.apply_released(self.core.refs.unpin(left))


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()


class ObjectRefGenerator:
    """The ObjectRefs a generator task yields, in order: iterate it (also with `async for`),
    or call `next()`; `ray.wait` takes it too."""

    def __init__(self, completion: ObjectRef, state: StreamState, core):
        self._completion = completion
        self._state = state
        self._core = core

    # ------------------------------------------------------------------ iteration

    def __iter__(self):
        return self

    def __next__(self) -> ObjectRef:
        ref = self._next_sync(None)
        return ref

    def __aiter__(self):
        return self

    async def __anext__(self) -> ObjectRef:
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(None, self._next_or_none)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_or_none(self):
        try:  # StopIteration cannot cross into an asyncio future
            return self._next_sync(None)
        except StopIteration:
            return None

    def send(self, value):
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, value):
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self):
        raise NotImplementedError("`gen.close` is not supported.")

    # ------------------------------------------------------------------ status

    def completed(self) -> ObjectRef:
        """A ref ready when the task ends; `get` on it raises if the task failed."""
        return self._completion

    def task_id(self):
        from zray._private.common.id_types import TaskID

        return TaskID(self._state.task_id)

    def next_ready(self) -> bool:
        """Whether next() would return at once with a ref (not StopIteration)."""
        store = self._core.memory_store
        if store.contains(self._next_id()):
            return True
        return self._completion_failed() and not self._state.raised

    def is_finished(self) -> bool:
        """Whether every output was taken: next() raises StopIteration."""
        store = self._core.memory_store
        if store.contains(self._next_id()) or not store.contains(self._completion._id):
            return False
        return self._state.raised or not self._completion_failed()

    def _next_id(self) -> bytes:
        return object_id_for(self._state.task_id, self._state.next_index)

    def _completion_failed(self) -> bool:
        entry = self._core.memory_store.get(self._completion._id)
        return entry is not None and entry.kind == KIND_ERROR

    def _take_arrived(self) -> list:
        """Every ref that arrived and was not taken, without waiting (never blocks: the I/O
        thread calls it)."""
        refs = []
        while self._core.memory_store.contains(self._next_id()):
            refs.append(self._take(self._next_id()))
        return refs

    def _take(self, next_id: bytes) -> ObjectRef:
        core, state = self._core, self._state
        ref = ObjectRef(next_id, core.address)
        with state.lock:
            state.next_index += 1
            index = state.next_index - 1
        core.apply_released(core.refs.unpin([next_id]))
        if state.backpressure > 0 and state.worker:
            core.endpoint.send(state.worker, P.GeneratorConsumed(state.task_id, index))
        return ref

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """The next ref; ObjectRef.nil() if none came within `timeout_s` (None: wait)."""
        import time

        core, state = self._core, self._state
        next_id = self._next_id()
        deadline = None if timeout_s is None or timeout_s < 0 else time.monotonic() + timeout_s
        core.batcher.release()
        ready = core.memory_store.wait(
            [next_id, self._completion._id], 1, deadline, core._on_block, core._read_while_blocked
        )
        if not ready:
            return ObjectRef.nil()
        if core.memory_store.contains(next_id):  # items come before the completion
            return self._take(next_id)
        if self._completion_failed() and not state.raised:
            state.raised = True
            return self._completion
        raise StopIteration

    def __del__(self):
        core = self._core
        try:
            if not core.memory_store.contains(self._completion._id) and core.running:
                core.cancel_task(self._state.task_id, False, True)  # stop the producer
            core.streams.close(self._state)
        except Exception:  # interpreter shutdown or a closed core: nothing left to free
            pass

    def __getstate__(self):
        raise TypeError(
            "You cannot return or pass a generator to other task. Serializing a "
            "ObjectRefGenerator is not allowed."
        )

    def __repr__(self):
        return f"ObjectRefGenerator(task_id={self._state.task_id.hex()})"


class DynamicObjectRefGenerator:
    """What a `num_returns="dynamic"` task's one ref holds: the refs of the values it yielded."""

    def __init__(self, refs):
        self._refs = deque(refs)

    def __iter__(self):
        while self._refs:
            yield self._refs.popleft()

    def __len__(self) -> int:
        return len(self._refs)


def dynamic_result(core, stream: ObjectRefGenerator, fulfil):
    """Once the stream ends, fulfils the dynamic task's ref with every yielded ref (an error
    the generator raised is the last), or with the error that ended the task."""

    def done(object_id, entry):
        refs = stream._take_arrived()
        if entry.kind == KIND_ERROR and not refs:
            from zray._private.core.serialization import deserialize

            fulfil(deserialize(entry.frames[0], entry.frames[1:]), error=True)
            return
        if entry.kind == KIND_ERROR:  # the task failed after some values: its error is last
            refs.append(stream._completion)
        fulfil(DynamicObjectRefGenerator(refs))

    core.memory_store.on_ready(stream._completion._id, done)
