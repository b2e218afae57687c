"""Which node should run a lease request: the node's view of cluster load, as a pure policy.

A node runs work locally while it has the resources; otherwise it answers with another node that
can (spillback), chosen from the load reports the head relays. A request that was already
spilled once stays where it lands, so a stale view cannot bounce it around forever.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from zray._private.common import resources as R


@dataclass
class NodeLoad:
    node_id: bytes
    address: str
    total: R.Units
    available: R.Units
    alive: bool = True
    ip: str = ""


class ClusterView:
    def __init__(self, local_node_id: bytes, seed: int | None = None) -> None:
        self.local = local_node_id
        self.nodes: dict[bytes, NodeLoad] = {}
        self.random = random.Random(seed)
        self._spread_next = 0

    def update(self, records: list[dict[str, Any]]) -> None:
        """records: dicts with node_id, address, resources, available, alive (float amounts)."""
        nodes = {}
        for record in records:
            nodes[record["node_id"]] = NodeLoad(
                record["node_id"],
                record["address"],
                R.from_wire(record["resources"]),
                R.from_wire(record["available"]),
                record["alive"],
                record.get("ip", ""),
            )
        self.nodes = nodes

    def address_of(self, node_id: bytes) -> str | None:
        node = self.nodes.get(node_id)
        return node.address if node and node.alive else None

    def alive(self, node_id: bytes) -> bool:
        node = self.nodes.get(node_id)
        return node is not None and node.alive

    def reserve(self, node_id: bytes, need: R.Units) -> None:
        """Counts a request we sent there until the next load report says otherwise."""
        node = self.nodes.get(node_id)
        if node is not None:
            R.subtract(node.available, need)

    def pick(
        self,
        need: R.Units,
        strategy: str,
        spilled: bool,
        local_available: R.Units,
        local_total: R.Units,
        preferred: bytes = b"",
    ) -> bytes | None:
        """Returns the node id that should run the request, or None to keep it here."""
        if strategy.startswith("NODE_AFFINITY:"):
            _, node_hex, soft = strategy.split(":")
            target = bytes.fromhex(node_hex)
            if target == self.local:
                return None
            node = self.nodes.get(target)
            if node is not None and node.alive and R.fits(need, node.total):
                return target
            if soft == "0":
                return None  # hard affinity to a node that cannot run it: it waits here
            strategy = "DEFAULT"
        if spilled:
            return None
        if strategy == "SPREAD":
            return self._spread(need, local_total)
        if preferred and preferred != self.local:
            # Moving large arguments costs more than waiting a little for their node.
            node = self.nodes.get(preferred)
            if node is not None and node.alive and R.fits(need, node.total):
                return preferred
        if R.fits(need, local_available):
            return None
        ready = [n for n in self._remote() if R.fits(need, n.available)]
        if ready:
            best = max(_headroom(need, n.available) for n in ready)
            return self.random.choice(
                [n for n in ready if _headroom(need, n.available) == best]
            ).node_id
        if R.fits(need, local_total):
            return None  # it will run here once something finishes
        able = [n for n in self._remote() if R.fits(need, n.total)]
        return self.random.choice(able).node_id if able else None

    def feasible_anywhere(self, need: R.Units) -> bool:
        return any(n.alive and R.fits(need, n.total) for n in self.nodes.values())

    def _remote(self) -> list[NodeLoad]:
        return [n for n in self.nodes.values() if n.alive and n.node_id != self.local]

    def _spread(self, need: R.Units, local_total: R.Units) -> bytes | None:
        candidates = sorted(
            n.node_id for n in self.nodes.values() if n.alive and R.fits(need, n.total)
        )
        if self.local not in candidates and R.fits(need, local_total):
            candidates = sorted(candidates + [self.local])
        if not candidates:
            return None
        choice = candidates[self._spread_next % len(candidates)]
        self._spread_next += 1
        return None if choice == self.local else choice


def _headroom(need: R.Units, available: R.Units) -> int:
    cpu = available.get("CPU", 0) - need.get("CPU", 0)
    return cpu
