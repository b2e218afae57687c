"""A task that failed because an argument it was given was lost (every copy of it was on a node
that died) is not the task's failure: as in Ray, its owner recomputes the argument from lineage
and runs the task again, which does not count against the task's max_retries.

The worker reports the loss as the task's error (ObjectLostError naming the argument); the
owner sees it in TaskDone, on its I/O thread, which must not wait for the head's answers that
recomputing asks for: the rerun is prepared on a thread of its own.
"""

from __future__ import annotations

import logging
import threading

from zray import exceptions as X
from zray._private.core.dependencies import when_resolved
from zray._private.core.memory_store import KIND_ERROR

logger = logging.getLogger(__name__)

MAX_RERUNS = 10  # per task: a bound, in case an argument keeps being lost


def lost_argument(submitter, spec, entries) -> bytes | None:
    """The id of an argument of `spec`, ours to recompute, whose loss failed the task."""
    if not entries or entries[0][1].kind != KIND_ERROR or spec.lost_argument_reruns >= MAX_RERUNS:
        return None
    if not submitter.lineage.enabled or not spec.top_refs:
        return None
    from zray._private.core.serialization import deserialize

    entry = entries[0][1]
    try:
        error = deserialize(entry.frames[0], entry.frames[1:])
    except Exception:
        return None
    cause = getattr(error, "cause", error)
    if type(cause) is not X.ObjectLostError:
        return None
    try:
        object_id = bytes.fromhex(cause.object_ref_hex)
    except (TypeError, ValueError):
        return None
    if object_id not in {ref._id for ref in spec.top_refs}:
        return None
    if not submitter.core.refs.owns(object_id) or submitter.lineage.spec_for(object_id) is None:
        return None
    return object_id


def rerun(submitter, spec, object_id: bytes) -> None:
    spec.lost_argument_reruns += 1
    with submitter.lock:
        spec.state = "resolving"
    logger.info("running %s again: its argument %s was lost", spec.name, object_id.hex()[:16])

    def prepare():
        try:
            submitter.reconstruct(object_id)
        except X.RayError as exc:  # cannot be recomputed: the task fails with that
            submitter._finish_with_error(spec, exc)
            return
        when_resolved(submitter.core, spec.top_refs, lambda *r: submitter._enqueue(spec, *r))

    threading.Thread(target=prepare, name="zray-rerun", daemon=True).start()
