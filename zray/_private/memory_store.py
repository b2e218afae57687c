"""The owner's in-process object store: small values by value, large ones by location.

Entries are immutable once put. Readers block on a condition; producers (the I/O thread)
never block. Callbacks registered with `on_ready` run outside the lock, in the producer's thread.
"""
from __future__ import annotations

import threading
import time

KIND_INLINE = 0  # frames hold pickle-5 metadata then out-of-band buffers
KIND_PLASMA = 1  # the value lives in node `node_id`'s shared-memory arena
KIND_ERROR = 2   # frames hold a pickled exception to raise on get
KIND_FREED = 3   # the owner no longer has it (borrower asked too late)


class Entry:
    __slots__ = ("kind", "frames", "node_id", "size")

    def __init__(self, kind: int, frames=(), node_id: bytes = b"", size: int = 0):
        self.kind = kind
        self.frames = frames
        self.node_id = node_id
        self.size = size

    def __repr__(self):
        return f"Entry(kind={self.kind}, size={self.size})"


class MemoryStore:
    def __init__(self):
        self._entries: dict[bytes, Entry] = {}
        self._callbacks: dict[bytes, list] = {}
        self._cond = threading.Condition(threading.Lock())

    def put(self, object_id: bytes, entry: Entry):
        with self._cond:
            self._entries[object_id] = entry
            callbacks = self._callbacks.pop(object_id, None)
            self._cond.notify_all()
        if callbacks:
            for callback in callbacks:
                callback(object_id, entry)

    def get(self, object_id: bytes):
        return self._entries.get(object_id)

    def contains(self, object_id: bytes) -> bool:
        return object_id in self._entries

    def delete(self, object_id: bytes):
        with self._cond:
            self._entries.pop(object_id, None)

    def on_ready(self, object_id: bytes, callback):
        with self._cond:
            entry = self._entries.get(object_id)
            if entry is None:
                self._callbacks.setdefault(object_id, []).append(callback)
                return
        callback(object_id, entry)

    def wait(self, object_ids, num_returns: int, deadline: float | None, on_block=None) -> list:
        """Blocks until `num_returns` of `object_ids` are present or the deadline passes;
        returns the ids present. `on_block(True/False)` brackets any actual wait."""
        entries = self._entries
        ready = [oid for oid in object_ids if oid in entries]
        if len(ready) >= num_returns:
            return ready
        blocked = False
        try:
            with self._cond:
                while True:
                    ready = [oid for oid in object_ids if oid in entries]
                    if len(ready) >= num_returns:
                        return ready
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return ready
                    if on_block is not None and not blocked:
                        blocked = True
                        self._cond.release()
                        try:
                            on_block(True)
                        finally:
                            self._cond.acquire()
                        continue
                    self._cond.wait(remaining if remaining is None else min(remaining, 1.0))
        finally:
            if blocked:
                on_block(False)

    def __len__(self):
        return len(self._entries)
