"""The head's object directory as a state machine without I/O: which nodes hold a sealed copy of
each object, and subscriptions for objects not yet sealed anywhere.

A subscription is answered exactly once: immediately if a copy is known, otherwise the moment
the first copy is added (seed 002: the callback registered for an object that does not exist
yet), or with an empty location list when the last copy's node dies.

A node about to stream an object from another host asks which node to pull from (`locate`):
the directory names the holder with the fewest pullers, counting nodes still *receiving* a copy
as holders too (they forward what has arrived), so N nodes pulling one object fan out along
each other instead of all reading the owner's copy. The puller counts as receiving from then
until it reports the copy sealed, asks again, or gives up (`pull_ended`).
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
        # Left with no known copy while a restarted head still awaits nodes that may report
        # one: lost only if none did (settle_deferred).
        self.maybe_lost: set[bytes] = set()
        # Subscriptions naming the node said to hold the object: if it dies before reporting
        # the copy, they are answered "lost" (node -> [(subscriber, object id)]).
        self.sealed_on: dict[bytes, list[tuple[object, bytes]]] = {}
        # object -> {node receiving a copy: the node it receives from}
        self.receiving: dict[bytes, dict[bytes, bytes]] = {}
        # Locate requests waiting for a first copy: object -> [(subscriber, node, exclude)]
        self.locators: dict[bytes, list[tuple[object, bytes, frozenset[bytes], bytes]]] = {}

    def add_locations(
        self, node_id: bytes, object_ids: Iterable[bytes], sizes: Iterable[int]
    ) -> list[Notify]:
        out: list[Notify] = []
        for object_id, size in zip(object_ids, sizes):
            self.lost.discard(object_id)
            self.maybe_lost.discard(object_id)
            self.locations.setdefault(object_id, set()).add(node_id)
            self.sizes[object_id] = size
            self._received(object_id, node_id)
            waiting = self.subscribers.pop(object_id, None)
            if waiting:
                nodes = tuple(sorted(self.locations[object_id]))
                out.extend(Notify(s, object_id, nodes, size) for s in waiting)
            for subscriber, node, exclude, primary in self.locators.pop(object_id, ()):
                out.append(self._choose(subscriber, object_id, node, exclude, primary))
        return out

    # ------------------------------------------------------------------ choosing sources

    def locate(
        self,
        subscriber: object,
        object_id: bytes,
        node_id: bytes,
        exclude: Iterable[bytes] = (),
        sealed_on: bytes = b"",
        sealed_on_dead: bool = False,
    ) -> list[Notify]:
        """Names one node for `node_id` to pull from (node_ids of one), waiting for the first
        copy like a subscription; no node at all when every copy is lost."""
        self._received(object_id, node_id)  # asking again: whatever it pulled before failed
        exclude = frozenset(exclude) | {node_id}
        if self.locations.get(object_id) or self._forwarders(object_id, node_id, exclude):
            return [self._choose(subscriber, object_id, node_id, exclude, sealed_on)]
        if object_id in self.lost or sealed_on_dead:
            return [Notify(subscriber, object_id, (), 0)]
        self.locators.setdefault(object_id, []).append((subscriber, node_id, exclude, sealed_on))
        if sealed_on:
            self.sealed_on.setdefault(sealed_on, []).append((subscriber, object_id))
        return []

    def pull_ended(self, object_id: bytes, node_id: bytes) -> list[Notify]:
        self._received(object_id, node_id)
        return []

    def _choose(
        self,
        subscriber: object,
        object_id: bytes,
        node_id: bytes,
        exclude: frozenset[bytes],
        primary: bytes,
    ) -> Notify:
        sealed = self.locations.get(object_id, set()) - exclude
        candidates = sealed | self._forwarders(object_id, node_id, exclude)
        if not candidates:
            return Notify(subscriber, object_id, (), 0)
        readers: dict[bytes, int] = {}
        for source in self.receiving.get(object_id, {}).values():
            readers[source] = readers.get(source, 0) + 1
        # Fewest readers first; a complete copy before one still arriving; a copy made by a
        # pull before the primary (whose node is busy with its owner's work); then by id, so
        # the choice is reproducible.
        source = min(
            candidates, key=lambda n: (readers.get(n, 0), n not in sealed, n == primary, n)
        )
        self.receiving.setdefault(object_id, {})[node_id] = source
        return Notify(subscriber, object_id, (source,), self.sizes.get(object_id, 0))

    def _forwarders(
        self, object_id: bytes, node_id: bytes, exclude: frozenset[bytes]
    ) -> set[bytes]:
        """Nodes receiving the object that `node_id` may pull from: not itself downstream of
        `node_id` (a cycle would wait for ever)."""
        receiving = self.receiving.get(object_id)
        if not receiving:
            return set()
        out = set()
        for candidate in receiving:
            if candidate in exclude:
                continue
            hop, seen = candidate, set()
            while hop in receiving and hop not in seen and hop != node_id:
                seen.add(hop)
                hop = receiving[hop]
            if hop != node_id:
                out.add(candidate)
        return out

    def _received(self, object_id: bytes, node_id: bytes) -> None:
        receiving = self.receiving.get(object_id)
        if receiving is not None and receiving.pop(node_id, None) is not None and not receiving:
            del self.receiving[object_id]

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
                self.receiving.pop(object_id, None)
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
        for object_id in list(self.locators):
            left = [entry for entry in self.locators[object_id] if entry[0] != subscriber]
            if left:
                self.locators[object_id] = left
            else:
                del self.locators[object_id]
        for object_id in list(self.subscribers):
            remaining = [s for s in self.subscribers[object_id] if s != subscriber]
            if remaining:
                self.subscribers[object_id] = remaining
            else:
                del self.subscribers[object_id]
        return []

    def node_dead(self, node_id: bytes, defer_loss: bool = False) -> list[Notify]:
        """Forgets the node's copies; objects left with none are lost, and later
        subscriptions to them are answered at once with no location. With `defer_loss` (a
        restarted head still awaits nodes, which may report copies) they only may be: their
        askers wait until a copy is reported or settle_deferred() says they are lost."""
        lost = [oid for oid, nodes in self.locations.items() if nodes == {node_id}]
        self.remove_locations(node_id, list(self.locations))
        for object_id in list(self.receiving):
            self._received(object_id, node_id)
        if defer_loss:
            self.maybe_lost.update(lost)
            for _subscriber, object_id in self.sealed_on.pop(node_id, []):
                if not self.locations.get(object_id):
                    self.maybe_lost.add(object_id)
            return []
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
            locating = self.locators.get(object_id, [])
            mine = [entry for entry in locating if entry[0] == subscriber]
            if mine and not self.locations.get(object_id):
                self.locators[object_id] = [e for e in locating if e[0] != subscriber]
                if not self.locators[object_id]:
                    del self.locators[object_id]
                self.lost.add(object_id)
                out.append(Notify(subscriber, object_id, (), 0))
        return out

    def settle_deferred(self) -> list[Notify]:
        """Every node a restarted head awaited is back or dead: objects that may have been
        lost and that no node reported a copy of are lost."""
        out: list[Notify] = []
        for object_id in sorted(self.maybe_lost):
            if self.locations.get(object_id):
                continue
            self.lost.add(object_id)
            out.append(Notify(None, object_id, (), 0))
            out.extend(Notify(s, object_id, (), 0) for s in self.subscribers.pop(object_id, ()))
            for subscriber, _node, _exclude, _primary in self.locators.pop(object_id, ()):
                out.append(Notify(subscriber, object_id, (), 0))
        self.maybe_lost.clear()
        return out

    def lookup(self, object_id: bytes) -> tuple[bytes, ...]:
        return tuple(sorted(self.locations.get(object_id, ())))

    def stats(self) -> dict[str, int]:
        return {
            "objects": len(self.locations),
            "subscriptions": sum(len(v) for v in self.subscribers.values()),
            "locating": sum(len(v) for v in self.locators.values()),
            "receiving": sum(len(v) for v in self.receiving.values()),
        }
