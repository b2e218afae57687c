"""The node daemon: local scheduler, worker pool, shared-memory object table and, on the head node,
the head service. One thread runs everything; the state machines decide, this module only moves
messages and carries out their instructions.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time

import zmq

from zray._config import config
from zray._fast import Allocator, random_id, NODE_ID_SIZE
from zray._private.common import bundles as B
from zray._private.common import log_rotation
from zray._private.wire import protocol as P
from zray._private.common import resources as R
from zray._private.node import scheduler as S
from zray._private.wire import security
from zray._private.common import session
from zray._private.head.service import HeadService
from zray._private.node.object_manager import ObjectManager
from zray._private.node.object_table import LocalObjectStore
from zray._private.node.options import (
    Client,
    NodeOptions,
    default_resources,
    worker_limit_message,
)
from zray._private.node.lease_handlers import LeaseHandlers
from zray._private.node.object_handlers import ObjectHandlers
from zray._private.node.placement import ClusterView
from zray._private.node.spill import Spiller, spill_directory
from zray._private.wire.transport import (
    REPLY,
    Endpoint,
    Requests,
    choose_address,
    new_context,
    serve_context,
)
from zray._private.node.envs import NodeEnvs
from zray._private.node import head_resume
from zray._private.wire.head_link import HeadLink
from zray._private.node.worker_pool import WorkerPool
from zray._private.node import dashboard_process, host_stats, log_files, worker_table
from zray._private.node import state_handlers
from zray._private.node import metrics_hooks

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
CLIENT_CHECK_S = 0.5


class _Stop(Exception):
    pass


_stop_signal = 0  # the signal that stopped this daemon, if one did


class NodeDaemon(LeaseHandlers, ObjectHandlers):
    log_rotation = None  # node.log's rotation when it logs there (run_node)

    def __init__(self, opts: NodeOptions):
        self.opts = opts
        self.dashboard = None
        # The dashboard's port first, before anything that would need undoing: a taken port
        # fails the start with the session and its log kept for the starter to show.
        dashboard_socket = None
        if opts.head and opts.include_dashboard is not False:
            try:
                dashboard_socket = dashboard_process.bind(opts.dashboard_host, opts.dashboard_port)
            except dashboard_process.DashboardPortError as exc:
                if opts.include_dashboard:  # asked for outright: as Ray, a failure to start
                    raise
                logger.error("starting without a dashboard: %s", exc)  # Ray's default too
        self.node_id = random_id(NODE_ID_SIZE)
        self.session_dir = opts.session_dir
        # Its metrics port too: one in use fails here, before anything needing undoing exists.
        self.metrics = metrics_hooks.start_export(self, opts.metrics_export_port)
        self.resources, self.store_capacity = default_resources(opts)
        units = R.to_units(self.resources)
        self.ctx = new_context()
        creds = security.Credentials(opts.token, opts.encrypt)
        head_tables = None
        if opts.head:
            try:
                head_tables, creds = _head_state(opts, creds)
            except BaseException:
                self.ctx.term()
                raise
        if not opts.head:
            # Learn now, with a clear error, whether the head takes our token (and whether it
            # encrypts): later every message to it would just go unanswered.
            try:
                creds = security.negotiate(
                    self.ctx, choose_address(opts.head_address), creds, config.join_timeout_s
                )
            except BaseException:
                self.ctx.term()
                raise
        self.creds = creds
        self.zap = serve_context(self.ctx, creds)
        self.endpoint = Endpoint(
            self.node_id,
            [
                session.socket_address(self.session_dir, "node-" + self.node_id.hex()[:12]),
                f"tcp://{opts.node_ip}:*",
            ],
            self.ctx,
            creds,
            count_rejections=True,
            name="node",
        )
        self.requests = Requests(self.endpoint)
        self.head = None
        if opts.head:
            head_endpoint = Endpoint(
                b"head-" + self.node_id,
                [f"tcp://{opts.node_ip}:{opts.head_port}"],
                self.ctx,
                creds,
                count_rejections=True,
                name="head",
            )
            try:
                self.head = HeadService(
                    head_endpoint, opts.node_death_timeout_s, self.session_dir, head_tables
                )
            except BaseException:  # its state cannot be opened: nothing runs yet to stop
                head_tables.close()
                head_endpoint.close()
                self.endpoint.close()
                self.ctx.term()
                raise
            self.head_address = head_endpoint.address
        else:
            self.head_address = opts.head_address
        # The head node's own head lives and dies with it; other nodes outlive a head that
        # restarts and find it again (head_resume.py).
        self.head_link = None
        if not opts.head:
            self.head_link = HeadLink(
                self.endpoint,
                self.requests,
                self.head_address,
                config.head_reconnect_timeout_s,
                lambda link: head_resume.resume(self, link),
            )
        self.head_identity = b""  # the head's, from its ClusterLoad: a new one restarted
        self._last_cluster_load = time.monotonic()
        self.arena_path = session.arena_path(self.session_dir, self.node_id)
        self._create_arena()
        # Page-aligned objects (with page-aligned large buffers inside, see objformat) copy
        # ~4x faster than ones whose page offset differs from the source's.
        self.store = LocalObjectStore(Allocator(self.store_capacity, alignment=4096))
        cpus = int(self.resources.get("CPU", 0))
        # Owners hold leases from many nodes and key them by id alone: each node counts from a
        # random point of a 62-bit space so ids never collide across nodes.
        self.scheduler = S.LocalScheduler(
            units,
            min_workers=cpus,
            max_extra_workers=config.worker_pool_max_extra,
            first_lease_id=random.randrange(1, 2**62),
            startup_concurrency=config.worker_startup_concurrency or max(cpus, 2),
        )
        self.pool = WorkerPool(
            self.session_dir,
            self.endpoint.address,
            self.node_id,
            config.worker_start_timeout_s,
            opts.node_ip,
            {"ZRAY_TOKEN": creds.token, "ZRAY_ENCRYPT": "1" if creds.encrypt else "0"},
        )
        self.clients: dict[bytes, Client] = {}
        self.envs = NodeEnvs(self)
        self.worker_table = worker_table.WorkerTable()
        self.lease_seq: dict[tuple, int] = {}  # (client, request_id) -> seq to answer
        self.lease_meta: dict[tuple, P.RequestLease] = {}  # queued requests, for rebalancing
        self.view = ClusterView(self.node_id)
        self.objects = ObjectManager(self)
        # A put waiting for room must get its answer before the client's own RPC bound.
        self.spiller = Spiller(
            self.store,
            self.arena_path,
            self.store_capacity,
            spill_directory(
                self.session_dir,
                config.spill_dir,
                session.session_name(self.session_dir),
                self.node_id.hex(),
            ),
            threshold=config.object_spilling_threshold,
            min_spilling_size=config.min_spilling_size,
            wait_s=config.rpc_timeout_s * 2 / 3,
            grace_s=config.oom_grace_period_s,
            on_evicted=self._copies_evicted,
            on_restored=self._answer_waiters,
            on_lost=self.object_lost,
        )
        self.pending_locations: list = []
        self.resources_dirty = True
        self.running = True
        self._last_heartbeat = 0.0
        self._last_client_check = time.monotonic()
        self._next_timers = 0.0
        self._memory_reports: list = []  # `zray memory` requests waiting for clients
        self._prefaulted = 0  # pre-fault requested up to here
        self._prefault_done = 0  # pages allocated up to here
        self._prefault_lock = threading.Lock()
        if dashboard_socket is not None:
            self.dashboard = dashboard_process.prepare(
                dashboard_socket,
                self.opts.dashboard_host,
                self.opts.node_ip,
                self.session_dir,
                self.head_address,
                self.creds,
                os.path.join(self.session_dir, "logs", "dashboard.log"),
            )
            if self.head is not None:  # where the Jobs SDK finds it from a cluster address
                self.head.kv[("dashboard", b"dashboard")] = self.dashboard.address.encode()

    # ------------------------------------------------------------------ lifecycle

    def _create_arena(self):
        fd = os.open(self.arena_path, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.store_capacity)
        finally:
            os.close(fd)

    def start(self):
        security.write_session_files(self.session_dir, self.creds, self.head_address)
        session.write_node_pid(self.session_dir, self.node_id, bool(self.opts.embedded_by))
        self._dispatch(self.scheduler.start())
        self.requests.send(
            self.head_address,
            P.RegisterNode(
                self.node_id,
                self.endpoint.address,
                self.opts.node_ip,
                socket.gethostname(),
                self.resources,
                self.store_capacity,
                self.opts.head,
                self.metrics.port if self.metrics else -1,
            ),
            lambda *_: None,
        )

    def ready_info(self) -> dict:
        return {
            "node_id": self.node_id.hex(),
            "node_address": self.endpoint.address,
            "head_address": self.head_address,
            "session_dir": self.session_dir,
            "arena_path": self.arena_path,
            "pid": os.getpid(),
            "metrics_export_port": self.metrics.port if self.metrics else -1,
            "node_ip": self.opts.node_ip,
            "dashboard_address": self.dashboard.address if self.dashboard else "",
        }

    def run(self):
        poller = self.poller = zmq.Poller()
        poller.register(self.endpoint.inbox, zmq.POLLIN)
        if self.head:
            poller.register(self.head.endpoint.inbox, zmq.POLLIN)
        poller.register(self.pool.fd, zmq.POLLIN)
        poller.register(self.spiller.io.fd, zmq.POLLIN)
        poller.register(self.envs.fd, zmq.POLLIN)
        if self.dashboard is not None:
            if self.opts.embedded_by:
                poller.register(self.dashboard.fd, zmq.POLLIN)  # started on demand
            else:
                self.dashboard.spawn()  # `zray start` just printed its URL to open
        monitors = [e for e in (self.endpoint, self.head and self.head.endpoint) if e]
        for endpoint in monitors:
            poller.register(endpoint.monitor, zmq.POLLIN)
        transfer_fd = None
        try:
            while self.running:
                events = dict(poller.poll(self._poll_timeout_ms()))
                if self.head and self.head.endpoint.inbox in events:
                    self._drain(self.head.endpoint, self.head.handle)
                if self.endpoint.inbox in events:
                    self._drain(self.endpoint, self._handle_or_reply)
                for endpoint in monitors:
                    if endpoint.monitor in events:
                        endpoint.read_monitor()
                if self.pool.fd in events:
                    for _, worker_id, code, was_starting in self.pool.read_events():
                        self._on_worker_exit(worker_id, code, was_starting)
                if self.spiller.io.fd in events:
                    try:
                        self.spiller.on_io_ready()
                    except Exception:  # a bug in one completion must not stop the node
                        logger.exception("error handling spill I/O completions")
                if self.envs.fd in events:
                    self.envs.on_ready()
                if self.dashboard is not None and self.dashboard.fd in events:
                    poller.unregister(self.dashboard.fd)  # the dashboard accepts from now on
                    self.dashboard.spawn()
                if transfer_fd in events:
                    self.objects.on_transfer_ready()
                elif transfer_fd is None and self.objects.transfer_started:
                    transfer_fd = self.objects.transfer_fd  # started on the first stream
                    poller.register(transfer_fd, zmq.POLLIN)
                now = time.monotonic()
                if now >= self._next_timers:  # timers are not worth running per message
                    self._next_timers = now + 0.005
                    try:
                        self._timers()
                    except _Stop:
                        raise
                    except Exception:  # one failing timer must not take the daemon down
                        logger.exception("error in the node's timers")
                self._flush_locations()
                if self.store.dead_files:
                    self.spiller.delete_dead_files()
        except _Stop:
            pass
        finally:
            self.shutdown()

    def _drain(self, endpoint: Endpoint, handler, budget: int = 1000):
        for _ in range(budget):
            try:
                received = endpoint.receive(False)
            except zmq.ZMQError:
                return
            if received is False:
                return
            if received is None:
                continue
            identity, msg, seq, flags, payload = received
            try:
                handler(identity, msg, seq, flags, payload)
            except _Stop:
                raise
            except Exception:
                logger.exception("error handling %s", type(msg).__name__)

    def _poll_timeout_ms(self) -> int:
        timeout = 100
        deadlines = (self.store.next_deadline(), self.spiller.next_deadline())
        deadline = min((d for d in deadlines if d is not None), default=None)
        if deadline is not None:
            timeout = min(timeout, max(0, int((deadline - time.monotonic()) * 1000) + 1))
        return timeout

    def _timers(self):
        now = time.monotonic()
        self._answer_waiters(self.store.expire(now))
        self.spiller.expire(now)
        self._expire_starts(now)
        self.envs.tick(now)
        if self.metrics:
            self.metrics.tick(now)
        if self.head:
            self.head.tick(now)
        elif self.head_link is not None and head_resume.check(self, now):
            raise _Stop()  # the head did not come back: as Ray's raylet, give up
        if self._memory_reports:
            self._memory_reports = [r for r in self._memory_reports if not r.expire(now)]
        if now - self._last_heartbeat > (0.1 if self.resources_dirty else HEARTBEAT_S):
            self._heartbeat(now)
        if now - self._last_client_check > CLIENT_CHECK_S:
            self._last_client_check = now
            self._check_clients()
        if self.log_rotation is not None:
            self.log_rotation.tick(now)

    def _heartbeat(self, now):
        self._last_heartbeat = now
        self.resources_dirty = False
        self.endpoint.send(
            self.head_address,
            P.NodeHeartbeat(
                self.node_id,
                R.to_floats(self.scheduler.available),
                R.to_floats(self.scheduler.total),
                self.store.allocator.used,
            ),
        )

    def _check_clients(self):
        if self.dashboard is not None and self.dashboard.exited():
            self.poller.register(self.dashboard.fd, zmq.POLLIN)  # started again on demand
        for identity, client in list(self.clients.items()):
            if client.kind == "driver" and not session._pid_alive(client.pid):
                self._on_client_exit(identity)
        if self.opts.embedded_by and not session._pid_alive(self.opts.embedded_by):
            logger.warning("the driver that started this node exited; stopping")
            raise _Stop()

    def shutdown(self):
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self.running = False
        if self.dashboard is not None:
            self.dashboard.stop()
        try:
            if self.head and self._head_state_kept():
                pass
            elif self.head:  # first: a slow worker shutdown may end in our SIGKILL
                try:
                    self.head.tables.clear()
                except Exception:  # e.g. Redis gone: the workers must still be stopped
                    logger.exception("clearing the head's durable state")
            self.pool.shutdown()
        finally:
            if self.metrics:
                self.metrics.close()
            self.envs.shutdown()
            self.spiller.close()
            self.objects.close()
            session.remove_node_pid(self.session_dir, self.node_id)
            try:
                os.unlink(self.arena_path)
            except FileNotFoundError:
                pass
            self.endpoint.close()
            if self.head:
                self.head.endpoint.close()
            self.ctx.term()
            if self.opts.embedded_by or not session.session_alive(self.session_dir):
                session.remove_session(self.session_dir)
            if self.head:
                self.head.tables.close()

    def _head_state_kept(self) -> bool:
        """A `zray start`ed head terminated alone (SIGTERM, as a service manager restarts it,
        not `zray stop` nor Ctrl-C) keeps its tables: its nodes wait for it to come back on
        them. The cluster ending on purpose clears them."""
        import signal

        keep = (
            _stop_signal == signal.SIGTERM
            and not self.opts.embedded_by
            and not session.cluster_stopping(self.session_dir)
            and any(n.alive and not n.is_head for n in self.head.nodes.values())
        )
        if keep:
            logger.warning(
                "the head stops alone: its state stays in %s for a restart "
                "(`zray start --head` on it, same port)",
                self.head.tables.store.description if self.head.tables.store else "nothing",
            )
        return keep

    # ------------------------------------------------------------------ instructions

    def _dispatch(self, instructions):
        for ins in instructions:
            kind = type(ins)
            if kind is S.Grant:
                self.resources_dirty = True
                self.lease_meta.pop((ins.client, ins.request_id), None)
                seq = self.lease_seq.pop((ins.client, ins.request_id), 0)
                address = self.endpoint.peers.get(ins.worker_id, "")
                self.endpoint.reply(
                    ins.client,
                    P.LeaseGranted(
                        ins.request_id,
                        ins.lease_id,
                        ins.worker_id,
                        address,
                        self.node_id,
                        list(ins.gpu_ids),
                    ),
                    seq,
                )
            elif kind is S.StartWorker:
                if ins.runtime_env:
                    self.envs.start_worker(ins.runtime_env)
                elif self.pool.refusing():
                    self.scheduler.starting = max(0, self.scheduler.starting - 1)
                    self._refuse_waiting_leases()
                else:
                    self.pool.spawn()
            elif kind is S.StopWorker:
                self.pool.kill(ins.worker_id)
            elif kind is S.LeaseLost:
                self.resources_dirty = True
                self._send_to_client(ins.client, P.WorkerDied(ins.lease_id, ins.worker_id, -1))
            elif kind is S.WorkerLimitReached:
                self._warn_drivers(worker_limit_message(ins, int(self.resources.get("CPU", 0))))
            elif kind is S.Infeasible:
                if self.view.feasible_anywhere(ins.need):
                    continue  # another node can run it: _rebalance moves it there
                if any(B.is_group_resource(name) for name in ins.need):
                    continue  # waits for its placement group's bundle, as in Ray
                self._send_to_client(
                    ins.client,
                    P.LeaseInfeasible(
                        ins.request_id, R.to_floats(ins.need), R.to_floats(self.scheduler.total)
                    ),
                )

    def _expire_starts(self, now: float):
        for worker_id in self.pool.expired_starts(now):
            logger.error("worker %s did not start in time", worker_id.hex()[:12])
            self._worker_start_failed(
                f"did not register within {config.worker_start_timeout_s:g}s",
                self.envs.worker_gone(worker_id),
            )

    def _worker_start_failed(self, why: str, runtime_env: str = ""):
        if self.pool.start_failed(why):
            self._warn_drivers(self.pool.refusal_message())
        self._dispatch(self.scheduler.worker_start_failed(runtime_env))

    def _refuse_waiting_leases(self):
        """Fails the lease requests that wait only for a worker (their resources are free)
        with why none starts: the caller's tasks or actor fail instead of hanging."""
        scheduler = self.scheduler
        error = P.Error("RaySystemError", self.pool.refusal_message())
        for key, request in list(scheduler.queue.items()):
            if R.fits(request.need, scheduler.available):
                scheduler.cancel_request(*key)
                self.lease_meta.pop(key, None)
                self.endpoint.reply(request.client, error, self.lease_seq.pop(key, 0))

    def _warn_drivers(self, message: str):
        """A warning in the node's log and on every driver's stderr, prefixed as a worker's
        output is, so the user running the program sees it."""
        logger.warning("%s", message)
        lines = P.LogLines(
            "stderr",
            f"(node {self.node_id.hex()[:8]} ip={self.opts.node_ip})",
            [f"WARNING: {message}"],
        )
        for client_id, client in self.clients.items():
            if client.kind == "driver":
                self._send_to_client(client_id, lines)

    def _send_to_client(self, identity: bytes, msg):
        address = self.endpoint.peers.get(identity)
        if address:
            self.endpoint.send(address, msg)

    def _on_worker_exit(self, worker_id: bytes, code: int, was_starting: bool):
        if was_starting:
            logger.error(
                "worker %s exited with %s before it registered", worker_id.hex()[:12], code
            )
            self._worker_start_failed(f"exit code {code}", self.envs.worker_gone(worker_id))
            return
        self.envs.worker_gone(worker_id)
        lease_id = self.scheduler.worker_lease.get(worker_id)
        holder = self.scheduler.leases[lease_id].client if lease_id else None
        self._on_client_exit(worker_id, code)
        instructions = self.scheduler.worker_exited(worker_id)
        for ins in instructions:
            if type(ins) is S.LeaseLost and holder is not None:
                self._send_to_client(holder, P.WorkerDied(lease_id, worker_id, code))
        self._dispatch([i for i in instructions if type(i) is not S.LeaseLost])

    def _on_client_exit(self, identity: bytes, exit_code: int | None = None):
        client = self.clients.pop(identity, None)
        self.worker_table.left(identity, exit_code)
        if self.metrics:
            self.metrics.process_exited(identity)
        self.store.client_exited(identity)
        self.spiller.retry()
        address = self.endpoint.peers.pop(identity, None)
        if client is not None:
            self.endpoint.send(self.head_address, P.ClientDied(identity))
            if address:  # owners elsewhere stop counting its borrowed refs
                self.endpoint.send(self.head_address, P.HolderDied(address))
            # Leases and queued requests the client held (a worker submits nested tasks too)
            # would otherwise leak their CPUs and workers.
            self._dispatch(self.scheduler.client_exited(identity))
        if address:
            self.endpoint.drop_outbox(address)

    # ------------------------------------------------------------------ messages

    def _handle_or_reply(self, identity: bytes, msg, seq: int, flags: int, payload):
        if flags & REPLY:
            self.requests.deliver(msg, seq, payload)
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            logger.warning("node: unexpected %s", type(msg).__name__)
            return
        handler(self, identity, msg, seq)

    def on_register_client(self, identity, msg: P.RegisterClient, seq):
        self.clients[identity] = Client(msg.kind, msg.pid, msg.job_id)
        self.worker_table.joined(identity, msg.kind, msg.pid)
        address = self.endpoint.peers.get(identity)
        if address:
            self.endpoint.send(self.head_address, P.ClientJoined(self.node_id, address))
        self.endpoint.reply(
            identity,
            P.ClientRegistered(
                self.node_id,
                self.arena_path,
                self.store_capacity,
                self.session_dir,
                self.head_address,
                self.opts.node_ip,
                self.metrics is not None,
            ),
            seq,
        )
        if msg.kind == "worker":
            # Late is late even if the timer has not run yet: the same verdict either way.
            self._expire_starts(time.monotonic())
        if msg.kind == "worker" and self.pool.on_registered(identity):
            self._dispatch(
                self.scheduler.worker_started(identity, self.pool.env_of.get(identity, ""))
            )

    def on_node_died(self, identity, msg: P.NodeDied, seq):
        """A peer node is gone: stop pulling from it, drop its transfer pins, tell clients."""
        node = self.view.nodes.get(msg.node_id)
        if node is not None:
            node.alive = False
        self.objects.peer_gone(msg.node_id)
        self.objects.node_died(msg.address)
        self.objects.forget_arena_of(msg.node_id)
        for client_id in self.clients:
            self._send_to_client(client_id, msg)

    def on_kill_worker(self, identity, msg: P.KillWorker, seq):
        self.pool.kill(msg.worker_id)

    def on_log_lines(self, identity, msg: P.LogLines, seq):
        for client_id, client in self.clients.items():
            if client.kind == "driver":
                self._send_to_client(client_id, msg)

    def on_get_node_stats(self, identity, msg: P.GetNodeStats, seq):
        stats = {
            "store": self.store.stats(),
            "held": self.store.sample(8),  # a few objects held, for diagnosis
            "scheduler": self.scheduler.stats(),
            "transfer": self.objects.stats(),
            "spill": self.spiller.stats(),
            "clients": len(self.clients),
            "workers": len(self.pool.pids),
            "host": host_stats.host_use(),
            "dropped_messages": self.endpoint.dropped,
            "auth_rejected": self.endpoint.rejected,
            "view": {
                n.node_id.hex()[:12]: R.to_floats(n.available).get("CPU", 0)
                for n in self.view.nodes.values()
            },
        }
        if self.head:
            stats["head"] = self.head.stats()
        self.endpoint.reply(identity, P.NodeStats(stats), seq)

    def on_shutdown_node(self, identity, msg: P.ShutdownNode, seq):
        logger.info("shutdown requested: %s", msg.reason)
        self.endpoint.reply(identity, P.Ok(0), seq)
        raise _Stop()

    _handlers = {
        P.RegisterClient: on_register_client,
        P.RequestLease: LeaseHandlers.on_request_lease,
        P.CancelLeaseRequest: LeaseHandlers.on_cancel_lease_request,
        P.ReturnLease: LeaseHandlers.on_return_lease,
        P.NotifyBlocked: LeaseHandlers.on_notify_blocked,
        P.ResizeLease: LeaseHandlers.on_resize_lease,
        P.ClusterLoad: LeaseHandlers.on_cluster_load,
        P.NodeDied: on_node_died,
        P.HolderDied: ObjectHandlers.on_holder_died,
        P.PullObject: ObjectHandlers.on_pull_object,
        P.PullChunk: ObjectHandlers.on_pull_chunk,
        P.PullDone: ObjectHandlers.on_pull_done,
        P.PullStream: ObjectHandlers.on_pull_stream,
        P.CreateObject: ObjectHandlers.on_create_object,
        P.SealObject: ObjectHandlers.on_seal_object,
        P.CreateObjects: ObjectHandlers.on_create_objects,
        P.SealObjects: ObjectHandlers.on_seal_objects,
        P.GetObjects: ObjectHandlers.on_get_objects,
        P.ReleaseObjects: ObjectHandlers.on_release_objects,
        P.FreeObjects: ObjectHandlers.on_free_objects,
        P.ObjectsRevived: ObjectHandlers.on_objects_revived,
        P.KillWorker: on_kill_worker,
        P.LogLines: on_log_lines,
        P.ShutdownNode: on_shutdown_node,
        P.PrepareBundles: LeaseHandlers.on_prepare_bundles,
        P.CommitBundles: LeaseHandlers.on_commit_bundles,
        P.ReturnBundles: LeaseHandlers.on_return_bundles,
        P.GetNodeStats: on_get_node_stats,
        P.GetMemoryReport: state_handlers.on_get_memory_report,
        P.GetStateTable: worker_table.on_get_state_table,
        P.ListState: state_handlers.on_list_state,
        P.MetricsReport: metrics_hooks.on_metrics_report,
        P.ListLogs: log_files.on_list_logs,
        P.ReadLog: log_files.on_read_log,
        P.ForgetJobLog: log_files.on_forget_job_log,
    }


def _head_state(opts: NodeOptions, creds: security.Credentials):
    """The head's durable tables, and the credentials to serve with: those of the cluster the
    tables hold, if they hold one (its nodes and drivers present that token when they come
    back), else ours, recorded there."""
    from zray._private.head.store import StoreError
    from zray._private.head.tables import HeadTables

    tables = HeadTables.open(opts.session_dir)
    try:
        stored = tables.credentials()
        if stored is None:
            tables.save_credentials(creds.token, creds.encrypt)
        elif opts.token_generated:
            creds = security.Credentials(stored["token"], stored["encrypt"])
        elif stored["token"] != creds.token:
            raise StoreError(
                f"the head state in {tables.store.description} is a cluster's with another "
                f"token: start the head without --token/ZRAY_TOKEN to resume it with its own, "
                f"or give another --head-state-path or Redis to start a new cluster"
            )
    except BaseException:
        tables.close()
        raise
    return tables, creds


def run_node(opts: NodeOptions, ready_stream=None, log_to_session: bool = False):
    """Runs a node daemon in this process until shutdown; writes one JSON line when ready.
    With `log_to_session`, stderr moves to <session>/logs/node.log once the node is up (until
    then, start-up errors reach whoever started us)."""
    import signal

    def stop(signum, _frame):
        global _stop_signal
        _stop_signal = signum
        raise _Stop()

    signal.signal(signal.SIGTERM, stop)
    if opts.embedded_by:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver's Ctrl-C is the driver's
    else:
        signal.signal(signal.SIGINT, stop)
    try:
        daemon = NodeDaemon(opts)
    except BaseException:
        if not opts.embedded_by:  # the session is ours alone; an embedding driver removes its own
            session.remove_session(opts.session_dir)
        raise
    try:
        daemon.start()
        if log_to_session:  # rotated with Ray's variables (common/log_rotation.py)
            daemon.log_rotation = log_rotation.RotatingStderr(
                os.path.join(opts.session_dir, "logs", "node.log"), *log_rotation.settings()
            )
        if ready_stream is not None:
            ready_stream.write(json.dumps(daemon.ready_info()) + "\n")
            ready_stream.flush()
        daemon.run()
    except _Stop:
        pass
    finally:
        daemon.shutdown()
