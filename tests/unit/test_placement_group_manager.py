"""Placement groups: the head's two-phase reservation (placement_groups.py) driven against
real node schedulers (scheduler.py), with messages delivered in any order a network allows
(FIFO per channel), nodes joining and dying, timeouts, and leases running in bundles."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zray._private.common import bundles as B
from zray._private.head import placement_groups as G
from zray._private.common import resources as R
from zray._private.node import scheduler as S

U = R.UNIT


def units(**amounts):
    return {k: round(v * U) for k, v in amounts.items()}


# ---------------------------------------------------------------- the placement policy


def test_strict_spread_uses_distinct_nodes_or_waits():
    free = {b"a": units(CPU=2), b"b": units(CPU=2), b"c": units(CPU=2)}
    bundles = [(i, units(CPU=1)) for i in range(3)]
    placement = G.place("STRICT_SPREAD", bundles, {}, free)
    assert sorted(placement.values()) == [b"a", b"b", b"c"]
    assert G.place("STRICT_SPREAD", bundles + [(3, units(CPU=1))], {}, free) is None
    # A bundle already placed keeps its node out of the running.
    assert G.place("STRICT_SPREAD", bundles[:2], {2: b"c"}, free) is not None
    assert G.place("STRICT_SPREAD", bundles[:2], {2: b"c"}, free)[0] != b"c"


def test_strict_spread_finds_a_matching_greedy_misses():
    free = {b"a": units(CPU=1, X=1), b"b": units(CPU=1)}
    placement = G.place("STRICT_SPREAD", [(0, units(CPU=1)), (1, units(X=1))], {}, free)
    assert placement == {0: b"b", 1: b"a"}


def test_strict_pack_needs_one_node_for_all():
    free = {b"a": units(CPU=2), b"b": units(CPU=3)}
    assert G.place("STRICT_PACK", [(0, units(CPU=1)), (1, units(CPU=2))], {}, free) == {
        0: b"b",
        1: b"b",
    }
    assert G.place("STRICT_PACK", [(0, units(CPU=2)), (1, units(CPU=2))], {}, free) is None
    assert G.place("STRICT_PACK", [(0, units(CPU=1))], {}, free, soft_target=b"a") == {0: b"a"}


def test_pack_prefers_one_node_and_falls_back_to_several():
    free = {b"a": units(CPU=2), b"b": units(CPU=2)}
    one = G.place("PACK", [(0, units(CPU=1)), (1, units(CPU=1))], {}, free)
    assert len(set(one.values())) == 1
    two = G.place("PACK", [(0, units(CPU=2)), (1, units(CPU=2))], {}, free)
    assert sorted(two.values()) == [b"a", b"b"]


def test_spread_spreads_and_still_places_when_nodes_run_out():
    free = {b"a": units(CPU=4), b"b": units(CPU=4)}
    placement = G.place("SPREAD", [(i, units(CPU=1)) for i in range(4)], {}, free)
    assert sorted(placement.values()) == [b"a", b"a", b"b", b"b"]


def test_resource_names_are_rays():
    pg = "ab" * 18
    named = B.committed_units(pg, 1, units(CPU=2))
    assert set(named) == {
        f"CPU_group_1_{pg}",
        f"CPU_group_{pg}",
        f"bundle_group_1_{pg}",
        f"bundle_group_{pg}",
    }
    assert named[f"bundle_group_{pg}"] == 1000 * U
    request = B.request_in_bundle({"CPU": 1.0}, pg, 0)
    assert request == {
        f"CPU_group_0_{pg}": 1.0,
        f"bundle_group_0_{pg}": 0.001,
        f"CPU_group_{pg}": 1.0,
        f"bundle_group_{pg}": 0.001,
    }
    assert B.original(request) == {"CPU": 1.0}
    assert B.original(B.request_in_bundle({"GPU": 1.0}, pg, -1)) == {"GPU": 1.0}
    assert B.without_groups(dict(named, CPU=1)) == {"CPU": 1}
    assert B.group_of(f"CPU_group_1_{pg}") == pg and B.group_of("CPU") is None


def test_a_task_in_a_bundle_gets_the_bundles_gpus():
    node = S.LocalScheduler(units(CPU=4, GPU=4), min_workers=0)
    pg, other = b"p" * 18, b"q" * 18
    assert node.prepare_bundles(pg, [(0, units(GPU=2)), (1, units(GPU=1))])
    assert node.prepare_bundles(other, [(0, units(GPU=0.5))])
    node.commit_bundles(pg, [0, 1])
    node.commit_bundles(other, [0])
    node.worker_started(b"w1")
    node.worker_started(b"w2")
    granted = node.request_lease(b"c", 1, R.to_units(B.request_in_bundle({"GPU": 1}, pg.hex(), 1)))
    granted += node.request_lease(
        b"c", 2, R.to_units(B.request_in_bundle({"GPU": 0.5}, other.hex(), -1))
    )
    ids = {g.request_id: g.gpu_ids for g in granted if isinstance(g, S.Grant)}
    assert ids[1] == (2,)  # bundle 1 holds the third GPU; bundle 0 the first two
    assert ids[2] == (3,)  # the other group's half GPU
    # Plain GPU work gets only what no bundle holds: nothing whole is left.
    node.worker_started(b"w3")
    assert not [g for g in node.request_lease(b"c", 3, units(GPU=1)) if isinstance(g, S.Grant)]
    node.check_invariants()
    out = node.return_bundles(pg, [0, 1])
    node.check_invariants()
    # The waiting request gets a freed GPU; the group's task was stopped, its GPU returned.
    assert [g.gpu_ids for g in out if isinstance(g, S.Grant)] == [(0,)]
    assert node.gpus.free[:3] == [0, U, U]


def test_manager_reserves_in_two_phases_and_returns_everything():
    manager = G.PlacementGroupManager()
    node = S.LocalScheduler(units(CPU=2), min_workers=0)
    out = manager.node_update(b"n", node.total, node.available, 0.0)
    assert out == []
    out = manager.create(
        b"p" * 18, "g", "ns", "PACK", [units(CPU=1), units(CPU=1)], False, b"j" * 4, b"", 0.0
    )
    (prepare,) = out
    assert isinstance(prepare, G.Prepare) and len(prepare.bundles) == 2
    assert node.prepare_bundles(prepare.pg_id, list(prepare.bundles))
    assert node.available["CPU"] == 0
    out = manager.prepared(prepare.pg_id, prepare.attempt, b"n", True, 0.1)
    commit, created = out
    assert isinstance(created, G.Created)
    node.commit_bundles(commit.pg_id, [i for i, _ in commit.bundles])
    pg = prepare.pg_id.hex()
    assert node.total[f"CPU_group_{pg}"] == 2 * U
    assert manager.table_entry(manager.groups[prepare.pg_id])["state"] == "CREATED"
    with pytest.raises(G.NameTaken):
        manager.create(b"q" * 18, "g", "ns", "PACK", [units(CPU=1)], False, b"j" * 4, b"", 0.2)
    out = manager.job_dead(b"j" * 4, 1.0)
    returned = [i for i in out if isinstance(i, G.Return)]
    assert returned and returned[0].committed
    node.return_bundles(returned[0].pg_id, [i for i, _ in returned[0].bundles])
    assert node.total == units(CPU=2) and node.available == units(CPU=2)
    node.check_invariants()


# ---------------------------------------------------------------- the whole protocol

SHAPES = st.sampled_from(
    [units(CPU=1), units(CPU=0.5), units(CPU=2), units(CPU=1, X=1), units(X=1), units(GPU=1)]
)
NODE_SHAPES = [units(CPU=2), units(CPU=4, X=1), units(CPU=1, X=2), units(CPU=2, GPU=2)]


class PlacementMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.manager = G.PlacementGroupManager(prepare_timeout_s=5.0)
        self.nodes: dict[bytes, S.LocalScheduler] = {}
        self.to_node: dict[bytes, list] = {}  # FIFO channel head -> node
        self.to_head: list = []  # (node, pg_id, attempt, ok), any order between nodes
        self.now = 0.0
        self.ids = itertools.count(1)
        self.workers = itertools.count(1)
        self.created = set()
        for _ in range(3):
            self._join(NODE_SHAPES[len(self.nodes) % len(NODE_SHAPES)])

    # ------------------------------------------------------------ plumbing

    def _join(self, total):
        node_id = b"node%04d" % next(self.ids)
        node = S.LocalScheduler(dict(total), min_workers=0)
        self.nodes[node_id] = node
        self.to_node[node_id] = []
        self._carry_out(self.manager.node_update(node_id, node.total, node.available, self.now))

    def _carry_out(self, instructions):
        for ins in instructions:
            if isinstance(ins, (G.Prepare, G.Commit, G.Return)):
                if ins.node_id in self.to_node:
                    self.to_node[ins.node_id].append(ins)
            elif isinstance(ins, G.Created):
                self.created.add(ins.pg_id)

    def _node_instructions(self, node_id, instructions):
        node = self.nodes[node_id]
        for ins in instructions:
            if isinstance(ins, S.StartWorker):
                self._node_instructions(node_id, node.worker_started(b"w%06d" % next(self.workers)))
            elif isinstance(ins, S.StopWorker):
                self._node_instructions(node_id, node.worker_exited(ins.worker_id))

    def _deliver(self, node_id):
        node = self.nodes[node_id]
        msg = self.to_node[node_id].pop(0)
        if isinstance(msg, G.Prepare):
            ok = node.prepare_bundles(msg.pg_id, list(msg.bundles))
            self.to_head.append((node_id, msg.pg_id, msg.attempt, ok))
        elif isinstance(msg, G.Commit):
            self._node_instructions(
                node_id, node.commit_bundles(msg.pg_id, [i for i, _ in msg.bundles])
            )
        else:
            self._node_instructions(
                node_id, node.return_bundles(msg.pg_id, [i for i, _ in msg.bundles])
            )

    # ------------------------------------------------------------ rules

    @rule(
        bundles=st.lists(SHAPES, min_size=1, max_size=4),
        strategy=st.sampled_from(G.STRATEGIES),
        detached=st.booleans(),
    )
    def create(self, bundles, strategy, detached):
        pg_id = b"%018d" % next(self.ids)
        self._carry_out(
            self.manager.create(
                pg_id,
                "",
                "ns",
                strategy,
                bundles,
                detached,
                b"job1" if not detached else b"job2",
                b"",
                self.now,
            )
        )

    @precondition(lambda self: self.manager.groups)
    @rule(data=st.data())
    def remove(self, data):
        pg_id = data.draw(st.sampled_from(sorted(self.manager.groups)))
        self._carry_out(self.manager.remove(pg_id, self.now))

    @precondition(lambda self: any(self.to_node.values()))
    @rule(data=st.data())
    def deliver_to_node(self, data):
        node_id = data.draw(st.sampled_from(sorted(n for n, q in self.to_node.items() if q)))
        self._deliver(node_id)

    @precondition(lambda self: self.to_head)
    @rule(data=st.data())
    def deliver_to_head(self, data):
        node_id, pg_id, attempt, ok = self.to_head.pop(
            data.draw(st.integers(0, len(self.to_head) - 1))
        )
        self._carry_out(self.manager.prepared(pg_id, attempt, node_id, ok, self.now))

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def heartbeat(self, data):
        node_id = data.draw(st.sampled_from(sorted(self.nodes)))
        node = self.nodes[node_id]
        self._carry_out(self.manager.node_update(node_id, node.total, node.available, self.now))

    @rule(total=st.sampled_from(NODE_SHAPES))
    def node_joins(self, total):
        if len(self.nodes) < 6:
            self._join(total)

    @precondition(lambda self: len(self.nodes) > 1)
    @rule(data=st.data())
    def node_dies(self, data):
        node_id = data.draw(st.sampled_from(sorted(self.nodes)))
        del self.nodes[node_id]
        del self.to_node[node_id]
        self._carry_out(self.manager.node_dead(node_id, self.now))

    @rule(seconds=st.sampled_from([0.05, 0.2, 6.0]))
    def time_passes(self, seconds):
        self.now += seconds
        self._carry_out(self.manager.tick(self.now))

    @precondition(lambda self: self.created)
    @rule(data=st.data(), index=st.integers(-1, 3), whole=st.booleans())
    def lease_in_a_bundle(self, data, index, whole):
        """A task runs in a bundle (asking for nothing, or for all of it: GPUs included), so
        returning the bundle must take its lease back too."""
        pg_id = data.draw(st.sampled_from(sorted(self.created)))
        group = self.manager.groups.get(pg_id)
        if group is None or group.state != G.CREATED or index >= len(group.bundles):
            return
        node_id = group.nodes[max(index, 0)]
        if node_id not in self.nodes:
            return
        asked = R.to_floats(group.bundles[index]) if whole and index >= 0 else {}
        need = R.to_units(B.request_in_bundle(asked, pg_id.hex(), index))
        node = self.nodes[node_id]
        self._node_instructions(node_id, node.request_lease(b"owner", next(self.ids), need))

    @rule()
    def everything_settles(self):
        """Deliver every message (and let attempts finish), then check the end state."""
        for _ in range(200):
            busy = [n for n, q in self.to_node.items() if q]
            if busy:
                self._deliver(busy[0])
            elif self.to_head:
                node_id, pg_id, attempt, ok = self.to_head.pop(0)
                self._carry_out(self.manager.prepared(pg_id, attempt, node_id, ok, self.now))
            else:
                self.now += 0.2
                before = self.manager.attempt
                self._carry_out(self.manager.tick(self.now))
                if (
                    before is None
                    and self.manager.attempt is None
                    and not any(self.to_node.values())
                ):
                    break
        assert self.manager.attempt is None
        for node_id, node in self.nodes.items():
            for (pg_id, index), bundle in node.bundles.items():
                group = self.manager.groups.get(pg_id)
                assert bundle.committed, "a reservation outlived its attempt"
                assert group is not None and group.state != G.REMOVED, (
                    "a removed group's bundle stayed"
                )
                assert group.nodes[index] == node_id, "a bundle on a node its group does not name"
        for group in self.manager.groups.values():
            if group.state == G.CREATED:
                for index, node_id in enumerate(group.nodes):
                    assert (group.pg_id, index) in self.nodes[node_id].bundles
                if group.strategy == "STRICT_SPREAD":
                    assert len(set(group.nodes)) == len(group.nodes)
                if group.strategy == "STRICT_PACK":
                    assert len(set(group.nodes)) == 1

    # ------------------------------------------------------------ invariants

    @invariant()
    def nodes_never_overcommit(self):
        for node in self.nodes.values():
            node.check_invariants()

    @invariant()
    def a_bundle_lives_on_one_node_at_most(self):
        seen = {}
        for node_id, node in self.nodes.items():
            for key, bundle in node.bundles.items():
                if bundle.committed:
                    assert key not in seen, (key, seen[key], node_id)
                    seen[key] = node_id

    @invariant()
    def strict_strategies_hold_for_committed_bundles(self):
        for group in self.manager.groups.values():
            placed = [n for n in group.nodes if n is not None]
            if group.strategy == "STRICT_SPREAD":
                assert len(set(placed)) == len(placed)
            if group.strategy == "STRICT_PACK":
                assert len(set(placed)) <= 1


PlacementMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPlacementMachine = PlacementMachine.TestCase


def test_a_group_an_actor_made_goes_when_both_the_actor_and_its_job_are_gone():
    manager = G.PlacementGroupManager()
    manager.node_update(b"n", units(CPU=4), units(CPU=4), 0.0)
    job, actor = b"j" * 4, b"a" * 16
    manager.create(
        b"p" * 18, "", "ns", "PACK", [units(CPU=1)], False, job, b"", 0.0, creator_actor=actor
    )
    assert manager.job_dead(job, 1.0) == []  # its (detached) creator actor lives on
    removed = manager.actor_dead(actor, 2.0)
    assert any(isinstance(i, G.Removed) for i in removed)
    # Made by the driver: the job alone decides.
    manager.create(b"q" * 18, "", "ns", "PACK", [units(CPU=1)], False, job, b"", 3.0)
    assert any(isinstance(i, G.Removed) for i in manager.job_dead(job, 4.0))
    # Detached: neither does.
    manager.create(
        b"r" * 18, "", "ns", "PACK", [units(CPU=1)], True, job, b"", 5.0, creator_actor=actor
    )
    assert manager.job_dead(job, 6.0) == [] and manager.actor_dead(actor, 7.0) == []


# ---------------------------------------------------------------- a restarted head


def _restarted(manager: G.PlacementGroupManager, pg_id: bytes) -> G.PlacementGroupManager:
    """A new head that read `pg_id` back from what `manager` wrote to its store."""
    fresh = G.PlacementGroupManager()
    group = dataclasses.replace(manager.groups[pg_id])
    group.nodes = list(group.nodes)
    fresh.restore(group, 10.0)
    return fresh


def _held(node: S.LocalScheduler) -> list:
    return [(pg_id, index, b.committed) for (pg_id, index), b in node.bundles.items()]


def _carry_out(node: S.LocalScheduler, instructions) -> None:
    for ins in instructions:
        if isinstance(ins, G.Commit):
            node.commit_bundles(ins.pg_id, [i for i, _ in ins.bundles])
        elif isinstance(ins, G.Return):
            node.return_bundles(ins.pg_id, [i for i, _ in ins.bundles])


def _prepared_group(committed_in_store: bool):
    manager = G.PlacementGroupManager()
    node = S.LocalScheduler(units(CPU=2), min_workers=0)
    manager.node_update(b"n", node.total, node.available, 0.0)
    pg_id = b"p" * 18
    (prepare,) = manager.create(
        pg_id, "", "ns", "PACK", [units(CPU=1), units(CPU=1)], False, b"j" * 4, b"", 0.0
    )
    assert node.prepare_bundles(pg_id, list(prepare.bundles))
    if committed_in_store:  # the head wrote the commit, then died before the node heard it
        manager.prepared(pg_id, prepare.attempt, b"n", True, 0.1)
    return manager, node, pg_id


def test_a_reservation_a_crashed_head_never_committed_is_returned():
    manager, node, pg_id = _prepared_group(committed_in_store=False)
    assert node.available["CPU"] == 0
    head = _restarted(manager, pg_id)
    settled = head.reconcile(b"n", _held(node))
    assert [type(i) for i in settled] == [G.Return] and not settled[0].committed
    _carry_out(node, settled)
    assert node.available == units(CPU=2) and not node.bundles
    # Placed again once the node is back, from a clean slate.
    (prepare,) = head.node_update(b"n", node.total, node.available, 11.0)
    assert node.prepare_bundles(pg_id, list(prepare.bundles))
    _carry_out(node, head.prepared(pg_id, prepare.attempt, b"n", True, 11.1))
    assert node.total[f"CPU_group_{pg_id.hex()}"] == 2 * U
    node.check_invariants()


def test_a_commit_the_node_never_heard_is_sent_again():
    manager, node, pg_id = _prepared_group(committed_in_store=True)
    head = _restarted(manager, pg_id)
    assert head.groups[pg_id].state == G.CREATED
    settled = head.reconcile(b"n", _held(node))
    assert [type(i) for i in settled] == [G.Commit]
    _carry_out(node, settled)
    assert node.total[f"CPU_group_{pg_id.hex()}"] == 2 * U
    assert head.reconcile(b"n", _held(node)) == []  # committed on both sides: nothing to do
    node.check_invariants()


def test_bundles_of_a_group_removed_or_unknown_are_returned():
    manager, node, pg_id = _prepared_group(committed_in_store=True)
    node.commit_bundles(pg_id, [0, 1])
    manager.remove(pg_id, 1.0)  # the head died before its ReturnBundles went out
    head = _restarted(manager, pg_id)
    settled = head.reconcile(b"n", _held(node))
    assert [(type(i), i.committed) for i in settled] == [(G.Return, True)]
    _carry_out(node, settled)
    assert node.total == units(CPU=2) and node.available == units(CPU=2)
    assert G.PlacementGroupManager().reconcile(b"n", [(b"x" * 18, 3, False)]) == [
        G.Return(b"n", b"x" * 18, ((3, {}),), False)
    ]


def test_a_bundle_of_the_attempt_in_flight_is_left_to_it():
    manager = G.PlacementGroupManager()
    manager.node_update(b"n", units(CPU=2), units(CPU=2), 0.0)
    (prepare,) = manager.create(
        b"p" * 18, "", "ns", "PACK", [units(CPU=1)], False, b"j" * 4, b"", 0.0
    )
    # The node's connection broke and came back while the Prepare was on its way.
    assert manager.reconcile(b"n", [(b"p" * 18, 0, False)]) == []


def test_bundles_whose_node_died_while_the_head_was_down_are_placed_again():
    """The restarted head never hears from the bundles' node (it died meanwhile): when it is
    declared dead, its group goes RESCHEDULING and is placed again elsewhere, as in Ray."""
    manager, node, pg_id = _prepared_group(committed_in_store=True)
    head = _restarted(manager, pg_id)
    assert head.groups[pg_id].state == G.CREATED and b"n" not in head.nodes
    assert [type(i) for i in head.node_dead(b"n", 10.0)] == [G.Infeasible]  # no node yet
    group = head.groups[pg_id]
    assert group.state == G.RESCHEDULING and group.nodes == [None, None]
    other = S.LocalScheduler(units(CPU=2), min_workers=0)
    (prepare,) = head.node_update(b"m", other.total, other.available, 11.0)
    assert prepare.node_id == b"m" and other.prepare_bundles(pg_id, list(prepare.bundles))
    _carry_out(other, head.prepared(pg_id, prepare.attempt, b"m", True, 11.1))
    assert group.state == G.CREATED and group.nodes == [b"m", b"m"]
