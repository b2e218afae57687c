"""ObjectDirectory: examples plus a hypothesis state machine against a simple model.

Properties: each subscription is answered exactly once -- at once if the object has a copy (or
is lost), otherwise when its first copy is added -- with the sorted nodes holding it and its
latest size; a lost object (all copies on dead nodes) is answered with no nodes and size 0;
node_dead reports exactly the objects whose only copy was on that node; lookup matches the
model."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zray._private.head.object_directory import Notify, ObjectDirectory

A, B, C = b"node-a", b"node-b", b"node-c"


# ================================================================== examples

D = b"node-d"


def test_locate_fans_a_broadcast_out_along_the_pullers():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [100])
    # Three nodes ask while none has finished: each is sent to the least-read holder or
    # receiver, so the owner's node A serves one of them, not three.
    assert d.locate("s1", b"x", B, sealed_on=A) == [Notify("s1", b"x", (A,), 100)]
    assert d.locate("s2", b"x", C, sealed_on=A) == [Notify("s2", b"x", (B,), 100)]
    assert d.locate("s3", b"x", D, sealed_on=A) == [Notify("s3", b"x", (C,), 100)]
    assert d.receiving == {b"x": {B: A, C: B, D: C}}
    # A sealed copy stops counting as receiving.
    d.add_locations(B, [b"x"], [100])
    assert d.receiving == {b"x": {C: B, D: C}}


def test_locate_prefers_a_pulled_copy_to_the_primary_when_equally_read():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [100])
    d.locate("s1", b"x", B, sealed_on=A)
    d.add_locations(B, [b"x"], [100])
    assert d.locate("s2", b"x", C, sealed_on=A) == [Notify("s2", b"x", (B,), 100)]


def test_locate_never_closes_a_cycle_of_forwarders():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [100])
    d.locate("s1", b"x", B)  # B <- A
    d.locate("s2", b"x", C)  # C <- B
    # B's source failed: asking again, it must not be sent to C, which forwards B's copy.
    assert d.locate("s3", b"x", B, exclude=[A]) == [Notify("s3", b"x", (), 0)]
    assert d.locate("s4", b"x", B) == [Notify("s4", b"x", (A,), 100)]


def test_locate_waits_for_the_first_copy_and_answers_lost_when_its_node_dies():
    d = ObjectDirectory()
    assert d.locate("s1", b"x", B, sealed_on=A) == []
    assert d.stats()["locating"] == 1
    assert d.add_locations(A, [b"x"], [7]) == [Notify("s1", b"x", (A,), 7)]
    assert d.locate("s2", b"y", B, sealed_on=C) == []
    assert d.node_dead(C) == [Notify("s2", b"y", (), 0)]
    assert d.stats()["locating"] == 0


def test_pull_ended_and_node_death_forget_receivers():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [100])
    d.locate("s1", b"x", B)
    d.locate("s2", b"x", C)
    d.pull_ended(b"x", B)
    assert d.receiving == {b"x": {C: B}}
    d.node_dead(C)
    assert d.receiving == {} and d.stats()["receiving"] == 0


def test_subscribe_before_location_fires_once_when_first_copy_is_added():
    d = ObjectDirectory()
    assert d.subscribe("s1", b"x") == []
    assert d.stats() == {"objects": 0, "subscriptions": 1, "locating": 0, "receiving": 0}
    assert d.add_locations(A, [b"x"], [10]) == [Notify("s1", b"x", (A,), 10)]
    # A second copy does not notify again.
    assert d.add_locations(B, [b"x"], [10]) == []
    assert d.lookup(b"x") == (A, B)
    assert d.stats() == {"objects": 1, "subscriptions": 0, "locating": 0, "receiving": 0}


def test_subscribe_after_location_fires_at_once_with_all_nodes_sorted():
    d = ObjectDirectory()
    d.add_locations(B, [b"x"], [5])
    d.add_locations(A, [b"x"], [5])
    assert d.subscribe("s", b"x") == [Notify("s", b"x", (A, B), 5)]
    assert d.stats()["subscriptions"] == 0


def test_several_subscribers_and_objects_in_one_add():
    d = ObjectDirectory()
    d.subscribe("s1", b"x")
    d.subscribe("s2", b"x")
    d.subscribe("s3", b"y")
    out = d.add_locations(A, [b"x", b"y", b"z"], [1, 2, 3])
    assert out == [
        Notify("s1", b"x", (A,), 1),
        Notify("s2", b"x", (A,), 1),
        Notify("s3", b"y", (A,), 2),
    ]


def test_remove_last_copy_forgets_object_and_new_subscription_waits():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [1])
    assert d.remove_locations(A, [b"x", b"unknown"]) == []
    assert d.lookup(b"x") == ()
    assert d.subscribe("s", b"x") == []
    assert d.add_locations(B, [b"x"], [2]) == [Notify("s", b"x", (B,), 2)]


def test_node_dead_reports_objects_whose_only_copy_was_there():
    d = ObjectDirectory()
    d.add_locations(A, [b"only-a", b"both"], [1, 2])
    d.add_locations(B, [b"both", b"only-b"], [2, 3])
    out = d.node_dead(A)
    assert out == [Notify(None, b"only-a", (), 0)]
    assert d.lookup(b"only-a") == ()
    assert d.lookup(b"both") == (B,)
    assert d.lookup(b"only-b") == (B,)
    assert d.node_dead(A) == []
    assert d.node_dead(C) == []


def test_lost_object_answers_later_subscriptions_at_once_with_no_location():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [9])
    assert d.node_dead(A) == [Notify(None, b"x", (), 0)]
    assert d.subscribe("s", b"x") == [Notify("s", b"x", (), 0)]
    assert d.stats()["subscriptions"] == 0
    # A new copy (e.g. reconstruction) makes it findable again.
    assert d.add_locations(B, [b"x"], [9]) == []
    assert d.subscribe("t", b"x") == [Notify("t", b"x", (B,), 9)]


def test_freeing_a_lost_object_forgets_that_it_was_lost():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [1])
    d.node_dead(A)
    d.remove_locations(B, [b"x"])  # the owner's free cascades to every node
    assert d.subscribe("s", b"x") == []


def test_node_dead_leaves_pending_subscriptions_waiting():
    d = ObjectDirectory()
    d.subscribe("s", b"x")
    assert d.node_dead(A) == []
    assert d.add_locations(B, [b"x"], [4]) == [Notify("s", b"x", (B,), 4)]


def test_unsubscribe_drops_every_pending_subscription_of_that_subscriber():
    d = ObjectDirectory()
    d.subscribe("s", b"x")
    d.subscribe("s", b"y")
    d.subscribe("t", b"x")
    assert d.unsubscribe("s") == []
    assert d.stats()["subscriptions"] == 1
    assert d.add_locations(A, [b"x", b"y"], [1, 1]) == [Notify("t", b"x", (A,), 1)]


def test_size_is_the_latest_reported():
    d = ObjectDirectory()
    d.add_locations(A, [b"x"], [1])
    d.add_locations(B, [b"x"], [7])
    assert d.subscribe("s", b"x") == [Notify("s", b"x", (A, B), 7)]


# ================================================================== state machine

NODES = (A, B, C)
OBJECTS = tuple(b"obj%d" % i for i in range(6))
SIZES = st.sampled_from((0, 1, 100, 2**40))


class DirectoryMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.d = ObjectDirectory()
        self.locations: dict[bytes, set] = {}
        self.sizes: dict[bytes, int] = {}
        self.lost: set[bytes] = set()  # had copies, all on nodes that died
        self.pending: dict[tuple, bytes] = {}  # subscriber handle -> object id
        self.notified: dict[tuple, Notify] = {}
        self.cancelled: set[tuple] = set()
        self.seq = 0

    def _check_notifications(self, out):
        """Each notification answers a pending subscription, once, with the current copies."""
        for note in out:
            assert isinstance(note, Notify)
            assert note.subscriber is not None, note
            handle = note.subscriber
            assert handle not in self.notified, f"notified twice: {note}"
            assert handle not in self.cancelled, f"notified after unsubscribe: {note}"
            assert self.pending.pop(handle) == note.object_id, note
            nodes = self.locations.get(note.object_id)
            if nodes:
                assert note.node_ids == tuple(sorted(nodes)), note
                assert note.size == self.sizes[note.object_id]
            else:
                # Without a location only a lost object is answered: no nodes, size 0.
                assert note.object_id in self.lost, f"notified with no location: {note}"
                assert note.node_ids == () and note.size == 0, note
            self.notified[handle] = note

    @rule(
        node=st.sampled_from(NODES),
        batch=st.lists(
            st.tuples(st.sampled_from(OBJECTS), SIZES), max_size=4, unique_by=lambda t: t[0]
        ),
    )
    def add_locations(self, node, batch):
        oids = [oid for oid, _ in batch]
        sizes = [size for _, size in batch]
        # Model: apply one by one (the directory answers each object as it is added).
        out = self.d.add_locations(node, oids, sizes)
        expected_handles = []
        for oid, size in batch:
            self.lost.discard(oid)
            first = not self.locations.get(oid)
            self.locations.setdefault(oid, set()).add(node)
            self.sizes[oid] = size
            if first:
                expected_handles += [
                    h for h, o in self.pending.items() if o == oid and h not in expected_handles
                ]
        # Each object appears once per batch, so the final model state is what was notified.
        assert sorted(n.subscriber for n in out) == sorted(expected_handles)
        self._check_notifications(out)

    @rule(node=st.sampled_from(NODES), oids=st.lists(st.sampled_from(OBJECTS), max_size=4))
    def remove_locations(self, node, oids):
        assert self.d.remove_locations(node, oids) == []
        for oid in oids:
            self.lost.discard(oid)  # a free: the object is gone, not lost
            nodes = self.locations.get(oid)
            if nodes is not None:
                nodes.discard(node)
                if not nodes:
                    del self.locations[oid]
                    del self.sizes[oid]

    @rule(oid=st.sampled_from(OBJECTS), who=st.sampled_from((b"driver", b"worker")))
    def subscribe(self, oid, who):
        self.seq += 1
        handle = (who, self.seq)  # what the head passes: (identity, request seq)
        self.pending[handle] = oid
        out = self.d.subscribe(handle, oid)
        if self.locations.get(oid) or oid in self.lost:
            assert len(out) == 1  # answered at once
        else:
            assert out == []
        self._check_notifications(out)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def unsubscribe(self, data):
        handle = data.draw(st.sampled_from(sorted(self.pending)))
        del self.pending[handle]
        self.cancelled.add(handle)
        assert self.d.unsubscribe(handle) == []

    @rule(node=st.sampled_from(NODES))
    def node_dead(self, node):
        lost = sorted(oid for oid, nodes in self.locations.items() if nodes == {node})
        out = self.d.node_dead(node)
        assert sorted(n.object_id for n in out) == lost
        for note in out:
            assert note.subscriber is None and note.node_ids == () and note.size == 0, note
        for oid in list(self.locations):
            self.locations[oid].discard(node)
            if not self.locations[oid]:
                del self.locations[oid]
                del self.sizes[oid]
        self.lost.update(lost)

    @invariant()
    def matches_model(self):
        for oid in OBJECTS:
            assert self.d.lookup(oid) == tuple(sorted(self.locations.get(oid, ())))
        # A subscription never waits for an object that already has a copy, or is lost.
        for handle, oid in self.pending.items():
            assert not self.locations.get(oid) and oid not in self.lost, (handle, oid)
        assert self.d.lost == self.lost
        assert self.d.stats() == {
            "objects": len(self.locations),
            "subscriptions": len(self.pending),
            "locating": 0,
            "receiving": 0,
        }
        assert set(self.d.locations) == set(self.locations)
        assert self.d.sizes == self.sizes


DirectoryMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDirectoryMachine = DirectoryMachine.TestCase


def test_a_copy_whose_node_died_before_reporting_it_is_lost_not_awaited():
    from zray._private.head.object_directory import ObjectDirectory

    directory = ObjectDirectory()
    # The owner says node n1 holds it; n1 dies before its location report went out.
    assert directory.subscribe("early", b"o", b"n1") == []
    (notify,) = directory.node_dead(b"n1")
    assert (notify.subscriber, notify.node_ids) == ("early", ())
    (late,) = directory.subscribe("late", b"o2", b"n1", sealed_on_dead=True)
    assert late.node_ids == () and not directory.subscribers
