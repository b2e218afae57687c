"""The worker side of an actor: construct the instance, then run its method calls.

Calls from one caller arrive in submission order on one ZeroMQ connection. A plain actor runs
them one at a time on the main thread, in that order; with max_concurrency > 1 they run on a
thread pool; an actor with `async def` methods runs them on an asyncio loop, at most
max_concurrency at once.

Concurrency groups (`@remote(concurrency_groups={"io": 2})`, `@method(concurrency_group=...)`
or `.options(concurrency_group=...)` per call), as in Ray: each group runs its calls on a pool
of its own size (an async actor: under a semaphore of that size), in arrival order within the
group; calls in no group use the default group of max_concurrency. A threaded actor's groups
never wait for each other, so an actor with groups runs even its default group on a pool.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os

from zray import exceptions as X
from zray._config import config
from zray._private.worker import log_stream
from zray._private.core.metrics_registry import tasks as task_counts
from zray._private.wire import protocol as P
from zray._private.core.streaming import fixed_returns
from zray._private.core.task_events import now
from zray._private.worker.call_pool import CallPool
from zray._private.worker.task_errors import release_frames
from zray._private.core.serialization import serialize

logger = logging.getLogger(__name__)


# Results that cannot be awaitables: isawaitable's ABC check is a measurable part of a call.
_PLAIN_RESULTS = frozenset((type(None), bool, int, float, str, bytes, tuple, list, dict))


class ExitActor(BaseException):
    """Raised by exit_actor() inside an actor method; ends the actor on purpose."""


class ActorHost:
    def __init__(self, executor, start: P.StartActor):
        self.executor = executor
        self.core = executor.core
        self.actor_id = start.actor_id
        self.spec = start.spec
        self.class_name = start.spec.get("class_name", "Actor")
        self.attempt = start.attempt
        # Ray's actor creation task id is a nil unique part and the actor id; a restarted
        # actor numbers its attempt there, so its puts never reuse an earlier attempt's ids.
        unique = (
            b"\xff" * 8 if not start.attempt else b"\xff" * 4 + start.attempt.to_bytes(4, "little")
        )
        self.creation_task_id = unique + start.actor_id
        self.instance = None
        self.max_concurrency = start.spec.get("max_concurrency") or 1
        self.resources = dict(start.spec.get("run_resources") or {})  # held while it lives
        self.gpu_ids = list(start.spec.get("gpu_ids") or [])
        self.placement_group = start.spec.get("placement_group", "")  # as PushTask's
        self.is_async = bool(start.spec.get("is_async"))
        self.concurrency_groups = dict(start.spec.get("concurrency_groups") or {})
        cap = start.spec.get("generator_backpressure")
        self.core.producer.actor_cap = -1 if cap is None else cap  # across all its streams
        self.loop = None
        self.pools: tuple = ()  # every CallPool, for the executor's stall checks
        self._pool_of: dict = {}  # concurrency group ("" default) -> CallPool
        self._semaphore = None
        self._async_calls: dict[bytes, asyncio.Task] = {}  # running calls, for cancellation
        self._semaphores: dict = {}  # concurrency group ("" default) -> asyncio.Semaphore

    # ------------------------------------------------------------------ construction

    def construct(self, start: P.StartActor, payload) -> bool:
        core = self.core
        core.actor_host = self
        self.executor.show_gpus(self.gpu_ids)
        context = core.context
        context.task_id = self.creation_task_id
        context.name = f"{self.class_name}.__init__"
        log_stream.set_task_name(self.class_name)
        events = core.task_events if self.spec.get("task_events") else None
        if not core.task_events.enabled:  # this process records none (never sends them)
            events = None
        base_id = b"\xff" * 8 + self.actor_id  # the creator's name for this creation task
        if events is not None:
            started = events.run_started(base_id, self.attempt)
        error = None
        try:
            cls = core.functions.load(self.spec["class_id"], config.rpc_timeout_s)
            args, kwargs = self.executor.arguments(start.nbuffers, start.resolved, payload)
            self.instance = cls.__new__(cls)
            self.instance.__init__(*args, **kwargs)
        except X.RayTaskError as exc:
            error = exc
        except BaseException as exc:  # noqa: BLE001 - reported to the head, never raised here
            error = X.RayTaskError.from_exception(
                exc,
                f"{self.class_name}.__init__",
                pid=os.getpid(),
                ip=core.node_ip,
                actor_repr=self.class_name,
                actor_id=self.actor_id.hex(),
            )
        finally:
            context.task_id = None
        if events is not None:
            # The head, not a caller, hears how the constructor went: this worker says it.
            events.run_ended(base_id, self.attempt, started)
            events.ended(base_id, self.attempt, error)
        frames = []
        if error is not None:
            meta, buffers, _ = serialize(error)
            frames = [meta] + [bytes(b) for b in buffers]
        core.endpoint.send(
            core.head_address,
            P.ActorStarted(
                self.actor_id, error is None, len(frames), _error_text(error) if error else ""
            ),
            payload=frames,
        )
        return error is None

    def start_serving(self):
        """Switches the core worker's actor-call delivery to this actor's execution model."""
        core = self.core
        groups = self.concurrency_groups
        if self.is_async:
            self.loop = asyncio.new_event_loop()
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._semaphores = {"": self._semaphore}
            for name, size in groups.items():
                self._semaphores[name] = asyncio.Semaphore(size)
            core.actor_dispatch = lambda msg, payload, connection: self.loop.call_soon_threadsafe(
                self._schedule_async, msg, payload, connection
            )
        elif groups:
            self._pool_of = {"": CallPool(self.max_concurrency, self.run_call, "zray-actor")}
            for name, size in groups.items():
                self._pool_of[name] = CallPool(size, self.run_call, f"zray-actor-{name}")
            self.pools = tuple(self._pool_of.values())
            core.actor_dispatch = self._dispatch_to_group
        elif self.max_concurrency > 1:
            pool = CallPool(self.max_concurrency, self.run_call, "zray-actor")
            self.pools = (pool,)
            core.actor_dispatch = pool.submit

    def _dispatch_to_group(self, msg: P.PushActorTask, payload, connection):
        pool = self._pool_of.get(msg.concurrency_group)
        if pool is None:
            self._reply_unknown_group(msg, connection)
        else:
            pool.submit(msg, payload, connection)

    def _unknown_group(self, msg: P.PushActorTask) -> ValueError:
        # Ray's worker fails a check and dies here; the call failing is kinder.
        return ValueError(
            f"Concurrency group {msg.concurrency_group!r} is not defined for "
            f"actor {self.class_name}; it defines "
            f"{sorted(self.concurrency_groups)}."
        )

    def _reply_unknown_group(self, msg: P.PushActorTask, connection):
        error = self._error(self._unknown_group(msg), msg)
        self.executor.reply(
            msg.task_id,
            msg.owner_address,
            0,
            f"{self.class_name}.{msg.method}",
            [error] * fixed_returns(msg.num_returns),
            True,
            connection,
        )

    def serve_async(self):
        """Runs the actor's event loop on the main thread until the worker stops."""
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    # ------------------------------------------------------------------ calls

    def run_call(self, msg: P.PushActorTask, payload, connection=None):
        """Runs one call to completion in the calling thread (main thread or pool thread)."""
        core = self.core
        context = core.context
        context.task_id = msg.task_id
        context.name = f"{self.class_name}.{msg.method}"
        exit_requested = False
        held = core.refs.receive_for_task(msg.borrowed) if msg.borrowed else ()
        sent_before = core.endpoint.sent
        cancellations = core.cancellations
        running_name = context.name
        task_counts.started(running_name)
        events = core.task_events if msg.attempt >= 0 and core.task_events.enabled else None
        if events is not None:
            started = events.run_started(msg.task_id, msg.attempt)
        try:
            if cancellations.is_cancelled(msg.task_id):
                raise X.TaskCancelledError(msg.task_id.hex())  # cancelled before it started
            if msg.concurrency_group and msg.concurrency_group not in self.concurrency_groups:
                raise self._unknown_group(msg)
            args, kwargs = self.executor.arguments(msg.nbuffers, msg.resolved, payload)
            method = self._method(msg.method)
            result = method(*args, **kwargs)
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            if msg.num_returns == P.STREAMING:
                core.producer.run(
                    msg.task_id,
                    msg.owner_address,
                    context.name,
                    iter(result),
                    msg.generator_backpressure,
                )
                result = None  # the completion
            values, is_error = (
                self.executor.split_returns(result, fixed_returns(msg.num_returns), msg.method),
                False,
            )
        except ExitActor:
            values, is_error, exit_requested = self._exit_values(msg), True, True
        except BaseException as exc:  # noqa: BLE001 - goes back to the caller
            values, is_error = [self._error(exc, msg)] * fixed_returns(msg.num_returns), True
        finally:
            context.task_id = None
        ended = now() if events is not None else 0
        if cancellations.is_cancelled(msg.task_id):
            values, is_error = (
                [X.TaskCancelledError(msg.task_id.hex())] * fixed_returns(msg.num_returns),
                True,
            )
        cancellations.finished(msg.task_id)
        try:
            self.executor.reply(
                msg.task_id,
                msg.owner_address,
                0,
                context.name or msg.method,
                values,
                is_error,
                connection,
                sent_before,
            )
        finally:
            # Counted and recorded once the answer is on its way: a sync caller waits for
            # the answer, not for this (the run's end time was taken before it left).
            task_counts.stopped(running_name)
            if events is not None:
                events.run_ended(msg.task_id, msg.attempt, started, ended)
        del values
        if held:
            core.apply_released(core.refs.unpin(held))
        if exit_requested:
            self.exit("exit_actor() was called")

    def cancel(self, task_id: bytes):
        """Cancels a running call (the core worker marked it cancelled already). Calls of a
        sync or threaded actor are not interrupted: they see is_canceled(), as in Ray."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._cancel_async, task_id)

    def _cancel_async(self, task_id: bytes):
        call = self._async_calls.get(task_id)
        if call is not None:
            call.cancel()

    def _schedule_async(self, msg, payload, connection):
        semaphore = (
            self._semaphore
            if not msg.concurrency_group
            else self._semaphores.get(msg.concurrency_group)
        )
        if semaphore is None:
            self._reply_unknown_group(msg, connection)
            return
        # Registered before the call's first step runs, which removes it when done.
        self._async_calls[msg.task_id] = self.loop.create_task(
            self._run_call_async(msg, payload, connection, semaphore)
        )

    async def _run_call_async(self, msg: P.PushActorTask, payload, connection, semaphore):
        try:
            await self._run_call_async_turn(msg, payload, connection, semaphore)
        finally:
            self._async_calls.pop(msg.task_id, None)

    async def _run_call_async_turn(self, msg: P.PushActorTask, payload, connection, semaphore):
        core = self.core
        cancellations = core.cancellations
        try:
            await semaphore.acquire()
        except asyncio.CancelledError:  # cancelled while waiting for its turn
            self.executor.reply(
                msg.task_id,
                msg.owner_address,
                0,
                msg.method,
                [X.TaskCancelledError(msg.task_id.hex())] * fixed_returns(msg.num_returns),
                True,
                connection,
            )
            cancellations.finished(msg.task_id)
            return
        try:
            # Each call is an asyncio task with its own copy of the context variables.
            core.context.task_id = msg.task_id
            core.context.name = f"{self.class_name}.{msg.method}"
            exit_requested = False
            held = core.refs.receive_for_task(msg.borrowed) if msg.borrowed else ()
            sent_before = core.endpoint.sent
            running_name = core.context.name
            task_counts.started(running_name)
            events = core.task_events if msg.attempt >= 0 and core.task_events.enabled else None
            if events is not None:
                started = events.run_started(msg.task_id, msg.attempt)
            try:
                if cancellations.is_cancelled(msg.task_id):
                    raise X.TaskCancelledError(msg.task_id.hex())
                args, kwargs = self.executor.arguments(msg.nbuffers, msg.resolved, payload)
                result = self._method(msg.method)(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                if msg.num_returns == P.STREAMING:
                    name = f"{self.class_name}.{msg.method}"
                    if inspect.isasyncgen(result):
                        await core.producer.run_async(
                            msg.task_id, msg.owner_address, name, result, msg.generator_backpressure
                        )
                    else:
                        core.producer.run(
                            msg.task_id,
                            msg.owner_address,
                            name,
                            iter(result),
                            msg.generator_backpressure,
                        )
                    result = None  # the completion
                values = self.executor.split_returns(
                    result, fixed_returns(msg.num_returns), msg.method
                )
                is_error = False
            except (ExitActor, X.AsyncioActorExit):
                values, is_error, exit_requested = self._exit_values(msg), True, True
            except BaseException as exc:  # noqa: BLE001 - goes back to the caller
                values, is_error = [self._error(exc, msg)] * fixed_returns(msg.num_returns), True
            finally:
                task_counts.stopped(running_name)
            if events is not None:
                events.run_ended(msg.task_id, msg.attempt, started)
            if cancellations.is_cancelled(msg.task_id):
                values = [X.TaskCancelledError(msg.task_id.hex())] * fixed_returns(msg.num_returns)
                is_error = True
            cancellations.finished(msg.task_id)
            self.executor.reply(
                msg.task_id,
                msg.owner_address,
                0,
                f"{self.class_name}.{msg.method}",
                values,
                is_error,
                connection,
                sent_before,
            )
            del values
            if held:
                core.apply_released(core.refs.unpin(held))
            if exit_requested:
                self.exit("exit_actor() was called")
        finally:
            semaphore.release()

    def _method(self, name: str):
        if name == "__ray_terminate__":
            raise ExitActor()
        if name == "__ray_ready__":
            return lambda: True
        return getattr(self.instance, name)

    def _error(self, exc, msg):
        if isinstance(exc, (X.RayTaskError, X.TaskCancelledError)):
            return exc
        error = X.RayTaskError.from_exception(
            exc,
            f"{self.class_name}.{msg.method}",
            pid=os.getpid(),
            ip=self.core.node_ip,
            actor_repr=_safe_repr(self.instance, self.class_name),
            actor_id=self.actor_id.hex(),
        )
        release_frames(exc)  # they may pin arguments in the arena (worker_main.py)
        return error

    def _exit_values(self, msg):
        return [
            X.ActorDiedError(
                {
                    "actor_id": self.actor_id,
                    "class_name": self.class_name,
                    "pid": os.getpid(),
                    "error_message": "The actor exited: exit_actor() was called.",
                }
            )
        ] * fixed_returns(msg.num_returns)

    def exit(self, reason: str):
        """Ends the actor on purpose: tell the head (no restart), then leave once the queued
        answers are on the wire."""
        core = self.core
        if core.task_events.enabled:  # before the head hears of it: it stops this worker
            core.task_events.flush(final=True)
        core.endpoint.send(core.head_address, P.ActorExiting(self.actor_id, reason))
        core.shutdown(linger_ms=1000)
        os._exit(0)


async def _awaited(awaitable):
    return await awaitable


def _safe_repr(instance, fallback: str) -> str:
    try:
        text = repr(instance)
    except Exception:
        return fallback
    return text if len(text) < 200 else text[:197] + "..."


ERROR_TEXT_LIMIT = 64 * 1024  # the state API and dashboard show it; a huge repr stays bounded


def _error_text(error) -> str:
    """What the state API shows as the actor's death cause: the error and its traceback."""
    try:
        text = str(error)
    except Exception as exc:  # a user exception whose __str__ fails still leaves a trace
        text = f"{type(error).__name__} (its message could not be shown: {exc!r})"
    return text if len(text) <= ERROR_TEXT_LIMIT else "...\n" + text[-ERROR_TEXT_LIMIT:]
