"""Local reference counting by the owner (the process that created an object).

An owned object is freed when no ObjectRef to it is alive in this process, no submitted task
still needs it as an argument, and it never escaped into another value or process (escaped
objects are kept until borrower accounting lands; see docs/design.md).

ObjectRef.__del__ can run in any thread at any moment (garbage collection), even while this
process holds a lock, so it only appends to a deque; counts change under our own lock.
"""
from __future__ import annotations

import threading
from collections import deque


class ReferenceCounter:
    def __init__(self):
        self._lock = threading.Lock()
        self._local: dict[bytes, int] = {}
        self._released = deque()
        self._owned: set[bytes] = set()
        self._escaped: set[bytes] = set()
        self._task_pins: dict[bytes, int] = {}
        self.borrowed_owner: dict[bytes, str] = {}

    def add_local(self, object_id: bytes):
        with self._lock:
            self._local[object_id] = self._local.get(object_id, 0) + 1

    def remove_local_later(self, object_id: bytes):
        self._released.append(object_id)

    def add_owned(self, object_id: bytes):
        self._owned.add(object_id)

    def owns(self, object_id: bytes) -> bool:
        return object_id in self._owned

    def note_borrowed(self, ref):
        if ref._id not in self._owned and ref._owner:
            self.borrowed_owner[ref._id] = ref._owner

    def mark_escaped(self, refs):
        for ref in refs:
            self._escaped.add(ref._id)

    def pin_for_task(self, object_ids):
        with self._lock:
            for oid in object_ids:
                self._task_pins[oid] = self._task_pins.get(oid, 0) + 1

    def unpin_for_task(self, object_ids) -> list:
        freeable = []
        with self._lock:
            for oid in object_ids:
                count = self._task_pins.get(oid, 0) - 1
                if count > 0:
                    self._task_pins[oid] = count
                else:
                    self._task_pins.pop(oid, None)
                    if self._freeable(oid):
                        freeable.append(oid)
        return self._forget(freeable)

    def collect(self) -> tuple[list, list]:
        """Applies the decrements queued by __del__. Returns (owned ids that can now be freed,
        borrowed ids no longer referenced here, whose cached values can go)."""
        released = self._released
        if not released:
            return [], []
        freeable, forgotten = [], []
        with self._lock:
            while released:
                oid = released.popleft()
                count = self._local.get(oid, 0) - 1
                if count > 0:
                    self._local[oid] = count
                    continue
                self._local.pop(oid, None)
                if oid in self._owned:
                    if self._freeable(oid):
                        freeable.append(oid)
                elif self.borrowed_owner.pop(oid, None) is not None:
                    forgotten.append(oid)
        return self._forget(freeable), forgotten

    def is_live(self, object_id: bytes) -> bool:
        return object_id in self._local or object_id in self._task_pins

    def _freeable(self, oid) -> bool:
        return (oid in self._owned and oid not in self._local and oid not in self._task_pins
                and oid not in self._escaped)

    def _forget(self, ids) -> list:
        for oid in ids:
            self._owned.discard(oid)
        return ids

    def stats(self) -> dict:
        return {"local": len(self._local), "owned": len(self._owned),
                "escaped": len(self._escaped), "task_pinned": len(self._task_pins),
                "borrowed": len(self.borrowed_owner)}
