"""Values to bytes and back: pickle protocol 5 with out-of-band buffers (cloudpickle, so lambdas
and closures work), so numpy and Arrow data are written to shared memory without an extra copy
and read back as zero-copy views."""

from __future__ import annotations

import pickle
import threading

import cloudpickle

_context = threading.local()


class RefCollector:
    """Collects the ObjectRefs pickled inside a value (they become borrowed elsewhere)."""

    def __init__(self):
        self.refs = []

    def __enter__(self):
        self._outer = getattr(_context, "collector", None)
        _context.collector = self
        return self

    def __exit__(self, *exc):
        _context.collector = self._outer


def note_ref_serialized(ref):
    collector = getattr(_context, "collector", None)
    if collector is not None:
        collector.refs.append(ref)
        return
    # Pickled outside zray (by hand, or by a library): we cannot know who will hold it, so
    # the object is kept for the owner's lifetime rather than freed under a future reader.
    from zray._private.core import runtime

    core = runtime.core
    if core is not None:
        core.refs.mark_escaped([ref._id])


_PLAIN_TYPES = frozenset((int, float, str, bytes, bool, type(None)))


def is_plain(value, depth: int = 0) -> bool:
    """Builtin scalars, and small tuples/lists/dicts of them: the standard pickler writes these
    exactly as cloudpickle would, at a fraction of the cost (no pickler class per call), and
    they hold no ObjectRef and no out-of-band buffer."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return True
    if depth >= 2:
        return False
    if kind is tuple or kind is list:
        return len(value) <= 16 and all(is_plain(item, depth + 1) for item in value)
    if kind is dict:
        return len(value) <= 16 and all(
            type(key) in _PLAIN_TYPES and is_plain(item, depth + 1) for key, item in value.items()
        )
    return False


def serialize_plain(value) -> bytes:
    """serialize() of a value `is_plain` accepted: its metadata alone."""
    return pickle.dumps(value, protocol=5)


def serialize(value) -> tuple[bytes, list, list]:
    """Returns (metadata, out-of-band buffers as memoryviews, ObjectRefs found inside)."""
    if is_plain(value):
        return serialize_plain(value), [], []
    buffers = []
    with RefCollector() as collector:
        try:
            meta = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception as exc:
            raise TypeError(_unpicklable_message(value, exc)) from exc
    return meta, [b.raw() for b in buffers], collector.refs


def deserialize(meta, buffers):
    return pickle.loads(meta, buffers=buffers)


def _unpicklable_message(value, exc) -> str:
    culprit = _find_unpicklable(value)
    where = f" (the culprit is {culprit})" if culprit else ""
    return (
        f"Could not serialize {type(value).__name__} value{where}: {type(exc).__name__}: {exc}. "
        "zray.util.inspect_serializability(value) shows what inside it fails; "
        "zray.util.register_serializer can teach zray a class."
    )


def _find_unpicklable(value, depth=0):
    if depth > 3:
        return None
    items = ()
    if isinstance(value, (list, tuple, set)):
        items = [(f"item {i}", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        items = [(f"key {k!r}", v) for k, v in value.items()]
    for label, item in items:
        try:
            cloudpickle.dumps(item)
        except Exception:
            inner = _find_unpicklable(item, depth + 1)
            return f"{label}: {inner}" if inner else f"{label} of type {type(item).__name__}"
    return None
