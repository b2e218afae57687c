"""A restarted head resumes the cluster its predecessor left in the head store.

`restore()` reads the tables back (head/tables.py wrote every change through before anyone was
told of it): jobs, the KV store with the function registry, actors with their specs, states and
constructor arguments, actor names, placement groups and node membership. What the store does
not hold, the nodes tell when they come back (`ResumeNode`): which workers are alive where, which
actor leases they granted, which objects they hold. Drivers come back with `ResumeJob`.

The previous head node died with the head (the head service runs in its daemon): it is declared
dead at once, with whatever ran there. Every other node the tables list as alive is awaited for
up to head_reconnect_timeout_s; once all are back (or the window ends):
- nodes that did not come back are declared dead (their actors restart elsewhere);
- actors that were ALIVE stay ALIVE where a node reported their worker's lease, the others
  (their worker died meanwhile, or was on the old head node) are treated as a worker death:
  restarted if they have restarts left, else DEAD;
- jobs whose driver no node reported are over, and actors whose owner no node reported lose
  their owner (as for a ClientDied).
Actors PENDING or RESTARTING at the crash are placed again at once: a lease the old head was
granted for one is returned with its worker (ResumeNode lists them), since the old head may have
sent it StartActor whose answer died with it.

The same handlers serve a node or driver whose connection to a head that never died broke and
came back: a second registration of something the head knows changes nothing.
"""

from __future__ import annotations

import logging
import struct
import time

from zray._config import config
from zray._private.common import resources as R
from zray._private.head import actor_manager as A
from zray._private.head import placement_groups as G
from zray._private.head.node_probe import NodeProbes
from zray._private.head.node_record import NodeRecord
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)


class HeadRecovery:
    def _init_recovery(self) -> None:
        self.recovering_until = 0.0  # monotonic end of the window; 0: not recovering
        self._awaited_nodes: set[bytes] = set()
        self._unconfirmed_actors: set[bytes] = set()  # ALIVE at the crash, not yet reported
        self._reported_clients: set[bytes] = set()  # worker ids some node says are alive
        self.restore_started = 0.0
        self.recovered_at = 0.0
        self.recovery_stats: dict = {}
        self._probes: NodeProbes | None = None  # of awaited nodes, while recovering
        # Objects their owners freed while nodes are still awaited: their copies there go
        # when those nodes come back.
        self._freed_ids: set[bytes] = set()

    # ------------------------------------------------------------------ loading

    def restore(self, state: dict) -> None:
        now = time.monotonic()
        self.restore_started = now
        self.recovering_until = now + config.head_reconnect_timeout_s
        for key, value in state.get("kv", {}).items():
            namespace, _, name = key.partition(b"\0")
            self.kv[(namespace.decode(), name)] = value
        for job_id, job in state.get("jobs", {}).items():
            self.jobs[job_id] = job
        if self.jobs:
            self._next_job = max(struct.unpack("<I", j)[0] for j in self.jobs) + 1
        old_heads = []
        for node_id, r in state.get("nodes", {}).items():
            node = self.nodes[node_id] = self._node_record(node_id, r)
            node.alive = r["alive"]
            node.death_reason = r.get("death_reason", "")
            if node.alive and node.is_head:
                old_heads.append(node_id)
            elif node.alive:
                self._awaited_nodes.add(node_id)
        args = state.get("actor_args", {})
        for actor_id, r in state.get("actors", {}).items():
            self._restore_actor(actor_id, r, args.get(actor_id))
        for key, actor_id in state.get("named_actors", {}).items():
            namespace, _, name = key.partition(b"\0")
            self.actors.names[(namespace.decode(), name.decode())] = actor_id
        for pg_id, r in state.get("placement_groups", {}).items():
            self._restore_group(pg_id, r, now)
        self.recovery_stats = {
            "jobs": len(self.jobs),
            "kv": len(self.kv),
            "actors": len(self.actors.actors),
            "placement_groups": len(self.placement.groups),
            "nodes_awaited": len(self._awaited_nodes),
        }
        logger.warning(
            "resuming the cluster a previous head left in %s: %s; waiting up to %gs for its "
            "nodes and drivers",
            self.tables.store.description,
            self.recovery_stats,
            config.head_reconnect_timeout_s,
        )
        for node_id in old_heads:
            self.mark_dead(node_id, "it ran the previous head, which died")
        self._maybe_finish_recovery(now)

    def _node_record(self, node_id: bytes, r: dict):
        return NodeRecord(
            node_id,
            r["address"],
            r["ip"],
            r["hostname"],
            r["resources"],
            r["object_store_memory"],
            r["is_head"],
            b"",
            available=r.get("available") or {},
            metrics_export_port=r.get("metrics_export_port", -1),
        )

    def _restore_actor(self, actor_id: bytes, r: dict, frames) -> None:
        actor = A.Actor(
            actor_id,
            r["spec"],
            r["state"],
            r["address"],
            r["worker_id"],
            r["lease_id"],
            num_restarts=r["num_restarts"],
            death_cause=r["death_cause"],
            error=r["error"],
            error_text=r.get("error_text", ""),
            no_restart=r["no_restart"],
        )
        self.actors.actors[actor_id] = actor
        if frames is not None:
            self.actor_payloads[actor_id] = list(frames)
        if actor.worker_id:
            self.actor_workers[actor_id] = actor.worker_id
        if actor.state == A.DEAD:
            return
        if actor.state == A.ALIVE and actor.lease_id:
            self.actors.by_lease[actor.lease_id] = actor_id
            self._unconfirmed_actors.add(actor_id)
            return
        # PENDING or RESTARTING: whatever lease it had is returned when its node reports it.
        actor.address, actor.worker_id, actor.lease_id = "", b"", 0
        self._pending_actor_placements.append((actor_id, actor.spec.get("resources", {})))

    def _restore_group(self, pg_id: bytes, r: dict, now: float) -> None:
        group = G.Group(
            pg_id,
            r["name"],
            r["namespace"],
            r["strategy"],
            [R.to_units(b) for b in r["bundles"]],
            r["detached"],
            r["job_id"],
            r["soft_target"],
            now,
            r["creator_actor"],
            job_dead=r["job_dead"],
            nodes=list(r["nodes"]),
            state=r["state"],
        )
        self._placement_instructions(self.placement.restore(group, now))

    # ------------------------------------------------------------------ coming back

    def on_ResumeNode(self, identity, msg: P.ResumeNode, seq):
        node = self.nodes.get(msg.node_id)
        if node is not None and not node.alive:
            # Declared dead while away: its actors were restarted elsewhere, so its instances
            # must not come back beside them. It stops (as Ray's raylet does when told so).
            self.endpoint.reply(
                identity,
                P.Error("NodeDiedError", f"node {msg.node_id.hex()[:12]} was declared dead"),
                seq,
            )
            return
        if node is None:
            node = self._node_record(msg.node_id, msg._asdict())
            self.nodes[msg.node_id] = node
        node.identity, node.address = identity, msg.address
        node.resources = msg.resources
        node.last_seen = time.monotonic()
        node.suspect_since = 0.0
        self.tables.node(node.to_wire())
        self.endpoint.outbox(msg.address).watch_disconnects()
        for worker_id, address, _kind in msg.clients:
            if self.recovering_until:
                self._reported_clients.add(worker_id)
            if address:
                self.clients_of.setdefault(msg.node_id, set()).add(address)
                self.node_of_client[address] = msg.node_id
        objects = msg.objects
        if objects and self._freed_ids:
            freed = [oid for oid, _ in objects if oid in self._freed_ids]
            if freed:
                self.endpoint.send(msg.address, P.FreeObjects(freed, False))
                objects = [(oid, size) for oid, size in objects if oid not in self._freed_ids]
        if objects:
            ids = [oid for oid, _ in objects]
            self._notify(self.directory.add_locations(msg.node_id, ids, [s for _, s in objects]))
        for lease_id, worker_id in msg.actor_leases:
            actor = self.actors.actors.get(self.actors.by_lease.get(lease_id, b""))
            if actor is not None and actor.worker_id == worker_id and actor.state != A.DEAD:
                self.actor_nodes[actor.actor_id] = msg.address
                self._unconfirmed_actors.discard(actor.actor_id)
            else:  # the old head's, for an actor placed again since (or dead)
                self.endpoint.send(msg.address, P.ReturnLease(lease_id, True))
        self._awaited_nodes.discard(msg.node_id)
        logger.info(
            "node %s is back: %d clients, %d actor leases, %d objects",
            msg.node_id.hex()[:12],
            len(msg.clients),
            len(msg.actor_leases),
            len(msg.objects),
        )
        self.endpoint.reply(identity, P.Ok(0), seq)
        self.broadcast_load(time.monotonic())
        self._placement_node_update(node)
        self._retry_actor_placements()
        self._maybe_finish_recovery(time.monotonic())

    def on_ResumeBundles(self, identity, msg: P.ResumeBundles, seq):
        """Sent just before the node's ResumeNode: commits what the head placed there, returns
        what a crashed head prepared and never committed (it would stay reserved for good)."""
        node = self.nodes.get(msg.node_id)
        address = self.endpoint.peers.get(identity) or (node.address if node else "")
        if (node is not None and not node.alive) or not address:
            return  # declared dead: its ResumeNode is refused, and it stops
        try:
            held = [(bytes(pg_id), int(index), bool(done)) for pg_id, index, done in msg.bundles]
        except (TypeError, ValueError):
            logger.warning("bad ResumeBundles from %s: %r", address, msg.bundles[:8])
            return
        settled = self.placement.reconcile(msg.node_id, held)
        for ins in settled:
            indices = [index for index, _ in ins.bundles]
            if type(ins) is G.Commit:
                self.endpoint.send(address, P.CommitBundles(ins.pg_id, indices))
            else:
                self.endpoint.send(address, P.ReturnBundles(ins.pg_id, indices))
        if settled:
            self._load_changed = True
            logger.info(
                "node %s: %d placement group bundle(s) committed, %d returned after the restart",
                msg.node_id.hex()[:12],
                sum(len(i.bundles) for i in settled if type(i) is G.Commit),
                sum(len(i.bundles) for i in settled if type(i) is G.Return),
            )

    def deferring_loss(self) -> bool:
        """Whether nodes this restarted head awaits may still report copies: an object whose
        known copies died is not lost yet (object_directory.py, settle_deferred)."""
        return bool(self.recovering_until and self._awaited_nodes)

    def _primary_node(self, object_id: bytes, sealed_on: bytes) -> tuple[bytes, bool]:
        """(the node to watch for the object's first copy, whether it is dead already) for a
        location request naming `sealed_on` as the primary's node."""
        holder = self.nodes.get(sealed_on) if sealed_on else None
        dead = bool(sealed_on) and (holder is None or not holder.alive)
        if dead and self.deferring_loss():
            # A node still awaited may report a copy (one it pulled): wait for it.
            self.directory.maybe_lost.add(object_id)
            return b"", False
        return sealed_on, dead

    def _freed_while_resuming(self, object_ids) -> None:
        """An owner's free (or one a node sent again after it lost the old head) reached us
        before every node that may hold a copy came back: their ResumeNode must not bring
        the copies back into the directory, where nobody would ever free them."""
        if self.recovering_until and self._awaited_nodes:
            self._freed_ids.update(oid for oid in object_ids if isinstance(oid, bytes))

    def on_ResumeJob(self, identity, msg: P.ResumeJob, seq):
        job = self.jobs.get(msg.job_id)
        if job is not None and not job["alive"]:
            self.endpoint.reply(
                identity,
                P.Error("RaySystemError", f"job {msg.job_id.hex()} was declared finished"),
                seq,
            )
            return
        if job is None:  # a head whose state did not have it
            job = self.jobs[msg.job_id] = {"start": time.time(), "alive": True}
            self._next_job = max(self._next_job, struct.unpack("<I", msg.job_id)[0] + 1)
        job.update(
            driver_id=msg.driver_id,
            pid=msg.pid,
            namespace=msg.namespace,
            metadata=msg.metadata,
            default_actor_lifetime=msg.default_actor_lifetime,
            address=self.endpoint.peers.get(identity, ""),
        )
        if self.recovering_until:
            self._reported_clients.add(msg.driver_id)
        self.tables.job(msg.job_id, job)
        self.endpoint.reply(
            identity,
            P.JobRegistered(msg.job_id, msg.namespace, msg.default_actor_lifetime),
            seq,
        )

    # ------------------------------------------------------------------ the window

    def _recovery_tick(self, now: float) -> None:
        if not self.recovering_until:
            return
        if self._awaited_nodes:
            # Dead nodes are found within a probe or two, not when the window ends.
            if self._probes is None:
                self._probes = NodeProbes(self.node_death_timeout_s)
            awaited = {n: self.nodes[n].address for n in self._awaited_nodes if n in self.nodes}
            for node_id, reason in self._probes.tick(now, awaited):
                self._awaited_nodes.discard(node_id)
                self.mark_dead(node_id, reason)
        self._maybe_finish_recovery(now)

    def _maybe_finish_recovery(self, now: float) -> None:
        if not self.recovering_until:
            return
        if self._awaited_nodes and now < self.recovering_until:
            return
        self.recovering_until = 0.0
        self._freed_ids = set()
        if self._probes is not None:
            self.recovery_stats["probes"] = self._probes.sent
            self._probes.close()
            self._probes = None
        for node_id in sorted(self._awaited_nodes):
            self.mark_dead(node_id, "it did not come back after the head restarted")
        self._awaited_nodes.clear()
        self._notify(self.directory.settle_deferred())
        for actor_id in sorted(self._unconfirmed_actors):
            actor = self.actors.actors.get(actor_id)
            if actor is not None and actor.state != A.DEAD and actor.lease_id:
                self._actor_instructions(
                    self.actors.worker_died(
                        actor.lease_id, -1, "its worker was gone when the head restarted"
                    )
                )
        self._unconfirmed_actors.clear()
        live = self._reported_clients
        for job_id, job in self.jobs.items():
            if job["alive"] and job.get("driver_id") not in live:
                job["alive"] = False
                job["end"] = time.time()
                self.tables.job(job_id, job)
                self._actor_instructions(self.actors.owner_died(job.get("driver_id", b"")))
                self._placement_job_dead(job_id)
        owners = {
            a.spec.get("owner_id")
            for a in self.actors.actors.values()
            if a.state != A.DEAD and a.spec.get("lifetime") != "detached"
        }
        for owner in sorted(o for o in owners if o and o not in live):
            self._actor_instructions(self.actors.owner_died(owner))
        self._reported_clients = set()
        self.recovered_at = now
        self.recovery_stats["resumed_in_s"] = round(now - self.restore_started, 4)
        self.recovery_stats["nodes_dead"] = sum(1 for n in self.nodes.values() if not n.alive)
        logger.warning("the head finished resuming the cluster")

    def awaited(self, node_id: bytes) -> bool:
        """A node the restarted head waits for: not judged by heartbeats meanwhile."""
        return node_id in self._awaited_nodes
