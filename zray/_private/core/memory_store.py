"""The owner's in-process object store: small values by value, large ones by location.

Entries are immutable once put. Readers block on a waiter; producers (the I/O thread)
never block. Callbacks registered with `on_ready` run outside the lock, in the producer's thread.
"""

from __future__ import annotations

import threading
import time

from zray._fast import Entry  # untracked by the garbage collector: see zray/_fast/untracked.pyx

KIND_INLINE = 0  # frames hold pickle-5 metadata then out-of-band buffers
KIND_PLASMA = 1  # the value lives in node `node_id`'s shared-memory arena
KIND_ERROR = 2  # frames hold a pickled exception to raise on get
KIND_FREED = 3  # the owner no longer has it (borrower asked too late)


class _Waiter:
    """One blocked wait: woken once `needed` more of the objects in `wanted` have arrived. A
    put checks each blocked wait with one set lookup instead of every wait rescanning all of
    its ids on every arrival (a get of 1,000 refs did that 1,000 times).

    Not a threading.Event: a sync call's get usually returns without ever sleeping on one
    (its thread reads the answer itself), and building an Event (a Condition and two locks)
    was a measurable part of that call. A lock is made only for a thread that does sleep."""

    __slots__ = ("wanted", "needed", "stop_on_error", "done", "wake", "_sleep")

    def __init__(self, wanted: set, needed: int, stop_on_error: bool = False):
        self.wanted = wanted
        self.needed = needed
        self.stop_on_error = stop_on_error
        self.done = False
        self.wake = None  # set by a `block` that waits on something other than `sleep`
        self._sleep = None  # held while a thread sleeps in `sleep`; released by `set`

    def set(self):
        self.done = True
        lock = self._sleep
        if lock is not None:
            try:
                lock.release()
            except RuntimeError:  # released already
                pass

    def sleep(self, timeout: float):
        """Returns once `set` was called or `timeout` passed, whichever is first."""
        lock = self._sleep
        if lock is None:
            lock = threading.Lock()
            lock.acquire()
            self._sleep = lock  # from here on, `set` releases it
            if self.done:  # `set` ran before it could see the lock
                return
        lock.acquire(timeout=timeout)


class MemoryStore:
    def __init__(self):
        self._entries: dict[bytes, Entry] = {}
        self._callbacks: dict[bytes, list] = {}
        self._waiters: list = []  # blocked waits: few at a time (one per waiting thread)
        self._lock = threading.Lock()
        # Entries in shared memory, per node: wait(fetch_local=True) skips looking for copies
        # on other nodes when there are none (a wait on 1,000 ready refs is a benchmark row).
        self.plasma_per_node: dict[bytes, int] = {}

    def put(self, object_id: bytes, entry: Entry):
        with self._lock:
            old = self._entries.get(object_id)
            if old is not None and old.kind == KIND_PLASMA:
                self._uncount(old)
            if entry.kind == KIND_PLASMA:
                self.plasma_per_node[entry.node_id] = self.plasma_per_node.get(entry.node_id, 0) + 1
            self._entries[object_id] = entry
            callbacks = self._callbacks.pop(object_id, None)
            for waiter in self._waiters:
                if object_id in waiter.wanted:
                    waiter.wanted.discard(object_id)
                    waiter.needed -= 1
                    if waiter.needed <= 0 or (waiter.stop_on_error and entry.kind == KIND_ERROR):
                        waiter.set()
                        if waiter.wake is not None:
                            waiter.wake()
        if callbacks:
            for callback in callbacks:
                callback(object_id, entry)

    def get(self, object_id: bytes):
        return self._entries.get(object_id)

    def contains(self, object_id: bytes) -> bool:
        return object_id in self._entries

    def delete(self, object_id: bytes):
        with self._lock:
            entry = self._entries.pop(object_id, None)
            if entry is not None and entry.kind == KIND_PLASMA:
                self._uncount(entry)

    def _uncount(self, entry: Entry):
        left = self.plasma_per_node.get(entry.node_id, 0) - 1
        if left > 0:
            self.plasma_per_node[entry.node_id] = left
        else:
            self.plasma_per_node.pop(entry.node_id, None)

    def on_ready(self, object_id: bytes, callback):
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is None:
                self._callbacks.setdefault(object_id, []).append(callback)
                return
        callback(object_id, entry)

    def wait(
        self,
        object_ids,
        num_returns: int,
        deadline: float | None,
        on_block=None,
        block=None,
        stop_on_error: bool = False,
    ) -> list:
        """Blocks until `num_returns` of `object_ids` are present or the deadline passes;
        returns the ids present. `on_block(True/False)` brackets any actual wait.
        `block(waiter, timeout)` replaces `waiter.sleep` (the core worker reads direct
        connections meanwhile); it returns once `waiter.done` or when the time is up.
        `stop_on_error`: also return as soon as one of them is an error (a get raises it
        without waiting for the rest, as Ray's does)."""
        entries = self._entries
        ready = [oid for oid in object_ids if oid in entries]
        if len(ready) >= num_returns or (stop_on_error and self._any_error(ready)):
            return ready
        with self._lock:
            missing = {oid for oid in object_ids if oid not in entries}
            present = len(set(object_ids)) - len(missing)
            if present >= num_returns or (stop_on_error and self._any_error(object_ids)):
                return [oid for oid in object_ids if oid in entries]
            waiter = _Waiter(missing, num_returns - present, stop_on_error)
            self._waiters.append(waiter)
        if on_block is not None:
            on_block(True)
        try:
            while not waiter.done:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                timeout = 1.0 if remaining is None else min(remaining, 1.0)
                if block is None:
                    waiter.sleep(timeout)
                else:
                    block(waiter, timeout)
        finally:
            with self._lock:
                self._waiters.remove(waiter)
            if on_block is not None:
                on_block(False)
        return [oid for oid in object_ids if oid in entries]

    def _any_error(self, object_ids) -> bool:
        entries = self._entries
        for oid in object_ids:
            entry = entries.get(oid)
            if entry is not None and entry.kind == KIND_ERROR:
                return True
        return False

    def has_other_waiters(self, than: int = 1) -> bool:
        return len(self._waiters) > than

    def __len__(self):
        return len(self._entries)
