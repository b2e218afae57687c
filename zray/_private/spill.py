"""Spilling: when the arena cannot fit a new object, least recently used objects that nobody
has mapped go to files, and come back transparently when someone asks for them.

Spilling happens inside the node's loop, before the CreateObject that needed the room is
answered, so a writer simply waits while the store makes room (back-pressure instead of
failure). Only when nothing can be spilled does the writer get ObjectStoreFullError, naming the
largest objects and who holds them.
"""
from __future__ import annotations

import logging
import mmap
import os

from zray._private.object_table import StoreFull

logger = logging.getLogger(__name__)


class Spiller:
    def __init__(self, store, arena_path: str, capacity: int, directory: str):
        self.store = store
        self.arena_path = arena_path
        self.capacity = capacity
        self.directory = directory
        self._arena = None
        self.bytes_spilled = 0
        self.bytes_restored = 0

    @property
    def arena(self):
        if self._arena is None:
            fd = os.open(self.arena_path, os.O_RDWR)
            try:
                self._arena = mmap.mmap(fd, self.capacity)
            finally:
                os.close(fd)
        return self._arena

    def path_of(self, object_id: bytes) -> str:
        return os.path.join(self.directory, object_id.hex())

    def make_room(self, size: int, exclude=()) -> bool:
        """Spills until a block of `size` bytes is free; False if nothing more can go."""
        allocator = self.store.allocator
        need = -(-max(size, 1) // allocator.alignment) * allocator.alignment
        candidates = self.store.spill_candidates(exclude)
        while allocator.largest_free < need:
            if not candidates:
                return False
            self.spill(candidates.pop(0))
        return True

    def spill(self, object_id: bytes):
        obj = self.store.objects[object_id]
        os.makedirs(self.directory, exist_ok=True)
        path = self.path_of(object_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(self.arena)[obj.offset:obj.offset + obj.size]
            written = 0
            while written < obj.size:
                written += os.write(fd, view[written:])
            view.release()
        finally:
            os.close(fd)
        self.store.mark_spilled(object_id)
        self.bytes_spilled += obj.size

    def restore(self, object_id: bytes, exclude=()) -> list:
        """Brings a spilled object back (spilling others if needed); returns satisfied waiters."""
        obj = self.store.objects[object_id]
        if not self.make_room(obj.size, exclude=set(exclude) | {object_id}):
            raise StoreFull(self.full_message(obj.size))
        offset = self.store.restore_to(object_id)
        path = self.path_of(object_id)
        fd = os.open(path, os.O_RDONLY)
        try:
            view = memoryview(self.arena)[offset:offset + obj.size]
            read = 0
            while read < obj.size:
                got = os.readv(fd, [view[read:]])
                if got == 0:
                    raise OSError(f"spill file {path} is truncated")
                read += got
            view.release()
        finally:
            os.close(fd)
        os.unlink(path)
        self.bytes_restored += obj.size
        return self.store.restored(object_id)

    def forget_dropped(self):
        """Removes the files of spilled objects that were freed."""
        dropped, self.store.dropped_spills = self.store.dropped_spills, []
        for object_id in dropped:
            try:
                os.unlink(self.path_of(object_id))
            except FileNotFoundError:
                pass

    def full_message(self, size: int) -> str:
        biggest = sorted(self.store.objects.items(), key=lambda item: -item[1].size)[:5]
        lines = [f"  {oid.hex()}  {o.size / 2**20:.1f} MiB  owner {o.owner_address.split('|')[0]}"
                 f"  {'pinned by ' + str(len(o.pins)) + ' reader(s)' if o.pins else 'spilled' if o.spilled else 'unsealed' if not o.sealed else 'in memory'}"
                 for oid, o in biggest]
        allocator = self.store.allocator
        return (f"Failed to put an object of {size} bytes: the object store is full "
                f"({allocator.used} of {allocator.capacity} bytes in use) and everything in it "
                f"is in use by a reader or still being written, so nothing can be spilled. "
                f"Largest objects in the store:\n" + "\n".join(lines))

    def stats(self) -> dict:
        return {"bytes_spilled": self.bytes_spilled, "bytes_restored": self.bytes_restored}
