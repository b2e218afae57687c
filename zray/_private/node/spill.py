"""Spilling policy: what leaves memory, when, and who waits for room.

- Ahead of need: once the store's use (less what spills in flight will free) passes
  `object_spilling_threshold`, the node makes room in the background, so later puts find it.
- On demand: a put, pull or restore that does not fit waits in line (back-pressure) while
  room is made. When nothing can leave memory (every object is mapped by a reader, being
  written or being read back), it keeps waiting for `oom_grace_period_s` (Ray's setting, 2 s):
  readers' pins are released a few milliseconds after their views die, so a store that is full
  of pinned objects now is seldom full a moment later. A restore waits its whole deadline: its
  object is on disk, not lost. Only then does the request fail (ObjectStoreFullError for a put).

Room is made cheapest first: copies pulled from other nodes are deleted (the head's directory
is told), then objects whose spill file is still valid simply leave memory, and only then are
primary copies written out, least recently used first, fused into files of at least
`min_spilling_size` bytes. Writing happens on SpillIO's thread; the arena space is freed when
the file is complete (see the object table's states). Restores read an object's range of its
file on another thread and answer the waiting readers when done.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import time
from dataclasses import dataclass

from zray._private.node.object_table import StoreFull
from zray._private.node.spill_io import Read, SpillIO, Written

logger = logging.getLogger(__name__)

PAUSE_AFTER_ERROR_S = 1.0  # a failing disk is retried at this pace, not in a tight loop
RETRY_S = 0.05  # a request stuck waiting for room is looked at again at least this often


@dataclass
class RoomRequest:
    need: int  # aligned bytes that must be free in one block
    size: int
    then: object  # then(ok: bool, message: str), called once
    deadline: float
    exclude: frozenset
    grace_until: float  # while nothing can leave memory, wait for readers' pins until then


class Spiller:
    def __init__(
        self,
        store,
        arena_path: str,
        capacity: int,
        directory: str,
        *,
        threshold: float,
        min_spilling_size: int,
        wait_s: float,
        grace_s: float,
        on_evicted=None,
        on_restored=None,
        on_lost=None,
    ):
        self.store = store
        self.capacity = capacity
        self.directory = directory
        self.threshold = threshold
        self.min_spilling_size = max(1, min_spilling_size)
        self.wait_s = wait_s
        self.grace_s = grace_s
        self.on_evicted = on_evicted or (lambda ids: None)  # secondary copies deleted
        self.on_restored = on_restored or (lambda sat: None)  # waiters a restore satisfied
        self.on_lost = on_lost or (lambda oid: None)  # an object that cannot come back
        self.io = SpillIO(directory, arena_path, capacity)
        self.waiting: collections.deque = collections.deque()
        self.after_restore: dict[bytes, list] = {}  # object id -> callbacks(ok)
        self._restores_requested: set = set()  # waiting for room or being read
        self._paused_until = 0.0
        self._next_retry = 0.0
        self._stuck = False  # the first request waits with nothing able to leave memory
        self.last_error = ""
        self.counters = collections.Counter()

    # ------------------------------------------------------------------ room

    def request_room(
        self, size: int, then, exclude=(), wait_s: float | None = None, grace_s: float | None = None
    ):
        """Calls then(True, "") once a block of `size` bytes is free -- at once, or after
        spilling -- or then(False, message) if it cannot be had. Requests are served in order,
        so a large put is not starved by a stream of small ones."""
        alignment = self.store.allocator.alignment
        need = -(-max(size, 1) // alignment) * alignment
        now = time.monotonic()
        deadline = now + (self.wait_s if wait_s is None else wait_s)
        grace_until = min(deadline, now + (self.grace_s if grace_s is None else grace_s))
        request = RoomRequest(need, size, then, deadline, frozenset(exclude), grace_until)
        if not self.waiting and self._free_without_io(need, request.exclude):
            _call(then, True, "")
            self.spill_above_threshold()
            return
        self.counters["waited_for_room"] += 1
        self.waiting.append(request)
        self._pump()

    def _free_without_io(self, need: int, exclude) -> bool:
        """Deletes secondary copies, then drops in-memory copies that have a valid file, until a
        block of `need` bytes is free. False if that is not enough."""
        allocator = self.store.allocator
        if allocator.largest_free >= need:
            return True
        secondary, on_disk, _ = self.store.eviction_candidates(exclude)
        evicted = []
        try:
            for object_id in secondary + on_disk:
                if self.store.evict(object_id):
                    evicted.append(object_id)
                else:
                    self.counters["dropped_restored_copies"] += 1
                if allocator.largest_free >= need:
                    return True
            return False
        finally:
            if evicted:
                self.counters["secondary_evicted"] += len(evicted)
                self.on_evicted(evicted)

    def retry(self):
        """Serves the requests waiting for room again: the store changed (a pin was released,
        an object freed or sealed, a client left). Only while the first one is stuck (nothing
        could leave memory for it): a spill in flight serves them when it completes, and each
        look scans the store."""
        if self._stuck:
            self._pump()

    def next_deadline(self) -> float | None:
        """When a waiting request must next be looked at even if nothing else happens."""
        if not self.waiting:
            return None
        deadline = min(r.deadline for r in self.waiting)
        return min(self._next_retry, deadline) if self._stuck else deadline

    def _pump(self, now: float | None = None):
        """Serves waiting requests in order; starts spills for the first one that does not fit
        yet; fails requests for which nothing more can leave memory once their grace is over."""
        now = time.monotonic() if now is None else now
        self._stuck = False
        while self.waiting:
            request = self.waiting[0]
            if self._free_without_io(request.need, request.exclude):
                self.waiting.popleft()
                _call(request.then, True, "")
                continue
            if self._spill_for(request):
                break
            if now < request.grace_until:
                self._stuck = True
                break
            self.waiting.popleft()
            _call(request.then, False, self.full_message(request.size))
        self.spill_above_threshold()

    def _spill_for(self, request: RoomRequest) -> bool:
        """Starts writing enough to make room for `request`; True if room is on its way."""
        allocator = self.store.allocator
        coming = allocator.free_bytes + self.store.spilling_bytes
        if coming < request.need or not self.store.batches:
            exclude = request.exclude.union(*(r.exclude for r in self.waiting))
            self._start_batch(max(request.need - coming, 1), exclude)
        return bool(self.store.batches)

    def spill_above_threshold(self):
        """Makes room ahead of need: keeps use, less what spills in flight free, under the
        threshold."""
        if self.threshold >= 1.0:
            return
        limit = int(self.threshold * self.capacity)
        excess = self.store.allocator.used - self.store.spilling_bytes - limit
        if excess <= 0:
            return
        secondary, on_disk, _ = self.store.eviction_candidates()
        evicted = []
        for object_id in secondary + on_disk:
            if excess <= 0:
                break
            excess -= self.store.objects[object_id].size
            if self.store.evict(object_id):
                evicted.append(object_id)
            else:
                self.counters["dropped_restored_copies"] += 1
        if evicted:
            self.counters["secondary_evicted"] += len(evicted)
            self.on_evicted(evicted)
        while excess > 0:
            started = self._start_batch(excess, ())
            if not started:
                return
            self.counters["threshold_batches"] += 1
            excess -= started

    def _start_batch(self, wanted: int, exclude) -> int:
        """Writes least recently used primary copies into one file: at least `wanted` bytes and
        at least min_spilling_size if there is that much. Returns the bytes it will free."""
        if time.monotonic() < self._paused_until:
            return 0
        _, _, primary = self.store.eviction_candidates(exclude)
        target = max(wanted, self.min_spilling_size)
        chosen, total = [], 0
        for object_id in primary:
            if total >= target:
                break
            chosen.append(object_id)
            total += self.store.objects[object_id].size
        if not chosen:
            return 0
        batch = self.store.begin_spill(chosen)
        self.io.write(batch.file_id, batch.entries)
        return total

    def expire(self, now: float):
        """Fails requests past their deadline: every wait for room is bounded. One whose grace
        is over fails too if room still cannot be made."""
        if not any(r.deadline <= now for r in self.waiting):
            if self._stuck and now >= self._next_retry:  # pins also go in ways not hooked
                self._next_retry = now + RETRY_S
                self._pump(now)
            return
        keep = collections.deque()
        for request in self.waiting:
            if request.deadline <= now:
                _call(
                    request.then,
                    False,
                    "timed out waiting for the object store to spill: "
                    + self.full_message(request.size),
                )
            else:
                keep.append(request)
        self.waiting = keep
        self._pump(now)

    # ------------------------------------------------------------------ restore

    def restore(self, object_id: bytes, exclude=(), then=None):
        """Brings a spilled object back in the background. Waiting readers are answered through
        on_restored; `then(ok)` is called too, once the object is readable or lost."""
        obj = self.store.objects.get(object_id)
        if obj is None or not obj.spilled:
            if then is not None:
                then(obj is not None)
            return
        if then is not None:
            self.after_restore.setdefault(object_id, []).append(then)
        if object_id in self._restores_requested or not self.store.restorable(object_id):
            return  # already on its way back
        self._restores_requested.add(object_id)
        self.request_room(
            obj.size,
            lambda ok, message: self._begin_restore(object_id, ok, message),
            exclude=set(exclude) | {object_id},
            grace_s=self.wait_s,
        )

    def _begin_restore(self, object_id: bytes, ok: bool, message: str):
        if not self.store.restorable(object_id):  # freed meanwhile
            self._restores_requested.discard(object_id)
            self._finish_restore(object_id, False)
            return
        try:
            if not ok:
                raise StoreFull(message)
            offset = self.store.begin_restore(object_id)
        except StoreFull as exc:
            logger.error("cannot restore %s: %s", object_id.hex()[:16], exc)
            self._restores_requested.discard(object_id)
            self._finish_restore(object_id, False)
            self.on_lost(object_id)
            return
        obj = self.store.objects[object_id]
        self.io.read(object_id, obj.spill_file, obj.file_offset, offset, obj.size)

    def _finish_restore(self, object_id: bytes, ok: bool):
        for then in self.after_restore.pop(object_id, []):
            _call(then, ok)

    # ------------------------------------------------------------------ completions

    def on_io_ready(self):
        for done in self.io.completions():
            if type(done) is Written:
                self._written(done)
            elif type(done) is Read:
                self._read(done)
        self._pump()
        self.delete_dead_files()

    def _written(self, done: Written):
        batch = self.store.batches.get(done.file_id)
        if batch is None:
            return
        if done.ok:
            self.counters["bytes_spilled"] += done.nbytes
            self.counters["objects_spilled"] += len(batch.entries)
            self.counters["files_written"] += 1
            self.counters["write_us"] += int(done.seconds * 1e6)
        else:
            self.last_error = done.error
            self._paused_until = time.monotonic() + PAUSE_AFTER_ERROR_S
            self.counters["write_errors"] += 1
        self.store.spill_done(done.file_id, done.ok)

    def _read(self, done: Read):
        object_id = done.object_id
        self._restores_requested.discard(object_id)
        if object_id not in self.store.objects:
            return
        satisfied = self.store.restore_done(object_id, done.ok)
        if done.ok:
            self.counters["bytes_restored"] += done.nbytes
            self.counters["objects_restored"] += 1
            self.counters["read_us"] += int(done.seconds * 1e6)
        else:
            self.last_error = done.error
            self.counters["read_errors"] += 1
        self._finish_restore(object_id, done.ok)
        self.on_restored(satisfied)
        if not done.ok:
            self.on_lost(object_id)

    def delete_dead_files(self):
        dead, self.store.dead_files = self.store.dead_files, []
        for file_id in dead:
            self.io.delete(file_id)

    def close(self):
        """Stops the I/O threads and removes this node's spill files."""
        self.io.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ------------------------------------------------------------------ reporting

    def full_message(self, size: int) -> str:
        biggest = sorted(self.store.objects.items(), key=lambda item: -item[1].size)[:5]
        lines = [
            f"  {oid.hex()}  {o.size / 2**20:.1f} MiB  owner {o.owner_address.split('|')[0]}"
            f"  {_where(o)}"
            for oid, o in biggest
        ]
        allocator = self.store.allocator
        error = f" Last spill error: {self.last_error}." if self.last_error else ""
        return (
            f"Failed to put an object of {size} bytes: the object store is full "
            f"({allocator.used} of {allocator.capacity} bytes in use) and everything in it "
            f"is in use by a reader or still being written, so nothing can be spilled."
            f"{error} Largest objects in the store:\n" + "\n".join(lines)
        )

    def stats(self) -> dict:
        out = {
            "bytes_spilled": 0,
            "bytes_restored": 0,
            "secondary_evicted": 0,
            "threshold_batches": 0,
            "waited_for_room": 0,
        }
        out.update(self.counters)
        out["waiting_for_room"] = len(self.waiting)
        out["spilling_bytes"] = self.store.spilling_bytes
        out["directory"] = self.directory
        return out


def _call(then, *args):
    """Runs a waiter's continuation. These run from the I/O completion path and timers, outside
    the message handlers' guard, and one bad request must not stop the node's loop."""
    try:
        then(*args)
    except Exception:
        logger.exception("error in a continuation of spilling")


def _where(obj) -> str:
    if obj.pins:
        return f"pinned by {len(obj.pins)} reader(s)"
    if obj.spilled:
        return "spilled"
    if not obj.sealed:
        return "unsealed"
    return "in memory" if obj.primary else "in memory (copy from another node)"


def spill_directory(session_dir: str, configured: str, session_name: str, node_hex: str) -> str:
    """Where a node's spill files go. A configured directory may be shared by sessions, so each
    node writes into its own subdirectory named after its session, which lets the next start
    find and remove what a killed session left."""
    if not configured:
        return os.path.join(session_dir, "spill")
    return os.path.join(configured, f"{session_name}-{node_hex[:12]}")
