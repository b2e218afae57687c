"""Owner-side task submission: dependency resolution, worker leases, direct pushes, retries.

Tasks are grouped by resource shape. For each shape the submitter asks the local node for worker
leases (as many as there are queued tasks, bounded), pushes tasks straight to leased workers,
reuses a lease for the next queued task of the same shape, and returns it after it has been idle
for `lease_idle_s` (so a loop of synchronous calls pays one round trip per task, not two).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from zray import exceptions as X
from zray._config import config
from zray._fast import (
    TASK_ID_SIZE,
    MessageTooLarge,
    Shared,
    TaskSpec,
    note_pushed,
    record_finished,
)
from zray._private.wire import protocol as P
from zray._private.common import runtime_env as RE
from zray._private.common import resources as R
from zray._private.common import task_states as TS
from zray._private.core.dependencies import (
    borrowed_by_call,
    error_entry,
    returned_entries,
    should_retry_exception,
    store_results,
    too_large_error,
    when_resolved,
)
from zray._private.core import metrics_registry
from zray._private.core import lineage_pins
from zray._private.core.lineage import Lineage
from zray._private.core.task_events import now
from zray._private.core import lost_arguments
from zray._private.core.task_pipelining import Pipelining
from zray._private.core.task_submission_events import TaskSubmissionEvents
from zray._private.core.memory_store import KIND_ERROR, KIND_PLASMA, Entry

logger = logging.getLogger(__name__)

MAX_RECONSTRUCTION_DEPTH = 1000  # a chain of lost outputs recomputed, argument first
LOCALITY_MIN_BYTES = 1 * 2**20  # smaller arguments are cheaper to move than to wait for


@dataclass(eq=False)
class LeaseState:
    lease_id: int
    key: tuple
    worker_id: bytes
    address: str
    node_address: str
    inflight: dict = field(default_factory=dict)
    idle_since: float = 0.0
    single_use: bool = False  # SPREAD: one task per lease, or reuse would pile them on one node
    used: bool = False
    gpu_ids: list = field(default_factory=list)
    node_id: bytes = b""
    busy_since: float = 0.0  # when its worker could start the oldest task in flight
    handed_back: bool = False  # its worker handed tasks back: none queue there until idle
    where: Shared | tuple = ()  # Shared((node id, worker id)): task events' lease


@dataclass(eq=False)
class ShapeQueue:
    tasks: deque = field(default_factory=deque)
    leases: dict = field(default_factory=dict)
    pending_requests: dict = field(default_factory=dict)  # request id -> node address asked


def _unrecoverable(object_id: bytes, cause: X.ObjectLostError) -> X.ObjectLostError:
    """The error for `object_id`, which needed an argument that cannot be made again."""
    reason = getattr(cause, "reason", None)
    if reason:
        return X.ObjectReconstructionFailedError(object_id.hex(), reason)
    return X.ObjectLostError(object_id.hex(), None, "")


class TaskSubmitter(TaskSubmissionEvents):
    def __init__(self, core):
        self.core = core
        self.lock = threading.RLock()
        self.shapes: dict[tuple, ShapeQueue] = {}
        self.tasks: dict[bytes, TaskSpec] = {}
        self.leases: dict[int, LeaseState] = {}
        self._request_ids = itertools.count(1)
        self._warned_infeasible: set = set()
        self.lineage = Lineage(config.max_lineage_bytes, config.enable_object_reconstruction)
        # Task events' hot path: one append per event (task_events.py).
        self._record = core.task_events.record
        # The submission events' descriptions, one tuple per kind of task submitted (function,
        # name, parent, shape), holding no dict: a dict in each event's description kept
        # every event tracked by the garbage collector until its batch left, and the driver's
        # full collections walked them (async tasks: 4.3 against 0.8 us of collector time per
        # task). Shared, a batch sends each once (task_events.py, EventStream).
        self._descriptions: dict = {}
        self._describe = self._description  # bound once: a push may need it
        self.pipelining = Pipelining(config.task_pipeline_depth)
        self.handed_back = 0  # tasks workers handed back unstarted (stats)

    # ------------------------------------------------------------------ submission

    def submit(self, spec: TaskSpec):
        core = self.core
        for oid in spec.return_ids:
            core.refs.add_owned(oid)
        if spec.top_refs or spec.nested:
            core.refs.pin(spec.pinned_ids)
        core.note_submitted(spec.task_id)
        # With its arguments ready, its spec stamped the submission: its end reports it with
        # itself (one event per task instead of three, which cut the driver's CPU per async
        # task with events on by ~8 us), or a flush while it is on its way (report_in_flight).
        if spec.events and spec.top_refs:
            self._record_submitted(spec)
        if not spec.top_refs:
            # Nothing to wait for (most calls): queued at once, under one taking of the lock.
            if spec.nested:
                spec.borrowed = list(spec.nested)
            with self.lock:
                self.tasks[spec.task_id] = spec
                self._queue(spec)
            return
        with self.lock:
            self.tasks[spec.task_id] = spec
        when_resolved(core, spec.top_refs, lambda *r: self._enqueue(spec, *r))

    def _enqueue(self, spec: TaskSpec, resolved, frames, failed_entry):
        """Arguments are ready: queue the task for a lease (or fail it with its argument's
        error, which propagates without running it)."""
        if failed_entry is not None:
            self._finish_with_entry(spec, failed_entry)
            return
        spec.resolved, spec.resolved_frames = resolved, frames
        spec.borrowed = borrowed_by_call(self.core, spec.top_refs, spec.nested)
        with self.lock:
            self._queue(spec)

    def _queue(self, spec: TaskSpec):
        """Queues a task whose arguments are ready (lock held)."""
        if spec.cancelled:
            return
        spec.state = "queued"
        if spec.events and spec.top_refs:  # else recorded with the submission
            self._record(
                (spec.task_id, spec.event_attempt, TS.PENDING_NODE_ASSIGNMENT, now(), None)
            )
        shape = self.shapes.get(spec.key)
        if shape is None:
            shape = self.shapes[spec.key] = ShapeQueue()
        shape.tasks.append(spec)
        self._pump(spec.key, shape)

    # ------------------------------------------------------------------ leases

    def _pump(self, key: tuple, shape: ShapeQueue):
        """Pushes queued tasks onto free lease slots, then asks for more leases if needed.
        Called with the lock held."""
        tasks = shape.tasks
        if tasks:
            leases = shape.leases.values()
            for lease in leases:  # idle workers first
                if not tasks:
                    break
                if not lease.inflight and not (lease.single_use and lease.used):
                    self._push(lease, tasks.popleft())
            queued = True
            while tasks and queued:  # then queue behind running ones, round robin
                queued = False
                for lease in leases:
                    if tasks and lease.inflight and self._may_queue(lease, tasks[0]):
                        self._push(lease, tasks.popleft())
                        queued = True
                if not tasks:
                    break
        want = min(len(tasks), config.max_pending_lease_requests)
        while len(shape.pending_requests) < want:
            request_id = next(self._request_ids)
            shape.pending_requests[request_id] = self.core.node_address
            head = tasks[len(shape.pending_requests) - 1]
            self._request_lease(
                key,
                request_id,
                P.RequestLease(
                    request_id,
                    head.resources,
                    head.task_id[-4:],
                    head.strategy,
                    False,
                    self._preferred_node(head),
                    False,
                    head.runtime_env,
                ),
                self.core.node_address,
            )

    def _may_queue(self, lease: LeaseState, spec: TaskSpec) -> bool:
        """Whether `spec` may queue on the lease's worker behind its tasks in flight
        (task_pipelining.py): only over a direct connection, whose reader hands the queue
        back if the running task blocks (over ZeroMQ it could not)."""
        return (
            not lease.handed_back
            and not lease.single_use
            and self.pipelining.may_queue(spec, lease.inflight.values())
            and config.direct_calls
            and self.core.channels.get(lease.address) is not None
        )

    def take_inline(self, object_id: bytes, capacity: dict) -> TaskSpec | None:
        """The queued task that returns `object_id`, taken off its queue so that this process,
        blocked in get on it, runs it on its own thread instead of waiting for a lease; None if
        it is not ours, not queued, or may not run here: only the default strategy (SPREAD and
        node affinity choose a node) with its arguments at hand (not on another node), and
        only if its resources fit in `capacity`, what the blocked task's lease holds (units)."""
        spec = self.tasks.get(object_id[:TASK_ID_SIZE])
        if spec is None or spec.state != "queued":
            return None
        with self.lock:
            if (
                spec.state != "queued"
                or spec.cancelled
                or spec.strategy != "DEFAULT"
                or spec.num_returns < 0
            ):  # a stream's items go to its owner's inbox
                return None
            if spec.runtime_env != RE.dumps(self.core.runtime_env):
                return None  # this process is not set up for the child's env
            resources = spec.key[:-2] if spec.runtime_env else spec.key[:-1]
            if not R.fits(dict(resources), capacity) or self._preferred_node(spec):
                return None
            shape = self.shapes.get(spec.key)
            if shape is None:
                return None
            tasks = shape.tasks
            if tasks and tasks[-1] is spec:  # the usual case: the latest submission
                tasks.pop()
            else:
                try:
                    tasks.remove(spec)
                except ValueError:
                    return None
            spec.state, spec.lease_id, spec.inline = "running", 0, True
            self._cancel_surplus_requests(shape)
            if spec.events:
                self._report_sending(spec)
                self.core.task_events.state(
                    spec.task_id,
                    spec.event_attempt,
                    TS.SUBMITTED_TO_WORKER,
                    [self.core.node_id, self.core.worker_id],
                )
        return spec

    def _cancel_surplus_requests(self, shape: ShapeQueue):
        """Lease requests beyond the queued tasks would be granted a worker with nothing to run
        (kept idle for lease_idle_s, a CPU lost to the node meanwhile): withdraw the newest.
        A grant already on its way is handed back on arrival (_on_lease_reply)."""
        surplus = len(shape.pending_requests) - len(shape.tasks)
        for request_id in list(shape.pending_requests)[::-1][: max(0, surplus)]:
            node_address = shape.pending_requests.pop(request_id)
            self.core.endpoint.send(node_address, P.CancelLeaseRequest(request_id))

    def inline_message(self, spec: TaskSpec) -> tuple:
        """The PushTask (and its payload) a leased worker would receive for `spec`, for its
        owner to run it itself; the owner registers itself for the refs the call borrows, as
        it would register the worker, so the executor's bookkeeping stays the same."""
        if spec.borrowed:
            self.core.register_borrower(self.core.address, spec.borrowed)
        msg = P.PushTask(
            spec.task_id,
            spec.function_id,
            spec.name,
            spec.num_returns,
            self.core.address,
            0,
            len(spec.frames) - 1,
            spec.resolved,
            spec.borrowed,
            spec.resources,
            list(self.core.gpu_ids) if spec.resources.get("GPU") else [],
            spec.placement_group,
            spec.generator_backpressure,
            spec.event_attempt,
        )
        return msg, spec.payload

    def inline_failed(self, spec: TaskSpec, error: BaseException):
        """An inline run ended without an answer (its owner's own task was cancelled under
        it): the task ends with `error`, as a child of a cancelled task does in Ray."""
        if spec.borrowed:
            self.core.unregister_borrower(self.core.address, spec.borrowed)
        self._finish_with_error(spec, error)

    def _request_lease(self, key: tuple, request_id: int, msg: P.RequestLease, node_address: str):
        self.core.requests.send(
            node_address,
            msg,
            lambda reply, payload: self._on_lease_reply(key, request_id, reply, msg, node_address),
        )

    def _preferred_node(self, spec: TaskSpec) -> bytes:
        """The node holding most of the task's argument bytes, when they are worth moving the
        task for (b"" when that node is ours, or the arguments are small)."""
        by_node: dict = {}
        for object_id, kind, nframes, node_id, size in spec.resolved:
            if node_id:
                by_node[node_id] = by_node.get(node_id, 0) + size
        if not by_node:
            return b""
        best = max(by_node, key=by_node.get)
        if best == self.core.node_id or by_node[best] < LOCALITY_MIN_BYTES:
            return b""
        return best

    def _push(self, lease: LeaseState, spec: TaskSpec):
        spec.state = "running"
        spec.lease_id = lease.lease_id
        spec.inline = False
        lease.used = True
        if not lease.inflight:
            lease.busy_since = time.monotonic()
        lease.inflight[spec.task_id] = spec
        if spec.borrowed:
            self.core.register_borrower(lease.address, spec.borrowed)
        msg = P.PushTask(
            spec.task_id,
            spec.function_id,
            spec.name,
            spec.num_returns,
            self.core.address,
            lease.lease_id,
            len(spec.frames) - 1,
            spec.resolved,
            spec.borrowed,
            spec.resources,
            lease.gpu_ids,
            spec.placement_group,
            spec.generator_backpressure,
            spec.event_attempt,
        )
        try:
            self.core.push(lease.address, msg, payload=spec.payload)
        except MessageTooLarge as exc:  # never sent: the lease is free for the next task
            del lease.inflight[spec.task_id]
            if spec.borrowed:
                self.core.unregister_borrower(lease.address, spec.borrowed)
            self._finish_with_error(spec, too_large_error(exc))
            return
        # After the push: off a sync call's round trip (its caller would spin meanwhile),
        # and before its answer is handled, which waits for the lock held here (_answered).
        if spec.events and not note_pushed(spec, lease.where, self._descriptions, self._describe):
            self._pushed_reported(spec, lease.where)

    def _on_lease_reply(
        self, key: tuple, request_id: int, reply, request: P.RequestLease, node_address: str
    ):
        if isinstance(reply, P.LeaseSpillback):
            # Another node can run it now: ask there, where it runs or queues (never re-spills).
            with self.lock:
                shape = self.shapes.get(key)
                if shape is None or request_id not in shape.pending_requests:
                    return
                shape.pending_requests[request_id] = reply.address
            self._request_lease(key, request_id, request._replace(spilled=True), reply.address)
            return
        with self.lock:
            shape = self.shapes.get(key)
            if shape is not None:
                if shape.pending_requests.pop(request_id, None) is None:
                    # Given up on (its node died): hand the lease straight back.
                    if isinstance(reply, P.LeaseGranted):
                        self.core.endpoint.send(node_address, P.ReturnLease(reply.lease_id, False))
                    return
            if isinstance(reply, P.Error):
                self._fail_queued(
                    shape,
                    X.RuntimeEnvSetupError(reply.message)
                    if reply.kind == "RuntimeEnvSetupError"
                    else X.RaySystemError(f"lease request failed: {reply.message}"),
                )
                return
            lease = LeaseState(
                reply.lease_id,
                key,
                reply.worker_id,
                reply.worker_address,
                node_address,
                single_use=request.strategy == "SPREAD",
                gpu_ids=reply.gpu_ids,
                node_id=reply.node_id,
                where=Shared((reply.node_id, reply.worker_id)),
            )
            lease.idle_since = time.monotonic()
            self.leases[lease.lease_id] = lease
            if shape is None:
                shape = self.shapes[key] = ShapeQueue()
            shape.leases[lease.lease_id] = lease
            self._pump(key, shape)

    def on_infeasible(self, msg: P.LeaseInfeasible):
        key = tuple(sorted(msg.resources.items()))
        if key in self._warned_infeasible:
            return
        self._warned_infeasible.add(key)
        logger.warning(
            "The task cannot be scheduled right now: it requires %s but the cluster has %s in "
            "total. It will wait until a node with enough resources joins.",
            msg.resources,
            msg.total,
        )

    def tick(self, now: float):
        """Returns leases idle for longer than lease_idle_s (runs in the I/O thread)."""
        if not self.leases:
            return
        idle_s = config.lease_idle_s
        with self.lock:
            for lease in list(self.leases.values()):
                if not lease.inflight and now - lease.idle_since >= idle_s:
                    self._return_lease(lease)

    def _return_lease(self, lease: LeaseState, kill_worker: bool = False):
        self.leases.pop(lease.lease_id, None)
        shape = self.shapes.get(lease.key)
        if shape is not None:
            shape.leases.pop(lease.lease_id, None)
        self.core.endpoint.send(lease.node_address, P.ReturnLease(lease.lease_id, kill_worker))

    # ------------------------------------------------------------------ completion

    def on_task_done(self, msg: P.TaskDone, payload):
        lease, spec = self._answered(msg.lease_id, msg.task_id)
        if spec is None:
            return
        entries = returned_entries(msg.returns, payload)
        lost = lost_arguments.lost_argument(self, spec, entries)
        if lost is not None:
            lost_arguments.rerun(self, spec, lost)
        elif (
            spec.retry_exceptions
            and entries
            and entries[0][1].kind == KIND_ERROR
            and spec.attempt < spec.max_retries
            and not spec.cancelled
            and should_retry_exception(spec.retry_exceptions, entries[0][1])
        ):
            self._retry(spec, entries[0][1])
        else:
            self._finish(spec, entries, msg.contained)
        self._next_on(lease)

    def _answered(self, lease_id: int, task_id: bytes):
        """(lease, spec) of an answered task, no longer in flight (plain_calls.py too)."""
        with self.lock:
            lease = self.leases.get(lease_id)
            spec = lease.inflight.pop(task_id, None) if lease else None
            if spec is None:
                spec = self.tasks.get(task_id)
            if lease is not None:
                now = time.monotonic()
                if spec is not None:
                    self.pipelining.finished(spec.function_id, now - lease.busy_since)
                lease.idle_since = lease.busy_since = now
                if not lease.inflight:
                    lease.handed_back = False
        return lease, spec

    def _next_on(self, lease):
        """Pushes what waits for a lease one of whose tasks just ended."""
        if lease is None or not (lease.single_use or self.shapes[lease.key].tasks):
            # Nothing queued for the lease (the sync pattern): a task queued from now on
            # finds the lease free by itself, as its inflight entry is gone.
            return
        with self.lock:
            if lease.lease_id in self.leases:
                if lease.single_use:
                    self._return_lease(lease)
                self._pump(lease.key, self.shapes[lease.key])

    def _retry(self, spec: TaskSpec, error=None, count: bool = True):
        """Queues `spec` again. `error` (an error entry or an exception) ended its last
        attempt; None for tasks handed back unstarted. `count`: it may have run, so this is
        one of its retries."""
        if spec.events:
            self._report_sending(spec)  # before its end, or before it is queued again
            if error is not None:
                self.core.task_events.ended(spec.task_id, spec.event_attempt, error)
                spec.event_attempt += 1
        if count:
            spec.attempt += 1
            logger.info(
                "retrying task %s (attempt %d of %d)", spec.name, spec.attempt, spec.max_retries
            )
        with self.lock:
            spec.state, spec.inline = "queued", False
            if spec.events:
                self.core.task_events.state(
                    spec.task_id, spec.event_attempt, TS.PENDING_NODE_ASSIGNMENT
                )
            shape = self.shapes.setdefault(spec.key, ShapeQueue())
            shape.tasks.append(spec)
            self._pump(spec.key, shape)

    def _finish(self, spec: TaskSpec, entries, contained=None):
        with self.lock:
            if spec.state == "done":
                return
            spec.state = "done"
            self.tasks.pop(spec.task_id, None)
        failed = False
        for _, entry in entries or ():  # a loop: a generator expression costs ~1 us more
            if entry.kind == KIND_ERROR:
                failed = True
                break
        metrics_registry.tasks.finished(spec.name, failed, spec.attempt > 0)
        if spec.num_returns > 0 and entries and not failed:
            if self.lineage.keep(spec, entries):  # before store_results may free unwanted ones
                lineage_pins.pin_arguments(self.core, spec)  # before they are unpinned
                lineage_pins.release(self.core, ())  # what keeping it evicted
        pinned = [] if spec.args_released else spec.pinned_ids
        spec.args_released = True
        store_results(self.core, entries, pinned, contained)
        # After the results: a get waiting for them need not wait for this. The usual end
        # only stamps and records the event built at its push (compiled: a sync call waits).
        if spec.events and (failed or not record_finished(spec, self._record)):
            self._record_end(spec, entries[0][1] if entries else None)  # an error is every return's

    # ------------------------------------------------------------------ reconstruction

    def reconstruct(self, object_id: bytes, depth: int = 0) -> bool:
        """Runs again the task that made `object_id`, whose every copy was lost, after its
        lost arguments; False when it is not ours to recompute (a put, max_retries=0)."""
        spec = self.lineage.spec_for(object_id)
        if spec is None:
            return False
        if not isinstance(spec, TaskSpec):  # an actor call's output (actor_submitter.py)
            return self.core.actor_submitter.reconstruct(
                spec, object_id, lambda: self._reconstruct_lost_arguments(spec, depth)
            )
        with self.lock:
            if spec.state != "done":
                return True  # already being recomputed: the caller waits for it
            if spec.max_retries != -1 and spec.reconstructions >= spec.max_retries:
                raise X.ObjectReconstructionFailedError(
                    object_id.hex(), "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED"
                )
            spec.reconstructions += 1
            spec.state, spec.cancelled = "resolving", False
            self.tasks[spec.task_id] = spec
        refs = self.core.refs
        # Held until it is done again: arguments freed since (their lineage kept) are made
        # again for it, and must not be freed before it ran.
        refs.pin(spec.pinned_ids)
        spec.args_released = False
        for oid in spec.return_ids:
            refs.add_owned(oid)  # an output freed since (an argument of another) is ours again
        self.core.revive_objects(spec.return_ids)
        if spec.events:
            self._report_sending(spec)
            spec.event_attempt += 1  # a run again is one more attempt, as Ray numbers them
            self._record_submitted(spec, TS.PENDING_NODE_ASSIGNMENT if not spec.top_refs else 0)
        logger.info(
            "recomputing %s: an output of it was lost (reconstruction %d)",
            spec.name,
            spec.reconstructions,
        )
        for oid in spec.return_ids:
            self.core.memory_store.delete(oid)  # gets wait for the new copies
        try:
            self._reconstruct_lost_arguments(spec, depth)
        except X.ObjectLostError as exc:
            # An argument cannot be made again (its lineage was evicted, ...): neither can
            # this, for the same reason, which its gets raise.
            error = _unrecoverable(object_id, exc)
            self._finish_with_error(spec, error)
            if depth:
                raise error from None
            return True
        when_resolved(self.core, spec.top_refs, lambda *r: self._enqueue(spec, *r))
        return True

    def _reconstruct_lost_arguments(self, spec, depth: int):
        for ref in spec.top_refs:
            if depth >= MAX_RECONSTRUCTION_DEPTH:
                return
            if self._freed(ref._id):
                if not self.reconstruct(ref._id, depth + 1):  # a put: no lineage
                    raise X.ObjectLostError(ref._id.hex(), None, "")
            elif self._lost(ref._id):
                self.reconstruct(ref._id, depth + 1)

    def _freed(self, object_id: bytes) -> bool:
        """An argument of ours whose value was freed (nothing held it) while kept lineage
        still uses it (lineage_pins.py)."""
        refs = self.core.refs
        return refs.lineage_held(object_id) and not refs.owns(object_id)

    def _lost(self, object_id: bytes) -> bool:
        """Whether an argument we own in shared memory has no copy left anywhere."""
        entry = self.core.memory_store.get(object_id)
        if entry is None or entry.kind != KIND_PLASMA or not self.core.refs.owns(object_id):
            return False
        try:
            reply, _ = self.core.requests.call(
                self.core.head_address, P.SubscribeObjectLocation(object_id, entry.node_id), 2.0
            )
        except TimeoutError:
            return False  # its first copy is on its way: not lost
        return isinstance(reply, P.ObjectLocation) and not reply.node_ids

    def _finish_with_entry(self, spec: TaskSpec, entry: Entry):
        self._finish(spec, [(oid, entry) for oid in spec.return_ids])

    def _finish_with_error(self, spec: TaskSpec, error: BaseException):
        self._finish_with_entry(spec, error_entry(error))

    def _fail_queued(self, shape, error):
        if shape is None:
            return
        while shape.tasks:
            self._finish_with_error(shape.tasks.popleft(), error)

    # ------------------------------------------------------------------ failures

    def on_worker_died(self, msg: P.WorkerDied):
        with self.lock:
            lease = self.leases.pop(msg.lease_id, None)
            if lease is None:
                return
            shape = self.shapes.get(lease.key)
            if shape is not None:
                shape.leases.pop(lease.lease_id, None)
            inflight = list(lease.inflight.values())
            lease.inflight.clear()
        for position, spec in enumerate(inflight):
            if spec.borrowed:
                self.core.unregister_borrower(lease.address, spec.borrowed)
            if spec.cancelled:
                self._finish_with_error(spec, X.TaskCancelledError(spec.task_id.hex()))
            elif position > 0:
                # Queued behind the oldest (pipelined): it never started, so the worker's
                # death costs it no retry.
                self._retry(spec, count=False)
            elif spec.attempt < spec.max_retries or spec.max_retries < 0:
                self._retry(
                    spec,
                    X.WorkerCrashedError(
                        f"The worker died unexpectedly while executing task {spec.name} "
                        f"(exit code {msg.exit_code}); it is retried."
                    ),
                )
            else:
                self._finish_with_error(
                    spec,
                    X.WorkerCrashedError(
                        f"The worker died unexpectedly while executing task {spec.name} "
                        f"(exit code {msg.exit_code}); it was tried {spec.attempt + 1} time(s)."
                    ),
                )
        with self.lock:
            if shape is not None:
                self._pump(lease.key, shape)

    def on_handed_back(self, msg: P.TasksHandedBack):
        """The worker's running task blocked in get/wait: the tasks queued behind it come
        back unstarted and go to other workers (the blocked one lent its CPUs to its node)."""
        returned = []
        with self.lock:
            for task_id in msg.task_ids:
                spec = self.tasks.get(task_id)
                lease = self.leases.get(spec.lease_id) if spec is not None else None
                if lease is None or lease.inflight.pop(task_id, None) is None:
                    continue  # answered, retried or given up meanwhile
                lease.handed_back = True
                self.handed_back += 1
                for running in lease.inflight.values():
                    self.pipelining.blocked(running.function_id)
                returned.append((spec, lease))
        for spec, lease in returned:
            if spec.borrowed:
                self.core.unregister_borrower(lease.address, spec.borrowed)
        with self.lock:
            for spec, lease in reversed(returned):  # back at the front, in their order
                if spec.cancelled:
                    continue
                spec.state, spec.inline = "queued", False
                self.shapes.setdefault(spec.key, ShapeQueue()).tasks.appendleft(spec)
            for key in {spec.key for spec, _ in returned}:
                self._pump(key, self.shapes[key])
        for spec, _ in returned:
            if spec.cancelled:
                self._finish_with_error(spec, X.TaskCancelledError(spec.task_id.hex()))

    def on_node_died(self, address: str):
        """Tasks leased on a dead node are retried elsewhere (or fail); lease requests waiting
        there are asked again of our own node."""
        with self.lock:
            dead = [l for l in self.leases.values() if l.node_address == address]
            for shape in self.shapes.values():
                for request_id in [r for r, a in shape.pending_requests.items() if a == address]:
                    del shape.pending_requests[request_id]
        for lease in dead:
            self.on_worker_died(P.WorkerDied(lease.lease_id, lease.worker_id, -1))
        with self.lock:
            for key, shape in self.shapes.items():
                self._pump(key, shape)

    def cancel(self, task_id: bytes, force: bool, recursive: bool = True):
        with self.lock:
            spec = self.tasks.get(task_id)
            if spec is None or spec.state == "done":
                return
            spec.cancelled = True
            if spec.state in ("resolving", "queued"):
                shape = self.shapes.get(spec.key)
                if shape is not None and spec in shape.tasks:
                    shape.tasks.remove(spec)
                run_remote = False
            else:
                run_remote = True
                lease = self.leases.get(spec.lease_id)
        if not run_remote:
            self._finish_with_error(spec, X.TaskCancelledError(task_id.hex()))
        elif spec.inline:
            # Running on this process's own thread: interrupt it as its worker would; force
            # cannot kill the worker, which is also running the task blocked on it.
            self.core.cancel_running_here(task_id, False, recursive)
        elif lease is not None:
            if force and next(iter(lease.inflight), None) == task_id:
                self.core.endpoint.send(lease.node_address, P.KillWorker(lease.worker_id))
            else:
                self.core.endpoint.send(lease.address, P.CancelTask(task_id, False, recursive))

    def shutdown(self):
        with self.lock:
            for lease in list(self.leases.values()):
                self._return_lease(lease)

    def stats(self) -> dict:
        with self.lock:
            return {
                "tasks": len(self.tasks),
                "leases": len(self.leases),
                "queued": sum(len(s.tasks) for s in self.shapes.values()),
                "handed_back": self.handed_back,
            }
