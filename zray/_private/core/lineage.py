"""Lineage: the specs of finished tasks whose outputs may need recomputing (Ray's object
reconstruction), kept by the owner while those outputs are referenced.

Only outputs in shared memory can be lost (a node dies, a spill file goes): values small enough
to live in the owner's own store die only with the owner. A task whose output is lost is run
again with the same id, so its outputs get the same ids and every ref to them stays valid; an
argument of it that is lost too is recomputed first. Attempts are bounded by the task's
`max_retries`; the kept specs by `max_lineage_bytes` (the oldest go first, and their outputs
then fail with Ray's "lineage evicted" reason).

As in Ray, the lineage of a kept task's arguments is kept too, recursively, while the task's
is (core/lineage_pins.py): an argument's value is freed when nothing else holds it, but its
spec stays, so an output lost later can be recomputed from its freed arguments' lineage. An
output's spec goes once every output is freed and no kept task uses any of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from zray import exceptions as X
from zray._fast import TASK_ID_SIZE
from zray._private.core.memory_store import KIND_PLASMA

EVICTED_KEPT = 100_000  # ids of evicted lineage remembered, to give the right error


class ArgumentRef:
    """What a kept spec holds of an argument it owns instead of the caller's ObjectRef, which
    would hold the argument's value for as long as the lineage is kept (lineage_pins.py)."""

    __slots__ = ("_id", "_owner")

    def __init__(self, object_id: bytes, owner: str):
        self._id = object_id
        self._owner = owner


class Lineage:
    def __init__(self, max_bytes: int, enabled: bool = True):
        self.max_bytes = max_bytes
        self.enabled = enabled
        self.specs: OrderedDict[bytes, object] = OrderedDict()  # task id -> TaskSpec
        self.live: dict[bytes, set] = {}  # task id -> its plasma outputs still referenced
        self.bytes = 0
        self._sizes: dict[bytes, int] = {}
        self._evicted: set = set()
        self._evicted_order: deque = deque()
        self._dropped: list = []  # specs evicted by keep(), for take_dropped()
        self._lock = threading.Lock()

    def keep(self, spec, entries) -> bool:
        """After a task finished well: keep its spec if an output is in shared memory."""
        if not self.enabled or spec.max_retries == 0:
            return False
        plasma = {oid for oid, entry in entries if entry.kind == KIND_PLASMA}
        if not plasma:
            return False
        size = sum(len(f) for f in spec.frames) + sum(len(f) for f in spec.resolved_frames)
        with self._lock:
            if spec.task_id not in self.specs:
                self.bytes += size
                self._sizes[spec.task_id] = size
            self.specs[spec.task_id] = spec
            self.live[spec.task_id] = plasma
            while self.bytes > self.max_bytes and len(self.specs) > 1:
                self._evict_oldest()
        return True

    def freed(self, object_ids) -> list:
        """Outputs nobody references (nor needs to recompute) any more: their lineage can go
        with them. Returns the specs dropped."""
        dropped: list = []
        if not self.specs:
            return dropped
        with self._lock:
            for oid in object_ids:
                task_id = oid[:TASK_ID_SIZE]
                live = self.live.get(task_id)
                if live is None:
                    continue
                live.discard(oid)
                if not live:
                    dropped.append(self.specs.get(task_id))
                    self._drop(task_id)
        return [spec for spec in dropped if spec is not None]

    def take_dropped(self) -> list:
        """The specs keep() evicted since last asked: the lineage they pinned can go too."""
        with self._lock:
            dropped, self._dropped = self._dropped, []
        return dropped

    def spec_for(self, object_id: bytes):
        """The spec that makes `object_id`, or raises Ray's reason it cannot be recomputed
        (None: not ours to recompute, e.g. a put: the caller raises ObjectLostError)."""
        task_id = object_id[:TASK_ID_SIZE]
        with self._lock:
            spec = self.specs.get(task_id)
            if spec is not None:
                return spec
            if task_id in self._evicted:
                raise X.ObjectReconstructionFailedError(
                    object_id.hex(), "OBJECT_UNRECONSTRUCTABLE_LINEAGE_EVICTED"
                )
        if not self.enabled:
            raise X.ObjectReconstructionFailedError(
                object_id.hex(), "OBJECT_UNRECONSTRUCTABLE_LINEAGE_DISABLED"
            )
        return None

    def _evict_oldest(self):
        task_id, spec = self.specs.popitem(last=False)
        self._dropped.append(spec)
        self.live.pop(task_id, None)
        self.bytes -= self._sizes.pop(task_id, 0)
        self._evicted.add(task_id)
        self._evicted_order.append(task_id)
        if len(self._evicted_order) > EVICTED_KEPT:
            self._evicted.discard(self._evicted_order.popleft())

    def _drop(self, task_id: bytes):
        self.specs.pop(task_id, None)
        self.live.pop(task_id, None)
        self.bytes -= self._sizes.pop(task_id, 0)

    def stats(self) -> dict:
        return {"tasks": len(self.specs), "bytes": self.bytes, "evicted": len(self._evicted)}
