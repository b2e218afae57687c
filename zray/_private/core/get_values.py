"""A get's values: waiting for them, mapping those in this node's shared memory, unpickling.

Mixed into CoreWorker (core_worker.py), which owns the memory store, the arena mapping and
the pins of the views it hands out.
"""

from __future__ import annotations

import time
import weakref

from zray import exceptions as X
from zray._config import config
from zray._fast import pinned_view, read_object
from zray._private.core.memory_store import KIND_ERROR, KIND_INLINE, KIND_PLASMA
from zray._private.core.serialization import deserialize
from zray._private.wire import protocol as P


class GetValues:
    def _get(self, refs: list, timeout: float | None, deadline):
        ids = [ref._id for ref in refs]
        self._request_missing(refs)
        if self._inline_runner is not None and timeout is None:
            self._inline_runner.run_awaited(ids, len(set(ids)))
        store = self.memory_store
        # All at once, then unpickled: unpickling each batch of values as it arrived (tried
        # for a task with 10,000 ref arguments) made the whole slower, as this thread and the
        # I/O thread receiving the rest took turns with the GIL.
        wanted = len(set(ids))
        ready = store.wait(
            ids, wanted, deadline, self._on_block, self._read_while_blocked, stop_on_error=True
        )
        if len(ready) < wanted:
            for oid in ids:  # an error raises without waiting for the rest, as in Ray
                entry = store.get(oid)
                if entry is not None and entry.kind == KIND_ERROR:
                    raise self._as_raisable(deserialize(entry.frames[0], entry.frames[1:]))
            raise X.GetTimeoutError(
                f"Get timed out: some object(s) not ready after {timeout} seconds."
            )
        entries = store._entries  # read without the lock: entries are put whole, never changed
        if len(ids) == 1:  # a sync call's get: one inline value, without the loops below
            entry = entries.get(ids[0])
            if entry is not None and entry.kind == KIND_INLINE:
                return [deserialize(entry.frames[0], entry.frames[1:])]
        values: list = [None] * len(ids)
        in_arena = []  # positions of values in shared memory: mapped together first
        arena_nodes: dict = {}  # their ids -> the node holding each
        found = [entries.get(oid) for oid in ids]
        for position, entry in enumerate(found):
            if entry is not None and entry.kind == KIND_PLASMA:
                in_arena.append(position)
                arena_nodes[ids[position]] = entry.node_id
        views = self._map_plasma(list(arena_nodes), deadline, arena_nodes) if in_arena else {}
        for position, entry in enumerate(found):
            kind = entry.kind if entry is not None else None  # None: deleted meanwhile
            if kind == KIND_INLINE:
                values[position] = deserialize(entry.frames[0], entry.frames[1:])
            elif kind == KIND_PLASMA:
                meta, buffers = read_object(views[ids[position]])
                values[position] = deserialize(meta, buffers)
            elif kind == KIND_ERROR:
                raise self._as_raisable(deserialize(entry.frames[0], entry.frames[1:]))
            else:
                raise X.ReferenceCountingAssertionError(
                    f"{refs[position]} was freed by its owner before this get"
                )
        return values

    @staticmethod
    def _as_raisable(error):
        if isinstance(error, X.RayTaskError):
            return error.as_instanceof_cause()
        return error

    def _map_plasma(self, object_ids: list, deadline, node_ids: dict | None = None) -> dict:
        """Maps sealed objects of the local arena, pinned until the last view is gone. An object
        still mapped by a live view is reused without asking the node again. `node_ids`: where
        each object lives, if the caller knows (else read from the memory store)."""
        views, missing = {}, []
        live, mapped_at = self._live_views, self._mapped_at
        for oid in object_ids:
            region = live.get(oid)
            region = region() if region is not None else None
            if region is not None:
                views[oid] = memoryview(region)
                continue
            location = self._revive(oid) if oid in mapped_at else None
            if location is not None:
                views[oid] = self._pin(oid, *location)
            else:
                missing.append(oid)
        if not missing:
            return views
        timeout = (
            config.rpc_timeout_s if deadline is None else max(0.0, deadline - time.monotonic())
        )
        if node_ids is None:
            hints = [getattr(self.memory_store.get(oid), "node_id", b"") for oid in missing]
        else:
            hints = [node_ids[oid] for oid in missing]
        reply, _ = self.requests.call(
            self.node_address, P.GetObjects(missing, timeout, hints), timeout + config.rpc_timeout_s
        )
        unfetched = None
        for oid, location in zip(missing, reply.offsets):
            if location is None:
                unfetched = unfetched or oid
            else:  # every object the node pinned gets its view, whose death unpins it
                views[oid] = self._pin(oid, *location)
        if unfetched is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise X.GetTimeoutError(
                    f"Get timed out: object {unfetched.hex()} was not fetched in time."
                )
            raise X.ObjectLostError(unfetched.hex(), None, "")
        return views

    def _pin(self, oid: bytes, offset: int, size: int):
        view = pinned_view(self.arena, offset, size, _Release(self, oid))
        self._live_views[oid] = weakref.ref(view.obj)  # _Release drops it when it dies
        self._mapped_at[oid] = (offset, size)
        return view

    def _revive(self, oid: bytes):
        """Takes back a pin whose release has not been sent yet (releases go out every few ms)
        and returns where the object is: a get right after the previous view died then costs
        no round trip to the node. Both deque operations are atomic, so either we or the
        housekeeping thread get the release; while it is unsent the object cannot move."""
        location = self._mapped_at.get(oid)
        if location is None:
            return None
        try:
            self._pin_releases.remove(oid)
        except ValueError:
            return None
        return location


class _Release:
    """on_release callback for a pinned view: cheap and safe to call from any thread. It runs
    after every weak reference to the view's exporter was cleared, so it also forgets the
    dead entry of `_live_views` (a weakref callback per view did that, at ~3 us a view)."""

    __slots__ = ("core", "object_id")

    def __init__(self, core, object_id: bytes):
        self.core = core
        self.object_id = object_id

    def __call__(self):
        core, oid = self.core, self.object_id
        live = core._live_views
        ref = live.get(oid)
        if ref is not None and ref() is None:  # not a newer view of the same object
            live.pop(oid, None)
        core._pin_releases.append(oid)
        wake = core.doze_wake
        if wake is not None:
            wake()
