"""Object ids their owners freed lately, so the head can free copies it hears of too late.

A node registers a copy it pulled once the copy is sealed, batched with its other seals; the
owner's free travels another way (owner, its node, the head), and may reach the head first, or
reach a restarted head before the node holding the copy came back. Such a copy would never be
freed. Only pulled copies are judged by this (AddCopyLocations): one is never an object's last
copy, so freeing one that a recomputation legitimately made again costs a pull, never data.
"""

from __future__ import annotations

from collections import OrderedDict

KEEP_S = 60.0
MAX_IDS = 100_000


class RecentlyFreed:
    def __init__(self, keep_s: float = KEEP_S, max_ids: int = MAX_IDS):
        self.keep_s = keep_s
        self.max_ids = max_ids
        self._ids: OrderedDict[bytes, float] = OrderedDict()  # id -> when freed, oldest first

    def add(self, object_ids, now: float) -> None:
        for oid in object_ids:
            if isinstance(oid, bytes):
                self._ids[oid] = now
                self._ids.move_to_end(oid)
        self._trim(now)

    def __contains__(self, object_id: bytes) -> bool:
        return object_id in self._ids

    def expire(self, now: float) -> None:
        self._trim(now)

    def _trim(self, now: float) -> None:
        ids = self._ids
        while ids and (len(ids) > self.max_ids or next(iter(ids.values())) < now - self.keep_s):
            ids.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ids)
