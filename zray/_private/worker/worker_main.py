"""Entry point of a worker process (forked by the zygote) and its task executor.

The main thread executes pushed tasks one at a time; the core worker's I/O thread receives them.
A task is cancelled (without force) by raising KeyboardInterrupt in the main thread, the way
Ctrl-C would, and only while that very task runs. Actor calls are not interrupted: a sync or
threaded actor's call sees `is_canceled()`, an async one is cancelled as an asyncio task (Ray's
semantics). Either way a cancelled call answers TaskCancelledError, and one cancelled before it
started never runs.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import sys
import threading
from queue import Empty

from zray import exceptions as X
from zray._config import config
from zray._fast import MessageTooLarge, frame_task_done, object_id_for, object_size
from zray._private.worker import log_stream
from zray._private.core.metrics_registry import tasks as task_counts
from zray._private.wire import pacing
from zray._private.core import runtime
from zray._private.wire import protocol as P
from zray._private.common import runtime_env as RE
from zray._private.core.core_worker import WORKER, CoreWorker
from zray._private.worker.hand_back import HandBack
from zray._private.worker.inline_tasks import InlineRunner
from zray._private.worker.task_errors import release_frames
from zray._private.core.memory_store import KIND_INLINE, KIND_PLASMA, Entry
from zray._private.core.reference_counter import distinct
from zray._private.core.serialization import deserialize, is_plain, serialize, serialize_plain
from zray._private.core.arguments import NO_ARGUMENTS
from zray._private.core.streaming import fixed_returns
from zray._private.core.task_events import now
from zray.object_ref import ObjectRef

logger = logging.getLogger(__name__)

_DONE_HEADER = P.encode(P.TaskDone(b"", [], 0, []))[0]  # every plain answer's header


class Executor:
    def __init__(self, core: CoreWorker):
        self.core = core
        self.running_task: bytes | None = None
        self._lock = threading.Lock()
        self.main_thread_id = threading.main_thread().ident
        self.actor = None
        self._spin_s = pacing.spin_seconds()
        core._cancel_handler = self.cancel
        # Tasks whose thread runs a child inline (inline_tasks): cancelling one interrupts
        # the child, which unwinds into the cancelled task's get.
        self.suspended: list = []
        self.inline = InlineRunner(self)
        core._inline_runner = self.inline
        if core.direct_server is not None:
            core.hand_back = HandBack(self)

    def cancel(self, task_id: bytes, force: bool):
        if self.actor is not None:
            self.actor.cancel(task_id)
            return
        with self._lock:
            if self.running_task != task_id and task_id not in self.suspended:
                return
        signal.pthread_kill(self.main_thread_id, signal.SIGINT)

    def loop(self):
        while self.core.running:
            try:
                pools = self.actor.pools if self.actor is not None else ()
                if pools:  # a threaded actor's queued calls may need a thread
                    work = self.next_work(min([pool.poll_timeout(1.0) for pool in pools]))
                    for pool in pools:
                        pool.check()
                else:
                    work = self.next_work(1.0)
                if work is None:
                    continue
                msg, payload, connection = work
                kind = type(msg)
                if kind is P.PushTask:
                    self.inline.task_started(msg.resources)
                    try:
                        self.execute(msg, payload, connection)
                    finally:
                        self.inline.task_finished()
                elif kind is P.PushActorTask:
                    if self.core.actor_dispatch is not None:
                        self.core.actor_dispatch(msg, payload, connection)
                    else:
                        self.actor.run_call(msg, payload, connection)
                elif kind is P.StartActor:
                    self.start_actor(msg, payload)
                else:
                    logger.warning("unexpected %s on a direct connection", kind.__name__)
            except KeyboardInterrupt:  # a late cancel for a task that already finished
                continue
            except Exception:  # noqa: BLE001 - pushes are checked at the inbox; this is a bug
                logger.exception("a pushed call failed outside its own error handling")
                continue
            del work, msg, payload
            # The call's views of its arguments are gone: free their room now, not at the I/O
            # thread's next idle tick.
            self.core._send_pin_releases()

    def show_gpus(self, gpu_ids: list):
        """Points CUDA at the GPUs the running task or actor holds, as Ray does, and takes
        away those of the previous task (a worker runs tasks of many leases)."""
        if gpu_ids == self.core.gpu_ids:
            return
        self.core.gpu_ids = list(gpu_ids)
        # The user code's environment, as Ray sets it: not a zray setting (zray/_config.py).
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)
        else:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)

    def next_work(self, timeout: float):
        """The next task: from the I/O thread's queue (ZeroMQ) first, then from the direct
        connections, waiting up to `timeout` on both. Returns (msg, payload, connection)."""
        queue, server = self.core.task_queue, self.core.direct_server
        for _ in range(2):
            if not queue.empty():
                msg, payload = queue.get()
                return msg, payload, None
            if server is None:
                try:
                    msg, payload = queue.get(timeout=timeout)
                except Empty:
                    return None
                return msg, payload, None
            if server.ready:
                return server.ready.popleft()
            server.poll(timeout, self._spin_s)
        return None

    def serve_direct_calls(self):
        """Async actors run their event loop on the main thread: this thread reads their
        direct connections instead and hands each call to the loop."""
        server = self.core.direct_server
        while self.core.running:
            try:
                while server.ready:
                    self.core.actor_dispatch(*server.ready.popleft())
                server.poll(1.0, self._spin_s)
            except Exception:  # noqa: BLE001 - the reader must outlive one bad call
                if self.core.running:
                    logger.exception("direct call reader failed")

    def start_actor(self, msg: P.StartActor, payload):
        from zray._private.worker.actor_host import ActorHost

        self.actor = ActorHost(self, msg)
        self.core.push_checker.actor_id = msg.actor_id  # from now on only its calls run here
        if not self.actor.construct(msg, payload):
            return  # the head stops this worker
        self.actor.start_serving()
        if self.core.actor_dispatch is not None:
            queue = self.core.task_queue  # calls that arrived during construction, in order
            while not queue.empty():
                self.core.actor_dispatch(*queue.get(), None)
        if self.actor.is_async:
            if self.core.direct_server is not None:
                threading.Thread(
                    target=self.serve_direct_calls, name="zray-direct", daemon=True
                ).start()
            self.actor.serve_async()

    def execute(self, push, payload, connection=None):
        core = self.core
        context = core.context
        context.task_id = push.task_id
        context.name = push.name
        context.resources = push.resources
        context.placement_group = push.placement_group
        if push.gpu_ids or core.gpu_ids:
            self.show_gpus(push.gpu_ids)
        log_stream.set_task_name(push.name)
        with self._lock:
            self.running_task = push.task_id
        held = core.refs.receive_for_task(push.borrowed) if push.borrowed else ()
        sent_before = core.endpoint.sent
        events = core.task_events if push.attempt >= 0 and core.task_events.enabled else None
        if events is not None:
            started = events.run_started(push.task_id, push.attempt)
        error = None
        cancellations = core.cancellations
        task_counts.started(push.name)
        try:
            try:
                if cancellations.is_cancelled(push.task_id):
                    raise KeyboardInterrupt  # cancelled before it arrived: never runs
                function = core.functions.load(push.function_id, config.rpc_timeout_s)
                args, kwargs = self.arguments(push.nbuffers, push.resolved, payload)
                result = function(*args, **kwargs)
                del args, kwargs
                if push.num_returns == P.STREAMING:
                    core.producer.run(
                        push.task_id,
                        push.owner_address,
                        push.name,
                        iter(result),
                        push.generator_backpressure,
                    )
                    result = None  # the completion, position 1
                returns = self.split_returns(result, fixed_returns(push.num_returns), push.name)
            except KeyboardInterrupt:
                if not cancellations.is_cancelled(push.task_id):
                    raise
            except X.RayTaskError as exc:
                error = exc  # an argument's upstream error propagates unchanged
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the owner
                error = X.RayTaskError.from_exception(
                    exc, push.name, pid=os.getpid(), ip=core.node_ip
                )
                release_frames(exc)
        finally:
            with self._lock:
                self.running_task = None
            sys.stdout.flush()
            sys.stderr.flush()
            context.task_id = context.resources = None
            context.placement_group = ""
        ended = now() if events is not None else 0
        if cancellations.is_cancelled(push.task_id):  # even if the task caught the interrupt
            error = X.TaskCancelledError(push.task_id.hex())
        cancellations.finished(push.task_id)
        values = [error] * fixed_returns(push.num_returns) if error else returns
        try:
            self.reply(
                push.task_id,
                push.owner_address,
                push.lease_id,
                push.name,
                values,
                error is not None,
                connection,
                sent_before,
            )
        finally:
            # After the answer left, as actor calls do (ActorHost.run_call).
            task_counts.stopped(push.name)
            if events is not None:
                events.run_ended(push.task_id, push.attempt, started, ended)
        if held:
            core.apply_released(core.refs.unpin(held))

    def arguments(self, nbuf: int, resolved: list, payload):
        """Unpickles (args, kwargs) and replaces top-level ObjectRefs by their values."""
        if not nbuf and not resolved and payload[0].buffer == NO_ARGUMENTS:
            return (), {}  # f.remote(): ~2.5 us less than unpickling it and looking for refs
        args, kwargs = deserialize(payload[0].buffer, [f.buffer for f in payload[1 : 1 + nbuf]])
        if (
            not resolved
            and (not args or not any(isinstance(a, ObjectRef) for a in args))
            and (not kwargs or not any(isinstance(v, ObjectRef) for v in kwargs.values()))
        ):
            return args, kwargs
        values = {}
        position = 1 + nbuf
        plasma = []
        for object_id, kind, nframes, node_id, size in resolved:
            frames = [f.buffer for f in payload[position : position + nframes]]
            position += nframes
            if kind == KIND_INLINE:
                values[object_id] = deserialize(frames[0], frames[1:])
            elif kind == KIND_PLASMA:
                plasma.append(object_id)
                self.core.memory_store.put(object_id, Entry(KIND_PLASMA, (), node_id, size))
        refs = [a for a in args if isinstance(a, ObjectRef) and a._id not in values]
        refs += [v for v in kwargs.values() if isinstance(v, ObjectRef) and v._id not in values]
        if refs:
            try:
                for ref, value in zip(refs, self.core.get(refs, None)):
                    values[ref._id] = value
            finally:
                for object_id in plasma:  # cached only for this task's get
                    if not self.core.refs.owns(object_id):
                        self.core.memory_store.delete(object_id)

        def value_of(a):
            return values[a._id] if isinstance(a, ObjectRef) else a

        return [value_of(a) for a in args], {k: value_of(v) for k, v in kwargs.items()}

    @staticmethod
    def split_returns(result, num_returns: int, name: str):
        if inspect.isgenerator(result):  # a generator with a fixed num_returns (Ray's rule)
            values = list(result)
            if len(values) != num_returns:
                raise ValueError(
                    f"Task {name} yielded {len(values)} values but num_returns={num_returns} "
                    f"requires exactly {num_returns}."
                )
            return values
        if num_returns == 1:
            return [result]
        if num_returns == 0:
            return []
        if not isinstance(result, (tuple, list)) or len(result) != num_returns:
            raise ValueError(
                f"Task {name} returned {type(result).__name__} but num_returns={num_returns} "
                f"requires a sequence of exactly {num_returns} values."
            )
        return list(result)

    def _store_in_arena(self, arena_bound: list, entries: list, owner_address: str, name: str):
        """Fills `entries` for results too large to go inline; one that cannot be stored
        becomes its error (what a get of it raises)."""
        core = self.core
        if len(arena_bound) == 1:
            [(position, object_id, meta, buffers, size)] = arena_bound
            try:
                entries[position] = core.store_value(
                    object_id, meta, buffers, inline_limit=0, owner_address=owner_address
                )
            except X.RayError as exc:
                entries[position] = _error_entry(core, object_id, exc, name)
            return
        items = [item[1:] for item in arena_bound]
        try:
            stored = core.store_in_arena(items, owner_address)
        except X.RayError as exc:
            stored = [exc] * len(items)
        for (position, object_id, *_), entry in zip(arena_bound, stored):
            if isinstance(entry, Exception):
                entry = _error_entry(core, object_id, entry, name)
            entries[position] = entry

    def reply(
        self,
        task_id: bytes,
        owner_address: str,
        lease_id: int,
        name: str,
        values,
        is_error: bool,
        connection=None,
        sent_before: int = -1,
    ):
        """Sends a call's results to its owner: on the connection the call came on, if the
        call sent nothing over ZeroMQ since `sent_before`. Otherwise the answer follows those
        messages through libzmq's I/O thread: a seal or borrower registration must be on its
        way before the owner hears the call is done, or an owner that kills this worker at
        once (an actor out of scope) would lose the object."""
        core = self.core
        if (
            len(values) == 1
            and not is_error
            and connection is not None
            and _plain_reply(core, task_id, lease_id, values[0], connection, sent_before)
        ):
            return
        entries, contained_per_return = [], []
        # Past this many inline bytes, results go to the arena: 3,000 results of 100 KiB
        # would not fit in one message. Those are created in batches (one round trip each).
        budget = config.task_rpc_inlined_bytes_limit
        arena_bound: list = []  # (position, object_id, meta, buffers, size)
        arena_bytes = 0
        # A batch's objects stay unsealed (so unspillable) until all of them have room: a
        # small share of the store, or a store full of them could not make room for the rest.
        batch_bytes = min(ARENA_BATCH_BYTES, len(core.arena) // 8)
        for index, value in enumerate(values, start=1):
            object_id = object_id_for(task_id, index)
            try:
                meta, buffers, contained = serialize(value)
            except TypeError as exc:
                meta, buffers, contained = serialize(
                    X.RayTaskError.from_exception(exc, name, pid=os.getpid(), ip=core.node_ip)
                )
                is_error = True
            contained = distinct(contained)
            if contained:
                # Registered now, while `values` still holds the refs here.
                core.register_borrower(owner_address, contained)
            contained_per_return.append([list(r) for r in contained])
            size = object_size(len(meta), [b.nbytes for b in buffers])
            if not is_error and size > min(budget, config.max_inline_bytes):
                arena_bound.append((len(entries), object_id, meta, buffers, size))
                entries.append(None)
                arena_bytes += size
                if arena_bytes >= batch_bytes or len(arena_bound) >= ARENA_BATCH_COUNT:
                    self._store_in_arena(arena_bound, entries, owner_address, name)
                    arena_bound, arena_bytes = [], 0
                continue
            entry = core.store_value(object_id, meta, buffers, error=is_error, inline_limit=size)
            entries.append(entry)
            budget -= entry.size
        if arena_bound:
            self._store_in_arena(arena_bound, entries, owner_address, name)
        returns, frames = [], []
        for index, entry in enumerate(entries, start=1):
            object_id = object_id_for(task_id, index)
            returns.append([object_id, entry.kind, len(entry.frames), entry.node_id, entry.size])
            frames.extend(entry.frames)
        done = P.TaskDone(
            task_id, returns, lease_id, contained_per_return if any(contained_per_return) else []
        )
        in_process = getattr(connection, "in_process", False)  # a child run inline
        if (
            connection is None
            or (core.endpoint.sent != sent_before and not in_process)
            or not _send_direct(connection, done, frames)
        ):
            core.endpoint.send(owner_address, done, payload=frames)


# A task's results bound for the arena are created together, up to this many bytes (at most an
# eighth of the store) or objects per round trip: serialized values wait for their batch, so
# the bound keeps that memory small.
ARENA_BATCH_BYTES = 64 * 2**20
ARENA_BATCH_COUNT = 1024


def _error_entry(core, object_id: bytes, exc: Exception, name: str) -> Entry:
    meta, buffers, _ = serialize(
        X.RayTaskError.from_exception(exc, name, pid=os.getpid(), ip=core.node_ip)
    )
    return core.store_value(object_id, meta, buffers, error=True)


def _plain_reply(core, task_id, lease_id, value, connection, sent_before) -> bool:
    """The answer of a call returning one builtin scalar (`is_plain`: no ref inside, no
    buffer) small enough to go inline, written whole by `zray._fast.frame_task_done` on the
    connection the call came on: what the general path below sends for it, without a record,
    an encode or a frame table in Python. False, having sent nothing, for any other answer."""
    if not is_plain(value):
        return False
    meta = serialize_plain(value)
    size = object_size(len(meta), ())
    if size > config.task_rpc_inlined_bytes_limit or size > config.max_inline_bytes:
        return False
    if core.endpoint.sent != sent_before and not getattr(connection, "in_process", False):
        return False  # must follow what went over ZeroMQ (see `reply`)
    send_framed = getattr(connection, "send_framed", None)
    if send_framed is None:
        return False
    data = frame_task_done(_DONE_HEADER, task_id, object_id_for(task_id, 1), size, lease_id, meta)
    return send_framed([data])


def _send_direct(connection, msg, frames) -> bool:
    """False if the answer must go over ZeroMQ: the connection is gone, or it cannot carry a
    message this large (ZeroMQ can, and an answer has no order to keep with other calls)."""
    try:
        return connection.send(msg, payload=frames)
    except MessageTooLarge:
        return False


def main(worker_id: bytes, args: list, runtime_env: str = "") -> int:
    node_address, session_dir, node_ip = args[0], args[2], args[3]  # args[1]: the node id
    streams = log_stream.capture_output()
    from zray._private.wire.security import Credentials

    core = CoreWorker(
        WORKER,
        node_address,
        b"\x00" * 4,
        worker_id,
        session_dir,
        Credentials.from_config(),
        node_ip=node_ip,
    )
    core.runtime_env = RE.loads(runtime_env)
    runtime.core = core
    log_stream.start_forwarding(streams, core, os.getpid())
    executor = Executor(core)
    try:
        executor.loop()
    finally:
        core.shutdown()
    return 0
