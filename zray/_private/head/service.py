"""The head service: node table with liveness, job table, a small KV store (which also holds the
function registry) and the object directory. It never touches object bytes.

It runs inside the head node's daemon process, on its own socket, driven by the daemon's loop.
"""

from __future__ import annotations

import itertools
import logging
import struct
import time

import msgpack


from zray._config import config
from zray._private.head import actor_manager as A
from zray._private.wire import protocol as P
from zray._private.head.placement_service import PlacementGroupHandlers
from zray._private.head.node_record import NodeRecord
from zray._private.head.recently_freed import RecentlyFreed
from zray._private.head.recovery import HeadRecovery
from zray._private.head.tables import HeadTables
from zray._private.head.object_directory import ObjectDirectory
from zray._private.head.state_queries import StateQueries
from zray._private.head.task_events import TaskEventTable
from zray._private.wire.transport import REPLY, Endpoint, Requests

logger = logging.getLogger(__name__)

LOAD_BROADCAST_S = 0.5
SILENCE_AFTER_DISCONNECT_S = 1.5  # nodes send a heartbeat every second
# Sooner after placement groups change a node's resources, so nodes spill tasks to a new
# bundle at once; but one broadcast for a burst of groups, not one per group.
LOAD_CHANGE_S = 0.02


class HeadService(PlacementGroupHandlers, StateQueries, HeadRecovery):
    def __init__(
        self,
        endpoint: Endpoint,
        node_death_timeout_s: float,
        session_dir: str = "",
        tables: HeadTables | None = None,
    ):
        self.endpoint = endpoint
        # durable copies of the tables below
        self.tables = tables if tables is not None else HeadTables.open(session_dir)
        self.requests = Requests(endpoint)
        self.actors = A.ActorManager()
        self.actor_payloads: dict[bytes, list] = {}  # constructor frames, kept for restarts
        self.actor_nodes: dict[bytes, str] = {}  # actor id -> address of the node running it
        # actor id -> its latest worker, kept after death: the state API shows a dead actor's pid
        self.actor_workers: dict[bytes, bytes] = {}
        self.node_death_timeout_s = node_death_timeout_s
        self.nodes: dict[bytes, NodeRecord] = {}
        self.jobs: dict[bytes, dict] = {}
        self.kv: dict[tuple, bytes] = {}
        self.kv_waiters: dict[tuple, list] = {}  # key -> [(identity, seq, deadline)]
        self.directory = ObjectDirectory()
        self.recently_freed = RecentlyFreed()  # to free pulled copies registered too late
        self._next_job = 1
        self._pending_actor_placements: list = []
        self._actor_lease_requests: dict = {}  # seq -> (actor id, node id asked, resources)
        self._warned_pending: set = set()  # actors whose wait for a node was logged
        self.clients_of: dict[bytes, set] = {}  # node id -> addresses of its live processes
        self.node_of_client: dict[str, bytes] = {}
        self._lease_request_ids = itertools.count(1)
        self._last_load_broadcast = 0.0
        self._load_changed = False  # a placement group changed some node's resources
        self._init_placement_groups()
        self.task_events = TaskEventTable(
            config.task_events_max_num_task_in_gcs, decode=_task_event_batch
        )
        self._ended_jobs: list = []  # (when to fail their unfinished tasks, job id)
        self._init_recovery()
        state = self.tables.load()  # a previous head's tables: resume its cluster
        if state:
            self.restore(state)

    # ------------------------------------------------------------------ dispatch

    def handle(self, identity: bytes, msg, seq: int, flags: int, payload):
        if flags & REPLY:
            self.requests.deliver(msg, seq, payload)
            return
        handler = getattr(self, "on_" + type(msg).__name__, None)
        if handler is None:
            logger.warning("head: unexpected %s", type(msg).__name__)
            return
        if type(msg) in (P.CreateActor, P.ActorStarted, P.AddTaskEvents):
            handler(identity, msg, seq, payload)
        else:
            handler(identity, msg, seq)

    def on_RegisterNode(self, identity, msg: P.RegisterNode, seq):
        self.nodes[msg.node_id] = NodeRecord(
            msg.node_id,
            msg.address,
            msg.ip,
            msg.hostname,
            msg.resources,
            msg.object_store_memory,
            msg.is_head,
            identity,
            metrics_export_port=msg.metrics_export_port,
        )
        self.tables.node(self.nodes[msg.node_id].to_wire())
        logger.info("node %s joined at %s", msg.node_id.hex()[:12], msg.address)
        self.endpoint.reply(identity, P.Ok(0), seq)
        # A node whose process dies closes its connections: hearing of that takes
        # milliseconds where missed heartbeats take node_death_timeout_s.
        self.endpoint.outbox(msg.address).watch_disconnects()
        self.broadcast_load(time.monotonic())
        self._placement_node_update(self.nodes[msg.node_id])
        self._retry_actor_placements()

    def _retry_actor_placements(self):
        pending, self._pending_actor_placements = self._pending_actor_placements, []
        for actor_id, resources in pending:
            self._request_actor_worker(actor_id, resources)

    def on_NodeHeartbeat(self, identity, msg: P.NodeHeartbeat, seq):
        node = self.nodes.get(msg.node_id)
        if node is None or not node.alive:
            return
        node.last_seen = time.monotonic()
        node.available = msg.available
        node.resources = msg.total
        node.store_used = msg.store_used
        self._placement_node_update(node)
        if self._pending_actor_placements:
            # The head's view was a heartbeat behind (a bundle committed a moment ago).
            self._retry_actor_placements()

    def on_RegisterJob(self, identity, msg: P.RegisterJob, seq):
        job_id = struct.pack("<I", self._next_job)
        self._next_job += 1
        self.jobs[job_id] = {
            "driver_id": msg.driver_id,
            "pid": msg.pid,
            "namespace": msg.namespace,
            "metadata": msg.metadata,
            "default_actor_lifetime": msg.default_actor_lifetime,
            "start": time.time(),
            "alive": True,
            "address": self.endpoint.peers.get(identity, ""),
        }
        self.tables.job(job_id, self.jobs[job_id])
        self.endpoint.reply(
            identity, P.JobRegistered(job_id, msg.namespace, msg.default_actor_lifetime), seq
        )

    def on_GetJobInfo(self, identity, msg: P.GetJobInfo, seq):
        job = self.jobs.get(msg.job_id)
        if job is None:
            self.endpoint.reply(identity, P.Error("ValueError", f"no job {msg.job_id.hex()}"), seq)
        else:
            lifetime = job.get("default_actor_lifetime", "non_detached")
            self.endpoint.reply(
                identity, P.JobRegistered(msg.job_id, job["namespace"], lifetime), seq
            )

    def on_UnregisterJob(self, identity, msg: P.UnregisterJob, seq):
        job = self.jobs.get(msg.job_id)
        if job:
            job["alive"] = False
            job["end"] = time.time()
            self.tables.job(msg.job_id, job)
            self._job_ended(msg.job_id)
            self._actor_instructions(self.actors.owner_died(job["driver_id"]))
            self._placement_job_dead(msg.job_id)

    # ------------------------------------------------------------------ actors

    def on_CreateActor(self, identity, msg: P.CreateActor, seq, payload):
        try:
            instructions = self.actors.create(
                msg.actor_id, dict(msg.spec, nbuffers=msg.nbuffers, resolved=msg.resolved)
            )
        except A.NameTaken as exc:
            self.endpoint.reply(identity, P.Error("ValueError", str(exc)), seq)
            return
        self.actor_payloads[msg.actor_id] = [f.bytes for f in payload]
        self.tables.actor_created(
            self.actors, self.actors.actors[msg.actor_id], self.actor_payloads[msg.actor_id]
        )
        self.endpoint.reply(identity, P.Ok(0), seq)
        self._actor_instructions(instructions)

    def on_ActorStarted(self, identity, msg: P.ActorStarted, seq, payload):
        error = payload[0].bytes if (not msg.ok and payload) else b""
        self._actor_instructions(self.actors.started(msg.actor_id, msg.ok, error, msg.error_text))

    def on_SubscribeActor(self, identity, msg: P.SubscribeActor, seq):
        self._actor_instructions(self.actors.subscribe(msg.actor_id, identity))

    def on_KillActor(self, identity, msg: P.KillActor, seq):
        actor = self.actors.actors.get(msg.actor_id)
        stopping = bool(actor is not None and actor.state != A.DEAD and actor.worker_id)
        num_restarts = actor.num_restarts if actor is not None else 0
        self._actor_instructions(self.actors.kill(msg.actor_id, msg.no_restart, msg.cause))
        if seq:
            self.endpoint.reply(identity, P.ActorKilled(msg.actor_id, stopping, num_restarts), seq)

    def on_ActorExiting(self, identity, msg: P.ActorExiting, seq):
        self._actor_instructions(self.actors.exited(msg.actor_id, msg.reason))

    def on_GetNamedActor(self, identity, msg: P.GetNamedActor, seq):
        actor = self.actors.lookup(msg.namespace, msg.name)
        if actor is None:
            self.endpoint.reply(identity, P.NamedActor(False, b"", b""), seq)
        else:
            self.endpoint.reply(
                identity,
                P.NamedActor(True, actor.actor_id, actor.spec.get("handle_meta", b"")),
                seq,
            )

    def on_ListNamedActors(self, identity, msg: P.ListNamedActors, seq):
        named = self.actors.named(None if msg.all_namespaces else msg.namespace)
        self.endpoint.reply(identity, P.NamedActorList([list(key) for key in named]), seq)

    def on_ClientDied(self, identity, msg: P.ClientDied, seq):
        self._actor_instructions(self.actors.owner_died(msg.worker_id))
        self.actors.unsubscribe_all(msg.worker_id)
        for job_id, job in self.jobs.items():
            if job["alive"] and job["driver_id"] == msg.worker_id:  # a driver killed mid-job
                job["alive"] = False
                job["end"] = time.time()
                self.tables.job(job_id, job)
                self._job_ended(job_id)
                self._placement_job_dead(job_id)

    def on_ClientJoined(self, identity, msg: P.ClientJoined, seq):
        self.clients_of.setdefault(msg.node_id, set()).add(msg.address)
        self.node_of_client[msg.address] = msg.node_id

    def on_HolderDied(self, identity, msg: P.HolderDied, seq):
        node_id = self.node_of_client.pop(msg.address, None)
        if node_id is not None:
            self.clients_of.get(node_id, set()).discard(msg.address)
        for node in self.nodes.values():
            if node.alive:
                self.endpoint.send(node.address, msg)

    def _job_ended(self, job_id: bytes):
        delay_s = config.task_events_mark_failed_on_job_done_delay_ms / 1000.0
        self._ended_jobs.append((time.monotonic() + delay_s, job_id))

    def _fail_tasks_of_ended_jobs(self, now: float):
        """As Ray's GCS does, a while after a job's driver exited (its processes' last events
        are in by then): the job's tasks that never ended are FAILED."""
        while self._ended_jobs and self._ended_jobs[0][0] <= now:
            _, job_id = self._ended_jobs.pop(0)
            self.task_events.fail_unfinished(
                job_id,
                time.time_ns(),
                "WORKER_DIED",
                f"Job finishes ({job_id.hex()}) as driver exits. Marking all non-terminal "
                "tasks as failed.",
            )

    def on_AddTaskEvents(self, identity, msg: P.AddTaskEvents, seq, payload):
        # Kept packed, merged when someone asks (head/task_events.py). The batch is the
        # message's frame (kept as received, not copied), or `events` if a sender put it there.
        packed = msg.events
        if not packed and payload:
            packed = getattr(payload[0], "buffer", payload[0])
        try:
            self.task_events.add_packed(msg.node_id, msg.worker_id, msg.pid, packed, msg.dropped)
        except Exception as exc:  # noqa: BLE001 - a bad batch is dropped, the head goes on
            logger.warning("head: task events from %s dropped: %s", msg.worker_id.hex(), exc)
        if seq:  # the last batch of a process that exits waits for this
            self.endpoint.reply(identity, P.Ok(0), seq)

    def on_WorkerDied(self, identity, msg: P.WorkerDied, seq):
        self._actor_instructions(self.actors.worker_died(msg.lease_id, msg.exit_code))

    def _actor_instructions(self, instructions):
        if self.placement.creators and instructions:
            instructions = list(instructions)
            self._actor_instructions_now(instructions)
            self._placement_creators_check()
            return
        self._actor_instructions_now(instructions)

    def _actor_instructions_now(self, instructions):
        touched = {ins.actor_id for ins in instructions if type(ins) is not A.ReturnWorker}
        touched |= self.actors.take_changed()
        if touched:  # before any of them is told to anyone
            self.tables.actors(self.actors, touched)
        for ins in instructions:
            kind = type(ins)
            if kind is A.Publish:
                if ins.subscriber is not None:
                    self._send_to(
                        ins.subscriber,
                        P.ActorState(
                            ins.actor_id,
                            ins.state,
                            ins.address,
                            ins.num_restarts,
                            ins.death_cause,
                            ins.error,
                        ),
                    )
            elif kind is A.RequestWorker:
                self._request_actor_worker(ins.actor_id, ins.resources)
            elif kind is A.StartActor:
                actor = self.actors.actors[ins.actor_id]
                spec = actor.spec
                self.endpoint.send(
                    actor.address,
                    P.StartActor(
                        ins.actor_id, spec, spec["nbuffers"], spec["resolved"], ins.attempt
                    ),
                    payload=self.actor_payloads.get(ins.actor_id, []),
                )
            elif kind is A.StopWorker:
                node = self.actor_nodes.get(ins.actor_id)
                if node:
                    self.endpoint.send(node, P.KillWorker(ins.worker_id))
            elif kind is A.ReturnWorker:
                pass  # the lease of a dead actor: returned in _on_actor_lease

    def _request_actor_worker(self, actor_id: bytes, resources: dict):
        actor = self.actors.actors.get(actor_id)
        strategy = actor.spec.get("strategy", "DEFAULT") if actor is not None else "DEFAULT"
        node = self._pick_node(resources, strategy if isinstance(strategy, str) else "DEFAULT")
        if node is None:
            in_group = actor is not None and actor.spec.get("placement_group")
            if not in_group and actor_id not in self._warned_pending:
                self._warned_pending.add(actor_id)
                logger.warning(
                    "no node can host actor %s needing %s (strategy %s); it stays pending",
                    actor_id.hex()[:12],
                    resources,
                    strategy,
                )
            self._pending_actor_placements.append((actor_id, resources))
            return
        # The head's view of free resources is up to a heartbeat old: a node picked by it may
        # be busy by now, so it may redirect a default placement (once) to a node that is free.
        # Node affinity that found its node stays there.
        may_spill = not (
            isinstance(strategy, str)
            and strategy.startswith("NODE_AFFINITY")
            and node.node_id.hex() in strategy
        )
        self._send_actor_lease_request(
            actor_id,
            node,
            P.RequestLease(
                next(self._lease_request_ids),
                resources,
                actor_id[-4:],
                "DEFAULT",
                not may_spill,
                b"",
                True,
                actor.spec.get("runtime_env", "") if actor is not None else "",
            ),
        )

    def _send_actor_lease_request(self, actor_id: bytes, node, request: P.RequestLease):
        seq = self.requests.send(
            node.address,
            request,
            lambda reply, payload: self._on_actor_lease(actor_id, node, reply, request, seq),
        )
        self._actor_lease_requests[seq] = (actor_id, node.node_id, request.resources)

    def _place_actors_asked_of(self, node_id: bytes):
        """A dead node never answers the lease requests we sent it: their actors would stay
        PENDING or RESTARTING for good. They are placed again, elsewhere."""
        lost = [
            (seq, actor_id, resources)
            for seq, (actor_id, asked, resources) in self._actor_lease_requests.items()
            if asked == node_id
        ]
        for seq, actor_id, resources in lost:
            del self._actor_lease_requests[seq]
            self.requests.forget(seq)
            actor = self.actors.actors.get(actor_id)
            if actor is not None and actor.state != A.DEAD and not actor.lease_id:
                self._request_actor_worker(actor_id, resources)

    def _on_actor_lease(self, actor_id: bytes, node, reply, request: P.RequestLease, seq=0):
        self._actor_lease_requests.pop(seq, None)
        if isinstance(reply, P.LeaseSpillback):
            target = self.nodes.get(reply.node_id)
            if target is not None and target.alive:
                self._send_actor_lease_request(actor_id, target, request._replace(spilled=True))
                return
            reply = P.Error("RaySystemError", "spilled back to a node that is gone")
        if isinstance(reply, P.Error) and reply.kind == "RuntimeEnvSetupError":
            self._actor_instructions(
                self.actors.kill(
                    actor_id, True, f"its runtime env failed to set up: {reply.message}"
                )
            )
            return
        if not isinstance(reply, P.LeaseGranted):
            self._actor_instructions(self.actors.kill(actor_id, True, f"placement failed: {reply}"))
            return
        instructions = self.actors.lease_granted(
            actor_id, reply.lease_id, reply.worker_id, reply.worker_address
        )
        if any(type(i) is A.ReturnWorker for i in instructions):
            self.endpoint.send(node.address, P.ReturnLease(reply.lease_id, True))
            return
        self.actor_nodes[actor_id] = node.address
        self.actor_workers[actor_id] = reply.worker_id
        self.actors.actors[actor_id].spec["gpu_ids"] = reply.gpu_ids  # this attempt's GPUs
        run = self.actors.actors[actor_id].spec.get("run_resources")
        if run is not None and run != self.actors.actors[actor_id].spec.get("resources"):
            self.endpoint.send(node.address, P.ResizeLease(reply.lease_id, run))
        self._actor_instructions(instructions)

    def _pick_node(self, resources: dict, strategy: str = "DEFAULT"):
        """A live node that can run the actor now (most free CPU first), else one whose total
        can ever fit it; None if no node can. Node affinity, as Ray does it: the named node
        whenever it is alive and its total fits the actor (it waits there while the node is
        busy); otherwise, if soft, any node as above, and if hard, none (pending)."""
        alive = [n for n in self.nodes.values() if n.alive]
        parts = strategy.split(":")
        if parts[0] == "NODE_AFFINITY" and len(parts) == 3:
            _, node_hex, soft = parts
            try:
                target = self.nodes.get(bytes.fromhex(node_hex))
            except ValueError:
                target = None
            if (
                target is not None
                and target.alive
                and all(target.resources.get(k, 0) >= v for k, v in resources.items())
            ):
                return target
            if soft != "1":
                return None

        def fits(amounts):
            return lambda n: all(amounts(n).get(k, 0) >= v for k, v in resources.items())

        now = [n for n in alive if fits(lambda n: n.available or n.resources)(n)]
        if now:
            return max(now, key=lambda n: ((n.available or n.resources).get("CPU", 0), n.is_head))
        ever = [n for n in alive if fits(lambda n: n.resources)(n)]
        return ever[0] if ever else None

    def _send_to(self, identity: bytes, msg):
        address = self.endpoint.peers.get(identity)
        if address:
            self.endpoint.send(address, msg)

    def on_KvPut(self, identity, msg: P.KvPut, seq):
        key = (msg.namespace, msg.key)
        stored = msg.overwrite or key not in self.kv
        if stored:
            self.kv[key] = msg.value
            self.tables.kv(msg.namespace, msg.key, msg.value)
        for waiter_identity, waiter_seq, _ in self.kv_waiters.pop(key, []):
            self.endpoint.reply(waiter_identity, P.KvValue(True, self.kv[key]), waiter_seq)
        if seq:
            self.endpoint.reply(identity, P.Ok(int(stored)), seq)

    def on_KvDel(self, identity, msg: P.KvDel, seq):
        found = self.kv.pop((msg.namespace, msg.key), None) is not None
        if found:
            self.tables.kv_deleted(msg.namespace, msg.key)
        if seq:
            self.endpoint.reply(identity, P.Ok(int(found)), seq)

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

    def on_AddCopyLocations(self, identity, msg: P.AddCopyLocations, seq):
        self.recently_freed.expire(time.monotonic())
        late = [oid for oid in msg.object_ids if oid in self.recently_freed]
        if not late:
            self.on_AddObjectLocations(identity, msg, seq)
            return
        # Their owner freed them before we heard of this copy: nobody else will free it.
        node = self.nodes.get(msg.node_id)
        if node is not None and node.alive:
            self.endpoint.send(node.address, P.FreeObjects(late, False))
        kept = [(o, s) for o, s in zip(msg.object_ids, msg.sizes) if o not in self.recently_freed]
        if kept:
            ids, sizes = [o for o, _ in kept], [s for _, s in kept]
            self._notify(self.directory.add_locations(msg.node_id, ids, sizes))

    def on_RemoveObjectLocations(self, identity, msg: P.RemoveObjectLocations, seq):
        if msg.freed:  # the owner let go: every other copy goes too
            self._freed_while_resuming(msg.object_ids)
            self.recently_freed.add(msg.object_ids, time.monotonic())
            by_node: dict = {}
            for object_id in msg.object_ids:
                for node_id in self.directory.lookup(object_id):
                    if node_id != msg.node_id:
                        by_node.setdefault(node_id, []).append(object_id)
            for node_id, ids in by_node.items():
                node = self.nodes.get(node_id)
                if node is not None and node.alive:
                    self.endpoint.send(node.address, P.FreeObjects(ids, False))
        self.directory.remove_locations(msg.node_id, msg.object_ids)

    def on_SubscribeObjectLocation(self, identity, msg: P.SubscribeObjectLocation, seq):
        sealed_on, dead = self._primary_node(msg.object_id, msg.sealed_on)
        self._notify(self.directory.subscribe((identity, seq), msg.object_id, sealed_on, dead))

    def on_LocateSource(self, identity, msg: P.LocateSource, seq):
        sealed_on, dead = self._primary_node(msg.object_id, msg.sealed_on)
        exclude = [n for n in msg.exclude if isinstance(n, bytes)]
        self._notify(
            self.directory.locate(
                (identity, seq, P.SourceChosen),
                msg.object_id,
                msg.node_id,
                exclude,
                sealed_on,
                dead,
            )
        )

    def on_PullEnded(self, identity, msg: P.PullEnded, seq):
        self.directory.pull_ended(msg.object_id, msg.node_id)

    def _notify(self, notifications):
        for note in notifications:
            if note.subscriber is None:
                continue
            if len(note.subscriber) == 3:  # a LocateSource: one node, or none
                identity, seq, _ = note.subscriber
                source = note.node_ids[0] if note.node_ids else b""
                self.endpoint.reply(
                    identity, P.SourceChosen(note.object_id, source, note.size), seq
                )
                continue
            identity, seq = note.subscriber
            self.endpoint.reply(
                identity, P.ObjectLocation(note.object_id, list(note.node_ids), note.size), seq
            )

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
        self._recovery_tick(now)
        for node in list(self.nodes.values()):
            if not node.alive or (self.recovering_until and self.awaited(node.node_id)):
                continue
            if now - node.last_seen > self.node_death_timeout_s:
                self.mark_dead(node.node_id, "missed heartbeats")
            elif self._connection_lost(node, now):
                self.mark_dead(node.node_id, "its connection closed and it stayed silent")
        self._placement_tick(now)
        if self._ended_jobs:
            self._fail_tasks_of_ended_jobs(now)
        since = now - self._last_load_broadcast
        if since >= LOAD_BROADCAST_S or (self._load_changed and since >= LOAD_CHANGE_S):
            self.broadcast_load(now)

    def _connection_lost(self, node: NodeRecord, now: float) -> bool:
        """A broken connection alone is not death (a network blip reconnects); one followed
        by a heartbeat-and-a-half of silence is."""
        if self.endpoint.outbox(node.address).disconnected() and not node.suspect_since:
            node.suspect_since = now
        if not node.suspect_since:
            return False
        if node.last_seen > node.suspect_since:
            node.suspect_since = 0.0  # it spoke since: the connection came back
            return False
        return now - node.suspect_since >= SILENCE_AFTER_DISCONNECT_S

    def broadcast_load(self, now: float):
        """Relays every node's load to every node: the view spillback decisions use."""
        self._last_load_broadcast = now
        self._load_changed = False
        records = [n.to_wire() for n in self.nodes.values()]
        for node in self.nodes.values():
            if node.alive:
                self.endpoint.send(node.address, P.ClusterLoad(records))

    def mark_dead(self, node_id: bytes, reason: str):
        node = self.nodes.get(node_id)
        if node is None or not node.alive:
            return
        node.alive = False
        node.death_reason = reason
        node.ended_at = time.time()
        self.tables.node(node.to_wire())
        logger.warning("node %s is dead: %s", node_id.hex()[:12], reason)
        self._notify(self.directory.node_dead(node_id, self.deferring_loss()))
        for other in self.nodes.values():
            if other.alive:
                self.endpoint.send(other.address, P.NodeDied(node_id, node.address))
        for actor_id, address in list(self.actor_nodes.items()):
            actor = self.actors.actors.get(actor_id)
            if address == node.address and actor is not None and actor.lease_id:
                self.actor_nodes.pop(actor_id)
                self._actor_instructions(
                    self.actors.worker_died(
                        actor.lease_id, -1, f"the node {node_id.hex()[:12]} running it died"
                    )
                )
        self._placement_node_dead(node_id)
        self._place_actors_asked_of(node_id)
        # Its processes died with it: announce each, as their node would have (owners drop
        # their borrows, nodes free what they owned, borrowers get OwnerDiedError).
        for address in sorted(self.clients_of.pop(node_id, ())):
            self.on_HolderDied(b"", P.HolderDied(address), 0)
        self.broadcast_load(time.monotonic())

    def stats(self) -> dict:
        return {
            "nodes": len(self.nodes),
            "jobs": len(self.jobs),
            "kv": len(self.kv),
            "actors": self.actors.stats(),
            "placement_groups": self.placement.stats(),
            "actors_waiting_for_a_node": len(self._pending_actor_placements),
            "directory": self.directory.stats(),
            "tables": self.tables.stats(),
            # A resumed head: what it read back, and how long until every node was back.
            "recovery": dict(self.recovery_stats, awaiting_nodes=len(self._awaited_nodes)),
            "dropped": self.endpoint.dropped,
            "auth_rejected": self.endpoint.rejected,
        }


def _task_event_batch(packed: bytes | memoryview) -> tuple:
    """A packed AddTaskEvents batch's events, as tuples (what TaskEventTable merges)."""
    events = msgpack.unpackb(packed, raw=False, use_list=False, strict_map_key=False)
    return events if isinstance(events, tuple) else ()
