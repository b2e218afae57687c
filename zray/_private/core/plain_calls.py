"""The common actor call's short path, both ways: a call without ObjectRef arguments, one
return and default options, to an actor that is alive with its direct connection open and
nothing queued before the call (issue 20, part 4; docs/design.md, "Plain actor calls").

Such a call is sent at once whatever the general path decides, so this path does what the
general one does for it (actor_submitter.py: `ActorMethod.remote` -> `submit` -> `_queue` ->
`CallOrder.resolved` -> `_decide` -> `_carry_out` -> `push`) in one function, with the
message written by `zray._fast.frame_actor_call`: the same results owned, the same call in
`calls` and in the order's `inflight`, the same task events, the same bytes on the wire.
Anything else (an actor not alive yet, calls queued, a connection not open, a call not plain)
answers None and the caller takes the general path.

The answer of one inline value (`zray._fast.plain_answer`) to a call whose end needs nothing
the general path would add (no retries on exceptions, no kept lineage, no pending-calls
count) is stored by `answer_plain` with what `ActorSubmitter.on_task_done` and `_finish` do
for it; a task's answer of that shape (`zray._fast.plain_task_answer`) by `answer_plain_task`
with what `TaskSubmitter.on_task_done` does for it. Any other answer goes through the
general decoder and dispatch.
"""

from __future__ import annotations

from zray._config import config
from zray._fast import (
    Finished,
    MessageTooLarge,
    call_ended,
    frame_actor_call,
    object_id_for,
    plain_answer,
    plain_task_answer,
    random_id,
)
from zray._private.common.actor_states import ALIVE
from zray._private.core import metrics_registry
from zray._private.core.actor_submitter import ActorCall
from zray._private.core.dependencies import result_frames
from zray._private.core.memory_store import KIND_INLINE, Entry
from zray._private.core.task_events import now
from zray._private.wire import protocol as P
from zray.object_ref import ObjectRef

# Every plain call's header: a PushActorTask, no flags, no sequence number.
_HEADER = P.encode(P.PushActorTask(b"", b"", "", 1, "", 0, [], [], "", -1, 0))[0]
_VERSION, _TASK_DONE = P.PROTOCOL_VERSION, P.TaskDone.CODE


def plain_defaults(name: str, defaults: dict) -> bool:
    """Whether a method's own options (@method) leave its calls plain: one return, no retry
    options, the default concurrency group, task events as the process has them."""
    return (
        not name.startswith("__")
        and type(defaults.get("num_returns", 1)) is int
        and defaults.get("num_returns", 1) == 1
        and defaults.get("max_task_retries") is None
        and defaults.get("retry_exceptions") is None
        and not defaults.get("concurrency_group")
        and defaults.get("_generator_backpressure_num_objects") is None
        and defaults.get("enable_task_events", True) is True
    )


def submit_plain(handle, method: str, arguments: bytes):
    """Sends a plain call (`arguments`: its pickled (args, kwargs), one frame) and returns its
    ObjectRef, or None, having done nothing, when the general path must decide."""
    core = handle._core
    submitter = core.actor_submitter
    if handle._max_pending_calls > 0 or not config.direct_calls:
        return None
    actor_id = handle._actor_id
    record = submitter.actors.get(actor_id)
    if record is None:
        return None
    order = record.order
    address = order.address
    if order.state != ALIVE or order.queue or not address:
        return None
    connection = core.channels.opened(address)
    if connection is None or connection.closed:
        return None
    task_id = random_id(8) + actor_id
    return_id = object_id_for(task_id, 1)
    events = core.task_events.enabled
    retries = handle._max_task_retries
    call = ActorCall(
        task_id,
        method,
        1,
        [return_id],
        [arguments],
        (),  # no ref arguments: only ever read (shared empties, no list per call)
        retries,
        (),
        max_retries=retries if handle._max_restarts else 0,
        borrowed=(),
        resolved=(),
        resolved_frames=(),
        events=events,
        parent_task_id=core.current_task_id() if events else b"",
    )
    # As ActorMethod.remote: the ref exists before the call can end (its count holds the result).
    ref = ObjectRef(return_id, core.address)
    core.refs.add_owned(return_id)
    core.note_submitted(task_id)
    sent_ns = 0
    with submitter.lock:
        if order.state != ALIVE or order.queue or order.address != address:
            taken = False  # changed meanwhile: the general path queues it (submit's rest)
        else:
            taken = True
            if events:
                call.info = None  # made when an event first needs it (ActorRecord.described)
                call.sent = True
                call.sent_ns = sent_ns = now()
            submitter.calls[task_id] = (record, call)
            call.ready = True
            order.inflight[task_id] = call
            submitter._send_lock.acquire()  # as _decide: pushes leave in the order decided
    if not taken:
        submitter._queue(actor_id, call)
        return ref
    unsendable = None
    try:
        try:
            data = frame_actor_call(
                _HEADER,
                actor_id,
                task_id,
                method,
                core.address,
                call.attempt if events else -1,
                arguments,
            )
        except MessageTooLarge as exc:  # fails at its get, as the general path's push does
            unsendable = submitter._unsendable(task_id, address, exc)
            return ref
        if not core.batcher.send_framed(connection, [data]):  # closed meanwhile: as `push` does
            core.endpoint.send(
                address,
                P.PushActorTask(
                    actor_id,
                    task_id,
                    method,
                    1,
                    core.address,
                    0,
                    [],
                    [],
                    "",
                    -1,
                    call.attempt if events else -1,
                ),
                payload=[arguments],
            )
    finally:
        submitter._send_lock.release()
        if unsendable is not None:
            failed, entry = unsendable
            submitter._finish(failed, [(oid, entry) for oid in failed.return_ids])
    if events:
        # Its end event, built while a sync caller would spin for the answer: the end only
        # stamps it. Its answer may be handled first (another thread): that end then does it
        # all, and this one is never used. The call's `info` is left to whichever event
        # reports the sending, so it is never lost.
        call.finished = Finished(
            task_id, call.attempt, 0, sent_ns, record.info(method, call.parent_task_id)
        )
    return ref


def answer_plain(core, frames: list) -> bool:
    """Handles a direct message if it is the plain answer of a plain call; False if the
    general path must read it (it has not been touched)."""
    submitter = core.actor_submitter
    if submitter is None:  # still registering: nothing of ours can be answered yet
        return False
    answer = plain_answer(frames, _VERSION, _TASK_DONE)
    if answer is None:
        return False
    task_id, object_id, node_id, size = answer
    with submitter.lock:
        found = submitter.calls.get(task_id)
        if found is None:
            return True  # not ours, or over already: as on_task_done, ignored
        record, call = found
        if (
            call.retry_exceptions
            or call.max_retries != 0
            or record.max_pending_calls > 0
            or call.num_returns != 1
            or call.top_refs
            or call.nested
            or call.return_ids[0] != object_id
        ):
            return False
        record.order.done(task_id)
        call.pushed_to = ""
        del submitter.calls[task_id]
    metrics_registry.tasks.finished(record.name(call.method), False, False)
    # store_results for one inline value, no arguments held, nothing inside it: the value
    # first (it ends the get), then whether anyone still references it.
    core.memory_store.put(object_id, Entry(KIND_INLINE, result_frames(frames[2:]), node_id, size))
    if call.events:  # after the value: a get waiting for it need not wait for this
        # Its sending too, if no event said it yet, and its description, made here rather
        # than before the send: off a sync call's round trip.
        call_ended(call, record, submitter._record)
    released = core.refs.check((object_id,))
    if released:
        core.apply_released(released)
    return True


def answer_plain_task(core, frames: list) -> bool:
    """`answer_plain` of a task's answer: a TaskDone of one inline value, no error and no refs
    inside, from a leased worker. It cannot say an argument was lost nor ask for a retry, so
    of TaskSubmitter.on_task_done it needs only the lease's bookkeeping and `_finish`,
    without the general decoder, the dispatch and those checks. False: not such an answer
    (untouched, for the general path)."""
    submitter = core.submitter
    if submitter is None:  # still registering: nothing of ours can be answered yet
        return False
    answer = plain_task_answer(frames, _VERSION, _TASK_DONE)
    if answer is None:
        return False
    task_id, object_id, node_id, size, lease_id = answer
    lease, spec = submitter._answered(lease_id, task_id)
    if spec is not None:  # else not ours, or over already: as on_task_done, ignored
        entry = Entry(KIND_INLINE, result_frames(frames[2:]), node_id, size)
        submitter._finish(spec, [(object_id, entry)])
        submitter._next_on(lease)
    return True
