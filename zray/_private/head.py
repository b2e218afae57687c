"""The head service: node table with liveness, job table, a small KV store (which also holds the
function registry) and the object directory. It never touches object bytes.

It runs inside the head node's daemon process, on its own socket, driven by the daemon's loop.
"""
from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass, field

from zray._private import protocol as P
from zray._private.object_directory import ObjectDirectory
from zray._private.transport import Endpoint

logger = logging.getLogger(__name__)


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

    def to_wire(self) -> dict:
        return {
            "node_id": self.node_id, "address": self.address, "ip": self.ip,
            "hostname": self.hostname, "resources": self.resources,
            "available": self.available or self.resources,
            "object_store_memory": self.object_store_memory, "is_head": self.is_head,
            "alive": self.alive, "store_used": self.store_used,
            "death_reason": self.death_reason,
        }


class HeadService:
    def __init__(self, endpoint: Endpoint, node_death_timeout_s: float):
        self.endpoint = endpoint
        self.node_death_timeout_s = node_death_timeout_s
        self.nodes: dict[bytes, NodeRecord] = {}
        self.jobs: dict[bytes, dict] = {}
        self.kv: dict[tuple, bytes] = {}
        self.kv_waiters: dict[tuple, list] = {}  # key -> [(identity, seq, deadline)]
        self.directory = ObjectDirectory()
        self._next_job = 1

    # ------------------------------------------------------------------ dispatch

    def handle(self, identity: bytes, msg, seq: int, payload):
        handler = getattr(self, "on_" + type(msg).__name__, None)
        if handler is None:
            logger.warning("head: unexpected %s", type(msg).__name__)
            return
        handler(identity, msg, seq)

    def on_RegisterNode(self, identity, msg: P.RegisterNode, seq):
        self.nodes[msg.node_id] = NodeRecord(
            msg.node_id, msg.address, msg.ip, msg.hostname, msg.resources,
            msg.object_store_memory, msg.is_head, identity)
        logger.info("node %s joined at %s", msg.node_id.hex()[:12], msg.address)
        self.endpoint.reply(identity, P.Ok(0), seq)

    def on_NodeHeartbeat(self, identity, msg: P.NodeHeartbeat, seq):
        node = self.nodes.get(msg.node_id)
        if node is None or not node.alive:
            return
        node.last_seen = time.monotonic()
        node.available = msg.available
        node.resources = msg.total
        node.store_used = msg.store_used

    def on_RegisterJob(self, identity, msg: P.RegisterJob, seq):
        job_id = struct.pack("<I", self._next_job)
        self._next_job += 1
        self.jobs[job_id] = {"driver_id": msg.driver_id, "pid": msg.pid,
                             "namespace": msg.namespace, "start": time.time(), "alive": True}
        self.endpoint.reply(identity, P.JobRegistered(job_id, msg.namespace), seq)

    def on_UnregisterJob(self, identity, msg: P.UnregisterJob, seq):
        job = self.jobs.get(msg.job_id)
        if job:
            job["alive"] = False

    def on_KvPut(self, identity, msg: P.KvPut, seq):
        key = (msg.namespace, msg.key)
        if msg.overwrite or key not in self.kv:
            self.kv[key] = msg.value
        for waiter_identity, waiter_seq, _ in self.kv_waiters.pop(key, []):
            self.endpoint.reply(waiter_identity, P.KvValue(True, self.kv[key]), waiter_seq)
        if seq:
            self.endpoint.reply(identity, P.Ok(0), seq)

    def on_KvGet(self, identity, msg: P.KvGet, seq):
        key = (msg.namespace, msg.key)
        value = self.kv.get(key)
        if value is not None or msg.wait_s <= 0:
            self.endpoint.reply(identity, P.KvValue(value is not None, value or b""), seq)
            return
        deadline = time.monotonic() + min(msg.wait_s, 300.0)
        self.kv_waiters.setdefault(key, []).append((identity, seq, deadline))

    def on_GetNodes(self, identity, msg: P.GetNodes, seq):
        nodes = [n.to_wire() for n in self.nodes.values() if n.alive or msg.include_dead]
        self.endpoint.reply(identity, P.NodeList(nodes), seq)

    def on_AddObjectLocations(self, identity, msg: P.AddObjectLocations, seq):
        self._notify(self.directory.add_locations(msg.node_id, msg.object_ids, msg.sizes))

    def on_RemoveObjectLocations(self, identity, msg: P.RemoveObjectLocations, seq):
        self.directory.remove_locations(msg.node_id, msg.object_ids)

    def on_SubscribeObjectLocation(self, identity, msg: P.SubscribeObjectLocation, seq):
        self._notify(self.directory.subscribe((identity, seq), msg.object_id))

    def _notify(self, notifications):
        for note in notifications:
            if note.subscriber is None:
                continue
            identity, seq = note.subscriber
            self.endpoint.reply(
                identity, P.ObjectLocation(note.object_id, list(note.node_ids), note.size), seq)

    # ------------------------------------------------------------------ timers

    def tick(self, now: float):
        for key, waiters in list(self.kv_waiters.items()):
            keep = []
            for identity, seq, deadline in waiters:
                if deadline <= now:
                    self.endpoint.reply(identity, P.KvValue(False, b""), seq)
                else:
                    keep.append((identity, seq, deadline))
            if keep:
                self.kv_waiters[key] = keep
            else:
                del self.kv_waiters[key]
        for node in self.nodes.values():
            if node.alive and now - node.last_seen > self.node_death_timeout_s:
                self.mark_dead(node.node_id, "missed heartbeats")

    def mark_dead(self, node_id: bytes, reason: str):
        node = self.nodes.get(node_id)
        if node is None or not node.alive:
            return
        node.alive = False
        node.death_reason = reason
        logger.warning("node %s is dead: %s", node_id.hex()[:12], reason)
        self._notify(self.directory.node_dead(node_id))

    def stats(self) -> dict:
        return {"nodes": len(self.nodes), "jobs": len(self.jobs), "kv": len(self.kv),
                "directory": self.directory.stats(), "dropped": self.endpoint.dropped}
