"""Caller-side actor calls: pushed straight to the actor's worker, in submission order.

The head tells every handle holder where an actor lives and when it restarts or dies
(ActorState). Calls wait while the actor is PENDING or RESTARTING; calls in flight when its
worker died are retried after the restart if `max_task_retries` allows, otherwise they fail with
ActorDiedError, as do all calls once the actor is DEAD.

A call whose arguments are not ready holds back the calls after it, which keeps submission
order without sequence numbers on the wire.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from zray import exceptions as X
from zray._private import protocol as P
from zray._private.actor_manager import ALIVE, DEAD, PENDING, RESTARTING
from zray._private.dependencies import (borrowed_by_call, error_entry, returned_entries,
                                        store_results, when_resolved)
from zray._private.serialization import deserialize


@dataclass(eq=False)
class ActorCall:
    task_id: bytes
    method: str
    num_returns: int
    return_ids: list
    frames: list
    top_refs: list
    retries_left: int
    nested: list = field(default_factory=list)  # [(object id, owner)] nested in the arguments
    borrowed: list = field(default_factory=list)  # what the actor's worker will hold
    pushed_to: str = ""
    resolved: list = field(default_factory=list)
    resolved_frames: list = field(default_factory=list)
    ready: bool = False
    failed_entry: object = None

    @property
    def pinned_ids(self) -> list:
        return [ref._id for ref in self.top_refs] + [oid for oid, _ in self.nested]


@dataclass(eq=False)
class ActorRecord:
    actor_id: bytes
    class_name: str
    state: str = PENDING
    address: str = ""
    death: BaseException | None = None
    queue: deque = field(default_factory=deque)
    inflight: OrderedDict = field(default_factory=OrderedDict)
    handles: int = 0
    owned: bool = False
    escaped: bool = False
    detached: bool = False
    kill_requested: bool = False


class ActorSubmitter:
    def __init__(self, core):
        self.core = core
        self.lock = threading.RLock()
        self.actors: dict[bytes, ActorRecord] = {}
        self.calls: dict[bytes, tuple] = {}  # task_id -> (record, call)
        self._released = deque()

    # ------------------------------------------------------------------ handles

    def track(self, actor_id: bytes, class_name: str, owned=False, detached=False) -> ActorRecord:
        """Counts one more handle to the actor here, subscribing to its state on the first."""
        with self.lock:
            record = self.actors.get(actor_id)
            if record is None:
                record = self.actors[actor_id] = ActorRecord(actor_id, class_name)
                self.core.endpoint.send(self.core.head_address, P.SubscribeActor(actor_id))
            record.handles += 1
            record.owned = record.owned or owned
            record.detached = record.detached or detached
            return record

    def handle_dropped(self, actor_id: bytes):
        self._released.append(actor_id)  # from __del__: any thread, any moment

    def handle_escaped(self, actor_id: bytes):
        record = self.actors.get(actor_id)
        if record is not None:
            record.escaped = True

    def tick(self):
        """Applies dropped handles: an actor whose creator holds no handle any more, which
        never escaped to another process, ends once its calls are done (as in Ray)."""
        while self._released:
            actor_id = self._released.popleft()
            with self.lock:
                record = self.actors.get(actor_id)
                if record is not None:
                    record.handles -= 1
        with self.lock:
            for record in self.actors.values():
                if (record.handles <= 0 and record.owned and not record.escaped
                        and not record.detached and not record.kill_requested
                        and not record.queue and not record.inflight and record.state != DEAD):
                    record.kill_requested = True
                    self.core.endpoint.send(self.core.head_address, P.KillActor(
                        record.actor_id, True,
                        "The actor is dead because all references to the actor were removed."))

    def kill(self, actor_id: bytes, no_restart: bool):
        self.core.endpoint.send(self.core.head_address, P.KillActor(
            actor_id, no_restart, "The actor was killed by ray.kill()."))

    # ------------------------------------------------------------------ calls

    def submit(self, actor_id: bytes, call: ActorCall):
        core = self.core
        for oid in call.return_ids:
            core.refs.add_owned(oid)
        core.refs.pin(call.pinned_ids)
        with self.lock:
            record = self.actors[actor_id]
            self.calls[call.task_id] = (record, call)
            record.queue.append(call)
            if record.state == DEAD:
                self._fail_all(record)
                return
        when_resolved(core, call.top_refs, lambda *r: self._ready(record, call, *r))

    def _ready(self, record: ActorRecord, call: ActorCall, resolved, frames, failed_entry):
        call.borrowed = borrowed_by_call(self.core, call.top_refs, call.nested)
        with self.lock:
            call.resolved, call.resolved_frames = resolved, frames
            call.failed_entry = failed_entry
            call.ready = True
            self._pump(record)

    def _pump(self, record: ActorRecord):
        """Sends ready calls from the front of the queue (lock held)."""
        queue = record.queue
        while queue and queue[0].ready:
            call = queue[0]
            if call.failed_entry is not None:
                queue.popleft()
                self._finish(record, call, [(oid, call.failed_entry) for oid in call.return_ids])
                continue
            if record.state != ALIVE:
                return
            queue.popleft()
            record.inflight[call.task_id] = call
            if call.borrowed:
                call.pushed_to = record.address
                self.core.register_borrower(record.address, call.borrowed)
            self.core.endpoint.send(record.address, P.PushActorTask(
                record.actor_id, call.task_id, call.method, call.num_returns, self.core.address,
                len(call.frames) - 1, call.resolved, call.borrowed),
                payload=call.frames + call.resolved_frames)

    def on_state(self, msg: P.ActorState):
        with self.lock:
            record = self.actors.get(msg.actor_id)
            if record is None or record.state == DEAD:
                return
            moved = msg.address != record.address and record.inflight
            record.state, record.address = msg.state, msg.address
            if msg.state == DEAD:
                record.death = self._death_error(record, msg)
                self._fail_all(record)
                return
            if moved or msg.state == RESTARTING:
                self._requeue_inflight(record)
            if msg.state == ALIVE:
                self._pump(record)

    def _requeue_inflight(self, record: ActorRecord):
        """The worker running these calls died: retry those with retries left, in order."""
        retry = []
        for call in record.inflight.values():
            self._lost(call)
            if call.retries_left != 0:
                call.retries_left -= 1
                retry.append(call)
            else:
                self._finish(record, call, [(oid, error_entry(X.ActorDiedError({
                    "actor_id": record.actor_id, "class_name": record.class_name,
                    "error_message": "The actor's worker died while running this call; "
                                     "it was restarted but max_task_retries is exhausted."}))
                ) for oid in call.return_ids], inflight=False)
        record.inflight.clear()
        record.queue.extendleft(reversed(retry))

    def _death_error(self, record: ActorRecord, msg: P.ActorState) -> BaseException:
        if msg.error:
            try:
                cause = deserialize(msg.error, [])
            except Exception:  # noqa: BLE001 - a broken error still means a dead actor
                cause = None
            if isinstance(cause, X.RayTaskError):
                return X.ActorDiedError(cause)
        return X.ActorDiedError({"actor_id": record.actor_id, "class_name": record.class_name,
                                 "error_message": msg.death_cause})

    def _fail_all(self, record: ActorRecord):
        entry = error_entry(record.death or X.ActorDiedError(None))
        for call in record.inflight.values():
            self._lost(call)
        calls = list(record.inflight.values()) + list(record.queue)
        record.inflight.clear()
        record.queue.clear()
        for call in calls:
            self._finish(record, call, [(oid, entry) for oid in call.return_ids], inflight=False)

    def _lost(self, call: ActorCall):
        """A pushed call died with its worker: give back what we registered for it there."""
        if call.pushed_to:
            self.core.unregister_borrower(call.pushed_to, call.borrowed)
            call.pushed_to = ""

    def on_task_done(self, msg: P.TaskDone, payload):
        with self.lock:
            found = self.calls.get(msg.task_id)
            if found is None:
                return
            record, call = found
            record.inflight.pop(msg.task_id, None)
        self._finish(record, call, returned_entries(msg.returns, payload), inflight=False,
                     contained=msg.contained)

    def _finish(self, record: ActorRecord, call: ActorCall, entries, inflight=True,
                contained=None):
        if self.calls.pop(call.task_id, None) is None:
            return
        if inflight:
            record.inflight.pop(call.task_id, None)
        store_results(self.core, entries, call.pinned_ids, contained)

    def state_of(self, actor_id: bytes) -> str:
        record = self.actors.get(actor_id)
        return record.state if record else PENDING
