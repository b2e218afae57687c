"""Placement groups at the head, as a state machine without I/O.

A group's bundles are reserved with two phases, as Ray does across raylets. The head picks a
node for every bundle not yet placed, from its view of the nodes' free resources (heartbeats, a
moment old), and sends each chosen node one ``Prepare`` holding all of that node's bundles. A
node reserves them all or none, and answers. When every node said yes the head sends
``Commit`` (the node turns the reservation into the group's named resources, see bundles.py)
and the group is CREATED; when any node says no, dies, or does not answer in time, the head
sends ``Return`` to every node of the attempt (a node processes it after the Prepare that came
first on the same channel, so nothing stays reserved) and tries again later. One attempt is in
flight at a time, so two groups never race for the same free resources in the head's view.

Events come in as method calls and each returns the instructions for the head to carry out.
Invariants (tests/unit/test_placement_group_manager.py drives this with real node schedulers):

* a bundle is committed on at most one node, and a group's placed bundles obey its strategy;
* a node's resources are never reserved twice: what the nodes hold adds up to what the
  groups placed there;
* everything a removed group held goes back.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Union

from zray._private.common import bundles as B
from zray._private.common import resources as R

PENDING, CREATED, REMOVED, RESCHEDULING = "PENDING", "CREATED", "REMOVED", "RESCHEDULING"
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
PREPARE_TIMEOUT_S = 10.0
RETRY_S = 0.1  # after a refused attempt: the refusing node's heartbeat tells us more by then
KEEP_REMOVED = 1000  # removed groups still listed by placement_group_table(), as in Ray
SPREAD_SEARCH_STEPS = 10_000  # STRICT_SPREAD's matching search gives up (pending) past this


class NameTaken(ValueError):
    pass


IndexedBundle = tuple[int, R.Units]  # (bundle index, its units)
IndexedBundles = tuple[IndexedBundle, ...]  # what a Prepare, Commit or Return carries
Placement = dict[int, bytes]  # bundle index -> node id


# ---------------------------------------------------------------- instructions


@dataclass(frozen=True)
class Prepare:
    node_id: bytes
    pg_id: bytes
    attempt: int
    bundles: IndexedBundles


@dataclass(frozen=True)
class Commit:
    node_id: bytes
    pg_id: bytes
    attempt: int
    bundles: IndexedBundles


@dataclass(frozen=True)
class Return:
    """Give back a prepared reservation (committed=False) or committed bundles."""

    node_id: bytes
    pg_id: bytes
    bundles: IndexedBundles
    committed: bool


@dataclass(frozen=True)
class Created:
    pg_id: bytes


@dataclass(frozen=True)
class Removed:
    pg_id: bytes


@dataclass(frozen=True)
class Infeasible:
    """No node set of the cluster could ever hold the group (said once per group)."""

    pg_id: bytes
    bundles: tuple[dict[str, float], ...]
    strategy: str


Instruction = Union[Prepare, Commit, Return, Created, Removed, Infeasible]


# ---------------------------------------------------------------- state


@dataclass
class NodeCapacity:
    total: R.Units
    available: R.Units
    alive: bool = True


@dataclass
class Group:
    pg_id: bytes
    name: str
    namespace: str
    strategy: str
    bundles: list[R.Units]
    detached: bool
    job_id: bytes
    soft_target: bytes
    created_at: float
    creator_actor: bytes = b""  # the actor that made it, if an actor did
    job_dead: bool = False
    nodes: list[bytes | None] = field(default_factory=list)  # node per bundle, None while unplaced
    state: str = PENDING
    scheduling_state: str = "QUEUED"
    attempts: int = 0
    ready_at: float = 0.0
    attempt_started: float = 0.0
    retry_at: float = 0.0
    reported_infeasible: bool = False

    def unplaced(self) -> list[IndexedBundle]:
        return [(i, self.bundles[i]) for i, node in enumerate(self.nodes) if node is None]

    def placed(self) -> Placement:
        return {i: node for i, node in enumerate(self.nodes) if node is not None}


@dataclass
class Attempt:
    pg_id: bytes
    number: int
    placement: Placement
    waiting: set[bytes]
    refused: set[bytes]
    deadline: float


class PlacementGroupManager:
    def __init__(self, prepare_timeout_s: float = PREPARE_TIMEOUT_S) -> None:
        self.prepare_timeout_s = prepare_timeout_s
        self.nodes: dict[bytes, NodeCapacity] = {}
        self.groups: dict[bytes, Group] = {}
        self.names: dict[tuple[str, str], bytes] = {}  # (namespace, name) -> live group
        self.queue: list[bytes] = []  # groups with bundles to place, in order
        self.attempt: Attempt | None = None
        self._numbers = itertools.count(1)
        self._removed: deque[bytes] = deque()
        self._wake_at = float("inf")  # when a group refused earlier may try again
        self.creators: dict[bytes, set[bytes]] = {}  # actor -> live, non-detached groups it made

    # ------------------------------------------------------------ events

    def node_update(
        self, node_id: bytes, total: R.Units, available: R.Units, now: float
    ) -> list[Instruction]:
        """A node joined or reported its resources (units)."""
        node = self.nodes.get(node_id)
        if node is None:
            self.nodes[node_id] = NodeCapacity(dict(total), dict(available))
            for pg_id in self.queue:
                self.groups[pg_id].reported_infeasible = False  # it may fit now
        elif node.alive:
            node.total, node.available = dict(total), dict(available)
        else:
            return []
        return self._schedule(now)

    def node_dead(self, node_id: bytes, now: float) -> list[Instruction]:
        node = self.nodes.get(node_id)
        if node is not None:
            if not node.alive:
                return []
            node.alive = False
        # Else a node a restarted head never heard from (it died while the head was down):
        # the bundles read back as placed there are lost all the same.
        out: list[Instruction] = []
        if self.attempt is not None and node_id in self.attempt.placement.values():
            out += self._abort(now)
        rescheduled = []
        for group in self.groups.values():
            if group.state == REMOVED or node_id not in group.nodes:
                continue
            group.nodes = [None if n == node_id else n for n in group.nodes]
            group.state = RESCHEDULING
            group.scheduling_state = "QUEUED"
            group.retry_at = 0.0
            if group.pg_id not in self.queue:
                rescheduled.append(group.pg_id)
        self.queue[:0] = rescheduled  # as in Ray: groups that lost bundles go first
        return out + self._schedule(now)

    def create(
        self,
        pg_id: bytes,
        name: str,
        namespace: str,
        strategy: str,
        bundles: list[R.Units],
        detached: bool,
        job_id: bytes,
        soft_target: bytes,
        now: float,
        creator_actor: bytes = b"",
    ) -> list[Instruction]:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown placement strategy {strategy!r}")
        if pg_id in self.groups:
            return []  # a resent request
        if name and (namespace, name) in self.names:
            raise NameTaken(
                f"Failed to create placement group '{name}' because name is "
                f"already taken in namespace '{namespace}'"
            )
        group = Group(
            pg_id,
            name,
            namespace,
            strategy,
            [dict(b) for b in bundles],
            detached,
            job_id,
            soft_target,
            now,
            creator_actor,
            nodes=[None] * len(bundles),
        )
        self.groups[pg_id] = group
        if creator_actor and not detached:
            self.creators.setdefault(creator_actor, set()).add(pg_id)
        if name:
            self.names[(namespace, name)] = pg_id
        self.queue.append(pg_id)
        return self._schedule(now)

    def restore(self, group: Group, now: float) -> list[Instruction]:
        """A group a restarted head read back from its store: placed bundles stay where they
        were committed (their nodes still hold them), unplaced ones are scheduled again."""
        self.groups[group.pg_id] = group
        if group.state == REMOVED:
            return []
        if group.creator_actor and not group.detached:
            self.creators.setdefault(group.creator_actor, set()).add(group.pg_id)
        if group.name:
            self.names[(group.namespace, group.name)] = group.pg_id
        if not group.unplaced():
            return []
        self.queue.append(group.pg_id)
        return self._schedule(now)

    def remove(self, pg_id: bytes, now: float) -> list[Instruction]:
        group = self.groups.get(pg_id)
        if group is None or group.state == REMOVED:
            return []
        out: list[Instruction] = []
        if self.attempt is not None and self.attempt.pg_id == pg_id:
            out += self._abort(now)
        for node_id, bundles in _by_node(group, group.placed()).items():
            if self._alive(node_id):
                out.append(Return(node_id, pg_id, bundles, True))
                self._view_returned(node_id, pg_id, bundles)
        group.nodes = [None] * len(group.bundles)
        group.state = REMOVED
        group.scheduling_state = "REMOVED"
        if group.name and self.names.get((group.namespace, group.name)) == pg_id:
            del self.names[(group.namespace, group.name)]
        if pg_id in self.queue:
            self.queue.remove(pg_id)
        created_by = self.creators.get(group.creator_actor)
        if created_by is not None:
            created_by.discard(pg_id)
            if not created_by:
                del self.creators[group.creator_actor]
        self._removed.append(pg_id)
        while len(self._removed) > KEEP_REMOVED:
            self.groups.pop(self._removed.popleft(), None)
        out.append(Removed(pg_id))
        return out + self._schedule(now)

    def job_dead(self, job_id: bytes, now: float) -> list[Instruction]:
        """A group that is not detached fate-shares with its creator, as in Ray: the job that
        made it, and also the actor that made it if one did (an actor may be detached)."""
        out: list[Instruction] = []
        for group in list(self.groups.values()):
            if group.job_id == job_id and not group.detached and group.state != REMOVED:
                group.job_dead = True
                if group.creator_actor not in self.creators:
                    out += self.remove(group.pg_id, now)
        return out

    def actor_dead(self, actor_id: bytes, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        for pg_id in sorted(self.creators.pop(actor_id, ())):
            group = self.groups.get(pg_id)
            if group is not None and group.job_dead:
                out += self.remove(pg_id, now)
        return out

    def prepared(
        self, pg_id: bytes, attempt: int, node_id: bytes, ok: bool, now: float
    ) -> list[Instruction]:
        current = self.attempt
        if (
            current is None
            or current.number != attempt
            or current.pg_id != pg_id
            or node_id not in current.waiting
        ):
            return []  # an attempt already aborted: its Return went out behind the Prepare
        current.waiting.discard(node_id)
        if not ok:
            current.refused.add(node_id)
            return self._abort(now)
        if current.waiting:
            return []
        return self._commit(now)

    def reconcile(self, node_id: bytes, held: list[tuple[bytes, int, bool]]) -> list[Instruction]:
        """A node that lost the head lists the bundles it holds ([(pg id, index, committed)]).
        What a restarted head placed there (read back from its store) is committed, whatever
        the node got of it before the crash; anything else is returned: a reservation the old
        head prepared and never committed, or bundles of a group removed since. A bundle of
        the attempt in flight is left to it (its Commit or Return is on its way)."""
        commit: dict[bytes, list[IndexedBundle]] = {}
        give_back: dict[tuple[bytes, bool], list[IndexedBundle]] = {}
        attempt = self.attempt
        for pg_id, index, committed in held:
            group = self.groups.get(pg_id)
            if attempt is not None and attempt.pg_id == pg_id:
                if attempt.placement.get(index) == node_id:
                    continue
            placed_here = (
                group is not None
                and group.state != REMOVED
                and 0 <= index < len(group.nodes)
                and group.nodes[index] == node_id
            )
            if placed_here:
                assert group is not None
                if not committed:
                    commit.setdefault(pg_id, []).append((index, group.bundles[index]))
                continue
            units = group.bundles[index] if group and 0 <= index < len(group.bundles) else {}
            give_back.setdefault((pg_id, committed), []).append((index, units))
        out: list[Instruction] = [
            Commit(node_id, pg_id, 0, tuple(bundles)) for pg_id, bundles in commit.items()
        ]
        out += [
            Return(node_id, pg_id, tuple(bundles), committed)
            for (pg_id, committed), bundles in give_back.items()
        ]
        return out

    def tick(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        if self.attempt is not None and now >= self.attempt.deadline:
            out += self._abort(now)
        if self.attempt is None and now >= self._wake_at:
            out += self._schedule(now)
        return out

    # ------------------------------------------------------------ views

    def lookup(self, namespace: str, name: str) -> Group | None:
        pg_id = self.names.get((namespace, name))
        return self.groups.get(pg_id) if pg_id else None

    def table_entry(self, group: Group) -> dict[str, object]:
        """One row of placement_group_table(), with Ray's keys."""
        latency = (group.ready_at - group.created_at) * 1000 if group.ready_at else 0.0
        scheduling = (group.ready_at - group.attempt_started) * 1000 if group.ready_at else 0.0
        return {
            "placement_group_id": group.pg_id.hex(),
            "name": group.name,
            "bundles": {i: R.to_floats(b) for i, b in enumerate(group.bundles)},
            "bundles_to_node_id": {i: (n.hex() if n else "") for i, n in enumerate(group.nodes)},
            "strategy": group.strategy,
            "state": group.state,
            "stats": {
                "end_to_end_creation_latency_ms": round(latency, 3),
                "scheduling_latency_ms": round(scheduling, 3),
                "scheduling_attempt": group.attempts,
                "highest_retry_delay_ms": RETRY_S * 1000 if group.attempts > 1 else 0.0,
                "scheduling_state": group.scheduling_state,
            },
        }

    def stats(self) -> dict[str, object]:
        states: dict[str, int] = {}
        for group in self.groups.values():
            states[group.state] = states.get(group.state, 0) + 1
        return {
            "groups": states,
            "queued": len(self.queue),
            "attempt": self.attempt.pg_id.hex() if self.attempt else None,
        }

    # ------------------------------------------------------------ internals

    def _alive(self, node_id: bytes) -> bool:
        node = self.nodes.get(node_id)
        return node is not None and node.alive

    def _schedule(self, now: float) -> list[Instruction]:
        if self.attempt is not None:
            return []
        out: list[Instruction] = []
        self._wake_at = float("inf")
        for pg_id in self.queue:
            group = self.groups[pg_id]
            if group.retry_at > now:
                self._wake_at = min(self._wake_at, group.retry_at)
                continue
            unplaced = group.unplaced()
            alive = {n: node for n, node in self.nodes.items() if node.alive}
            placement = place(
                group.strategy,
                unplaced,
                group.placed(),
                {n: node.available for n, node in alive.items()},
                group.soft_target,
            )
            if placement is None:
                if group.scheduling_state != "INFEASIBLE":
                    group.scheduling_state = "NO_RESOURCES"
                if not group.reported_infeasible:
                    group.reported_infeasible = True
                    if (
                        place(
                            group.strategy,
                            unplaced,
                            group.placed(),
                            {n: node.total for n, node in alive.items()},
                            b"",
                        )
                        is None
                    ):
                        group.scheduling_state = "INFEASIBLE"
                        out.append(
                            Infeasible(
                                pg_id, tuple(R.to_floats(b) for b in group.bundles), group.strategy
                            )
                        )
                continue
            group.attempts += 1
            group.attempt_started = now
            group.scheduling_state = "SCHEDULING_STARTED"
            attempt = Attempt(
                pg_id,
                next(self._numbers),
                placement,
                set(placement.values()),
                set(),
                now + self.prepare_timeout_s,
            )
            self.attempt = attempt
            for node_id, bundles in _by_node(group, placement).items():
                out.append(Prepare(node_id, pg_id, attempt.number, bundles))
            return out
        return out

    def _abort(self, now: float) -> list[Instruction]:
        attempt, self.attempt = self.attempt, None
        assert attempt is not None  # callers abort the attempt in flight
        group = self.groups[attempt.pg_id]
        out: list[Instruction] = []
        for node_id, bundles in _by_node(group, attempt.placement).items():
            if node_id not in attempt.refused and self._alive(node_id):
                out.append(Return(node_id, attempt.pg_id, bundles, False))
        group.retry_at = now + RETRY_S
        self._wake_at = min(self._wake_at, group.retry_at)
        group.scheduling_state = "FAILED_TO_COMMIT_RESOURCES"
        return out

    def _commit(self, now: float) -> list[Instruction]:
        attempt, self.attempt = self.attempt, None
        assert attempt is not None  # called when every node of the attempt in flight said yes
        group = self.groups[attempt.pg_id]
        out: list[Instruction] = []
        for node_id, bundles in _by_node(group, attempt.placement).items():
            out.append(Commit(node_id, attempt.pg_id, attempt.number, bundles))
            self._view_committed(node_id, attempt.pg_id, bundles)
        for index, node_id in attempt.placement.items():
            group.nodes[index] = node_id
        if group.unplaced():  # a node holding another bundle died meanwhile: not done yet
            group.scheduling_state = "QUEUED"
            return out + self._schedule(now)
        group.state = CREATED
        group.scheduling_state = "FINISHED"
        group.ready_at = group.ready_at or now
        self.queue.remove(attempt.pg_id)
        out.append(Created(attempt.pg_id))
        return out + self._schedule(now)

    def _view_committed(self, node_id: bytes, pg_id: bytes, bundles: IndexedBundles) -> None:
        """Until the node's next heartbeat says so itself, count what it just took."""
        node = self.nodes[node_id]
        for index, units in bundles:
            R.subtract(node.available, units)
            named = B.committed_units(pg_id.hex(), index, units)
            R.add(node.total, named)
            R.add(node.available, named)

    def _view_returned(self, node_id: bytes, pg_id: bytes, bundles: IndexedBundles) -> None:
        node = self.nodes[node_id]
        for index, units in bundles:
            R.add(node.available, units)
            for name, amount in B.committed_units(pg_id.hex(), index, units).items():
                for table in (node.total, node.available):
                    left = table.get(name, 0) - amount
                    if left > 0:
                        table[name] = left
                    else:
                        table.pop(name, None)


def _by_node(group: Group, placement: Placement) -> dict[bytes, IndexedBundles]:
    out: dict[bytes, list[IndexedBundle]] = {}
    for index in sorted(placement):
        out.setdefault(placement[index], []).append((index, group.bundles[index]))
    return {node_id: tuple(bundles) for node_id, bundles in out.items()}


# ---------------------------------------------------------------- placement policy


def place(
    strategy: str,
    bundles: list[IndexedBundle],
    placed: Placement,
    free: dict[bytes, R.Units],
    soft_target: bytes = b"",
) -> Placement | None:
    """Nodes for `bundles` ([(index, units)]) given the group's `placed` bundles
    ({index: node}) and each live node's `free` units; None if they do not fit now."""
    if not bundles:
        return {}
    free = {node_id: dict(units) for node_id, units in free.items()}
    order = sorted(free, key=lambda n: (-free[n].get("CPU", 0), n))
    if strategy in ("STRICT_PACK", "PACK"):
        holding = set(placed.values())
        candidates = [n for n in order if n in holding] if holding else list(order)
        if soft_target in candidates:
            candidates.remove(soft_target)
            candidates.insert(0, soft_target)
        total: R.Units = {}
        for _, units in bundles:
            R.add(total, units)
        for node_id in candidates:
            if R.fits(total, free[node_id]):
                return {index: node_id for index, _ in bundles}
        if strategy == "STRICT_PACK":
            return None
        return _greedy(bundles, placed, free, order, prefer_used=True)
    if strategy == "SPREAD":
        return _greedy(bundles, placed, free, order, prefer_used=False)
    if strategy == "STRICT_SPREAD":
        return _distinct(bundles, set(placed.values()), free, order)
    raise ValueError(f"unknown placement strategy {strategy!r}")


def _greedy(
    bundles: list[IndexedBundle],
    placed: Placement,
    free: dict[bytes, R.Units],
    order: list[bytes],
    prefer_used: bool,
) -> Placement | None:
    """PACK's fallback (fill nodes the group already uses first) and SPREAD (nodes the group
    uses least first); largest bundles choose first."""
    count: dict[bytes, int] = {}
    for node_id in placed.values():
        count[node_id] = count.get(node_id, 0) + 1
    out: Placement = {}
    rank = {node_id: i for i, node_id in enumerate(order)}
    for index, units in sorted(bundles, key=lambda b: -sum(b[1].values())):
        able = [n for n in order if R.fits(units, free[n])]
        if not able:
            return None
        sign = -1 if prefer_used else 1
        node_id = min(able, key=lambda n: (sign * count.get(n, 0), rank[n]))
        R.subtract(free[node_id], units)
        count[node_id] = count.get(node_id, 0) + 1
        out[index] = node_id
    return out


def _distinct(
    bundles: list[IndexedBundle], taken: set[bytes], free: dict[bytes, R.Units], order: list[bytes]
) -> Placement | None:
    """One node per bundle, none already holding one of the group's bundles: a small
    backtracking search (a greedy pass can miss a matching that exists)."""
    nodes = [n for n in order if n not in taken]
    if len(nodes) < len(bundles):
        return None
    ordered = sorted(bundles, key=lambda b: -sum(b[1].values()))
    chosen: Placement = {}
    used: set[bytes] = set()
    steps = itertools.count()

    def search(k: int) -> bool:
        if k == len(ordered):
            return True
        index, units = ordered[k]
        for node_id in nodes:
            if next(steps) > SPREAD_SEARCH_STEPS:
                return False
            if node_id in used or not R.fits(units, free[node_id]):
                continue
            used.add(node_id)
            chosen[index] = node_id
            if search(k + 1):
                return True
            used.discard(node_id)
            del chosen[index]
        return False

    return dict(chosen) if search(0) else None
