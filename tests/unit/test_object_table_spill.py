"""The object table's spilling states under random interleavings (hypothesis), with a simulated
arena and spill files: bytes a reader has mapped, or that a spill is still writing out, are never
overwritten; restored bytes are the ones spilled; every file dies with its last object."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from zray._fast import _allocator_py
import zray._fast
from zray._private.node.object_table import (
    IO_NONE,
    IO_RESTORING,
    IO_SPILLING,
    LocalObjectStore,
    StoreFull,
)

CAPACITY = 2048
ALIGN = 64
CLIENTS = (b"c0", b"c1")


def rounded(size: int) -> int:
    return max(ALIGN, -(-size // ALIGN) * ALIGN)


class SpillMachine(RuleBasedStateMachine):
    ALLOCATOR = None

    @initialize()
    def setup(self):
        self.store = LocalObjectStore(self.ALLOCATOR(CAPACITY, ALIGN))
        self.arena = bytearray(CAPACITY)
        self.files: dict[int, dict] = {}  # file id -> file offset -> (tag, size)
        self.tags: dict[bytes, int] = {}  # object -> the byte its contents are made of
        self.freed: set = set()  # objects whose free was requested
        self.dead_seen: set = set()
        self.written: set = set()  # files whose write succeeded
        self.next_id = 0
        self.handles = 0

    # -------------------------------------------------------------- helpers

    def _check_bytes(self, oid):
        obj = self.store.objects[oid]
        tag = self.tags[oid]
        assert self.arena[obj.offset : obj.offset + obj.size] == bytes([tag]) * obj.size, oid

    def _pinned(self, results):
        for waiter, locations in results:
            for oid, location in zip(waiter.object_ids, locations):
                if location is not None:
                    assert location == (
                        self.store.objects[oid].offset,
                        self.store.objects[oid].size,
                    )
                    self._check_bytes(oid)

    def _where(self, io=None, in_memory=None, pinned=None):
        out = []
        for oid, o in self.store.objects.items():
            if io is not None and o.io != io:
                continue
            if in_memory is not None and (o.offset >= 0) != in_memory:
                continue
            if pinned is not None and bool(o.pins) != pinned:
                continue
            out.append(oid)
        return sorted(out)

    # -------------------------------------------------------------- rules

    @rule(size=st.sampled_from((0, 1, 64, 100, 300, 700)), primary=st.booleans())
    def create(self, size, primary):
        self.next_id += 1
        oid = b"o%03d" % self.next_id
        if rounded(size) > self.store.allocator.largest_free:
            try:
                self.store.create(b"w", oid, size, "", primary=primary)
            except StoreFull:
                return
            raise AssertionError("create should not fit")
        offset = self.store.create(b"w", oid, size, "", primary=primary)
        self.tags[oid] = self.next_id % 251 + 1
        self.arena[offset : offset + size] = bytes([self.tags[oid]]) * size
        self._pinned(self.store.seal(oid))

    @rule(client=st.sampled_from(CLIENTS), data=st.data())
    def get(self, client, data):
        if not self.store.objects:
            return
        oids = data.draw(
            st.lists(st.sampled_from(sorted(self.store.objects)), min_size=1, max_size=2)
        )
        self.handles += 1
        found = self.store.get(client, self.handles, oids, 1e9)
        if found is not None:
            for oid in oids:
                self._check_bytes(oid)

    @rule(data=st.data())
    def release(self, data):
        pins = sorted((oid, c) for oid, o in self.store.objects.items() for c in o.pins)
        if not pins:
            return
        oid, client = data.draw(st.sampled_from(pins))
        self.store.release(client, [oid])

    @rule(data=st.data())
    def free(self, data):
        if not self.store.objects:
            return
        oid = data.draw(st.sampled_from(sorted(self.store.objects)))
        self.freed.add(oid)
        self.store.free([oid])

    @rule(data=st.data())
    def evict(self, data):
        secondary, on_disk, _ = self.store.eviction_candidates()
        if not secondary + on_disk:
            return
        oid = data.draw(st.sampled_from(secondary + on_disk))
        was_secondary = not self.store.objects[oid].primary
        assert self.store.evict(oid) is was_secondary
        assert (oid not in self.store.objects) if was_secondary else self.store.objects[oid].spilled

    @rule(data=st.data())
    def begin_spill(self, data):
        _, _, primary = self.store.eviction_candidates()
        if not primary:
            return
        chosen = data.draw(st.lists(st.sampled_from(primary), min_size=1, unique=True))
        batch = self.store.begin_spill(chosen)
        assert batch.file_id not in self.files and batch.file_id not in self.dead_seen
        ends = [fo + size for _, _, size, fo in batch.entries]
        starts = [fo for _, _, _, fo in batch.entries]
        assert all(s % 4096 == 0 for s in starts) and all(
            a <= b for a, b in zip(ends, starts[1:])
        )  # no overlap inside the file

    @rule(data=st.data(), ok=st.sampled_from((True, True, False)))
    def spill_done(self, data, ok):
        if not self.store.batches:
            return
        file_id = data.draw(st.sampled_from(sorted(self.store.batches)))
        batch = self.store.batches[file_id]
        if ok:  # the spill thread copies what is in the arena: it must be intact
            content = {}
            for oid, offset, size, file_offset in batch.entries:
                assert self.store.objects[oid].offset == offset
                self._check_bytes(oid)
                if size:  # an empty object takes no bytes: others may start where it does
                    content[file_offset] = (self.tags[oid], size)
            self.files[file_id] = content
            self.written.add(file_id)
        self.store.spill_done(file_id, ok)

    @rule(data=st.data())
    def begin_restore(self, data):
        restorable = [oid for oid in sorted(self.store.objects) if self.store.restorable(oid)]
        if not restorable:
            return
        oid = data.draw(st.sampled_from(restorable))
        size = self.store.objects[oid].size
        if rounded(size) > self.store.allocator.largest_free:
            return
        offset = self.store.begin_restore(oid)
        self.arena[offset : offset + size] = b"\xff" * size  # garbage until read back

    @rule(data=st.data(), ok=st.sampled_from((True, True, False)))
    def restore_done(self, data, ok):
        restoring = self._where(io=IO_RESTORING)
        if not restoring:
            return
        oid = data.draw(st.sampled_from(restoring))
        obj = self.store.objects[oid]
        if ok and obj.size:  # read back from where it was written (an empty one: nothing)
            tag, size = self.files[obj.spill_file][obj.file_offset]
            assert (tag, size) == (self.tags[oid], obj.size)
            self.arena[obj.offset : obj.offset + size] = bytes([tag]) * size
        self._pinned(self.store.restore_done(oid, ok))

    @rule(client=st.sampled_from(CLIENTS))
    def client_exited(self, client):
        self.store.client_exited(client)

    @rule()
    def expire(self):
        self._pinned(self.store.expire(2e9))

    @rule()
    def daemon_deletes_dead_files(self):
        for file_id in self.store.dead_files:
            assert file_id not in self.dead_seen, "a file reported dead twice"
            self.dead_seen.add(file_id)
            self.files.pop(file_id, None)
        self.store.dead_files = []

    # -------------------------------------------------------------- invariants

    @invariant()
    def consistent(self):
        store, alloc = self.store, self.store.allocator
        in_memory = [o for o in store.objects.values() if o.offset >= 0]
        assert alloc.used == sum(rounded(o.size) for o in in_memory)
        assert alloc.num_allocations == len(in_memory)
        assert store.spilling_bytes == sum(
            o.size for o in store.objects.values() if o.io == IO_SPILLING
        )
        assert store.files == dict(
            Counter(o.spill_file for o in store.objects.values() if o.spill_file)
        )
        in_batches = [e[0] for b in store.batches.values() for e in b.entries]
        assert sorted(in_batches) == self._where(io=IO_SPILLING)
        referenced = set(store.files) | set(store.batches)
        assert not referenced & (set(store.dead_files) | self.dead_seen)
        for oid, o in store.objects.items():
            assert o.sealed
            if o.pins:  # what a reader maps is in memory, with its bytes
                assert o.offset >= 0 and o.io != IO_RESTORING
                self._check_bytes(oid)
            if o.io == IO_SPILLING:  # being written out: nobody may have reused the range
                assert o.offset >= 0 and o.primary and not o.spill_file
                self._check_bytes(oid)
            if o.io == IO_RESTORING:
                assert o.offset >= 0 and o.spill_file and not o.pins
            if o.offset < 0:
                assert o.spill_file and o.primary
            if o.free_requested:  # a free lingers only while someone still uses the object
                assert o.pins or o.io != IO_NONE
        # A freed object leaves the table as soon as nobody uses it.
        assert not any(
            oid in self.freed for oid, o in store.objects.items() if not o.pins and o.io == IO_NONE
        )

    def teardown(self):
        if not hasattr(self, "store"):
            return
        # Finish all I/O, let every reader go, free everything: no memory, no file is left.
        for file_id in sorted(self.store.batches):
            self.written.add(file_id)
            self.store.spill_done(file_id, True)
        for oid in self._where(io=IO_RESTORING):
            self.store.restore_done(oid, False)
        self.store.expire(3e9)
        for client in CLIENTS:
            self.store.client_exited(client)
        self.store.free(list(self.store.objects))
        assert not self.store.objects and self.store.allocator.used == 0
        assert not self.store.files
        dead = set(self.store.dead_files) | self.dead_seen
        assert len(dead) == len(self.store.dead_files) + len(self.dead_seen)  # each once
        # Every written file dies; one whose write failed was never counted (the spill thread
        # removes a partial file itself).
        assert dead == self.written


SETTINGS = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SelectedAllocatorSpill(SpillMachine):
    ALLOCATOR = zray._fast.Allocator


class PythonAllocatorSpill(SpillMachine):
    ALLOCATOR = _allocator_py.Allocator


SelectedAllocatorSpill.TestCase.settings = SETTINGS
PythonAllocatorSpill.TestCase.settings = SETTINGS
TestSpillSelectedAllocator = SelectedAllocatorSpill.TestCase
TestSpillPythonAllocator = PythonAllocatorSpill.TestCase
