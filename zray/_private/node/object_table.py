"""The node's table of objects in its shared-memory arena, as a state machine without I/O.

An object is created (space allocated), written by its creator, then sealed (immutable, visible
to readers). Readers pin what they map; a free requested while pins remain is deferred until the
last pin goes, so a live numpy view never points at reused memory.

Spilling adds where the bytes are, independent of pins:

    in memory --begin_spill--> SPILLING --spill_done--> spilled (file only)
                                   |                       |
                                   | (pinned meanwhile)    begin_restore
                                   v                       v
                  in memory + file copy  <--restore_done-- RESTORING

A SPILLING object is still readable (its arena range is only read by the spill thread); a
RESTORING one is not (the restore thread is writing it). While either I/O is in flight the
arena range must not be reused, so a free is deferred exactly as for a pin. An object whose file
copy is still valid (restored, or pinned while being spilled) leaves memory for free: objects
are immutable, so the file never goes stale. Copies pulled from another node are secondary:
they are simply deleted when room is needed, before any primary copy is written to disk.

Spill files hold several objects each (fused small objects); a file is dead, and listed in
`dead_files` for the daemon to delete, once no object in the table refers to it any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Container, Iterable, Optional, Protocol


class StoreFull(Exception):
    pass


class ObjectExists(Exception):
    pass


IO_NONE, IO_SPILLING, IO_RESTORING = 0, 1, 2
FILE_ALIGN = 4096  # objects start page-aligned in spill files: restores read whole pages

# Where a pinned object lies in the arena, (offset, size); None for one that cannot be had.
Location = Optional[tuple[int, int]]


class Allocator(Protocol):
    """What the table needs of the arena's allocator (zray._fast's, which it must not import:
    a state machine does no I/O and loads no compiled code)."""

    @property
    def used(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def largest_free(self) -> int: ...

    def allocate(self, size: int) -> int: ...

    def free(self, offset: int) -> int: ...


@dataclass
class StoredObject:
    offset: int  # -1 while only on disk
    size: int
    creator: bytes
    owner_address: str
    sealed: bool = False
    pins: dict[bytes, int] = field(default_factory=dict)  # client -> count
    free_requested: bool = False
    last_used: int = 0
    primary: bool = True  # False: a copy pulled from another node, deleted rather than spilled
    spill_file: int = 0  # 0, or the spill file holding a copy of the bytes
    file_offset: int = 0
    io: int = IO_NONE

    @property
    def spilled(self) -> bool:
        """Its bytes are only in a spill file (maybe being read back)."""
        return self.offset < 0 or self.io == IO_RESTORING


@dataclass
class SpillBatch:
    """Objects written together into one file, each at its page-aligned file offset."""

    file_id: int
    entries: list[tuple[bytes, int, int, int]]  # (object_id, arena offset, size, file offset)


@dataclass
class Waiter:
    client: bytes
    handle: object  # opaque: how the daemon answers (e.g. the request seq)
    object_ids: list[bytes]
    deadline: float


# A parked get answered: the waiter and where each of its objects is.
Answer = tuple[Waiter, list[Location]]


class LocalObjectStore:
    def __init__(self, allocator: Allocator) -> None:
        self.allocator = allocator
        self.objects: dict[bytes, StoredObject] = {}
        self.waiters: list[Waiter] = []
        self._clock = 0  # orders uses, for least-recently-used spilling
        self.files: dict[int, int] = {}  # spill file -> objects in the table referring to it
        self.dead_files: list[int] = []  # spill files no object needs: the daemon deletes them
        self.batches: dict[int, SpillBatch] = {}  # being written
        self.spilling_bytes = 0  # arena bytes that finished spills will free
        self._next_file = 1

    # ------------------------------------------------------------------ writes

    def create(
        self, client: bytes, object_id: bytes, size: int, owner_address: str, primary: bool = True
    ) -> int:
        if object_id in self.objects:
            raise ObjectExists(object_id.hex())
        offset = self.allocator.allocate(size)
        if offset < 0:
            raise StoreFull(
                f"object of {size} bytes does not fit: {self.allocator.used} of "
                f"{self.allocator.capacity} bytes in use, largest free block "
                f"{self.allocator.largest_free}"
            )
        self.objects[object_id] = StoredObject(offset, size, client, owner_address, primary=primary)
        return offset

    def seal(self, object_id: bytes) -> list[Answer]:
        """Returns the waiters now satisfied, as (waiter, locations) pairs."""
        obj = self.objects.get(object_id)
        if obj is None or obj.sealed:
            return []
        obj.sealed = True
        return self._satisfied(lambda w: object_id in w.object_ids)

    # ------------------------------------------------------------------ reads

    def get(
        self, client: bytes, handle: object, object_ids: list[bytes], deadline: float
    ) -> list[Location] | None:
        """Pins and returns locations if all are sealed; otherwise parks a waiter and returns
        None (answered later by seal or expire)."""
        if all(self._ready(oid) for oid in object_ids):
            return self._pin_all(client, object_ids)
        self.waiters.append(Waiter(client, handle, list(object_ids), deadline))
        return None

    def expire(self, now: float) -> list[Answer]:
        return self._satisfied(lambda w: w.deadline <= now, partial=True)

    def give_up(self, object_id: bytes) -> list[Answer]:
        """Answers the waiters of an object that cannot be had (None in its place)."""
        return self._satisfied(lambda w: object_id in w.object_ids, partial=True)

    def next_deadline(self) -> float | None:
        return min((w.deadline for w in self.waiters), default=None)

    def release(self, client: bytes, object_ids: Iterable[bytes]) -> list[tuple[int, int]]:
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
            if obj.free_requested and not obj.pins and obj.io == IO_NONE:
                freed.append(self._drop(object_id))
        return freed

    def free(self, object_ids: Iterable[bytes]) -> list[tuple[int, int]]:
        freed = []
        for object_id in object_ids:
            obj = self.objects.get(object_id)
            if obj is None:
                continue
            if obj.pins or obj.io != IO_NONE:
                obj.free_requested = True
            else:
                freed.append(self._drop(object_id))
        return freed

    def owned_by(self, owner_address: str) -> list[bytes]:
        """The objects whose owner is the process at `owner_address` (it died: as in Ray,
        what it owned goes with it)."""
        return [oid for oid, obj in self.objects.items() if obj.owner_address == owner_address]

    def client_exited(self, client: bytes) -> list[tuple[int, int]]:
        freed = []
        for object_id, obj in list(self.objects.items()):
            if (
                obj.pins.pop(client, None)
                and obj.free_requested
                and not obj.pins
                and obj.io == IO_NONE
            ):
                freed.append(self._drop(object_id))
            elif not obj.sealed and obj.creator == client:
                freed.append(self._drop(object_id))  # half-written: nobody can seal it now
        self.waiters = [w for w in self.waiters if w.client != client]
        return freed

    # ------------------------------------------------------------------ spilling

    def eviction_candidates(self, exclude: Container[bytes] = ()) -> tuple[list[bytes], ...]:
        """What may leave memory, each list least recently used first: (secondary copies to
        delete, objects whose file copy is valid and can just leave memory, primary copies that
        must be written out). Only sealed objects nobody has mapped and no I/O is touching, and
        none a parked get waits for: it would be evicted while the rest of that get arrives."""
        secondary: list[tuple[int, bytes]] = []
        on_disk: list[tuple[int, bytes]] = []
        primary: list[tuple[int, bytes]] = []
        waited = {oid for w in self.waiters for oid in w.object_ids}
        for oid, o in self.objects.items():
            if (
                not o.sealed
                or o.pins
                or o.offset < 0
                or o.io != IO_NONE
                or o.free_requested
                or oid in exclude
                or oid in waited
            ):
                continue
            (secondary if not o.primary else on_disk if o.spill_file else primary).append(
                (o.last_used, oid)
            )
        return tuple([oid for _, oid in sorted(group)] for group in (secondary, on_disk, primary))

    def evict(self, object_id: bytes) -> bool:
        """Takes an unpinned object out of memory without I/O: a secondary copy is deleted (True:
        tell the directory), one with a valid file copy keeps only the file (False)."""
        obj = self.objects[object_id]
        assert obj.sealed and not obj.pins and obj.offset >= 0 and obj.io == IO_NONE
        if not obj.primary:
            self._drop(object_id)
            return True
        assert obj.spill_file
        self.allocator.free(obj.offset)
        obj.offset = -1
        return False

    def begin_spill(self, object_ids: Iterable[bytes]) -> SpillBatch:
        """Starts writing primary copies into one new file. They stay readable meanwhile, and
        their arena space stays allocated until spill_done."""
        file_id, self._next_file = self._next_file, self._next_file + 1
        entries: list[tuple[bytes, int, int, int]] = []
        position = 0
        for object_id in object_ids:
            obj = self.objects[object_id]
            assert obj.primary and obj.sealed and not obj.pins and obj.offset >= 0
            assert obj.io == IO_NONE and not obj.spill_file
            obj.io = IO_SPILLING
            entries.append((object_id, obj.offset, obj.size, position))
            self.spilling_bytes += obj.size
            position += -(-obj.size // FILE_ALIGN) * FILE_ALIGN
        batch = self.batches[file_id] = SpillBatch(file_id, entries)
        return batch

    def spill_done(self, file_id: int, ok: bool) -> list[tuple[int, int]]:
        """The spill thread finished writing a file (ok) or gave up (not ok: the objects just
        stay in memory). Objects nobody pinned meanwhile leave memory; a pinned one keeps its
        arena copy and the file copy, so it can leave later without I/O. Returns the
        (offset, size) of objects dropped because a free came while they were being written."""
        batch = self.batches.pop(file_id)
        freed = []
        for object_id, _, size, file_offset in batch.entries:
            obj = self.objects[object_id]
            obj.io = IO_NONE
            self.spilling_bytes -= size
            if obj.free_requested and not obj.pins:
                freed.append(self._drop(object_id))
                continue
            if not ok:
                continue
            obj.spill_file, obj.file_offset = file_id, file_offset
            self.files[file_id] = self.files.get(file_id, 0) + 1
            if not obj.pins:
                self.allocator.free(obj.offset)
                obj.offset = -1
        if ok and file_id not in self.files:
            self.dead_files.append(file_id)
        return freed

    def begin_restore(self, object_id: bytes) -> int:
        """Allocates arena space for a spilled object (StoreFull if none) and marks it being
        read back; not readable until restore_done."""
        obj = self.objects[object_id]
        assert obj.offset < 0 and obj.io == IO_NONE and obj.spill_file
        offset = self.allocator.allocate(obj.size)
        if offset < 0:
            raise StoreFull(f"no room to restore a {obj.size}-byte object")
        obj.offset, obj.io = offset, IO_RESTORING
        return offset

    def restore_done(self, object_id: bytes, ok: bool) -> list[Answer]:
        """Returns the waiters now satisfied (none when the read failed: the arena copy is
        dropped again and the caller gives up on the object)."""
        obj = self.objects[object_id]
        obj.io = IO_NONE
        if not ok:
            self.allocator.free(obj.offset)
            obj.offset = -1
        if obj.free_requested and not obj.pins:
            self._drop(object_id)
            return []
        if not ok:
            return []
        self._clock += 1
        obj.last_used = self._clock
        return self._satisfied(lambda w: object_id in w.object_ids)

    def spilled_ids(self, object_ids: Iterable[bytes]) -> list[bytes]:
        return [oid for oid in object_ids if oid in self.objects and self.objects[oid].spilled]

    def restorable(self, object_id: bytes) -> bool:
        obj = self.objects.get(object_id)
        return obj is not None and obj.offset < 0 and obj.io == IO_NONE

    def _ready(self, object_id: bytes) -> bool:
        obj = self.objects.get(object_id)
        return obj is not None and obj.sealed and not obj.spilled

    def pin_sealed(self, client: bytes, object_id: bytes) -> None:
        """The writer's pin on what it just sealed (SealObject.pinned), released as any."""
        self._pin_all(client, (object_id,))

    def _pin_all(self, client: bytes, object_ids: Iterable[bytes]) -> list[Location]:
        out: list[Location] = []
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

    def _satisfied(self, touched: Callable[[Waiter], bool], partial: bool = False) -> list[Answer]:
        out: list[Answer] = []
        keep: list[Waiter] = []
        for waiter in self.waiters:
            if touched(waiter) and (partial or all(self._ready(o) for o in waiter.object_ids)):
                out.append((waiter, self._pin_all(waiter.client, waiter.object_ids)))
            else:
                keep.append(waiter)
        self.waiters = keep
        return out

    def _drop(self, object_id: bytes) -> tuple[int, int]:
        obj = self.objects.pop(object_id)
        assert obj.io == IO_NONE
        if obj.offset >= 0:
            self.allocator.free(obj.offset)
        if obj.spill_file:
            left = self.files[obj.spill_file] - 1
            if left:
                self.files[obj.spill_file] = left
            else:
                del self.files[obj.spill_file]
                self.dead_files.append(obj.spill_file)
        return obj.offset, obj.size

    def sample(self, limit: int) -> list[list[object]]:
        """Up to `limit` objects held, for diagnosis (a leak's first question: whose, and who
        pins it): [object id hex, owner address, pins by client, primary, sealed, free
        requested, spilled]."""
        rows = []
        for object_id, stored in list(self.objects.items())[:limit]:
            rows.append(
                [
                    object_id.hex(),
                    stored.owner_address,
                    {client.hex()[:12]: count for client, count in stored.pins.items()},
                    stored.primary,
                    stored.sealed,
                    stored.free_requested,
                    stored.spilled,
                ]
            )
        return rows

    def stats(self) -> dict[str, int]:
        return {
            "objects": len(self.objects),
            "used": self.allocator.used,
            "capacity": self.allocator.capacity,
            "pinned": sum(1 for o in self.objects.values() if o.pins),
            "spilled": sum(1 for o in self.objects.values() if o.spilled),
            "spilling_bytes": self.spilling_bytes,
            "secondary": sum(1 for o in self.objects.values() if not o.primary),
            "spill_files": len(self.files) + len(self.batches),
            "waiters": len(self.waiters),
        }
