"""Caller-side actor calls: pushed straight to the actor's worker, in submission order.

The head tells every handle holder where an actor lives and when it restarts or dies
(ActorState). Calls wait while the actor is PENDING or RESTARTING; calls in flight when its
worker died are retried after the restart if `max_task_retries` allows, otherwise they fail with
ActorDiedError, as do all calls once the actor is DEAD.

The ordering itself (what is sent when) is decided by zray/_private/core/actor_ordering.py.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from zray import exceptions as X
from zray._config import config
from zray._fast import ACTOR_ID_SIZE, Event, Finished, MessageTooLarge, Shared
from zray._private.core import actor_ordering as O
from zray._private.core import lineage_pins, metrics_registry
from zray._private.core.memory_store import KIND_ERROR
from zray._private.wire import protocol as P
from zray._private.common.actor_states import DEAD, PENDING
from zray._private.core.dependencies import (
    borrowed_by_call,
    error_entry,
    returned_entries,
    should_retry_exception,
    store_results,
    too_large_error,
    when_resolved,
)
from zray._private.core.serialization import deserialize
from zray._private.core import task_events as TE
from zray._private.core.task_events import now
from zray._private.common import task_states as TS


KILLED_CAUSE = "The actor is dead because it was killed by `ray.kill`."  # Ray's words
# How long the head's word that an actor died may wait for the answers its worker sent us
# before it died (see ActorSubmitter._defer_death).
DEATH_GRACE_S = 2.0
MAX_SHARED_INFOS = 1024  # task-event descriptions kept per actor (ActorRecord.info)


@dataclass(eq=False, slots=True)  # no __dict__: one object fewer per call for the collector
class ActorCall:
    task_id: bytes
    method: str
    num_returns: int
    return_ids: list
    frames: list
    top_refs: list
    retries_left: int
    nested: list = field(default_factory=list)  # [(object id, owner)] nested in the arguments
    concurrency_group: str = ""  # "" for the actor's default group
    generator_backpressure: int = -1  # a streaming call's producer pauses this far ahead
    # Times a lost output may be recomputed by calling again (lineage.py): the call's
    # max_task_retries if the actor can restart, else 0, as in Ray.
    max_retries: int = 0
    reconstructions: int = 0
    lineage_pins: list | None = None  # arguments whose lineage its kept spec pins
    borrowed: list = field(default_factory=list)  # what the actor's worker will hold
    pushed_to: str = ""
    resolved: list = field(default_factory=list)
    resolved_frames: list = field(default_factory=list)
    ready: bool = False
    args_failed: bool = False
    failed_entry: object = None
    cancelled: bool = False
    events: bool = False  # records task events (task_events.py)
    parent_task_id: bytes = b""
    attempt: int = 0  # sent again to a restarted actor: one more
    sent: bool = False
    # Its description for task events, until an event carried it (then ()); None: not made
    # yet, made by the first event that needs it (`ActorRecord.described`).
    info: Shared | tuple | None = ()
    # When it was sent (ns), until an event said so: the call's end, or a flush's report of
    # calls in flight (task_events.py), one event per call where there were two.
    sent_ns: int = 0
    # A plain call's end event, built after its send (a sync caller spins meanwhile) for its
    # end to stamp (`call_ended`); used only while `sent_ns` is still its send's.
    finished: Finished | None = None
    # Exceptions the method may raise that call it again (True: any), while retries_left.
    retry_exceptions: object = False

    @property
    def pinned_ids(self) -> list:
        if not self.top_refs and not self.nested:  # most calls: two comprehensions saved
            return []
        return [ref._id for ref in self.top_refs] + [oid for oid, _ in self.nested]


@dataclass(eq=False)
class ActorRecord:
    actor_id: bytes
    class_name: str
    order: O.CallOrder = field(default_factory=O.CallOrder)
    death: BaseException | None = None
    handles: int = 0
    owned: bool = False
    escaped: bool = False
    detached: bool = False
    kill_requested: bool = False
    # Ray's max_pending_calls (> 0: a limit) and the calls submitted here and not yet done.
    max_pending_calls: int = -1
    pending_calls: int = 0
    # (method, parent task id) -> the calls' task-event description, one tuple shared by all
    # (a batch sends it once: task_events.py, `EventStream`)
    infos: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)  # method -> "Class.method", the metrics' name

    def info(self, method: str, parent_task_id: bytes) -> Shared:
        info = self.infos.get((method, parent_task_id))
        if info is None:
            if len(self.infos) >= MAX_SHARED_INFOS:  # parents come and go: stay bounded
                self.infos.clear()
            name = self.name(method)
            # Atoms only (no resources: ()), as Shared requires: the collector never tracks
            # it (nor the events holding it: task_events.py).
            info = Shared((TS.ACTOR_TASK, name, name, self.actor_id, parent_task_id, (), "", ""))
            self.infos[(method, parent_task_id)] = info
        return info

    def described(self, call: ActorCall) -> Shared | None:
        """`call`'s description for the event reporting its sending, taken off the call; None
        if an earlier event carried it. A plain call's is made only now: off a sync call's
        round trip (plain_calls.py)."""
        info, call.info = call.info, ()
        if info is None:
            return self.info(call.method, call.parent_task_id)
        return info or None

    def name(self, method: str) -> str:
        name = self.names.get(method)
        if name is None:
            name = self.names[method] = f"{self.class_name}.{method}"
        return name


class ActorSubmitter:
    def __init__(self, core):
        self.core = core
        self.lock = threading.RLock()
        # Pushes are made after `lock` is let go, under this one, taken before `lock` is:
        # they leave in the order they were decided, and a thread storing answers (which
        # takes `lock`) never waits for another thread's sendmsg.
        self._send_lock = threading.Lock()
        self.actors: dict[bytes, ActorRecord] = {}
        self.calls: dict[bytes, tuple] = {}  # task_id -> (record, call)
        self._released = deque()
        # actor id -> (its ActorState DEAD, the direct connection still to read, deadline)
        self.deferred_deaths: dict[bytes, tuple] = {}
        self._record = core.task_events.record  # task events' hot path (task_events.py)

    # ------------------------------------------------------------------ handles

    def track(
        self,
        actor_id: bytes,
        class_name: str,
        owned=False,
        detached=False,
        max_pending_calls=-1,
        out_of_order=False,
    ) -> ActorRecord:
        """Counts one more handle to the actor here, subscribing to its state on the first."""
        with self.lock:
            record = self.actors.get(actor_id)
            if record is None:
                record = self.actors[actor_id] = ActorRecord(actor_id, class_name)
                record.max_pending_calls = max_pending_calls
                self.core.endpoint.send(self.core.head_address, P.SubscribeActor(actor_id))
            record.order.out_of_order = record.order.out_of_order or out_of_order
            record.handles += 1
            record.owned = record.owned or owned
            record.detached = record.detached or detached
            return record

    def resubscribe(self):
        """After a head restart: the new head knows no subscriptions."""
        with self.lock:
            live = [a for a, record in self.actors.items() if record.order.state != DEAD]
        for actor_id in live:
            self.core.endpoint.send(self.core.head_address, P.SubscribeActor(actor_id))

    def handle_dropped(self, actor_id: bytes):
        self._released.append(actor_id)  # from __del__: any thread, any moment
        wake = self.core.doze_wake
        if wake is not None:
            wake()

    def handle_escaped(self, actor_id: bytes):
        record = self.actors.get(actor_id)
        if record is not None:
            record.escaped = True

    def tick(self):
        """Applies dropped handles: an actor whose creator holds no handle any more, which
        never escaped to another process, ends once its calls are done (as in Ray). Applies
        deaths that waited for the dead worker's last answers."""
        if self.deferred_deaths:
            now = time.monotonic()
            for actor_id, (msg, connection, deadline) in list(self.deferred_deaths.items()):
                if connection.closed or now >= deadline:
                    del self.deferred_deaths[actor_id]
                    self._apply_state(msg)
        while self._released:
            actor_id = self._released.popleft()
            with self.lock:
                record = self.actors.get(actor_id)
                if record is not None:
                    record.handles -= 1
        with self.lock:
            for record in self.actors.values():
                if (
                    record.handles <= 0
                    and record.owned
                    and not record.escaped
                    and not record.detached
                    and not record.kill_requested
                    and record.order.idle
                    and record.order.state != DEAD
                ):
                    record.kill_requested = True
                    # A request (answered ActorKilled), so a head that restarts gets it again.
                    self.core.requests.send(
                        self.core.head_address,
                        P.KillActor(
                            record.actor_id,
                            True,
                            "The actor is dead because all references to the actor were removed.",
                        ),
                        _ignore_answer,
                    )

    def owns_call(self, task_id: bytes) -> bool:
        return task_id in self.calls

    def cancel(self, task_id: bytes, recursive: bool):
        """A call not sent yet is dropped and fails with TaskCancelledError; one in flight is
        cancelled by its worker, which answers TaskCancelledError unless it had finished."""
        with self.lock:
            found = self.calls.get(task_id)
            if found is None:
                return
            record, call = found
            call.cancelled = True
            instructions = record.order.cancel(task_id)
            address = record.order.address
            decided = self._decide(record, instructions) if instructions is not None else None
        if decided is not None:
            self._carry_out(decided)
        elif address:
            self.core.endpoint.send(address, P.CancelTask(task_id, False, recursive))

    def kill(self, actor_id: bytes, no_restart: bool):
        """Once this returns, no call made from this process reaches the killed instance:
        with `no_restart` every call, queued, in flight or later, fails at once (the worker
        may still answer some before it dies; those answers are ignored); otherwise calls
        wait for the instance the head restarts, if any."""
        core = self.core
        kill = P.KillActor(actor_id, no_restart, KILLED_CAUSE)
        if no_restart:
            core.requests.send(core.head_address, kill, _ignore_answer)
            self._dead_here(actor_id, KILLED_CAUSE)
            return
        # The head's answer says which instance it stops: an ALIVE naming that one may still
        # be on its way to us, and must not receive calls.
        reply, _ = core.requests.call(core.head_address, kill, config.rpc_timeout_s)
        if not isinstance(reply, P.ActorKilled) or not reply.stopping:
            return  # not started yet (or gone): the instance to come is a fresh one
        with self.lock:
            record = self.actors.get(actor_id)
            if record is None:
                return
            decided = self._decide(record, record.order.killed(reply.num_restarts))
        self._carry_out(decided)

    def _dead_here(self, actor_id: bytes, cause: str):
        """Treats the actor as DEAD in this process without waiting for the head to say so."""
        with self.lock:
            record = self.actors.get(actor_id)
            if record is None or record.order.state == DEAD:
                return
            record.death = X.ActorDiedError(
                {
                    "actor_id": record.actor_id,
                    "class_name": record.class_name,
                    "error_message": cause,
                }
            )
            decided = self._decide(record, record.order.state_changed(DEAD, ""))
        self._carry_out(decided)

    # ------------------------------------------------------------------ calls

    def submit(self, actor_id: bytes, call: ActorCall, arguments_pinned: bool = False):
        core = self.core
        for oid in call.return_ids:
            core.refs.add_owned(oid)
        if (call.top_refs or call.nested) and not arguments_pinned:
            core.refs.pin(call.pinned_ids)
        core.note_submitted(call.task_id)
        self._queue(actor_id, call)

    def check_pending_calls(self, actor_id: bytes, method: str):
        """Raises Ray's PendingCallsLimitExceeded when the actor's max_pending_calls calls from
        this process are not done yet; else counts one more."""
        record = self.actors.get(actor_id)
        if record is None or record.max_pending_calls <= 0:
            return
        with self.lock:
            if record.pending_calls >= record.max_pending_calls:
                raise X.PendingCallsLimitExceeded(
                    f"The task {method} could not be submitted to Actor({record.class_name}, "
                    f"{actor_id.hex()}) because more than {record.max_pending_calls} tasks are "
                    "queued on the actor. This limit can be adjusted with the "
                    "`max_pending_calls` actor option."
                )
            record.pending_calls += 1

    def _queue(self, actor_id: bytes, call: ActorCall):
        """Queues a call on its actor, behind the calls already queued, once its arguments
        are ready (its results owned and its arguments pinned already)."""
        core = self.core
        with self.lock:
            record = self.actors[actor_id]
            if call.events:
                call.info = record.info(call.method, call.parent_task_id)
            self.calls[call.task_id] = (record, call)
            failed = record.order.submit(call)  # an actor already dead fails it at once
            ready = not failed and not call.top_refs and not call.nested
            if failed:
                decided = self._decide(record, failed)
            elif ready:  # nothing to resolve or lend: `_ready`'s work, under this one lock
                decided = self._decide(record, record.order.resolved(call, False))
        if failed:
            if call.events:
                info, call.info = call.info, ()
                self._record(Event(call.task_id, call.attempt, TS.PENDING_ARGS_AVAIL, now(), info))
            self._carry_out(decided)
            return
        if ready:
            self._carry_out(decided)
        elif call.top_refs:
            when_resolved(core, call.top_refs, lambda *r: self._ready(record, call, *r))
        else:
            self._ready(record, call, [], [], None)
        info = call.info
        if info and not call.sent:  # it waits, PENDING_ARGS_AVAIL (sent: its end says it)
            call.info = ()
            self._record(Event(call.task_id, call.attempt, TS.PENDING_ARGS_AVAIL, now(), info))

    def _ready(self, record: ActorRecord, call: ActorCall, resolved, frames, failed_entry):
        call.borrowed = borrowed_by_call(self.core, call.top_refs, call.nested)
        with self.lock:
            call.resolved, call.resolved_frames = resolved, frames
            call.failed_entry = failed_entry
            decided = self._decide(record, record.order.resolved(call, failed_entry is not None))
        self._carry_out(decided)

    def _decide(self, record: ActorRecord, instructions) -> tuple[list, list]:
        """Turns the ordering's instructions into (pushes, failures), registering borrowers
        for the pushes now (lock held). Takes the send lock when there is anything to push:
        `_carry_out`, called once `lock` is let go, makes the pushes and gives it back."""
        pushes, failures = [], []
        for ins in instructions:
            call = ins.call
            if call.pushed_to:  # sent before, to a worker that died: sent again or failed now
                self._lost(call)
            if type(ins) is O.Send:
                if call.events:
                    if call.sent:
                        self._sent_again(record, call)
                    call.sent = True
                    call.sent_ns = now()  # said by the call's end, or a flush while in flight
                if call.borrowed:
                    call.pushed_to = ins.address
                    self.core.register_borrower(ins.address, call.borrowed)
                pushes.append(
                    (
                        ins.address,
                        P.PushActorTask(
                            record.actor_id,
                            call.task_id,
                            call.method,
                            call.num_returns,
                            self.core.address,
                            len(call.frames) - 1,
                            call.resolved,
                            call.borrowed,
                            call.concurrency_group,
                            call.generator_backpressure,
                            call.attempt if call.events else -1,
                        ),
                        [*call.frames, *call.resolved_frames],  # () in plain calls
                    )
                )
            elif ins.why == O.ARGUMENTS:
                failures.append((call, call.failed_entry))
            elif ins.why == O.CANCELLED:
                failures.append((call, error_entry(X.TaskCancelledError(call.task_id.hex()))))
            elif ins.why == O.RETRIES:
                failures.append(
                    (
                        call,
                        error_entry(
                            X.ActorDiedError(
                                {
                                    "actor_id": record.actor_id,
                                    "class_name": record.class_name,
                                    "error_message": "The actor's worker died while running this call; "
                                    "it was restarted but max_task_retries is exhausted.",
                                }
                            )
                        ),
                    )
                )
            else:
                failures.append((call, error_entry(record.death or X.ActorDiedError(None))))
        if pushes:
            self._send_lock.acquire()
        return pushes, failures

    def _sent_again(self, record: ActorRecord, call: ActorCall):
        """A call sent before, whose actor's worker died with it: that attempt failed, the
        one now sent to the restarted actor is the next."""
        self._record_sent(record, call)
        self.core.task_events.ended(
            call.task_id,
            call.attempt,
            X.ActorDiedError(
                {
                    "actor_id": record.actor_id,
                    "class_name": record.class_name,
                    "error_message": "The actor's worker died while running this call.",
                }
            ),
        )
        call.attempt += 1

    def _carry_out(self, decided: tuple[list, list]):
        """Makes the pushes `_decide` returned, in order, then fails its failures (whose
        results may resolve, and so push, later calls)."""
        pushes, failures = decided
        if pushes:
            try:
                for address, msg, payload in pushes:
                    try:
                        self.core.push(address, msg, payload=payload, batch=True)
                    except MessageTooLarge as exc:
                        failures.append(self._unsendable(msg.task_id, address, exc))
            finally:
                self._send_lock.release()
        for call, entry in failures:
            self._finish(call, [(oid, entry) for oid in call.return_ids])

    def on_state(self, msg: P.ActorState):
        if msg.state == DEAD and self._defer_death(msg):
            return
        self._apply_state(msg)

    def _defer_death(self, msg: P.ActorState) -> bool:
        """An actor that answered calls over a direct connection and then died (exit_actor,
        `__ray_terminate__` after them): the head's word comes on another channel and can
        overtake those answers, failing calls that succeeded. The answers precede the end of
        the connection, so the death waits until it has ended (at most DEATH_GRACE_S)."""
        with self.lock:
            record = self.actors.get(msg.actor_id)
            if record is None or not record.order.inflight or msg.actor_id in self.deferred_deaths:
                return False
            connection = self.core.channels.opened(record.order.address)
        if connection is None or connection.closed:
            return False
        self.deferred_deaths[msg.actor_id] = (msg, connection, time.monotonic() + DEATH_GRACE_S)
        return True

    def _apply_state(self, msg: P.ActorState):
        with self.lock:
            record = self.actors.get(msg.actor_id)
            if record is None or record.order.state == DEAD:
                return
            if msg.state == DEAD:
                record.death = self._death_error(record, msg)
            decided = self._decide(
                record, record.order.state_changed(msg.state, msg.address, msg.num_restarts)
            )
        self._carry_out(decided)

    def _death_error(self, record: ActorRecord, msg: P.ActorState) -> BaseException:
        if msg.error:
            try:
                cause = deserialize(msg.error, [])
            except Exception:  # noqa: BLE001 - a broken error still means a dead actor
                cause = None
            if isinstance(cause, X.RayTaskError):
                return X.ActorDiedError(cause)
        return X.ActorDiedError(
            {
                "actor_id": record.actor_id,
                "class_name": record.class_name,
                "error_message": msg.death_cause,
            }
        )

    def _unsendable(self, task_id: bytes, address: str, exc: MessageTooLarge) -> tuple:
        """A call too large for its connection fails at its caller, as the worker's answer
        would: the worker never sees it."""
        with self.lock:
            record, call = self.calls[task_id]
            record.order.done(task_id)
            if call.pushed_to:
                self._lost(call)
        return call, error_entry(too_large_error(exc))

    def _lost(self, call: ActorCall):
        """A pushed call died with its worker: give back what we registered for it there."""
        self.core.unregister_borrower(call.pushed_to, call.borrowed)
        call.pushed_to = ""

    def on_task_done(self, msg: P.TaskDone, payload):
        with self.lock:
            found = self.calls.get(msg.task_id)
            if found is None:
                return
            record, call = found
            record.order.done(msg.task_id)
            call.pushed_to = ""  # the worker answered: it gives back its own registrations
        entries = returned_entries(msg.returns, payload)
        if call.retry_exceptions and self._retried(record, call, entries):
            return
        self._finish(call, entries, msg.contained)

    def _retried(self, record: ActorRecord, call: ActorCall, entries) -> bool:
        """Calls the actor again when the method raised an exception `retry_exceptions` names
        and `max_task_retries` allows, as Ray does: queued again (calls submitted later may run
        first), whether or not the actor may restart; `get` raises the last attempt's error."""
        error = entries[0][1] if entries else None
        if (
            error is None
            or error.kind != KIND_ERROR
            or call.retries_left == 0
            or call.cancelled
            or call.num_returns == P.STREAMING
            or not should_retry_exception(call.retry_exceptions, error)
        ):
            return False
        if call.retries_left > 0:
            call.retries_left -= 1
        if call.events:
            self._record_sent(record, call)
            self.core.task_events.ended(call.task_id, call.attempt, error)
            call.attempt += 1
        call.sent, call.resolved, call.resolved_frames, call.failed_entry = False, [], [], None
        self._queue(record.actor_id, call)
        return True

    def _finish(self, call: ActorCall, entries, contained=None):
        found = self.calls.pop(call.task_id, None)
        if found is None:
            return
        if found[0].max_pending_calls > 0 and not call.reconstructions:
            with self.lock:
                found[0].pending_calls -= 1
        failed = any(e.kind == KIND_ERROR for _, e in entries or ())
        metrics_registry.tasks.finished(found[0].name(call.method), failed, False)
        if call.events:
            first = entries[0][1] if entries else None  # an error is every return's
            sent = call.sent_ns
            if sent:  # its sending not reported yet: this event says it too
                call.sent_ns = 0
                sent = (sent, found[0].described(call))
            if first is not None and first.kind == KIND_ERROR:
                self._record(
                    (call.task_id, call.attempt, TS.FAILED, now(), TE.Failure(first, sent))
                )
            elif sent:
                self._record(Finished(call.task_id, call.attempt, now(), *sent))
            else:
                self._record(Event(call.task_id, call.attempt, TS.FINISHED, now(), None))
        if call.max_retries != 0 and call.num_returns != P.STREAMING and not failed:
            if self.core.submitter.lineage.keep(call, entries):  # before results may be freed
                lineage_pins.pin_arguments(self.core, call)  # before they are unpinned
                lineage_pins.release(self.core, ())  # what keeping it evicted
        store_results(self.core, entries, call.pinned_ids, contained)

    def _record_sent(self, record: ActorRecord, call: ActorCall):
        """SUBMITTED_TO_WORKER of a call sent and not reported yet (with its description, if
        no event carried it)."""
        sent = call.sent_ns
        if sent:
            call.sent_ns = 0
            self._record(
                Event(
                    call.task_id,
                    call.attempt,
                    TS.SUBMITTED_TO_WORKER,
                    sent,
                    record.described(call),
                )
            )

    def report_in_flight(self, record):
        """Records with `record` (a flush's, I/O thread) SUBMITTED_TO_WORKER of each call sent
        since the last flush and still running, so the state API shows calls in flight. A call
        ending meanwhile may say it too: the head keeps one time per state."""
        # list() of a dict's values runs without a thread switch: no lock needed (calls end
        # without the lock).
        for actor, call in list(self.calls.values()):
            sent, attempt = call.sent_ns, call.attempt
            if sent:
                info = actor.described(call)
                record((call.task_id, attempt, TS.SUBMITTED_TO_WORKER, sent, info))
                if call.sent_ns == sent:  # not sent again meanwhile (a restarted actor)
                    call.sent_ns = 0

    def reconstruct(self, call: ActorCall, object_id: bytes, reconstruct_arguments) -> bool:
        """Calls the actor again for an output of `call` whose every copy was lost (its
        restarted instance, if the loss came with its node), after recomputing lost arguments.
        Bounded by the call's max_retries, like a task's."""
        actor_id = call.task_id[-ACTOR_ID_SIZE:]  # an actor call's id ends with its actor's
        with self.lock:
            if call.task_id in self.calls:
                return True  # already being recomputed: the caller waits for it
            record = self.actors.get(actor_id)
            if record is None:
                return False
            if call.max_retries != -1 and call.reconstructions >= call.max_retries:
                raise X.ObjectReconstructionFailedError(
                    object_id.hex(), "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED"
                )
            call.reconstructions += 1
        # Held until it ran again, as submit() would: arguments freed since (their lineage
        # kept) are made again for it, and must not be freed again before it ran.
        refs = self.core.refs
        refs.pin(call.pinned_ids)
        try:
            reconstruct_arguments()
        except BaseException:
            self.core.apply_released(refs.unpin(call.pinned_ids))
            raise
        for oid in call.return_ids:
            self.core.memory_store.delete(oid)  # gets wait for the new copies
        self.core.revive_objects(call.return_ids)
        call.pushed_to, call.borrowed, call.cancelled = "", [], False
        call.resolved, call.resolved_frames, call.failed_entry = [], [], None
        call.attempt, call.sent = call.attempt + 1, False  # a new attempt, not a lost one
        self.submit(actor_id, call, arguments_pinned=True)
        return True

    def state_of(self, actor_id: bytes) -> str:
        record = self.actors.get(actor_id)
        return record.order.state if record else PENDING


def _ignore_answer(reply, payload):
    pass
