"""LocalObjectStore over a real allocator: examples plus a hypothesis state machine, run against
both allocator implementations (the selected ``zray._fast.Allocator`` and the pure-Python one)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import zray._fast
from zray._fast import _allocator_py
from zray._private.node.object_table import LocalObjectStore, ObjectExists, StoreFull

ALLOCATORS = {"selected": zray._fast.Allocator, "python": _allocator_py.Allocator}
ALIGN = 64


def rounded(size: int) -> int:
    return max(ALIGN, -(-size // ALIGN) * ALIGN)


@pytest.fixture(params=sorted(ALLOCATORS))
def store(request):
    return LocalObjectStore(ALLOCATORS[request.param](4096, ALIGN))


# ================================================================== examples


def test_create_seal_get_release(store):
    offset = store.create(b"c", b"x", 100, "owner")
    assert store.allocator.used == 128
    assert store.get(b"r", "h", [b"x"], deadline=10.0) is None  # not sealed yet: parks
    [(waiter, locations)] = store.seal(b"x")
    assert waiter.handle == "h" and locations == [(offset, 100)]
    assert store.objects[b"x"].pins == {b"r": 1}
    assert store.get(b"r", "h2", [b"x", b"x"], deadline=10.0) == [(offset, 100)] * 2
    assert store.objects[b"x"].pins == {b"r": 3}
    assert store.release(b"r", [b"x", b"x", b"x"]) == []
    assert store.objects[b"x"].pins == {}
    assert store.free([b"x"]) == [(offset, 100)]
    assert store.allocator.used == 0 and not store.objects


def test_free_while_pinned_is_deferred_to_last_release(store):
    offset = store.create(b"c", b"x", 10, "")
    store.seal(b"x")
    store.get(b"a", 1, [b"x"], 0.0)
    store.get(b"b", 2, [b"x"], 0.0)
    assert store.free([b"x"]) == []
    assert store.objects[b"x"].free_requested
    assert store.release(b"a", [b"x"]) == []
    assert b"x" in store.objects
    assert store.release(b"b", [b"x"]) == [(offset, 10)]
    assert not store.objects and store.allocator.used == 0


def test_duplicate_create_raises_object_exists(store):
    store.create(b"c", b"x", 10, "")
    with pytest.raises(ObjectExists):
        store.create(b"d", b"x", 10, "")
    assert store.allocator.used == ALIGN


def test_store_full(store):
    with pytest.raises(StoreFull, match="does not fit"):
        store.create(b"c", b"big", 4097, "")
    store.create(b"c", b"a", 4096, "")
    with pytest.raises(StoreFull):
        store.create(b"c", b"zero", 0, "")  # even an empty object takes one aligned slot
    assert list(store.objects) == [b"a"]


def test_zero_size_object(store):
    offset = store.create(b"c", b"z", 0, "")
    store.seal(b"z")
    assert store.get(b"c", 1, [b"z"], 0.0) == [(offset, 0)]
    assert store.allocator.used == ALIGN


def test_waiter_for_several_objects_is_answered_when_the_last_is_sealed(store):
    store.create(b"c", b"x", 1, "")
    store.create(b"c", b"y", 1, "")
    assert store.get(b"r", "h", [b"x", b"y"], 5.0) is None
    assert store.seal(b"x") == []
    assert store.seal(b"x") == []  # sealing twice is a no-op
    [(waiter, locations)] = store.seal(b"y")
    assert waiter.handle == "h" and [loc is not None for loc in locations] == [True, True]
    assert not store.waiters


def test_expire_answers_partially_and_pins_only_what_is_there(store):
    store.create(b"c", b"x", 1, "")
    store.seal(b"x")
    assert store.get(b"r", "h", [b"x", b"missing"], deadline=5.0) is None
    assert store.next_deadline() == 5.0
    assert store.expire(4.9) == []
    [(waiter, locations)] = store.expire(5.0)
    assert locations[0] is not None and locations[1] is None
    assert store.objects[b"x"].pins == {b"r": 1}
    assert store.next_deadline() is None


def test_give_up_answers_waiters_of_that_object_only(store):
    offset = store.create(b"c", b"x", 1, "")
    store.seal(b"x")
    store.get(b"r", "both", [b"x", b"lost"], 99.0)
    store.get(b"r", "other", [b"y"], 99.0)
    [(waiter, locations)] = store.give_up(b"lost")
    assert waiter.handle == "both" and locations == [(offset, 1), None]
    assert store.objects[b"x"].pins == {b"r": 1}
    assert [w.handle for w in store.waiters] == ["other"]
    assert store.give_up(b"lost") == []


def test_client_exit_drops_its_pins_waiters_and_unsealed_objects(store):
    store.create(b"w", b"half", 100, "")
    store.create(b"w", b"done", 100, "")
    store.seal(b"done")
    store.get(b"w", 1, [b"done"], 0.0)
    store.free([b"done"])
    store.get(b"w", 2, [b"half"], 9.0)
    freed = store.client_exited(b"w")
    assert sorted(size for _, size in freed) == [100, 100]
    assert not store.objects and not store.waiters and store.allocator.used == 0


def test_client_exit_keeps_sealed_objects_it_created(store):
    store.create(b"w", b"x", 1, "")
    store.seal(b"x")
    assert store.client_exited(b"w") == []
    assert b"x" in store.objects


def test_free_of_unsealed_object_drops_it(store):
    offset = store.create(b"w", b"x", 1, "")
    assert store.free([b"x"]) == [(offset, 1)]
    assert store.seal(b"x") == []  # the creator's late seal finds nothing


def test_stats(store):
    store.create(b"c", b"x", 100, "")
    store.seal(b"x")
    store.get(b"c", 1, [b"x"], 0.0)
    store.get(b"c", 2, [b"y"], 0.0)
    assert store.stats() == {
        "objects": 1,
        "used": 128,
        "capacity": 4096,
        "pinned": 1,
        "spilled": 0,
        "spilling_bytes": 0,
        "secondary": 0,
        "spill_files": 0,
        "waiters": 1,
    }


def test_spill_candidates_restore_and_drop(store):
    for oid in (b"a", b"b", b"c"):
        store.create(b"w", oid, 100, "")
        store.seal(oid)
    store.get(b"r", 1, [b"b"], 0.0)  # b is mapped: never spilled
    store.get(b"r", 2, [b"a"], 0.0)
    store.release(b"r", [b"a"])  # a was used after c: c goes first
    assert store.eviction_candidates() == ([], [], [b"c", b"a"])
    used = store.allocator.used
    batch = store.begin_spill([b"c"])
    assert batch.entries == [(b"c", store.objects[b"c"].offset, 100, 0)]
    assert store.spilling_bytes == 100 and store.allocator.used == used  # still in memory
    assert store.eviction_candidates() == ([], [], [b"a"])  # being written: not again
    assert store.spill_done(batch.file_id, ok=True) == []
    assert store.allocator.used == used - 128 and store.objects[b"c"].spilled
    assert store.get(b"r", 3, [b"c"], 10.0) is None  # waits until restored
    assert store.restorable(b"c")
    store.begin_restore(b"c")
    assert not store.restorable(b"c") and store.get(b"r", 4, [b"c"], 10.0) is None
    [(w3, l3), (w4, _)] = store.restore_done(b"c", ok=True)
    assert (w3.handle, w4.handle) == (3, 4) and l3[0][1] == 100
    store.release(b"r", [b"c", b"c"])
    # Restored, its file copy is still valid: it can leave memory without being written.
    assert store.eviction_candidates() == ([], [b"c"], [b"a"])
    assert store.evict(b"c") is False and store.objects[b"c"].spilled
    store.free([b"c"])
    assert b"c" not in store.objects and store.dead_files == [batch.file_id]


def test_fused_file_dies_with_its_last_object(store):
    for oid in (b"a", b"b"):
        store.create(b"w", oid, 100, "")
        store.seal(oid)
    batch = store.begin_spill([b"a", b"b"])
    assert [e[3] for e in batch.entries] == [0, 4096]  # page-aligned offsets in one file
    store.spill_done(batch.file_id, ok=True)
    assert store.files == {batch.file_id: 2} and store.allocator.used == 0
    store.free([b"a"])
    assert store.dead_files == []
    store.free([b"b"])
    assert store.dead_files == [batch.file_id] and store.files == {}


def test_free_or_pin_while_spilling(store):
    for oid in (b"a", b"b", b"c"):
        store.create(b"w", oid, 100, "")
        store.seal(oid)
    batch = store.begin_spill([b"a", b"b", b"c"])
    assert store.free([b"a"]) == []  # the spill thread reads its range: deferred
    assert b"a" in store.objects and store.objects[b"a"].free_requested
    assert store.get(b"r", 1, [b"b"], 0.0) == [(store.objects[b"b"].offset, 100)]  # readable
    freed = store.spill_done(batch.file_id, ok=True)
    assert [size for _, size in freed] == [100] and b"a" not in store.objects
    b = store.objects[b"b"]
    assert b.offset >= 0 and b.spill_file == batch.file_id  # pinned: stays, file kept
    assert store.objects[b"c"].spilled
    assert store.allocator.used == 128 and store.files == {batch.file_id: 2}
    store.release(b"r", [b"b"])
    assert store.evict(b"b") is False and store.allocator.used == 0


def test_failed_spill_keeps_objects_in_memory(store):
    store.create(b"w", b"a", 100, "")
    store.seal(b"a")
    batch = store.begin_spill([b"a"])
    store.spill_done(batch.file_id, ok=False)
    a = store.objects[b"a"]
    assert a.offset >= 0 and not a.spill_file and store.files == {} and store.dead_files == []
    assert store.eviction_candidates() == ([], [], [b"a"])


def test_failed_restore_and_free_while_restoring(store):
    for oid in (b"a", b"b"):
        store.create(b"w", oid, 100, "")
        store.seal(oid)
    batch = store.begin_spill([b"a", b"b"])
    store.spill_done(batch.file_id, ok=True)
    store.get(b"r", 1, [b"a"], 10.0)
    store.begin_restore(b"a")
    assert store.restore_done(b"a", ok=False) == []  # the caller gives the waiter up
    assert store.objects[b"a"].spilled and store.allocator.used == 0
    store.begin_restore(b"b")
    store.free([b"b"])  # the restore thread writes its range: deferred
    assert b"b" in store.objects
    assert store.restore_done(b"b", ok=True) == []
    assert b"b" not in store.objects and store.allocator.used == 0


def test_secondary_copies_are_evicted_first(store):
    store.create(b"w", b"p", 100, "")
    store.create(b"node", b"s", 100, "", primary=False)
    store.seal(b"p")
    store.seal(b"s")
    store.get(b"r", 1, [b"p"], 0.0)
    store.release(b"r", [b"p"])  # s is older than p, but it is a copy: p still goes second
    assert store.eviction_candidates() == ([b"s"], [], [b"p"])
    assert store.evict(b"s") is True and b"s" not in store.objects


def test_waited_for_objects_are_not_evicted(store):
    for oid in (b"a", b"b"):
        store.create(b"w", oid, 100, "")
        store.seal(oid)
    batch = store.begin_spill([b"b"])
    store.spill_done(batch.file_id, ok=True)
    assert store.get(b"r", 1, [b"a", b"b"], 10.0) is None  # a waits for b's restore
    assert store.eviction_candidates() == ([], [], [])


# ================================================================== state machine

CAPACITY = 2048
CLIENTS = (b"c0", b"c1", b"c2")
OBJECTS = tuple(b"o%d" % i for i in range(8))
SIZES = st.one_of(
    st.sampled_from((0, 1, 63, 64, 65, 100, 200)),  # fit unless the arena is full
    st.sampled_from((0, 1, 63, 64, 65, 100, 200)),
    st.sampled_from((1000, CAPACITY, CAPACITY + 1, 10**6)),  # often or always StoreFull
)


class ObjectTableMachine(RuleBasedStateMachine):
    ALLOCATOR = None  # set by the subclasses below

    @initialize()
    def setup(self):
        self.store = LocalObjectStore(self.ALLOCATOR(CAPACITY, ALIGN))
        self.objects: dict[bytes, dict] = {}  # oid -> offset, size, creator, sealed, pins, free
        self.waiters: list[dict] = []  # client, handle, oids, deadline (in order)
        self.answered: set[int] = set()
        self.abandoned: set[int] = set()
        self.handles = 0
        self.now = 0.0

    # -------------------------------------------------------------- model helpers

    def _ready(self, oid):
        obj = self.objects.get(oid)
        return obj is not None and obj["sealed"]

    def _pin_all(self, client, oids):
        out = []
        for oid in oids:
            if self._ready(oid):
                obj = self.objects[oid]
                obj["pins"][client] += 1
                out.append((obj["offset"], obj["size"]))
            else:
                out.append(None)
        return out

    def _drop(self, oid):
        obj = self.objects.pop(oid)
        assert not +obj["pins"], f"freed {oid!r} while pinned: {obj}"
        return obj["offset"], obj["size"]

    def _answer(self, results, expected_waiters):
        """results: [(Waiter, locations)] from the store; expected_waiters: model waiters that
        must be answered now, in order (their pins are applied by the model here)."""
        assert [w.handle for w, _ in results] == [w["handle"] for w in expected_waiters]
        for (waiter, locations), model in zip(results, expected_waiters):
            assert waiter.handle not in self.answered, f"answered twice: {waiter}"
            assert waiter.handle not in self.abandoned, f"answered after exit: {waiter}"
            assert waiter.client == model["client"] and waiter.object_ids == model["oids"]
            assert locations == self._pin_all(model["client"], model["oids"])
            self.answered.add(waiter.handle)
            self.waiters.remove(model)

    # -------------------------------------------------------------- rules
    # Rules mostly pick objects that exist (and pins that are held): uniformly random ids
    # rarely hit the interesting paths. Unknown ids and empty lists still come up.

    def _some_oids(self, data, min_size=0, max_size=3, pool=None):
        pool = sorted(pool if pool is not None else self.objects)
        element = st.sampled_from(OBJECTS)
        if pool:
            element = st.one_of(st.sampled_from(pool), st.sampled_from(pool), element)
        return data.draw(st.lists(element, min_size=min_size, max_size=max_size))

    @rule(client=st.sampled_from(CLIENTS), data=st.data(), size=SIZES, seal_now=st.booleans())
    def create(self, client, data, size, seal_now):
        """Creates an object (mostly under an unused id); the usual put seals it right after
        writing."""
        unused = [oid for oid in OBJECTS if oid not in self.objects]
        if unused and data.draw(st.sampled_from((True, True, True, False))):
            oid = data.draw(st.sampled_from(unused))
        else:
            oid = data.draw(st.sampled_from(OBJECTS))
        largest = self.store.allocator.largest_free
        if oid in self.objects:
            with pytest.raises(ObjectExists):
                self.store.create(client, oid, size, "owner")
        elif rounded(size) > largest:
            with pytest.raises(StoreFull):
                self.store.create(client, oid, size, "owner")
        else:
            offset = self.store.create(client, oid, size, "owner")
            assert offset % ALIGN == 0 and 0 <= offset and offset + rounded(size) <= CAPACITY
            self.objects[oid] = {
                "offset": offset,
                "size": size,
                "creator": client,
                "sealed": False,
                "pins": Counter(),
                "free": False,
            }
            if seal_now:
                self._seal(oid)

    @rule(data=st.data())
    def seal(self, data):
        unsealed = [oid for oid, o in self.objects.items() if not o["sealed"]]
        [oid] = self._some_oids(data, 1, 1, unsealed)
        self._seal(oid)

    def _seal(self, oid):
        was_unsealed = oid in self.objects and not self.objects[oid]["sealed"]
        out = self.store.seal(oid)
        if not was_unsealed:
            assert out == []  # unknown or already sealed
            return
        self.objects[oid]["sealed"] = True
        due = [
            w for w in self.waiters if oid in w["oids"] and all(self._ready(o) for o in w["oids"])
        ]
        self._answer(out, due)

    @rule(
        client=st.sampled_from(CLIENTS),
        data=st.data(),
        timeout=st.sampled_from((0.0, 1.0, 5.0, math.inf)),
    )
    def get(self, client, data, timeout):
        sealed = [oid for oid, o in self.objects.items() if o["sealed"]]
        oids = self._some_oids(
            data,
            min_size=data.draw(st.sampled_from((1, 1, 1, 0))),
            pool=sealed if sealed and data.draw(st.booleans()) else None,
        )
        self.handles += 1
        handle = self.handles
        deadline = self.now + timeout
        out = self.store.get(client, handle, oids, deadline)
        if all(self._ready(o) for o in oids):
            assert out == self._pin_all(client, oids)
            self.answered.add(handle)
        else:
            assert out is None
            self.waiters.append(
                {"client": client, "handle": handle, "oids": list(oids), "deadline": deadline}
            )

    @rule(data=st.data())
    def release(self, data):
        pinned = sorted((oid, client) for oid, o in self.objects.items() for client in +o["pins"])
        if pinned and data.draw(st.sampled_from((True, True, True, False))):
            oid, client = data.draw(st.sampled_from(pinned))
            oids = [oid] * data.draw(st.integers(1, 2))  # maybe one more than held
        else:
            client = data.draw(st.sampled_from(CLIENTS))
            oids = self._some_oids(data)
        expected = []
        for oid in oids:
            obj = self.objects.get(oid)
            if obj is None:
                continue
            if obj["pins"][client] <= 1:
                del obj["pins"][client]
            else:
                obj["pins"][client] -= 1
            if obj["free"] and not +obj["pins"]:
                expected.append(self._drop(oid))
        assert self.store.release(client, oids) == expected

    @rule(data=st.data())
    def free(self, data):
        pinned = [oid for oid, o in self.objects.items() if +o["pins"]]
        oids = self._some_oids(data, pool=pinned or None)
        expected = []
        for oid in oids:
            obj = self.objects.get(oid)
            if obj is None:
                continue
            if +obj["pins"]:
                obj["free"] = True
            else:
                expected.append(self._drop(oid))
        assert self.store.free(oids) == expected

    @rule(client=st.sampled_from(CLIENTS))
    def client_exited(self, client):
        expected = []
        for oid, obj in list(self.objects.items()):
            had_pins = obj["pins"].pop(client, 0) > 0
            if had_pins and obj["free"] and not +obj["pins"]:
                expected.append(self._drop(oid))
            elif not obj["sealed"] and obj["creator"] == client:
                expected.append(self._drop(oid))
        for w in [w for w in self.waiters if w["client"] == client]:
            self.waiters.remove(w)
            self.abandoned.add(w["handle"])
        assert self.store.client_exited(client) == expected

    @rule(data=st.data())
    def give_up(self, data):
        """The object cannot be had (e.g. its owner or every copy is gone): its waiters are
        answered now with whatever else is there."""
        waited = sorted({oid for w in self.waiters for oid in w["oids"]})
        [oid] = self._some_oids(data, 1, 1, waited)
        due = [w for w in self.waiters if oid in w["oids"]]
        self._answer(self.store.give_up(oid), due)

    @rule(advance=st.sampled_from((0.0, 0.5, 1.0, 5.0)))
    def expire(self, advance):
        self.now += advance
        due = [w for w in self.waiters if w["deadline"] <= self.now]
        self._answer(self.store.expire(self.now), due)

    # -------------------------------------------------------------- invariants

    @invariant()
    def matches_model(self):
        store, alloc = self.store, self.store.allocator
        assert list(store.objects) == list(self.objects)
        assert alloc.used == sum(rounded(o["size"]) for o in self.objects.values())
        assert alloc.num_allocations == len(self.objects)
        assert alloc.allocations() == sorted(
            (o["offset"], rounded(o["size"])) for o in self.objects.values()
        )
        for oid, model in self.objects.items():
            obj = store.objects[oid]
            assert (obj.offset, obj.size, obj.creator) == (
                model["offset"],
                model["size"],
                model["creator"],
            )
            assert obj.sealed == model["sealed"]
            assert obj.pins == dict(+model["pins"]), (oid, obj.pins, model["pins"])
            assert all(n > 0 for n in obj.pins.values())
            assert obj.free_requested == model["free"]
            # A free request only lingers while pins remain.
            assert not obj.free_requested or obj.pins
            # Only sealed objects are pinned.
            assert obj.sealed or not obj.pins
        assert [w.handle for w in store.waiters] == [w["handle"] for w in self.waiters]
        assert store.next_deadline() == min((w["deadline"] for w in self.waiters), default=None)
        assert not (self.answered & self.abandoned)
        pending = {w["handle"] for w in self.waiters}
        assert not (pending & self.answered)

    def teardown(self):
        # Every waiter still parked is answered exactly once by a final expiry.
        if not hasattr(self, "store"):
            return
        self.now = math.inf
        due = list(self.waiters)
        self._answer(self.store.expire(self.now), due)
        assert not self.store.waiters
        assert self.answered | self.abandoned == set(range(1, self.handles + 1))


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SelectedAllocatorMachine(ObjectTableMachine):
    ALLOCATOR = ALLOCATORS["selected"]


class PythonAllocatorMachine(ObjectTableMachine):
    ALLOCATOR = ALLOCATORS["python"]


SelectedAllocatorMachine.TestCase.settings = SETTINGS
PythonAllocatorMachine.TestCase.settings = SETTINGS
TestObjectTableSelectedAllocator = SelectedAllocatorMachine.TestCase
TestObjectTablePythonAllocator = PythonAllocatorMachine.TestCase
