"""Reference counting by ownership, as a state machine without I/O.

Every object has one owner: the process that created it. The owner frees it once nothing
holds it any more, in any process. A process holds an object while any of these is true:
  - a Python ObjectRef to it is alive here (local count);
  - a call this process submitted, or is executing, uses it (task pin);
  - a value this process holds contains it (containment, e.g. `put([ref])` or a task result);
  - (owner only) another process is registered as a borrower.

Borrowers are counted, not listed: whoever hands a ref to another process registers that
process with the owner (AddBorrowers) while still holding the ref itself, and the receiving
process later removes exactly the registrations it was given (RemoveBorrowers). Because the
sender's registration travels before its own removal on the same channel, and counts commute,
no interleaving of messages frees an object that someone still holds (tests/unit/
test_reference_protocol.py checks this against a model of several processes).

ObjectRef.__del__ can run in any thread at any moment (garbage collection), even while this
process holds a lock, so it only appends to a deque; counts change under our own lock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Iterable, Sequence

# (object id, owner address): a tuple when made here, a list when it came off the wire.
RefPair = Sequence[Any]


class Released:
    """What a change in counts means for the rest of the system."""

    __slots__ = ("freed", "removes", "forgotten")

    def __init__(self) -> None:
        self.freed: list[bytes] = []  # owned ids no one holds: free every copy
        # (owner address, object id, registrations) to give back
        self.removes: list[tuple[str, bytes, int]] = []
        self.forgotten: list[bytes] = []  # borrowed ids no longer held here: drop cached values

    def __bool__(self) -> bool:
        return bool(self.freed or self.removes or self.forgotten)

    def extend(self, other: "Released") -> "Released":
        self.freed += other.freed
        self.removes += other.removes
        self.forgotten += other.forgotten
        return self


def distinct(refs: Iterable[Any]) -> list[tuple[bytes, str]]:
    """[(object id, owner address)] of ObjectRefs, each object once: one registration per
    object per hand-over, counted the same way by sender and receiver."""
    seen: set[bytes] = set()
    out: list[tuple[bytes, str]] = []
    for ref in refs:
        if ref._id not in seen:
            seen.add(ref._id)
            out.append((ref._id, ref._owner))
    return out


class ReferenceCounter:
    def __init__(self, address: str = "") -> None:
        self.address = address  # our own address: refs carrying it are owned here
        self._lock = threading.Lock()
        self._released: deque[bytes] = deque()
        self.wake = (
            None  # called after a release is queued, when set (the owner's I/O thread dozes)
        )
        self._local: dict[bytes, int] = {}
        self._pins: dict[bytes, int] = {}
        self._owned: set[bytes] = set()
        self._escaped: set[bytes] = set()
        self._borrowers: dict[bytes, dict[str, int]] = {}  # owned id -> holder -> registrations
        self._borrowed: dict[bytes, list[Any]] = {}  # borrowed id -> [owner address, registrations]
        # outer id -> [(inner id, inner owner)]
        self._contains: dict[bytes, list[tuple[bytes, str]]] = {}
        self._contained_in: dict[bytes, set[bytes]] = {}  # inner id -> outer ids holding it
        self._dead_holders: set[str] = set()  # their registrations no longer count
        # owned id -> kept specs (lineage.py) using it as an argument: its lineage stays while
        # they do, though its value goes once nothing above holds it (lineage_pins.py)
        self._lineage: dict[bytes, int] = {}

    # ------------------------------------------------------------------ local refs

    def add_local(self, object_id: bytes) -> None:
        with self._lock:
            self._local[object_id] = self._local.get(object_id, 0) + 1

    def remove_local_later(self, object_id: bytes) -> None:
        self._released.append(object_id)
        wake = self.wake
        if wake is not None:
            wake()

    def collect(self) -> Released:
        """Applies the decrements queued by __del__."""
        out = Released()
        released = self._released
        if not released:
            return out
        with self._lock:
            while released:
                oid = released.popleft()
                count = self._local.get(oid, 0) - 1
                if count > 0:
                    self._local[oid] = count
                    continue
                self._local.pop(oid, None)
                self._check(oid, out)
        return out

    # ------------------------------------------------------------------ ownership

    def add_owned(self, object_id: bytes, contains: Sequence[RefPair] = ()) -> None:
        """`contains`: the refs inside the object's value, held for as long as it is."""
        with self._lock:
            self._owned.add(object_id)
            if contains:
                self._contain(object_id, contains)

    def owns(self, object_id: bytes) -> bool:
        return object_id in self._owned

    def mark_escaped(self, object_ids: Iterable[bytes]) -> None:
        """Refs that left through a path we do not track (e.g. an actor's constructor
        arguments, or a user pickling a ref by hand): owned ones are never freed."""
        with self._lock:
            self._escaped.update(object_ids)

    # ------------------------------------------------------------------ borrowing

    def note_borrowed(self, ref: Any) -> None:
        """A ref to someone else's object was deserialized here."""
        if ref._id not in self._owned and ref._owner and ref._owner != self.address:
            with self._lock:
                if ref._id not in self._borrowed:
                    self._borrowed[ref._id] = [ref._owner, 0]

    def owner_of(self, object_id: bytes) -> str:
        entry = self._borrowed.get(object_id)
        return entry[0] if entry else ""

    def receive_for_task(self, refs: Iterable[RefPair]) -> list[bytes]:
        """A caller registered us for the refs nested in a call we are about to execute: they
        stay held until unpin(returned ids) when the call is done."""
        pinned: list[bytes] = []
        with self._lock:
            for oid, owner in refs:
                if self._register(oid, owner):
                    self._pins[oid] = self._pins.get(oid, 0) + 1
                    pinned.append(oid)
        return pinned

    def receive_contained(self, outer: bytes, refs: Sequence[RefPair]) -> Released:
        """The value of `outer` (owned here, or borrowed and cached here) contains `refs`, and
        whoever sent it registered us for those we do not own. They are held as long as
        `outer` is; if it no longer is, they are given back at once."""
        out = Released()
        with self._lock:
            self._contain(outer, refs)
            for oid, owner in refs:
                self._register(oid, owner)
            self._check(outer, out)
        return out

    def hand_over(self, holder: str, refs: Iterable[RefPair]) -> dict[str, list[bytes]]:
        """We are handing `refs` to `holder` while still holding them: registers it for the
        objects we own, and returns {owner: [object ids]} to register with other owners."""
        remote: dict[str, list[bytes]] = {}
        for oid, owner in refs:
            if owner == holder:
                continue
            if owner == self.address:
                self.add_borrower(oid, holder)  # frees nothing: we hold it ourselves
            else:
                remote.setdefault(owner, []).append(oid)
        return remote

    def give_back_for(
        self, holder: str, refs: Iterable[RefPair]
    ) -> tuple[Released, dict[str, list[bytes]]]:
        """Undoes hand_over() for a holder that died before it could: returns (Released,
        {owner: [object ids]} whose registrations to give back on its behalf)."""
        out = Released()
        remote: dict[str, list[bytes]] = {}
        for oid, owner in refs:
            if owner == holder:
                continue
            if owner == self.address:
                out.extend(self.remove_borrower(oid, holder, 1))
            else:
                remote.setdefault(owner, []).append(oid)
        return out, remote

    def add_borrower(self, object_id: bytes, holder: str, count: int = 1) -> Released:
        """(Owner) `holder` was handed a ref to our object (`count` times)."""
        return self.remove_borrower(object_id, holder, -count)

    def remove_borrower(self, object_id: bytes, holder: str, count: int) -> Released:
        """(Owner) `holder` gave back `count` registrations. A removal may overtake its
        registration (they travel on different channels): the count goes negative meanwhile,
        which still holds the object."""
        out = Released()
        with self._lock:
            if holder in self._dead_holders:
                return out  # a registration or removal that arrived after its holder died
            holders = self._borrowers.setdefault(object_id, {})
            left = holders.get(holder, 0) - count
            if left:
                holders[holder] = left
            else:
                holders.pop(holder, None)
                if not holders:
                    del self._borrowers[object_id]
                self._check(object_id, out)
        return out

    def forget_holder(self, holder: str) -> Released:
        """(Owner) `holder` died: its registrations will never be given back, and any still
        on their way are ignored."""
        out = Released()
        with self._lock:
            self._dead_holders.add(holder)
            for oid in [o for o, holders in self._borrowers.items() if holder in holders]:
                holders = self._borrowers[oid]
                del holders[holder]
                if not holders:
                    del self._borrowers[oid]
                    self._check(oid, out)
        return out

    # ------------------------------------------------------------------ tasks

    def pin(self, object_ids: Iterable[bytes]) -> None:
        with self._lock:
            for oid in object_ids:
                self._pins[oid] = self._pins.get(oid, 0) + 1

    def unpin(self, object_ids: Iterable[bytes]) -> Released:
        out = Released()
        with self._lock:
            for oid in object_ids:
                count = self._pins.get(oid, 0) - 1
                if count > 0:
                    self._pins[oid] = count
                else:
                    self._pins.pop(oid, None)
                    self._check(oid, out)
        return out

    # ------------------------------------------------------------------ lineage

    def add_lineage(self, object_ids: Iterable[bytes]) -> None:
        """A kept spec uses these owned objects as arguments: their lineage must stay (not
        their values: this does not hold them)."""
        with self._lock:
            for oid in object_ids:
                self._lineage[oid] = self._lineage.get(oid, 0) + 1

    def remove_lineage(self, object_ids: Iterable[bytes]) -> list[bytes]:
        """A kept spec went. Returns the ids no kept spec uses any more whose values are
        freed already: their own lineage can go now."""
        gone: list[bytes] = []
        with self._lock:
            for oid in object_ids:
                count = self._lineage.get(oid, 0) - 1
                if count > 0:
                    self._lineage[oid] = count
                    continue
                self._lineage.pop(oid, None)
                if oid not in self._owned:
                    gone.append(oid)
        return gone

    def lineage_held(self, object_id: bytes) -> bool:
        return object_id in self._lineage

    # ------------------------------------------------------------------ containment

    def contents(self, outer: bytes) -> list[tuple[bytes, str]]:
        return list(self._contains.get(outer, ()))

    def check(self, object_ids: Iterable[bytes]) -> Released:
        """Re-examines objects whose holders may all be gone (e.g. results no one kept)."""
        out = Released()
        with self._lock:
            for oid in object_ids:
                self._check(oid, out)
        return out

    # ------------------------------------------------------------------ queries

    def is_live(self, object_id: bytes) -> bool:
        return self._held(object_id)

    def table(self) -> list[list[Any]]:
        """[object id, owner address, reasons held here, borrower registrations] for every
        object this process knows, for `zray memory`."""
        rows: list[list[Any]] = []
        with self._lock:
            known = (
                set(self._local)
                | set(self._pins)
                | set(self._contained_in)
                | set(self._borrowers)
                | self._owned
                | set(self._borrowed)
            )
            for oid in known:
                reasons = [
                    name
                    for name, held in (
                        ("LOCAL_REFERENCE", oid in self._local),
                        ("USED_BY_PENDING_TASK", oid in self._pins),
                        ("CAPTURED_IN_OBJECT", oid in self._contained_in),
                        ("BORROWED", oid in self._borrowers),
                        ("ESCAPED", oid in self._escaped),
                    )
                    if held
                ]
                owner = self.address if oid in self._owned else self._borrowed.get(oid, [""])[0]
                borrowers = sum(max(0, n) for n in self._borrowers.get(oid, {}).values())
                rows.append([oid, owner, reasons, borrowers])
        return rows

    def stats(self) -> dict[str, int]:
        return {
            "local": len(self._local),
            "owned": len(self._owned),
            "escaped": len(self._escaped),
            "task_pinned": len(self._pins),
            "borrowed": len(self._borrowed),
            "with_borrowers": len(self._borrowers),
            "containers": len(self._contains),
            "lineage_pinned": len(self._lineage),
        }

    # ------------------------------------------------------------------ internals (lock held)

    def _contain(self, outer: bytes, refs: Iterable[RefPair]) -> None:
        inner = self._contains.setdefault(outer, [])
        for oid, owner in refs:
            if oid in self._contained_in and outer in self._contained_in[oid]:
                continue
            inner.append((oid, owner))
            self._contained_in.setdefault(oid, set()).add(outer)
            if owner != self.address and oid not in self._owned and oid not in self._borrowed:
                self._borrowed[oid] = [owner, 0]

    def _register(self, oid: bytes, owner: str) -> bool:
        if owner == self.address or oid in self._owned:
            return False
        entry = self._borrowed.get(oid)
        if entry is None:
            entry = self._borrowed[oid] = [owner, 0]
        entry[1] += 1
        return True

    def _held(self, oid: bytes) -> bool:
        return (
            oid in self._local
            or oid in self._pins
            or oid in self._contained_in
            or oid in self._borrowers
            or oid in self._escaped
        )

    def _check(self, oid: bytes, out: Released) -> None:
        pending = [oid]
        while pending:
            oid = pending.pop()
            if self._held(oid):
                continue
            if oid in self._owned:
                self._owned.discard(oid)
                out.freed.append(oid)
            else:
                entry = self._borrowed.pop(oid, None)
                if entry is not None:
                    if entry[1]:
                        out.removes.append((entry[0], oid, entry[1]))
                    out.forgotten.append(oid)
            for inner, _ in self._contains.pop(oid, ()):
                outers = self._contained_in.get(inner)
                if outers is not None:
                    outers.discard(oid)
                    if not outers:
                        del self._contained_in[inner]
                        pending.append(inner)
