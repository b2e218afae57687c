"""The borrowing protocol across processes, against a model: several ReferenceCounters exchange
AddBorrowers / RemoveBorrowers / task and status messages over FIFO channels, delivered in any
interleaving hypothesis picks.

Safety: an owner never frees an object that some process still references (a live ObjectRef,
a task argument in flight or running, a value in flight, or a container that is not freed).
Calls may be lost with their worker before they run. Liveness: once every ref is dropped and every message delivered, every object has been freed
exactly once, by its owner.
"""

from __future__ import annotations

from collections import Counter, deque

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zray._private.core.reference_counter import ReferenceCounter

PROCESSES = ("p0", "p1", "p2")
MAX_OBJECTS = 8


class Process:
    def __init__(self, address: str, world: "ProtocolMachine"):
        self.address = address
        self.rc = ReferenceCounter(address)
        self.world = world
        self.local = Counter()  # ObjectRefs alive here (the model's truth)
        self.running = {}  # task id -> (pinned ids, refs)
        self.getting = Counter()  # refs held by a get waiting for its answer

    # what CoreWorker does with the counter's answers ---------------------------------

    def apply(self, released):
        for oid in released.freed:
            self.world.on_freed(self.address, oid)
        by_owner = {}
        for owner, oid, count in released.removes:
            ids, counts = by_owner.setdefault(owner, ([], []))
            ids.append(oid)
            counts.append(count)
        for owner, (ids, counts) in by_owner.items():
            self.world.send(self.address, owner, ("remove", self.address, ids, counts))

    def hand_over(self, holder: str, refs):
        for owner, ids in self.rc.hand_over(holder, refs).items():
            self.world.send(self.address, owner, ("add", holder, ids))

    def add_ref(self, oid: bytes, owner: str):
        self.rc.add_local(oid)
        if owner != self.address:
            self.rc.note_borrowed(_Ref(oid, owner))
        self.local[oid] += 1

    def drop_ref(self, oid: bytes):
        self.local[oid] -= 1
        self.rc.remove_local_later(oid)
        self.apply(self.rc.collect())


class _Ref:
    __slots__ = ("_id", "_owner")

    def __init__(self, oid, owner):
        self._id, self._owner = oid, owner


class ProtocolMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.procs = {a: Process(a, self) for a in PROCESSES}
        self.channels: dict[tuple, deque] = {}
        self.owner: dict[bytes, str] = {}
        self.freed: Counter = Counter()
        self.contains: dict[bytes, list] = {}  # container id -> [(inner id, owner)]
        self.next_id = 0

    # -------------------------------------------------------------- plumbing

    def send(self, src: str, dst: str, msg):
        self.channels.setdefault((src, dst), deque()).append(msg)

    def on_freed(self, by: str, oid: bytes):
        assert self.owner[oid] == by, f"{oid!r} freed by {by}, owned by {self.owner[oid]}"
        assert self.freed[oid] == 0, f"{oid!r} freed twice"
        self.freed[oid] += 1
        assert not self._referenced(oid), f"{oid!r} freed while still referenced"

    def _referenced(self, oid: bytes) -> bool:
        if any(p.local[oid] or p.getting[oid] for p in self.procs.values()):
            return True
        for p in self.procs.values():
            for _, refs in p.running.values():
                if any(r == oid for r, _ in refs):
                    return True
        for queue in self.channels.values():
            for msg in queue:
                if msg[0] in ("push", "status") and any(r == oid for r, _ in msg[2]):
                    return True
                if msg[0] == "done" and any(r == oid for r, _ in msg[3]):
                    return True
        return any(
            not self.freed[c] and any(r == oid for r, _ in inner)
            for c, inner in self.contains.items()
        )

    def _new_id(self, owner: str) -> bytes:
        oid = b"o%d" % self.next_id
        self.next_id += 1
        self.owner[oid] = owner
        return oid

    def _holding(self):
        return [(a, oid) for a, p in self.procs.items() for oid, n in sorted(p.local.items()) if n]

    # -------------------------------------------------------------- rules

    @precondition(lambda self: self.next_id < MAX_OBJECTS)
    @rule(at=st.sampled_from(PROCESSES), data=st.data())
    def put(self, at, data):
        """`put(value)`; the value may contain refs this process holds."""
        proc = self.procs[at]
        held = sorted(oid for oid, n in proc.local.items() if n)
        inner = data.draw(st.lists(st.sampled_from(held), max_size=2, unique=True)) if held else []
        oid = self._new_id(at)
        refs = [(r, self.owner[r]) for r in inner]
        proc.rc.add_owned(oid, refs)
        if refs:
            self.contains[oid] = refs
        proc.add_ref(oid, at)

    @precondition(lambda self: self._holding())
    @rule(data=st.data())
    def drop(self, data):
        at, oid = data.draw(st.sampled_from(self._holding()))
        self.procs[at].drop_ref(oid)

    @precondition(lambda self: self._holding())
    @rule(data=st.data(), to=st.sampled_from(PROCESSES))
    def submit(self, data, to):
        """A call with refs nested in its arguments, to a worker in process `to`: the caller
        pins them and registers the worker before pushing."""
        at = data.draw(st.sampled_from(sorted({a for a, _ in self._holding()})))
        proc = self.procs[at]
        held = sorted(oid for oid, n in proc.local.items() if n)
        inner = data.draw(st.lists(st.sampled_from(held), min_size=1, max_size=2, unique=True))
        refs = [(r, self.owner[r]) for r in inner]
        task_id = self._new_id(at)  # doubles as the id of the call's return object
        self.freed[task_id] = 0
        proc.rc.add_owned(task_id)
        proc.add_ref(task_id, at)
        proc.rc.pin(inner)
        proc.running[task_id] = (inner, refs)
        proc.hand_over(to, refs)
        self.send(at, to, ("push", task_id, refs))

    @precondition(lambda self: self.channels and any(self.channels.values()))
    @rule(data=st.data())
    def deliver(self, data):
        pairs = sorted(k for k, q in self.channels.items() if q)
        src, dst = data.draw(st.sampled_from(pairs))
        msg = self.channels[(src, dst)].popleft()
        self._handle(src, dst, msg, data)

    def _handle(self, src, dst, msg, data=None):
        proc = self.procs[dst]
        kind = msg[0]
        if kind == "add":
            for oid in msg[2]:
                assert proc.rc.owns(oid), f"registration for {oid!r}, which {dst} freed"
                proc.apply(proc.rc.add_borrower(oid, msg[1]))
        elif kind == "remove":
            for oid, count in zip(msg[2], msg[3]):
                proc.apply(proc.rc.remove_borrower(oid, msg[1], count))
        elif kind == "push":
            _, task_id, refs = msg
            held = proc.rc.receive_for_task(refs)
            for oid, owner in refs:  # the arguments are deserialized
                proc.add_ref(oid, owner)
            keep = data.draw(st.lists(st.sampled_from(refs), unique=True)) if data else []
            back = data.draw(st.lists(st.sampled_from(refs), unique=True)) if data else []
            if back:  # the result contains some of the refs: register the caller first
                proc.hand_over(src, back)
                self.contains[task_id] = back
            self.send(dst, src, ("done", task_id, held, back))
            for oid, _ in refs:  # the call returns; what it stored (`keep`) stays
                if (oid, self.owner[oid]) not in keep:
                    proc.drop_ref(oid)
            proc.apply(proc.rc.unpin(held))
        elif kind == "done":
            _, task_id, _, back = msg
            released = proc.rc.receive_contained(task_id, back) if back else None
            if released:
                proc.apply(released)
            pinned, _ = proc.running.pop(task_id)
            proc.apply(proc.rc.unpin(pinned))
            proc.apply(proc.rc.check([task_id]))
        elif kind == "get":
            _, outer, asker = msg  # the owner answers a borrower's get
            inner = proc.rc.contents(outer)
            proc.hand_over(asker, inner)
            self.send(dst, asker, ("status", outer, inner))
        elif kind == "status":
            _, outer, inner = msg
            proc.apply(proc.rc.receive_contained(outer, inner))
            for oid, owner in inner:  # the value is deserialized: its refs become local
                proc.add_ref(oid, owner)
            proc.getting[outer] -= 1  # the get's own hold on the outer ref ends
            proc.rc.remove_local_later(outer)
            proc.apply(proc.rc.collect())

    @precondition(lambda self: self._pushes_in_flight())
    @rule(data=st.data())
    def lose_push(self, data):
        """The worker a call was pushed to died before running it: the caller gives back, on
        its behalf, what it registered for it, and releases the call's arguments."""
        src, dst, msg = data.draw(st.sampled_from(self._pushes_in_flight()))
        self.channels[(src, dst)].remove(msg)
        proc = self.procs[src]
        released, remote = proc.rc.give_back_for(dst, msg[2])
        for owner, ids in remote.items():
            self.send(src, owner, ("remove", dst, ids, [1] * len(ids)))
        proc.apply(released)
        pinned, _ = proc.running.pop(msg[1])
        proc.apply(proc.rc.unpin(pinned))

    def _pushes_in_flight(self):
        return [
            (src, dst, msg)
            for (src, dst), queue in sorted(self.channels.items())
            for msg in queue
            if msg[0] == "push"
        ]

    @precondition(lambda self: self._borrowed_containers())
    @rule(data=st.data())
    def get(self, data):
        """A borrower gets a value that contains refs: it asks the owner for the value."""
        at, outer = data.draw(st.sampled_from(self._borrowed_containers()))
        proc = self.procs[at]
        proc.rc.add_local(outer)  # the ref passed to get() is held while it runs
        proc.getting[outer] += 1
        self.send(at, self.owner[outer], ("get", outer, at))

    def _borrowed_containers(self):
        return [
            (a, oid) for a, oid in self._holding() if oid in self.contains and self.owner[oid] != a
        ]

    @rule(data=st.data())
    def hand_container(self, data):
        """Pass a container ref nested in a call, so that others can later get it."""
        containers = [(a, oid) for a, oid in self._holding() if oid in self.contains]
        if containers:
            at, oid = data.draw(st.sampled_from(containers))
            to = data.draw(st.sampled_from(PROCESSES))
            refs = [(oid, self.owner[oid])]
            proc = self.procs[at]
            task_id = self._new_id(at)
            self.freed[task_id] = 0
            proc.rc.add_owned(task_id)
            proc.add_ref(task_id, at)
            proc.rc.pin([oid])
            proc.running[task_id] = ([oid], refs)
            proc.hand_over(to, refs)
            self.send(at, to, ("push", task_id, refs))

    # -------------------------------------------------------------- checks

    @invariant()
    def nothing_referenced_is_freed(self):
        for oid, n in self.freed.items():
            if n:
                assert not any(p.local[oid] for p in self.procs.values()), oid

    def teardown(self):
        if not hasattr(self, "procs"):
            return
        for _ in range(10_000):  # drain: deliver everything, drop every ref, repeat
            pending = [(k, q) for k, q in sorted(self.channels.items()) if q]
            if pending:
                (src, dst), queue = pending[0]
                self._handle(src, dst, queue.popleft())
                continue
            holding = self._holding()
            if not holding:
                break
            at, oid = holding[0]
            self.procs[at].drop_ref(oid)
        else:
            raise AssertionError("the protocol did not quiesce")
        for oid in self.owner:
            assert self.freed[oid] == 1, f"{oid!r} (owner {self.owner[oid]}) never freed"
        for proc in self.procs.values():
            stats = proc.rc.stats()
            assert stats["owned"] == stats["borrowed"] == stats["with_borrowers"] == 0, stats
            assert stats["task_pinned"] == stats["containers"] == 0, stats


ProtocolMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestProtocolMachine = ProtocolMachine.TestCase
