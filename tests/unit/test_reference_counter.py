"""ReferenceCounter: examples plus a hypothesis state machine.

One process's view: an owned object is reported freeable exactly once, iff no local ref is
alive (after the queued __del__ decrements are collected), no submitted task pins it, and it
never escaped. test_reference_protocol.py checks borrowing across processes.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from types import SimpleNamespace

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zray._private.core.reference_counter import ReferenceCounter


def ref(oid: bytes, owner: str = "owner-addr"):
    return SimpleNamespace(_id=oid, _owner=owner)


def pair(released):
    return released.freed, released.forgotten


# ================================================================== examples


def test_owned_object_freeable_after_last_ref_collected():
    rc = ReferenceCounter()
    rc.add_owned(b"x")
    rc.add_local(b"x")
    rc.add_local(b"x")
    rc.remove_local_later(b"x")
    assert pair(rc.collect()) == ([], [])
    assert rc.is_live(b"x")
    rc.remove_local_later(b"x")
    assert rc.is_live(b"x")  # the decrement is only queued
    assert pair(rc.collect()) == ([b"x"], [])
    assert not rc.is_live(b"x") and not rc.owns(b"x")
    assert pair(rc.collect()) == ([], [])


def test_task_pin_keeps_object_until_unpinned():
    rc = ReferenceCounter()
    rc.add_owned(b"x")
    rc.add_local(b"x")
    rc.pin([b"x", b"x"])
    rc.remove_local_later(b"x")
    assert pair(rc.collect()) == ([], [])
    assert rc.is_live(b"x")
    assert rc.unpin([b"x"]).freed == []
    assert rc.unpin([b"x"]).freed == [b"x"]
    assert rc.unpin([b"x"]).freed == []  # reported once only


def test_unpin_while_decrement_still_queued_defers_to_collect():
    rc = ReferenceCounter()
    rc.add_owned(b"x")
    rc.add_local(b"x")
    rc.pin([b"x"])
    rc.remove_local_later(b"x")
    assert rc.unpin([b"x"]).freed == []
    assert pair(rc.collect()) == ([b"x"], [])


def test_escaped_object_is_never_freeable():
    rc = ReferenceCounter()
    rc.add_owned(b"x")
    rc.add_local(b"x")
    rc.mark_escaped([b"x"])
    rc.remove_local_later(b"x")
    assert pair(rc.collect()) == ([], [])
    assert rc.owns(b"x")
    assert rc.stats()["escaped"] == 1


def test_borrowed_object_is_forgotten_not_freed():
    rc = ReferenceCounter()
    rc.add_local(b"b")
    rc.note_borrowed(ref(b"b", "other-owner"))
    assert rc.owner_of(b"b") == "other-owner"
    rc.remove_local_later(b"b")
    assert pair(rc.collect()) == ([], [b"b"])
    assert rc.owner_of(b"b") == ""


def test_note_borrowed_ignores_owned_and_ownerless_refs():
    rc = ReferenceCounter()
    rc.add_owned(b"x")
    rc.note_borrowed(ref(b"x"))
    rc.note_borrowed(ref(b"y", ""))
    rc2 = ReferenceCounter("me")
    rc2.note_borrowed(ref(b"z", "me"))  # a ref to our own object that came back
    assert rc.stats()["borrowed"] == 0 and rc2.stats()["borrowed"] == 0


def test_stats():
    rc = ReferenceCounter()
    rc.add_owned(b"x")
    rc.add_local(b"x")
    rc.pin([b"y"])
    assert rc.stats() == {
        "local": 1,
        "owned": 1,
        "escaped": 0,
        "task_pinned": 1,
        "borrowed": 0,
        "with_borrowers": 0,
        "containers": 0,
        "lineage_pinned": 0,
    }


def test_decrements_from_other_threads_are_all_applied():
    """__del__ may run on any thread: queued decrements from many threads all land."""
    rc = ReferenceCounter()
    ids = [b"o%d" % i for i in range(50)]
    for oid in ids:
        rc.add_owned(oid)
        for _ in range(20):
            rc.add_local(oid)

    def drop(oid):
        for _ in range(20):
            rc.remove_local_later(oid)

    threads = [threading.Thread(target=drop, args=(oid,)) for oid in ids]
    freed = []
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        freed += rc.collect().freed
    for t in threads:
        t.join()
    freed += rc.collect().freed
    assert sorted(freed) == sorted(ids)
    assert rc.stats()["local"] == 0 and rc.stats()["owned"] == 0


# ================================================================== state machine

OBJECTS = tuple(b"obj%d" % i for i in range(6))


class RefCountMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.rc = ReferenceCounter()
        self.kind: dict[bytes, str] = {}  # oid -> "owned" | "borrowed"
        self.live = Counter()  # refs alive (created, not yet __del__'d)
        self.queue: deque = deque()  # __del__ decrements not yet collected
        self.counted = Counter()  # what the counter has applied: live + queued
        self.pins = Counter()
        self.tasks: list[list] = []  # pinned argument lists of running tasks
        self.escaped: set[bytes] = set()
        self.reported: set[bytes] = set()
        self.forgotten: set[bytes] = set()

    # -------------------------------------------------------------- model helpers

    def _freeable(self, oid) -> bool:
        return (
            self.kind.get(oid) == "owned"
            and oid not in self.reported
            and self.counted[oid] == 0
            and self.pins[oid] == 0
            and oid not in self.escaped
        )

    def _check_reported(self, got, expected):
        assert got == expected, (got, expected)
        for oid in got:
            assert oid not in self.reported, f"{oid!r} reported twice"
            # Never reported while referenced, pinned or escaped.
            assert self.live[oid] == 0 and not [q for q in self.queue if q == oid]
            assert self.pins[oid] == 0 and oid not in self.escaped
            self.reported.add(oid)

    def _unused(self):
        return [oid for oid in OBJECTS if oid not in self.kind]

    # -------------------------------------------------------------- rules

    @precondition(lambda self: self._unused())
    @rule(data=st.data())
    def put(self, data):
        """A put or task return: the owner records ownership, then creates the ObjectRef."""
        oid = data.draw(st.sampled_from(self._unused()))
        self.kind[oid] = "owned"
        self.rc.add_owned(oid)
        self._add_ref(oid)

    @precondition(lambda self: self._unused())
    @rule(data=st.data())
    def borrow(self, data):
        """A ref owned elsewhere arrives (deserialized) in this process."""
        oid = data.draw(st.sampled_from(self._unused()))
        self.kind[oid] = "borrowed"
        self._add_ref(oid)
        self.rc.note_borrowed(ref(oid))

    @precondition(lambda self: any(self.live.values()))
    @rule(data=st.data())
    def copy_ref(self, data):
        """Another ObjectRef instance for an id this process already references."""
        oid = data.draw(st.sampled_from(sorted(o for o, n in self.live.items() if n)))
        self._add_ref(oid)
        if self.kind[oid] == "borrowed":
            self.rc.note_borrowed(ref(oid))

    def _add_ref(self, oid):
        self.rc.add_local(oid)
        self.live[oid] += 1
        self.counted[oid] += 1

    @precondition(lambda self: any(self.live.values()))
    @rule(data=st.data())
    def drop_ref(self, data):
        """ObjectRef.__del__: only queues the decrement."""
        oid = data.draw(st.sampled_from(sorted(o for o, n in self.live.items() if n)))
        self.live[oid] -= 1
        self.queue.append(oid)
        self.rc.remove_local_later(oid)

    @rule()
    def collect(self):
        expected_freeable, expected_forgotten = [], []
        while self.queue:
            oid = self.queue.popleft()
            self.counted[oid] -= 1
            assert self.counted[oid] >= 0
            if self.counted[oid]:
                continue
            if self.kind[oid] == "owned":
                if self._freeable(oid):
                    expected_freeable.append(oid)
            elif oid not in self.forgotten and oid not in self.escaped and not self.pins[oid]:
                expected_forgotten.append(oid)
        freeable, forgotten = pair(self.rc.collect())
        self._check_reported(freeable, expected_freeable)
        assert forgotten == expected_forgotten
        self.forgotten.update(forgotten)

    @precondition(lambda self: any(self.live.values()))
    @rule(data=st.data())
    def mark_escaped(self, data):
        """A ref is pickled inside another value (or sent to another process)."""
        live = sorted(o for o, n in self.live.items() if n)
        oids = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=2))
        self.rc.mark_escaped(oids)
        self.escaped.update(oids)

    @precondition(lambda self: any(self.live.values()))
    @rule(data=st.data())
    def pin(self, data):
        """A task is submitted with some live refs as top-level arguments (maybe repeated)."""
        live = sorted(o for o, n in self.live.items() if n)
        oids = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=3))
        self.rc.pin(oids)
        self.tasks.append(oids)
        for oid in oids:
            self.pins[oid] += 1

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def unpin(self, data):
        """A task finished: its arguments are unpinned."""
        oids = self.tasks.pop(data.draw(st.integers(0, len(self.tasks) - 1)))
        expected, expected_forgotten = [], []
        for oid in oids:
            self.pins[oid] -= 1
            if self.pins[oid] == 0 and self._freeable(oid) and oid not in expected:
                expected.append(oid)
            if (
                self.kind[oid] == "borrowed"
                and self.pins[oid] == 0
                and not self.counted[oid]
                and oid not in self.escaped
                and oid not in self.forgotten
                and oid not in expected_forgotten
            ):
                expected_forgotten.append(oid)
        freed, forgotten = pair(self.rc.unpin(oids))
        self._check_reported(freed, expected)
        assert forgotten == expected_forgotten
        self.forgotten.update(forgotten)

    # -------------------------------------------------------------- invariants

    @invariant()
    def matches_model(self):
        rc = self.rc
        for oid in OBJECTS:
            assert rc.is_live(oid) == bool(
                self.counted[oid] or self.pins[oid] or oid in self.escaped
            )
            owned = self.kind.get(oid) == "owned" and oid not in self.reported
            assert rc.owns(oid) == owned
            # Never reported while referenced; not yet reported while unreferenced only if a
            # decrement is still queued (or it escaped).
            if owned and not self.live[oid] and not self.pins[oid] and oid not in self.escaped:
                assert oid in self.queue, f"{oid!r} unreferenced but never reported"
        stats = rc.stats()
        assert stats["local"] == sum(1 for n in self.counted.values() if n)
        assert stats["task_pinned"] == sum(1 for n in self.pins.values() if n)
        assert stats["escaped"] == len(self.escaped)
        for oid, kind in self.kind.items():
            expected = "owner-addr" if kind == "borrowed" and oid not in self.forgotten else ""
            assert rc.owner_of(oid) == expected

    def teardown(self):
        """Drop everything: each owned object that never escaped is reported exactly once."""
        if not hasattr(self, "rc"):
            return
        for oid, n in list(self.live.items()):
            for _ in range(n):
                self.live[oid] -= 1
                self.queue.append(oid)
                self.rc.remove_local_later(oid)
        self.collect()
        while self.tasks:
            self.unpin(SimpleNamespace(draw=lambda strategy: 0))
        owned = {oid for oid, kind in self.kind.items() if kind == "owned"}
        assert self.reported == owned - self.escaped
        assert (
            self.forgotten
            == {oid for oid, kind in self.kind.items() if kind == "borrowed"} - self.escaped
        )


RefCountMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRefCountMachine = RefCountMachine.TestCase


def test_a_dead_holder_stops_holding_and_late_messages_are_ignored():
    rc = ReferenceCounter("owner")
    rc.add_owned(b"x")
    rc.add_local(b"x")
    rc.add_borrower(b"x", "w1")
    rc.add_borrower(b"x", "w2")
    rc.remove_local_later(b"x")
    assert pair(rc.collect()) == ([], [])
    assert rc.forget_holder("w1").freed == []  # w2 still holds it
    assert rc.add_borrower(b"x", "w1").freed == []  # a late registration from the dead
    assert rc.remove_borrower(b"x", "w2", 1).freed == [b"x"]
    assert rc.remove_borrower(b"x", "w1", 5).freed == []  # ignored, not negative
    assert rc.stats()["with_borrowers"] == 0
