"""The core worker: the part of zray that lives in every driver and worker process.

It owns the objects this process creates (an in-process memory store for small values, the
node's shared-memory arena for large ones), answers borrowers, submits tasks through the
TaskSubmitter and, in workers, feeds pushed tasks to the executor. One I/O thread reads the
inbox; user threads send directly and wait on the memory store.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import mmap
import os
import threading
import time
import weakref
from collections import deque
from queue import SimpleQueue

import zmq

from zray import exceptions as X
from zray._config import config
from zray._fast import (
    USING_FAST,
    object_size,
    populate,
    write_object,
    object_id_for,
    TASK_ID_SIZE,
)
from zray._private.wire import direct, pacing
from zray._private.core.cancellation import Cancellations
from zray._private.core.borrowed_values import BorrowedValues
from zray._private.core.channel_reading import ChannelReading
from zray._private.core.get_values import GetValues
from zray._private.wire import protocol as P
from zray._private.common import session
from zray._private.core.function_manager import FunctionManager
from zray._private.core import head_reconnect
from zray._private.core.runtime import DRIVER, WORKER  # noqa: F401  (core_worker.WORKER)
from zray._private.core.ownership import Ownership
from zray._private.core.cancelling import Cancelling
from zray._private.core.current_context import CurrentContext
from zray._private.core.task_context import TaskContext
from zray._private.core import metrics_registry
from zray._private.core.memory_store import (
    KIND_ERROR,
    KIND_INLINE,
    KIND_PLASMA,
    Entry,
    MemoryStore,
)
from zray._private.core.push_checks import PushChecker
from zray._private.core.reference_counter import ReferenceCounter, distinct
from zray._private.core.serialization import serialize
from zray._private.core.actor_submitter import ActorSubmitter
from zray._private.core.generators import Streams
from zray._private.core.streaming import Producer
from zray._private.core.task_events import TaskEvents
from zray._private.core.task_submitter import TaskSubmitter
from zray._private.wire.transport import REPLY, Endpoint, Requests, new_context, serve_context
from zray.object_ref import ObjectRef

logger = logging.getLogger(__name__)

MAX_RECONSTRUCTIONS_PER_GET = 1000  # each lost object of a get recomputed once per round

PUT_INDEX_BASE = 100_000_000  # put objects are numbered apart from task returns (as Ray does)
# Populating page tables before a copy pays off between these sizes; above them the compiled
# copy splits across two threads, which take the page faults in parallel and win (see
# zray/_fast/_copy.pxd and perf/bench_fast.py populate).
POPULATE_MIN_BYTES = 8 * 2**20
HOUSEKEEPING_S = 0.005  # unpins, frees, idle-lease returns: batched at most this often
# With no lease, task or queued release, the loop sleeps longer: a pool of idle workers waking
# 200 times a second each took ~10% of two cores from the ones doing work. Releases queued
# meanwhile (a view dying) wait at most this long, except that a put sends them first and a
# worker sends them as soon as its task is done.
IDLE_POLL_S = 0.02
# After this long without any event or pending work the loop dozes: it polls every DOZE_S and
# whoever queues work for it (a ref or handle dropped, a view released) wakes it. A thousand
# idle actors polling every 20 ms took both cores here, so new workers could not register in
# time and the node kept forking replacements.
DOZE_AFTER_S = 1.0
DOZE_S = 2.0
POPULATE_MAX_BYTES = 32 * 2**20


class CoreWorker(ChannelReading, BorrowedValues, GetValues, Ownership, Cancelling, CurrentContext):
    def __init__(
        self,
        mode: str,
        node_address: str,
        job_id: bytes,
        worker_id: bytes,
        session_dir: str,
        creds,
        namespace: str = "",
        node_ip: str = "127.0.0.1",
    ):
        self.mode = mode
        self.worker_id = worker_id
        self.job_id = job_id
        self.namespace = namespace
        self.runtime_env: dict = {}  # the job's env (driver) or this worker's, parsed
        self.node_address = node_address
        self.ctx = new_context()
        self.creds = creds
        serve_context(self.ctx, creds)
        self.endpoint = Endpoint(
            worker_id,
            [
                session.socket_address(
                    session_dir, ("d-" if mode == DRIVER else "w-") + worker_id.hex()[:16]
                ),
                f"tcp://{node_ip}:*",
            ],
            self.ctx,
            creds,
        )
        # Workers take pushed calls from local owners on a Unix socket of their own: set up
        # before the first Hello, which advertises the address.
        self.direct_server = None
        self.push_checker = PushChecker()
        if mode == WORKER and config.direct_calls:
            path = session.socket_address(session_dir, "x-" + worker_id.hex()[:16])
            self.direct_server = direct.Server(path[len("ipc://") :], self.push_checker.problem)
            self.endpoint.address += "|" + self.direct_server.address
        self.address = self.endpoint.address
        self._io_waker = direct.Waker()
        self._reader_waker = direct.Waker()  # for a thread reading in _read_while_blocked
        self.channels = direct.Channels(self._wake_readers)
        self.batcher = pacing.Batcher(self._io_waker.wake)
        self._spin_s = pacing.spin_seconds()
        # Whoever holds this reads the direct connections: the I/O thread, or a thread blocked
        # in get/wait, which then needs no hand-off from the I/O thread (see _read_while_blocked).
        self._channel_reader = threading.Lock()
        self._channel_reader_ident = None
        # The thread handling a burst of answers read together, and the connections its
        # pushes were held on meanwhile (ChannelReading._read_channel).
        self._burst_thread = None
        self._burst_held: list = []
        self._channels_parked = False  # the I/O thread stopped polling them for a reader
        # Connection fds in the I/O thread's poller (that thread alone reads or changes it):
        # a connection can be opened, or end, without ever being polled, so membership in
        # `channels.by_fd` says nothing about the poller.
        self._polled: set[int] = set()
        self._closed_unpolled = False  # a connection ended before the I/O thread polled it
        self.requests = Requests(self.endpoint)
        self.memory_store = MemoryStore()
        self.refs = ReferenceCounter(self.address)
        self.doze_wake = None  # set while the I/O thread dozes (see DOZE_AFTER_S)
        self.functions = FunctionManager(self)
        self.context = TaskContext()
        self.task_queue: SimpleQueue = SimpleQueue()
        self.running = True
        self._put_index = itertools.count(1)
        self._idle_task_id = None  # a worker's task id outside any task (current_task_id)
        # job id -> (namespace, default actor lifetime), in workers
        self._job_infos: dict[bytes, tuple[str, str]] = {}
        self.default_actor_lifetime = "non_detached"  # a driver's, from its JobConfig
        self.job_metadata: dict = {}  # a driver's JobConfig.metadata
        self._pin_releases: deque = deque()
        self._live_views: dict[bytes, weakref.ref] = {}
        self._mapped_at: dict[bytes, tuple] = {}  # arena (offset, size) of pinned objects
        self._init_borrowed_values()
        self._blocked_depth = 0
        self._cancel_handler = None  # the executor's: interrupts a running task (workers)
        self.cancellations = Cancellations()
        self.gpu_ids: list = []  # GPUs of the running task or actor: its CUDA_VISIBLE_DEVICES
        self._inline_runner = None  # set in a worker: runs awaited children while blocked
        # Set in a worker: hands tasks queued behind a blocked one back (worker/hand_back.py).
        self.hand_back = None
        self._log_sink = None
        self._futures_pool = None
        self.driver_task_id = self._driver_task_id(job_id)
        self.task_events = TaskEvents(self)
        self.submitter = None  # needs the node's answer to registration; set below
        self.actor_submitter = None
        self.actor_dispatch = None  # set in an actor worker that runs calls off the main thread
        self.actor_host = None
        self.io_thread = threading.Thread(target=self._io_loop, name="zray-io", daemon=True)
        self.io_thread.start()
        reply, _ = self.requests.call(
            node_address,
            P.RegisterClient(worker_id, mode, os.getpid(), job_id),
            config.rpc_timeout_s,
        )
        if not isinstance(reply, P.ClientRegistered):
            raise X.RaySystemError(f"node refused registration: {reply}")
        self.node_id = reply.node_id
        self.head_address = reply.head_address
        self.head_link = head_reconnect.attach(self)  # a head may restart: find it again
        self.session_dir = reply.session_dir
        self.node_ip = reply.node_ip
        self.arena_fd = os.open(reply.arena_path, os.O_RDWR)
        self.arena = mmap.mmap(self.arena_fd, reply.arena_size)
        # The I/O thread ticks both once `submitter` is set: the other must exist by then.
        self.actor_submitter = ActorSubmitter(self)
        self.streams = Streams(self)  # generator tasks this process submitted
        self.producer = Producer(self)  # generator tasks this process runs
        self.submitter = TaskSubmitter(self)
        # Only for a node that serves metrics: elsewhere nobody would read the reports.
        self.metrics_reporter = metrics_registry.Reporter(self) if reply.metrics else None
        if self.metrics_reporter is not None:
            self.metrics_reporter.start()

    @staticmethod
    def _driver_task_id(job_id: bytes) -> bytes:
        # Ray's driver task id: nil unique part + nil actor part + the job id.
        return b"\x00" + b"\xff" * (TASK_ID_SIZE - 5) + job_id

    # ------------------------------------------------------------------ I/O thread

    def _io_loop(self):
        inbox = self.endpoint.inbox
        poller = zmq.Poller()
        poller.register(inbox, zmq.POLLIN)
        poller.register(self._io_waker.fd, zmq.POLLIN)
        channels = self.channels
        next_housekeeping = 0.0
        last_active = time.monotonic()
        while self.running:
            try:
                dozing = False
                if self._busy():
                    timeout = HOUSEKEEPING_S
                elif time.monotonic() - last_active < DOZE_AFTER_S:
                    timeout = IDLE_POLL_S
                else:
                    # The hook first, then one more look: work queued before it was set is
                    # seen here, work queued after it wakes the poll.
                    self._set_doze_wake(self._io_waker.wake)
                    dozing = True
                    timeout = HOUSEKEEPING_S if self._busy() else DOZE_S
                if self.batcher.holding:
                    timeout = min(timeout, max(0.0, self.batcher.deadline - time.monotonic()))
                # Wake for the next batch even when dozing, at the housekeeping that sends it
                # (polling without a wait until then would spin). A busy loop polls no longer
                # than a housekeeping's interval anyway: not asked there, since it loops per
                # message or two (~0.5 us an async task).
                if timeout > HOUSEKEEPING_S and self.task_events.waiting():
                    due = max(self.task_events.wait_s(), next_housekeeping - time.monotonic())
                    timeout = min(timeout, max(0.0, due))
                events = poller.poll(1000 * timeout)
                if dozing:
                    self._set_doze_wake(None)
                if events:
                    last_active = time.monotonic()
                for source, event in events:
                    if source is inbox:
                        self._read_inbox()
                    elif source == self._io_waker.fd:
                        self._take_up_channels(poller)
                    elif self._channels_parked:
                        pass  # parked in this very batch: the reader has them
                    elif not self._channel_reader.acquire(False):
                        self._park_channels(poller)  # a blocked get reads them: stay out
                    else:
                        try:
                            connection = channels.by_fd.get(source)
                            if connection is None:
                                self._unpoll(poller, source)
                            else:
                                self._serve_channel(poller, connection, event)
                        finally:
                            self._channel_reader.release()
                now = time.monotonic()
                self.batcher.release_due(now)
                if now >= next_housekeeping:  # not after every message: it is on the hot path
                    next_housekeeping = now + HOUSEKEEPING_S
                    self._housekeeping()
                    # Polled again once no get reads them, so results reach callbacks and
                    # futures within a tick even if no thread ever waits for them.
                    self._unpark_channels(poller)
            except zmq.ContextTerminated:
                return
            except Exception:
                if self.running:
                    logger.exception("core worker I/O loop error")

    def _set_doze_wake(self, wake):
        """Lets the producers of the I/O thread's deferred work wake it (None: no need)."""
        self.doze_wake = self.refs.wake = wake

    def _read_inbox(self):
        receive = self.endpoint.receive
        for _ in range(1000):
            received = receive(False)
            if received is False:
                return
            if received is not None:
                identity, msg, seq, flags, payload = received
                self._dispatch(identity, msg, seq, flags, payload)

    def _dispatch(self, identity, msg, seq, flags, payload):
        if flags & REPLY:
            self.requests.deliver(msg, seq, payload)
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            logger.warning("unexpected %s", type(msg).__name__)
        else:
            handler(self, identity, msg, seq, payload)

    def push(self, address: str, msg, payload=(), batch: bool = False):
        """Sends a task or actor call to a worker: directly if it is on this machine, and with
        `batch` (actor calls) possibly held for a batch (pacing.Batcher). Raises
        MessageTooLarge, having sent nothing, for a call its direct connection cannot carry."""
        connection = self.channels.get(address) if config.direct_calls else None
        if connection is not None:
            if batch:
                if self.batcher.send(connection, msg, payload):
                    return
            elif self._burst_thread is not None and self._burst_thread == threading.get_ident():
                # Handling a burst of answers (_read_channel): written when it ends.
                if connection.send(msg, payload=payload, hold=True):
                    self._burst_held.append(connection)
                    return
            elif connection.send(msg, payload=payload):
                return
        self.endpoint.send(address, msg, payload=payload)

    def _send_pin_releases(self):
        """Sends the unpins of dead views (from any thread: each id is popped exactly once)."""
        if not self._pin_releases:
            return  # the usual case, after every call a worker runs
        ids = []
        try:
            while True:
                ids.append(self._pin_releases.popleft())
        except IndexError:
            pass
        if ids:
            self.endpoint.send(self.node_address, P.ReleaseObjects(ids))
            for oid in ids:
                if oid not in self._live_views and oid not in self._pin_releases:
                    self._mapped_at.pop(oid, None)

    def _busy(self) -> bool:
        submitter = self.submitter
        return bool(
            self._pin_releases
            or self.refs._released
            or self._channels_parked
            or self._closed_unpolled
            or (submitter is not None and (submitter.leases or submitter.tasks))
            or (
                self.actor_submitter is not None
                and (self.actor_submitter._released or self.actor_submitter.deferred_deaths)
            )
        )

    def _housekeeping(self):
        self._send_pin_releases()
        self._free_released()
        if self.submitter is not None:
            now = time.monotonic()
            head_reconnect.tick(self, now)
            self.submitter.tick(now)
            self.actor_submitter.tick()
            if self.task_events.enabled and self.task_events.due(now):
                self.task_events.flush()

    def on_task_done(self, identity, msg, seq, payload):
        if msg.lease_id == 0:
            self.actor_submitter.on_task_done(msg, payload)
        else:
            self.submitter.on_task_done(msg, payload)

    def on_worker_died(self, identity, msg, seq, payload):
        self.submitter.on_worker_died(msg)

    def on_tasks_handed_back(self, identity, msg, seq, payload):
        self.submitter.on_handed_back(msg)

    def on_actor_state(self, identity, msg, seq, payload):
        self.actor_submitter.on_state(msg)

    def on_node_died(self, identity, msg, seq, payload):
        self.submitter.on_node_died(msg.address)

    def on_lease_infeasible(self, identity, msg, seq, payload):
        self.submitter.on_infeasible(msg)

    def on_start_actor(self, identity, msg, seq, payload):
        self.queue_task(msg, payload)

    def on_push_task(self, identity, msg, seq, payload):
        if self._accepts(identity, msg, payload):
            self.queue_task(msg, payload)

    def on_push_actor_task(self, identity, msg, seq, payload):
        if not self._accepts(identity, msg, payload):
            return
        dispatch = self.actor_dispatch
        if dispatch is None:
            self.queue_task(msg, payload)
        else:
            dispatch(msg, payload, None)

    def _accepts(self, identity, msg, payload) -> bool:
        """Drops (and counts) a pushed call this worker cannot run (push_checks.py)."""
        problem = self.push_checker.problem(msg, len(payload))
        if problem is not None:
            self.endpoint.drop(identity, problem)
        return problem is None

    def queue_task(self, msg, payload):
        """Hands a task that came over ZeroMQ to the executing thread."""
        self.task_queue.put((msg, payload))
        if self.direct_server is not None:
            self.direct_server.wake()  # it may be waiting on direct connections only

    def on_log_lines(self, identity, msg, seq, payload):
        if self._log_sink is not None:
            self._log_sink(msg)

    def on_generator_item(self, identity, msg, seq, payload):
        self.streams.on_item(msg, payload)

    def on_generator_consumed(self, identity, msg, seq, payload):
        self.producer.on_consumed(msg)

    _handlers = {
        P.TaskDone: on_task_done,
        P.GeneratorItem: on_generator_item,
        P.GeneratorConsumed: on_generator_consumed,
        P.WorkerDied: on_worker_died,
        P.TasksHandedBack: on_tasks_handed_back,
        P.LeaseInfeasible: on_lease_infeasible,
        P.PushTask: on_push_task,
        P.StartActor: on_start_actor,
        P.PushActorTask: on_push_actor_task,
        P.ActorState: on_actor_state,
        P.NodeDied: on_node_died,
        P.CancelTask: Cancelling.on_cancel_task,
        P.GetObjectStatus: Ownership.on_get_object_status,
        P.ReconstructObject: BorrowedValues.on_reconstruct_object,
        P.GetObjectStatuses: BorrowedValues.on_get_object_statuses,
        P.LogLines: on_log_lines,
        P.AddBorrowers: Ownership.on_add_borrowers,
        P.GetRefTable: Ownership.on_get_ref_table,
        P.HolderDied: Ownership.on_holder_died,
        P.RemoveBorrowers: Ownership.on_remove_borrowers,
    }

    # ------------------------------------------------------------------ put

    def put(self, value, _owner=None) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, "
                "you can wrap the ObjectRef in a list and call 'put' on it."
            )
        object_id = object_id_for(self.current_task_id(), PUT_INDEX_BASE + next(self._put_index))
        meta, buffers, contained = serialize(value)
        self._free_released()  # a loop of put/del reuses warm memory only if frees come first
        self.refs.add_owned(object_id, distinct(contained))
        self.memory_store.put(object_id, self.store_value(object_id, meta, buffers, kept=True))
        return ObjectRef(object_id, self.address)

    def promise(self):
        """An object this process owns whose value comes later, from any thread: returns
        (ref, fulfil(value, error=False)). pg.ready() is one."""
        object_id = object_id_for(self.current_task_id(), PUT_INDEX_BASE + next(self._put_index))
        self.refs.add_owned(object_id)

        def fulfil(value, error: bool = False):
            meta, buffers, contained = serialize(value)
            if contained:  # held for as long as the value is (a dynamic generator's refs)
                self.refs.add_owned(object_id, distinct(contained))
            self.memory_store.put(
                object_id,
                Entry(KIND_ERROR if error else KIND_INLINE, [meta] + [bytes(b) for b in buffers]),
            )

        return ObjectRef(object_id, self.address), fulfil

    def store_value(
        self,
        object_id: bytes,
        meta: bytes,
        buffers: list,
        error=False,
        inline_limit: int | None = None,
        owner_address: str = "",
        kept: bool = False,
    ) -> Entry:
        """Places a serialized value: inline if small (copied, since the caller's buffers may
        change after put), otherwise in this node's arena. Returns the memory store entry.
        `owner_address`: whose object it is (a task's caller for its returns; default: this
        process); the node frees it when that process dies, and only then. `kept`: this
        process may get it soon (a put): it keeps a pin on it, released with the dead views'
        at the next housekeeping, and a get before that maps it without asking the node."""
        size = object_size(len(meta), [b.nbytes for b in buffers])
        limit = config.max_inline_bytes if inline_limit is None else inline_limit
        if error or size <= limit:
            frames = [meta] + [bytes(b) for b in buffers]
            return Entry(KIND_ERROR if error else KIND_INLINE, frames, b"", size)
        # Views dropped just before this put free their room first (same channel, so in order).
        self._send_pin_releases()
        reply, _ = self.requests.call(
            self.node_address,
            P.CreateObject(object_id, size, owner_address or self.address),
            config.rpc_timeout_s,
        )
        if isinstance(reply, P.Error):
            if reply.kind == "ObjectExists":
                # Sealed here by an earlier attempt of this task (a retried task, or a
                # generator re-yielding after its worker died): ids are per position, so
                # the value is that one.
                return Entry(KIND_PLASMA, (), self.node_id, size)
            cls = getattr(X, reply.kind, X.RaySystemError)
            raise cls(reply.message)
        self._write_object(reply.offset, reply.warm_upto, size, meta, buffers)
        self.endpoint.send(self.node_address, P.SealObject(object_id, kept))
        if kept:  # as a view that just died: its release waits, a get takes it back (_revive)
            self._mapped_at[object_id] = (reply.offset, size)
            self._pin_releases.append(object_id)
            wake = self.doze_wake
            if wake is not None:  # a dozing I/O thread would hold the pin for seconds
                wake()
        return Entry(KIND_PLASMA, (), self.node_id, size)

    def store_in_arena(self, items: list, owner_address: str) -> list:
        """Places many serialized values, each (object_id, meta, buffers, size), in this node's
        arena with one CreateObjects and one SealObjects: a task's 3,000 returns cost one
        round trip instead of 3,000. Returns per value its memory store entry, or the
        exception that refused it."""
        self._send_pin_releases()
        reply, _ = self.requests.call(
            self.node_address,
            P.CreateObjects(
                [item[0] for item in items], [item[3] for item in items], owner_address
            ),
            config.rpc_timeout_s,
        )
        if isinstance(reply, P.Error):
            raise getattr(X, reply.kind, X.RaySystemError)(reply.message)
        out: list = []
        sealed = []
        for (object_id, meta, buffers, size), offset, error in zip(
            items, reply.offsets, reply.errors
        ):
            if error is not None:
                kind, message = error
                if kind == "ObjectExists":  # sealed by an earlier attempt (see store_value)
                    out.append(Entry(KIND_PLASMA, (), self.node_id, size))
                else:
                    out.append(getattr(X, kind, X.RaySystemError)(message))
                continue
            self._write_object(offset, reply.warm_upto, size, meta, buffers)
            sealed.append(object_id)
            out.append(Entry(KIND_PLASMA, (), self.node_id, size))
        if sealed:
            self.endpoint.send(self.node_address, P.SealObjects(sealed))
        return out

    def _write_object(self, offset: int, warm_upto: int, size: int, meta: bytes, buffers):
        end = offset + size
        if warm_upto < end and size >= POPULATE_MIN_BYTES:
            start = max(offset, warm_upto)
            if USING_FAST and size >= POPULATE_MAX_BYTES:  # two threads allocate the pages
                populate(self.arena, start, end - start)
            else:
                os.posix_fallocate(self.arena_fd, start, end - start)  # ~4x faster than faulting
        if POPULATE_MIN_BYTES <= size and (size < POPULATE_MAX_BYTES or not USING_FAST):
            populate(self.arena, offset, size)
        write_object(self.arena, offset, meta, buffers)

    # ------------------------------------------------------------------ get / wait

    def get(self, refs: list, timeout: float | None):
        self.batcher.release()  # the calls this get may wait for must be on their way
        if self._burst_held:
            self._release_burst()
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in range(MAX_RECONSTRUCTIONS_PER_GET):
            try:
                return self._get(refs, timeout, deadline)
            except X.ObjectLostError as lost:
                if type(lost) is not X.ObjectLostError:
                    raise  # the owner died, or recomputing failed: final
                object_id = bytes.fromhex(lost.object_ref_hex)
                if self.refs.owns(object_id):
                    if not self.submitter.reconstruct(object_id):
                        raise
                else:  # borrowed: its owner recomputes it (borrowed_values.py)
                    owner = next(ref._owner for ref in refs if ref._id == object_id)
                    self.reconstruct_borrowed(object_id, owner, lost)
        raise X.ObjectLostError(refs[0].hex(), None, "")

    def wait(
        self,
        refs: list,
        num_returns: int,
        timeout: float | None,
        fetch_local: bool,
        all_here: bool = False,
    ):
        """`all_here`: the caller saw every ref's value in the memory store (scan_refs)."""
        self.batcher.release()
        if self._burst_held:
            self._release_burst()
        if all_here and not (fetch_local and self._copies_elsewhere()):
            return list(refs[:num_returns]), list(refs[num_returns:])
        deadline = None if timeout is None else time.monotonic() + timeout
        self._request_missing(refs)
        ids = [ref._id for ref in refs]
        if self._inline_runner is not None and timeout is None:
            self._inline_runner.run_awaited(ids, num_returns)
        ready_ids = set(
            self.memory_store.wait(
                ids, num_returns, deadline, self._on_block, self._read_while_blocked
            )
        )
        if fetch_local:
            ready_ids = self._fetch_here(ready_ids, num_returns, deadline)
        if len(ready_ids) == len(refs) and num_returns >= len(refs):
            return list(refs), []  # everything is ready: the common case, kept cheap
        ready, not_ready = [], []
        for ref in refs:
            if ref._id in ready_ids and len(ready) < num_returns:
                ready.append(ref)
            else:
                not_ready.append(ref)
        return ready, not_ready

    def _copies_elsewhere(self) -> bool:
        """Whether any value we know of is in another node's shared memory only."""
        here_id = self.node_id
        return any(node != here_id for node in self.memory_store.plasma_per_node)

    def _fetch_here(self, ready_ids: set, num_returns: int, deadline) -> set:
        """wait(fetch_local=True): objects in shared memory on other nodes count as ready
        once they are on this one. Pulls all of them; waits only if fewer than
        `num_returns` are here already."""
        here_id = self.node_id
        if not self._copies_elsewhere():
            return ready_ids  # every copy we know of is on this node
        remote = []
        entries = self.memory_store._entries
        for oid in ready_ids:
            entry = entries.get(oid)
            if entry is not None and entry.kind == KIND_PLASMA and entry.node_id != here_id:
                remote.append(oid)
        if not remote:
            return ready_ids
        here = ready_ids.difference(remote)
        hints = [self.memory_store.get(oid).node_id for oid in remote]
        if len(here) >= num_returns or deadline is not None and time.monotonic() >= deadline:
            self.requests.send(
                self.node_address,
                P.GetObjects(remote, config.rpc_timeout_s, hints),
                lambda reply, _: self._unpin_fetched(remote, reply),
            )
            return here
        timeout = config.rpc_timeout_s if deadline is None else deadline - time.monotonic()
        reply, _ = self.requests.call(
            self.node_address, P.GetObjects(remote, timeout, hints), timeout + config.rpc_timeout_s
        )
        return here.union(self._unpin_fetched(remote, reply))

    def _unpin_fetched(self, object_ids: list, reply) -> list:
        """GetObjects pinned what it found; a wait only wanted it here, not mapped."""
        found = [
            oid
            for oid, location in zip(object_ids, getattr(reply, "offsets", ()))
            if location is not None
        ]
        if found:
            self.endpoint.send(self.node_address, P.ReleaseObjects(found))
        return found

    def _on_block(self, blocked: bool):
        if self.mode != WORKER or self.context.task_id is None:
            return
        if blocked and self.hand_back is not None and self.hand_back.applies():
            self.hand_back.serve()
        self.endpoint.send(self.node_address, P.NotifyBlocked(blocked))

    def future_for(self, ref: ObjectRef) -> concurrent.futures.Future:
        future = concurrent.futures.Future()
        if self._futures_pool is None:
            self._futures_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="zray-future"
            )
        pool = self._futures_pool

        def resolve():
            try:
                future.set_result(self.get([ref], None)[0])
            except BaseException as exc:  # the future carries whatever get raises
                future.set_exception(exc)

        self._request_missing([ref])
        self.memory_store.on_ready(ref._id, lambda *_: pool.submit(resolve))
        return future

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, linger_ms: int = 0):
        if not self.running:
            return
        if self.task_events.enabled:
            self.task_events.flush(final=True)  # what this process ran must not be lost
        self.submitter.shutdown()
        self.running = False
        if threading.current_thread() is not self.io_thread:
            self.io_thread.join(timeout=2)
        if self._futures_pool is not None:
            self._futures_pool.shutdown(wait=False, cancel_futures=True)
        if self._pin_releases:
            self.endpoint.send(self.node_address, P.ReleaseObjects(list(self._pin_releases)))
        if self.metrics_reporter is not None:
            self.metrics_reporter.close()  # its last report, before the endpoint closes
        self.endpoint.close(linger_ms)
        self.ctx.term()
        self.channels.close()
        self._io_waker.close()
        self._reader_waker.close()
        if self.direct_server is not None:
            self.direct_server.close()
        if getattr(self, "arena_fd", None) is not None:
            os.close(self.arena_fd)
            self.arena_fd = None
