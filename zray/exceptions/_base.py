"""RayError, the root of zray's exceptions, and UnserializableException, what
``RayError.from_bytes`` returns when an error cannot be rebuilt here.

Both live apart from ``zray/exceptions/__init__.py`` because the RayTaskError
machinery (``_task_error.py``) derives from RayError and ``__init__`` imports that
machinery: the root must sit below both.  Every class keeps ``__module__`` set to
``zray.exceptions``, the name pickles and users' code refer to.
"""

from __future__ import annotations

import pickle
import traceback as _traceback
from typing import Any

try:  # cloudpickle can serialize causes defined in __main__ or closures.
    import cloudpickle as _cloudpickle
except ImportError:  # pragma: no cover - cloudpickle is a hard dependency
    _cloudpickle = None

#: The module every public exception class claims: pickles name classes by it, so
#: it must not change when a class moves between the package's files.
PUBLIC_MODULE = "zray.exceptions"


def _dumps(obj: Any) -> bytes:
    if _cloudpickle is not None:
        return _cloudpickle.dumps(obj)
    return pickle.dumps(obj)  # pragma: no cover


class RayError(Exception):
    """Base class of every error zray raises for a distributed-execution failure.

    zray never raises a bare ``RayError`` for a task failure; it raises one of
    the subclasses below.  It appears directly only as a stand-in cause when a
    task's own exception could not be serialized (see ``RayTaskError``).
    """

    __module__ = PUBLIC_MODULE

    def to_bytes(self) -> bytes:
        """Serialize this error for sending to another process."""
        return _dumps(self)

    @staticmethod
    def from_bytes(b: bytes) -> "RayError":
        """Inverse of ``to_bytes``.

        Returns an ``UnserializableException`` carrying the text of the error
        if it cannot be reconstructed in this process.
        """
        try:
            return pickle.loads(b)
        except Exception:
            return UnserializableException(
                "<exception could not be deserialized>\n" + _traceback.format_exc()
            )


class UnserializableException(RayError):
    """Raised by ``get()`` when a task's exception reached this process but
    could not be unpickled here (for example its class is not importable).
    ``str()`` contains the original exception's formatted traceback."""

    __module__ = PUBLIC_MODULE

    def __init__(self, original_stack_trace: str):
        self._original_stack_trace = original_stack_trace
        self.args = (original_stack_trace,)

    def __str__(self):
        return (
            "Failed to deserialize exception. Make sure the exception's "
            "class can be imported and unpickled in this process.\n"
            "Original exception:\n"
            f"{self._original_stack_trace}"
        )
