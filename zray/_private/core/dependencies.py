"""What task and actor submission share: waiting for top-level ObjectRef arguments the caller
owns, inlining their values into the message, and storing results when they come back."""

from __future__ import annotations

import threading

from zray._config import config
from zray._fast import MAX_FRAMES
from zray._private.core.memory_store import KIND_ERROR, KIND_INLINE, KIND_PLASMA, Entry
from zray._private.core.reference_counter import Released
from zray._private.core.serialization import deserialize, serialize


def when_resolved(core, top_refs: list, done):
    """Calls done(resolved, frames, error_entry) once every owned top-level argument is ready:
    `resolved` lists [object_id, kind, nframes, node_id, size] for values the caller holds,
    `frames` their inline frames; `error_entry` is set when an argument is itself an error."""
    waiting = [
        ref
        for ref in top_refs
        if core.refs.owns(ref._id) and not core.memory_store.contains(ref._id)
    ]
    if not waiting:
        done(*_inline(core, top_refs))
        return
    remaining = [len(waiting)]
    lock = threading.Lock()

    def one_ready(object_id, entry):
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            done(*_inline(core, top_refs))

    for ref in waiting:
        core.memory_store.on_ready(ref._id, one_ready)


def _inline(core, top_refs):
    store = core.memory_store
    resolved, frames = [], []
    budget = config.task_rpc_inlined_bytes_limit
    frame_budget = MAX_FRAMES // 4
    for ref in top_refs:
        entry = store.get(ref._id)
        if entry is None:
            continue  # borrowed: the executing worker asks its owner
        if entry.kind == KIND_ERROR:
            return [], [], entry
        if entry.kind == KIND_INLINE:
            budget -= entry.size
            frame_budget -= len(entry.frames)
            if budget < 0 or frame_budget < 0:
                continue  # past the call's share: the executing worker asks us for it
            resolved.append([ref._id, KIND_INLINE, len(entry.frames), b"", entry.size])
            frames.extend(entry.frames)
        elif entry.kind == KIND_PLASMA:
            resolved.append([ref._id, KIND_PLASMA, 0, entry.node_id, entry.size])
    return resolved, frames, None


def too_large_error(exc) -> Exception:
    """What a caller's get raises for a call that no connection to its worker can carry."""
    from zray.exceptions import RpcError

    return RpcError(
        f"The call was not sent: {exc}. Pass large values through ray.put() and ObjectRefs.",
        rpc_code=8,
    )  # gRPC's RESOURCE_EXHAUSTED, as Ray's


# Smaller returned frames are copied out of the received chunk: as bytes in a tuple they are
# no work for the garbage collector (a memoryview and a list are two tracked objects per
# result, walked by every full collection while results wait to be read), and a kept small
# result does not hold on to the whole chunk it came in.
COPY_RESULT_BELOW = 1024
# The tiniest values (None, a bool, a small int: one frame of a few bytes) come back from
# task after task with the same bytes: their entries share one frames tuple, so a result
# waiting to be read costs its Entry alone, and answering a task leaves no new tracked object
# behind for the collector (frames are immutable: nothing writes to an entry's frames).
SHARE_RESULT_BELOW = 64
SHARED_RESULTS_MAX = 1024
_shared_results: dict[bytes, tuple] = {}


def returned_entries(returns: list, payload) -> list:
    """(object_id, Entry) pairs from a TaskDone's return records and payload frames."""
    entries, position = [], 0
    for object_id, kind, nframes, node_id, size in returns:
        frames = result_frames(payload[position : position + nframes])
        position += nframes
        entries.append((object_id, Entry(kind, frames, node_id, size)))
    return entries


def result_frames(received: list) -> tuple:
    """The frames an Entry keeps of one result's received frames (zmq Frames)."""
    if len(received) == 1:
        view = received[0].buffer
        if len(view) < SHARE_RESULT_BELOW:
            value = bytes(view)
            frames = _shared_results.get(value)
            if frames is None:
                if len(_shared_results) >= SHARED_RESULTS_MAX:
                    _shared_results.clear()  # many distinct small values: share the latest
                frames = _shared_results[value] = (value,)
            return frames
    views = [f.buffer for f in received]
    return tuple([bytes(v) if len(v) < COPY_RESULT_BELOW else v for v in views])


def error_entry(error: BaseException) -> Entry:
    meta, buffers, _ = serialize(error)
    return Entry(KIND_ERROR, [meta] + [bytes(b) for b in buffers])


def should_retry_exception(retry_exceptions, entry: Entry) -> bool:
    """Whether an error a task or actor call raised is one its `retry_exceptions` (True, or
    exception classes) asks to retry; a listed class matches the raised exception's class."""
    if retry_exceptions is True:
        return True
    error = deserialize(entry.frames[0], entry.frames[1:])
    cause = getattr(error, "cause", error)
    return isinstance(cause, tuple(retry_exceptions))


def borrowed_by_call(core, top_refs: list, nested: list) -> list:
    """[(object id, owner)] the executing worker will hold: refs nested in the arguments and
    refs inside the values of top-level arguments (which reach it as values)."""
    if not top_refs:
        return list(nested)
    refs, seen = list(nested), {oid for oid, _ in nested}
    for ref in top_refs:
        for oid, owner in core.refs.contents(ref._id):
            if oid not in seen:
                seen.add(oid)
                refs.append((oid, owner))
    return refs


def store_results(core, entries, pinned_ids, contained=None):
    """Publishes results (with the refs inside them, registered for us by the worker),
    releases the arguments a finished call held, and frees results nobody references."""
    refs = core.refs
    released = Released()
    if contained:
        for (object_id, _), inner in zip(entries, contained):
            if inner:
                released.extend(refs.receive_contained(object_id, [tuple(r) for r in inner]))
    for object_id, entry in entries:
        core.memory_store.put(object_id, entry)
    if pinned_ids:
        released.extend(refs.unpin(pinned_ids))
    released.extend(refs.check([oid for oid, _ in entries]))
    core.apply_released(released)
