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
from dataclasses import dataclass

import zmq

from zray._config import config
from zray._fast import Allocator, random_id, NODE_ID_SIZE
from zray._private.common import bundles as B
from zray._private.wire import protocol as P
from zray._private.common import resources as R
from zray._private.node import scheduler as S
from zray._private.wire import security
from zray._private.common import session
from zray._private.head.service import HeadService
from zray._private.node.object_manager import ObjectManager
from zray._private.node.object_table import LocalObjectStore, ObjectExists, StoreFull
from zray._private.node.placement import ClusterView
from zray._private.node.memory_report import MemoryReportGather
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
from zray._private.node import metrics_hooks

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
CLIENT_CHECK_S = 0.5


@dataclass
class NodeOptions:
    session_dir: str
    head: bool = False
    head_address: str = ""
    head_port: int = 0
    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict | None = None
    object_store_memory: int | None = None
    node_ip: str = "127.0.0.1"
    token: str = ""
    encrypt: bool = False
    embedded_by: int = 0  # pid of the driver that started us; we stop when it dies
    # The web dashboard, head node only (zray.dashboard; dashboard_process.py starts it).
    include_dashboard: bool | None = False  # None: Ray's default, on unless its port is taken
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None  # None: 8265 or the next free one
    token_generated: bool = False  # nobody gave one: a head resuming takes its state's
    node_death_timeout_s: float = config.node_death_timeout_s
    metrics_export_port: int = config.metrics_export_port  # -1: none


@dataclass
class Client:
    kind: str
    pid: int
    job_id: bytes


class _Stop(Exception):
    pass


_stop_signal = 0  # the signal that stopped this daemon, if one did


def default_resources(opts: NodeOptions) -> tuple[dict, int]:
    total_ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # psutil's figure
    store = opts.object_store_memory or int(total_ram * config.object_store_fraction)
    cpus = opts.num_cpus if opts.num_cpus is not None else os.cpu_count()
    resources = {
        "CPU": float(cpus),
        "memory": float(int(total_ram * 0.7)),
        "object_store_memory": float(store),
        f"node:{opts.node_ip}": 1.0,
    }
    if opts.num_gpus:
        resources["GPU"] = float(opts.num_gpus)
    if opts.head:
        resources["node:__internal_head__"] = 1.0
    resources.update(opts.resources or {})
    return resources, store


def worker_limit_message(limit: S.WorkerLimitReached, cpus: int) -> str:
    return (
        f"This node reached its limit of {limit.limit} worker processes (num_cpus {cpus} + "
        f"worker_pool_max_extra {limit.limit - max(cpus, 1)}) while tasks that fit its free "
        f"resources wait for a worker; {limit.blocked} of the workers are blocked in "
        f"ray.get()/ray.wait(). Those tasks wait until a worker is free, and stall for good if "
        f"every worker waits on them. Raise the limit with the environment variable "
        f"ZRAY_WORKER_POOL_MAX_EXTRA=<n> (where the node starts: the driver's init() or "
        f"`zray start`). This warning is shown once per node."
    )


class NodeDaemon:
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

    # ------------------------------------------------------------------ lifecycle

    def _create_arena(self):
        fd = os.open(self.arena_path, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.store_capacity)
        finally:
            os.close(fd)

    def _prefault(self, upto: int):
        """Allocates shared-memory pages ahead of use, in the background: writing a fresh page
        costs ~30x a warm one on these machines."""
        upto = min(upto, self.store_capacity)
        with self._prefault_lock:
            if upto <= self._prefaulted:
                return
            start, self._prefaulted = self._prefaulted, upto

        def run():
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except OSError:
                pass
            try:
                fd = os.open(self.arena_path, os.O_RDWR)
            except FileNotFoundError:
                return
            try:
                chunk = 64 * 2**20
                for offset in range(start, upto, chunk):
                    if not self.running:
                        break
                    os.posix_fallocate(fd, offset, min(chunk, upto - offset))
                    self._prefault_done = max(self._prefault_done, offset + chunk)
            except OSError as exc:
                logger.warning("arena pre-fault stopped: %s", exc)
            finally:
                os.close(fd)

        threading.Thread(target=run, name="zray-prefault", daemon=True).start()

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
        deadline = self.store.next_deadline()
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

    def on_request_lease(self, identity, msg: P.RequestLease, seq):
        try:
            need = R.to_units(msg.resources)
        except (TypeError, ValueError, OverflowError) as exc:
            self.endpoint.reply(identity, P.Error("ValueError", str(exc)), seq)
            return
        target = self.view.pick(
            need,
            msg.strategy,
            msg.spilled,
            self.scheduler.available,
            self.scheduler.total,
            msg.preferred_node,
        )
        if target is not None and self._spill(identity, msg.request_id, seq, target, need):
            return
        self.lease_seq[(identity, msg.request_id)] = seq
        self.lease_meta[(identity, msg.request_id)] = msg
        self._dispatch(
            self.scheduler.request_lease(
                identity, msg.request_id, need, msg.for_actor, msg.runtime_env
            )
        )

    def _spill(self, identity, request_id: int, seq: int, target: bytes, need: dict) -> bool:
        address = self.view.address_of(target)
        if not address:
            return False
        self.view.reserve(target, need)
        self.endpoint.reply(identity, P.LeaseSpillback(request_id, target, address), seq)
        return True

    def _rebalance(self):
        """Queued requests that cannot run here now move to a node that can (spillback)."""
        for (client, request_id), request in list(self.scheduler.queue.items()):
            msg = self.lease_meta.get((client, request_id))
            if msg is None or msg.spilled or R.fits(request.need, self.scheduler.available):
                continue
            target = self.view.pick(
                request.need,
                msg.strategy,
                False,
                self.scheduler.available,
                self.scheduler.total,
                msg.preferred_node,
            )
            if target is None:
                continue
            seq = self.lease_seq.get((client, request_id), 0)
            if self._spill(client, request_id, seq, target, request.need):
                self.scheduler.cancel_request(client, request_id)
                self.lease_seq.pop((client, request_id), None)
                self.lease_meta.pop((client, request_id), None)

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

    def on_holder_died(self, identity, msg: P.HolderDied, seq):
        for client_id in self.clients:
            self._send_to_client(client_id, msg)
        # What the dead process owned can never be asked for again: free every copy here
        # (Ray frees a dead owner's objects; borrowers get OwnerDiedError).
        owned = self.store.owned_by(msg.address)
        if owned:
            self.store.free(owned)
            self.endpoint.send(
                self.head_address, P.RemoveObjectLocations(self.node_id, owned, False)
            )

    def on_cluster_load(self, identity, msg: P.ClusterLoad, seq):
        self._last_cluster_load = time.monotonic()
        if identity != self.head_identity:
            if self.head_identity:
                head_resume.head_replaced(self, self.head_identity)
            self.head_identity = identity
        self.view.update(msg.nodes)
        self._rebalance()

    def on_cancel_lease_request(self, identity, msg: P.CancelLeaseRequest, seq):
        key = (identity, msg.request_id)
        request_seq = self.lease_seq.pop(key, None)
        self.lease_meta.pop(key, None)
        queued = key in self.scheduler.queue
        self.scheduler.cancel_request(identity, msg.request_id)
        if queued and request_seq:
            # Answered, so the owner's pending callback for it is released (else one leaks
            # per withdrawn request); a request already granted is answered by its grant.
            self.endpoint.reply(
                identity,
                P.Error("LeaseRequestCancelled", f"lease request {msg.request_id} withdrawn"),
                request_seq,
            )

    def on_return_lease(self, identity, msg: P.ReturnLease, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.return_lease(msg.lease_id, msg.kill_worker))

    def on_resize_lease(self, identity, msg: P.ResizeLease, seq):
        try:
            need = R.to_units(msg.resources)
        except (TypeError, ValueError) as exc:
            logger.warning("bad ResizeLease: %s", exc)
            return
        self.resources_dirty = True
        self._dispatch(self.scheduler.resize_lease(msg.lease_id, need))

    def on_notify_blocked(self, identity, msg: P.NotifyBlocked, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.set_blocked(identity, msg.blocked))

    def on_create_object(self, identity, msg: P.CreateObject, seq):
        if msg.size < 0:
            self.endpoint.reply(identity, P.Error("ValueError", f"size {msg.size} < 0"), seq)
            return
        if msg.size > self.store_capacity:
            self.endpoint.reply(
                identity,
                P.Error(
                    "ObjectStoreFullError",
                    (
                        f"an object of {msg.size} bytes is larger than the whole object store "
                        f"({self.store_capacity} bytes); raise object_store_memory"
                    ),
                ),
                seq,
            )
            return
        if msg.object_id in self.store.objects:
            self.endpoint.reply(identity, P.Error("ObjectExists", msg.object_id.hex()), seq)
            return
        self.spiller.request_room(
            msg.size, lambda ok, why: self._create_object(identity, msg, seq, ok, why)
        )

    def _create_object(self, identity, msg: P.CreateObject, seq, ok: bool, why: str):
        """Runs once room was made (maybe after waiting for spills) or could not be."""
        if identity not in self.endpoint.peers:
            return  # the writer died while it waited: nobody would seal the object
        warm = max(self.store.allocator.high_water, self._prefault_done)
        try:
            if not ok:
                raise StoreFull(why)
            offset = self.store.create(identity, msg.object_id, msg.size, msg.owner_address)
        except StoreFull as exc:
            self.endpoint.reply(identity, P.Error("ObjectStoreFullError", str(exc)), seq)
            return
        except ObjectExists:
            self.endpoint.reply(identity, P.Error("ObjectExists", msg.object_id.hex()), seq)
            return
        self.endpoint.reply(identity, P.ObjectCreated(offset, warm), seq)
        self.spiller.spill_above_threshold()
        # The first large object shows this workload uses the arena: from then on keep
        # arena_prefault_bytes of warm pages ahead of the high-water mark. An idle cluster
        # holds no shared memory.
        high = self.store.allocator.high_water
        if high + config.arena_prefault_bytes // 2 > self._prefaulted:
            self._prefault(high + config.arena_prefault_bytes)

    def on_seal_object(self, identity, msg: P.SealObject, seq):
        self._answer_waiters(self.store.seal(msg.object_id))
        obj = self.store.objects.get(msg.object_id)
        if obj is not None:
            self.pending_locations.append((msg.object_id, obj.size, obj.primary))

    def on_get_objects(self, identity, msg: P.GetObjects, seq):
        deadline = time.monotonic() + max(0.0, min(msg.timeout_s, 3600.0))
        found = self.store.get(identity, seq, msg.object_ids, deadline)
        if found is not None:
            self.endpoint.reply(identity, P.ObjectsFound(found), seq)
            return
        for object_id in self.store.spilled_ids(msg.object_ids):
            self.spiller.restore(object_id, exclude=msg.object_ids)
        hints = msg.node_hints if len(msg.node_hints) == len(msg.object_ids) else []
        for index, object_id in enumerate(msg.object_ids):
            if object_id not in self.store.objects:
                hint = hints[index] if hints and isinstance(hints[index], bytes) else b""
                self.objects.want(object_id, hint)

    def object_lost(self, object_id: bytes):
        self._answer_waiters(self.store.give_up(object_id))

    def _answer_waiters(self, satisfied):
        for waiter, locations in satisfied:
            self.endpoint.reply(waiter.client, P.ObjectsFound(locations), waiter.handle)

    def _copies_evicted(self, object_ids: list):
        """Copies pulled from other nodes were deleted to make room: the directory must stop
        sending pullers here (not a free: the primary copy lives on)."""
        self.endpoint.send(
            self.head_address, P.RemoveObjectLocations(self.node_id, object_ids, False)
        )

    def on_pull_object(self, identity, msg: P.PullObject, seq):
        self.objects.on_pull_object(identity, msg, seq)

    def on_pull_chunk(self, identity, msg: P.PullChunk, seq):
        self.objects.on_pull_chunk(identity, msg, seq)

    def on_pull_stream(self, identity, msg: P.PullStream, seq):
        self.objects.on_pull_stream(identity, msg, seq)

    def on_pull_done(self, identity, msg: P.PullDone, seq):
        self.objects.on_pull_done(identity, msg)

    def on_release_objects(self, identity, msg: P.ReleaseObjects, seq):
        self.store.release(identity, msg.object_ids)

    def on_free_objects(self, identity, msg: P.FreeObjects, seq):
        self.store.free(msg.object_ids)
        if msg.cascade and self.head is None:
            head_resume.note_freed(self, msg.object_ids)  # sent again to a restarted head
        self.endpoint.send(
            self.head_address, P.RemoveObjectLocations(self.node_id, msg.object_ids, msg.cascade)
        )

    def on_kill_worker(self, identity, msg: P.KillWorker, seq):
        self.pool.kill(msg.worker_id)

    def on_log_lines(self, identity, msg: P.LogLines, seq):
        for client_id, client in self.clients.items():
            if client.kind == "driver":
                self._send_to_client(client_id, msg)

    def on_get_memory_report(self, identity, msg: P.GetMemoryReport, seq):
        timeout_s = min(max(msg.timeout_ms, 0), 60_000) / 1000
        self._memory_reports.append(MemoryReportGather(self, identity, seq, timeout_s))

    def on_get_node_stats(self, identity, msg: P.GetNodeStats, seq):
        stats = {
            "store": self.store.stats(),
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

    def on_prepare_bundles(self, identity, msg: P.PrepareBundles, seq):
        try:
            bundles = [(int(index), R.to_units(resources)) for index, resources in msg.bundles]
        except (TypeError, ValueError) as exc:
            logger.warning("bad PrepareBundles: %s", exc)
            bundles = None
        ok = bundles is not None and self.scheduler.prepare_bundles(msg.pg_id, bundles)
        self.resources_dirty = True
        self.endpoint.reply(identity, P.BundlesPrepared(msg.pg_id, msg.attempt, ok), seq)

    def on_commit_bundles(self, identity, msg: P.CommitBundles, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.commit_bundles(msg.pg_id, msg.indices))

    def on_return_bundles(self, identity, msg: P.ReturnBundles, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.return_bundles(msg.pg_id, msg.indices))

    def on_shutdown_node(self, identity, msg: P.ShutdownNode, seq):
        logger.info("shutdown requested: %s", msg.reason)
        self.endpoint.reply(identity, P.Ok(0), seq)
        raise _Stop()

    _handlers = {
        P.RegisterClient: on_register_client,
        P.RequestLease: on_request_lease,
        P.CancelLeaseRequest: on_cancel_lease_request,
        P.ReturnLease: on_return_lease,
        P.NotifyBlocked: on_notify_blocked,
        P.ResizeLease: on_resize_lease,
        P.ClusterLoad: on_cluster_load,
        P.NodeDied: on_node_died,
        P.HolderDied: on_holder_died,
        P.PullObject: on_pull_object,
        P.PullChunk: on_pull_chunk,
        P.PullDone: on_pull_done,
        P.PullStream: on_pull_stream,
        P.CreateObject: on_create_object,
        P.SealObject: on_seal_object,
        P.GetObjects: on_get_objects,
        P.ReleaseObjects: on_release_objects,
        P.FreeObjects: on_free_objects,
        P.KillWorker: on_kill_worker,
        P.LogLines: on_log_lines,
        P.ShutdownNode: on_shutdown_node,
        P.PrepareBundles: on_prepare_bundles,
        P.CommitBundles: on_commit_bundles,
        P.ReturnBundles: on_return_bundles,
        P.GetNodeStats: on_get_node_stats,
        P.GetMemoryReport: on_get_memory_report,
        P.GetStateTable: worker_table.on_get_state_table,
        P.MetricsReport: metrics_hooks.on_metrics_report,
        P.ListLogs: log_files.on_list_logs,
        P.ReadLog: log_files.on_read_log,
    }

    def _flush_locations(self):
        if self.pending_locations:
            pending, self.pending_locations = self.pending_locations, []
            for kind, primary in ((P.AddObjectLocations, True), (P.AddCopyLocations, False)):
                batch = [(oid, size) for oid, size, first in pending if first is primary]
                if batch:
                    ids, sizes = [oid for oid, _ in batch], [size for _, size in batch]
                    self.endpoint.send(self.head_address, kind(self.node_id, ids, sizes))


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
        if log_to_session:
            log = os.open(
                os.path.join(opts.session_dir, "logs", "node.log"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                0o644,
            )
            os.dup2(log, 2)
            os.close(log)
        if ready_stream is not None:
            ready_stream.write(json.dumps(daemon.ready_info()) + "\n")
            ready_stream.flush()
        daemon.run()
    except _Stop:
        pass
    finally:
        daemon.shutdown()
