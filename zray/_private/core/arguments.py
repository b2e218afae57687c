"""Packing a call's arguments, shared by tasks, actor creation and actor method calls."""

from __future__ import annotations

from zray._config import config
from zray._private.core.reference_counter import distinct
from zray._private.core.serialization import is_plain, serialize, serialize_plain

COPY_BELOW = 64 * 1024  # smaller out-of-band buffers are copied: cheaper than tracking them
NO_ARGUMENTS = serialize_plain(((), {}))  # also how workers spot an empty call
# Tuples, not lists, for the common calls: a queued task keeps what this returns, and an
# empty tuple (or one of bytes, after one young collection) is not tracked by the garbage
# collector, which walks every tracked object of a queued task on each full collection.
_NO_ARGUMENT_FRAMES = (NO_ARGUMENTS,)


def pack_arguments(core, args: tuple, kwargs: dict, promote: bool = True):
    """Returns (frames, top_refs, nested): the pickled (args, kwargs) as message frames, the
    ObjectRefs passed directly as arguments (resolved to their values before the call runs),
    and [(object id, owner)] of refs nested inside arguments, which travel as refs: the caller
    holds them until the call is done and registers the executing worker as their borrower."""
    if not args and not kwargs:
        return _NO_ARGUMENT_FRAMES, (), ()
    call = (args, kwargs)
    if is_plain(call):  # scalars: no ref, no buffer, nothing to promote (most small calls)
        return (serialize_plain(call),), (), ()
    # Imported here, past the common cases: an import statement costs ~1 us per call.
    from zray.object_ref import ObjectRef

    if promote:
        args, kwargs = _promote_large(core, args, kwargs)
    top_refs = [a for a in args if isinstance(a, ObjectRef)]
    top_refs += [v for v in kwargs.values() if isinstance(v, ObjectRef)]
    meta, buffers, contained = serialize((args, kwargs))
    top_ids = {r._id for r in top_refs}
    # A ref passed both directly and nested is pickled once (pickle memoizes the instance), so
    # it is indistinguishable from a top-level one here; it is held only for the call then.
    nested = distinct([r for r in contained if r._id not in top_ids])
    frames = [meta] + [bytes(b) if b.nbytes < COPY_BELOW else b for b in buffers]
    return frames, top_refs, nested


def _promote_large(core, args, kwargs):
    """Puts large by-value arguments into the object store first (as Ray does), so the message
    stays small and the executing worker maps the value instead of receiving a copy."""
    limit = config.max_inline_bytes

    def big(value):
        nbytes = getattr(value, "nbytes", None)
        return isinstance(nbytes, int) and nbytes > limit

    if not any(big(a) for a in args) and not any(big(v) for v in kwargs.values()):
        return args, kwargs
    args = tuple(core.put(a) if big(a) else a for a in args)
    kwargs = {k: core.put(v) if big(v) else v for k, v in kwargs.items()}
    return args, kwargs
