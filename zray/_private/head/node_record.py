"""The head's record of one node: what it registered, what its heartbeats say, whether it lives."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class NodeRecord:
    node_id: bytes
    address: str
    ip: str
    hostname: str
    resources: dict
    object_store_memory: int
    is_head: bool
    identity: bytes
    alive: bool = True
    available: dict = field(default_factory=dict)
    store_used: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    death_reason: str = ""
    suspect_since: float = 0.0  # its connection broke at this time (0: it did not)
    started_at: float = field(default_factory=time.time)  # wall clock, for the state API
    ended_at: float = 0.0
    metrics_export_port: int = -1  # where it serves Prometheus metrics (-1: nowhere)

    def to_wire(self) -> dict:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "ip": self.ip,
            "hostname": self.hostname,
            "resources": self.resources,
            "available": self.available or self.resources,
            "object_store_memory": self.object_store_memory,
            "is_head": self.is_head,
            "alive": self.alive,
            "store_used": self.store_used,
            "death_reason": self.death_reason,
            "metrics_export_port": self.metrics_export_port,
        }
