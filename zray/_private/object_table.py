"""The node's table of objects in its shared-memory arena, as a state machine without I/O.

An object is created (space allocated), written by its creator, then sealed (immutable, visible
to readers). Readers pin what they map; a free requested while pins remain is deferred until the
last pin goes, so a live numpy view never points at reused memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class StoreFull(Exception):
    pass


class ObjectExists(Exception):
    pass


@dataclass
class StoredObject:
    offset: int  # -1 while spilled
    size: int
    creator: bytes
    owner_address: str
    sealed: bool = False
    pins: dict = field(default_factory=dict)  # client -> count
    free_requested: bool = False
    spilled: bool = False  # its bytes live in a spill file, not in the arena
    last_used: int = 0


@dataclass
class Waiter:
    client: bytes
    handle: object  # opaque: how the daemon answers (e.g. the request seq)
    object_ids: list
    deadline: float


class LocalObjectStore:
    def __init__(self, allocator):
        self.allocator = allocator
        self.objects: dict[bytes, StoredObject] = {}
        self.waiters: list[Waiter] = []
        self._clock = 0  # orders uses, for least-recently-used spilling
        self.dropped_spills: list = []  # ids of spilled objects dropped: their files must go

    # ------------------------------------------------------------------ writes

    def create(self, client: bytes, object_id: bytes, size: int, owner_address: str) -> int:
        if object_id in self.objects:
            raise ObjectExists(object_id.hex())
        offset = self.allocator.allocate(size)
        if offset < 0:
            raise StoreFull(
                f"object of {size} bytes does not fit: {self.allocator.used} of "
                f"{self.allocator.capacity} bytes in use, largest free block "
                f"{self.allocator.largest_free}")
        self.objects[object_id] = StoredObject(offset, size, client, owner_address)
        return offset

    def seal(self, object_id: bytes) -> list:
        """Returns the waiters now satisfied, as (waiter, locations) pairs."""
        obj = self.objects.get(object_id)
        if obj is None or obj.sealed:
            return []
        obj.sealed = True
        return self._satisfied(lambda w: object_id in w.object_ids)

    # ------------------------------------------------------------------ reads

    def get(self, client: bytes, handle, object_ids: list, deadline: float):
        """Pins and returns locations if all are sealed; otherwise parks a waiter and returns
        None (answered later by seal or expire)."""
        if all(self._ready(oid) for oid in object_ids):
            return self._pin_all(client, object_ids)
        self.waiters.append(Waiter(client, handle, list(object_ids), deadline))
        return None

    def expire(self, now: float) -> list:
        return self._satisfied(lambda w: w.deadline <= now, partial=True)

    def give_up(self, object_id: bytes) -> list:
        """Answers the waiters of an object that cannot be had (None in its place)."""
        return self._satisfied(lambda w: object_id in w.object_ids, partial=True)

    def next_deadline(self):
        return min((w.deadline for w in self.waiters), default=None)

    def release(self, client: bytes, object_ids) -> list:
        """Unpins; returns the (offset, size) of objects actually freed as a result."""
        freed = []
        for object_id in object_ids:
            obj = self.objects.get(object_id)
            if obj is None:
                continue
            count = obj.pins.get(client, 0)
            if count <= 1:
                obj.pins.pop(client, None)
            else:
                obj.pins[client] = count - 1
            if obj.free_requested and not obj.pins:
                freed.append(self._drop(object_id))
        return freed

    def free(self, object_ids) -> list:
        freed = []
        for object_id in object_ids:
            obj = self.objects.get(object_id)
            if obj is None:
                continue
            if obj.pins:
                obj.free_requested = True
            else:
                freed.append(self._drop(object_id))
        return freed

    def client_exited(self, client: bytes) -> list:
        freed = []
        for object_id, obj in list(self.objects.items()):
            if obj.pins.pop(client, None) and obj.free_requested and not obj.pins:
                freed.append(self._drop(object_id))
            elif not obj.sealed and obj.creator == client:
                freed.append(self._drop(object_id))  # half-written: nobody can seal it now
        self.waiters = [w for w in self.waiters if w.client != client]
        return freed

    # ------------------------------------------------------------------ internals

    # ------------------------------------------------------------------ spilling

    def spill_candidates(self, exclude=()) -> list:
        """Sealed, unpinned objects in memory, least recently used first: what may go to disk."""
        found = [(o.last_used, oid) for oid, o in self.objects.items()
                 if o.sealed and not o.pins and not o.spilled and oid not in exclude]
        return [oid for _, oid in sorted(found)]

    def mark_spilled(self, object_id: bytes) -> tuple:
        """The daemon wrote the bytes out: release the arena space. Returns (offset, size)."""
        obj = self.objects[object_id]
        offset = obj.offset
        self.allocator.free(offset)
        obj.offset, obj.spilled = -1, True
        return offset, obj.size

    def restore_to(self, object_id: bytes) -> int:
        """Allocates arena space for a spilled object (StoreFull if none); the daemon then
        reads the bytes back and calls restored()."""
        obj = self.objects[object_id]
        offset = self.allocator.allocate(obj.size)
        if offset < 0:
            raise StoreFull(f"no room to restore a {obj.size}-byte object")
        obj.offset = offset
        return offset

    def restored(self, object_id: bytes) -> list:
        obj = self.objects[object_id]
        obj.spilled = False
        return self._satisfied(lambda w: object_id in w.object_ids)

    def spilled_ids(self, object_ids) -> list:
        return [oid for oid in object_ids if oid in self.objects and self.objects[oid].spilled]

    def _ready(self, object_id) -> bool:
        obj = self.objects.get(object_id)
        return obj is not None and obj.sealed and not obj.spilled

    def _pin_all(self, client, object_ids) -> list:
        out = []
        for object_id in object_ids:
            obj = self.objects.get(object_id)
            if obj is None or not obj.sealed or obj.spilled:
                out.append(None)
                continue
            obj.pins[client] = obj.pins.get(client, 0) + 1
            self._clock += 1
            obj.last_used = self._clock
            out.append((obj.offset, obj.size))
        return out

    def _satisfied(self, touched, partial=False) -> list:
        out, keep = [], []
        for waiter in self.waiters:
            if touched(waiter) and (partial or all(self._ready(o) for o in waiter.object_ids)):
                out.append((waiter, self._pin_all(waiter.client, waiter.object_ids)))
            else:
                keep.append(waiter)
        self.waiters = keep
        return out

    def _drop(self, object_id) -> tuple:
        obj = self.objects.pop(object_id)
        if obj.spilled:
            self.dropped_spills.append(object_id)
        else:
            self.allocator.free(obj.offset)
        return obj.offset, obj.size

    def stats(self) -> dict:
        return {
            "objects": len(self.objects),
            "used": self.allocator.used,
            "capacity": self.allocator.capacity,
            "pinned": sum(1 for o in self.objects.values() if o.pins),
            "spilled": sum(1 for o in self.objects.values() if o.spilled),
            "waiters": len(self.waiters),
        }
