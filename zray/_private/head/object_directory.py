"""The head's object directory as a state machine without I/O: which nodes hold a sealed copy of
each object, and subscriptions for objects not yet sealed anywhere.

A subscription is answered exactly once: immediately if a copy is known, otherwise the moment
the first copy is added (seed 002: the callback registered for an object that does not exist
yet), or with an empty location list when the last copy's node dies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Notify:
    subscriber: object  # opaque to the directory: the daemon's reply handle
    object_id: bytes
    node_ids: tuple[bytes, ...]
    size: int


class ObjectDirectory:
    def __init__(self) -> None:
        self.locations: dict[bytes, set[bytes]] = {}
        self.sizes: dict[bytes, int] = {}
        self.subscribers: dict[bytes, list[object]] = {}
        self.lost: set[bytes] = set()  # had copies, all on nodes that died
        # Subscriptions naming the node said to hold the object: if it dies before reporting
        # the copy, they are answered "lost" (node -> [(subscriber, object id)]).
        self.sealed_on: dict[bytes, list[tuple[object, bytes]]] = {}

    def add_locations(
        self, node_id: bytes, object_ids: Iterable[bytes], sizes: Iterable[int]
    ) -> list[Notify]:
        out: list[Notify] = []
        for object_id, size in zip(object_ids, sizes):
            self.lost.discard(object_id)
            self.locations.setdefault(object_id, set()).add(node_id)
            self.sizes[object_id] = size
            waiting = self.subscribers.pop(object_id, None)
            if waiting:
                nodes = tuple(sorted(self.locations[object_id]))
                out.extend(Notify(s, object_id, nodes, size) for s in waiting)
        return out

    def remove_locations(self, node_id: bytes, object_ids: Iterable[bytes]) -> list[Notify]:
        for object_id in object_ids:
            self.lost.discard(object_id)
            nodes = self.locations.get(object_id)
            if nodes is None:
                continue
            nodes.discard(node_id)
            if not nodes:
                del self.locations[object_id]
                self.sizes.pop(object_id, None)
        return []

    def subscribe(
        self,
        subscriber: object,
        object_id: bytes,
        sealed_on: bytes = b"",
        sealed_on_dead: bool = False,
    ) -> list[Notify]:
        nodes = self.locations.get(object_id)
        if nodes:
            return [Notify(subscriber, object_id, tuple(sorted(nodes)), self.sizes[object_id])]
        if object_id in self.lost or sealed_on_dead:
            return [Notify(subscriber, object_id, (), 0)]
        self.subscribers.setdefault(object_id, []).append(subscriber)
        if sealed_on:
            self.sealed_on.setdefault(sealed_on, []).append((subscriber, object_id))
        return []

    def unsubscribe(self, subscriber: object) -> list[Notify]:
        for object_id in list(self.subscribers):
            remaining = [s for s in self.subscribers[object_id] if s != subscriber]
            if remaining:
                self.subscribers[object_id] = remaining
            else:
                del self.subscribers[object_id]
        return []

    def node_dead(self, node_id: bytes) -> list[Notify]:
        """Forgets the node's copies; objects left with none are lost, and later
        subscriptions to them are answered at once with no location."""
        lost = [oid for oid, nodes in self.locations.items() if nodes == {node_id}]
        self.remove_locations(node_id, list(self.locations))
        self.lost.update(lost)
        out = [Notify(None, oid, (), 0) for oid in lost]
        for subscriber, object_id in self.sealed_on.pop(node_id, []):
            waiting = self.subscribers.get(object_id, [])
            if subscriber in waiting and not self.locations.get(object_id):
                waiting.remove(subscriber)
                if not waiting:
                    del self.subscribers[object_id]
                self.lost.add(object_id)
                out.append(Notify(subscriber, object_id, (), 0))
        return out

    def lookup(self, object_id: bytes) -> tuple[bytes, ...]:
        return tuple(sorted(self.locations.get(object_id, ())))

    def stats(self) -> dict[str, int]:
        return {
            "objects": len(self.locations),
            "subscriptions": sum(len(v) for v in self.subscribers.values()),
        }
