"""Exceptions raised by zray.

Every class here carries the name, base classes and constructor signature of
its counterpart in ``ray.exceptions`` (Ray 2.60), so code written against Ray
(``except ray.exceptions.GetTimeoutError``, ``isinstance(e, RayActorError)``,
``RayTaskError(...).as_instanceof_cause()``) behaves the same under
``import zray as ray``.  Each docstring says when zray raises the exception.

Where Ray passes protobuf or ID objects to a constructor, zray accepts plain
Python values (hex strings, bytes, dicts or simple attribute objects).

This package is self-contained: it imports only the standard library and
cloudpickle, so it can be loaded in any process (driver, worker, node daemon)
before the rest of the runtime.  The classes are defined here, except RayError
and UnserializableException (``_base.py``, below everything) and RayTaskError
with its dual classes and traceback rebuilding (``_task_error.py``); all of them
report ``__module__ == "zray.exceptions"``, the name pickles refer to.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from zray.exceptions._base import RayError, UnserializableException
from zray.exceptions._task_error import (  # noqa: F401 - _rebuild_task_error: named by pickles
    INTERNAL_FRAME_MARKERS,
    RayTaskError,
    _rebuild_task_error,
)

__all__ = [
    "RayError",
    "CrossLanguageError",
    "TaskCancelledError",
    "RayTaskError",
    "LocalRayletDiedError",
    "WorkerCrashedError",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "RaySystemError",
    "AuthenticationError",
    "UserCodeException",
    "ObjectStoreFullError",
    "OutOfDiskError",
    "OutOfMemoryError",
    "NodeDiedError",
    "ObjectLostError",
    "ObjectFetchTimedOutError",
    "RpcError",
    "ReferenceCountingAssertionError",
    "ObjectFreedError",
    "OwnerDiedError",
    "ObjectReconstructionFailedError",
    "GetTimeoutError",
    "PlasmaObjectNotAvailable",
    "AsyncioActorExit",
    "RuntimeEnvSetupError",
    "TaskPlacementGroupRemoved",
    "ActorPlacementGroupRemoved",
    "PendingCallsLimitExceeded",
    "TaskUnschedulableError",
    "ActorUnschedulableError",
    "ObjectRefStreamEndOfStreamError",
    "StreamingGeneratorReplayInconsistentError",
    "OufOfBandObjectRefSerializationException",
    "RayChannelError",
    "RayChannelTimeoutError",
    "RayCgraphCapacityExceeded",
    "RayDirectTransportError",
    "UnserializableException",
    "ActorAlreadyExistsError",
    "ActorHandleNotFoundError",
    "RAY_EXCEPTION_TYPES",
]

#: Separator the runtime uses between frames of a recorded call site; shown
#: one frame per line in ObjectLostError messages.
CALL_STACK_LINE_DELIMITER = " | "

_LOG_HINT = "Check the zray session logs for more information."


def _hex(value: Any) -> Optional[str]:
    """Render an id given as bytes / hex str / id object as a hex string."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    hex_method = getattr(value, "hex", None)
    if callable(hex_method) and not isinstance(value, str):
        try:
            return hex_method()
        except Exception:
            pass
    return str(value)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a mapping or an attribute object."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class CrossLanguageError(RayError):
    """Raised for an error that originated in a worker of another language.

    zray runs Python workers only, so it never raises this itself; it exists
    so that code catching it keeps working.  ``ray_exception`` may be a string
    or any object with ``language`` and ``formatted_exception_string``.
    """

    def __init__(self, ray_exception):
        if isinstance(ray_exception, str):
            language, text = "UNKNOWN", ray_exception
        else:
            language = _field(ray_exception, "language", "UNKNOWN")
            text = _field(ray_exception, "formatted_exception_string", "")
        self.ray_exception = ray_exception
        super().__init__(f"An exception raised from {language}:\n{text}")
        self.args = (ray_exception,)

    def __str__(self):
        if isinstance(self.ray_exception, str):
            return f"An exception raised from UNKNOWN:\n{self.ray_exception}"
        language = _field(self.ray_exception, "language", "UNKNOWN")
        text = _field(self.ray_exception, "formatted_exception_string", "")
        return f"An exception raised from {language}:\n{text}"


class TaskCancelledError(RayError):
    """Raised by ``get()`` on the result of a task that ``cancel()`` stopped.

    Also raised inside the task itself (at its next zray call) when it is
    cancelled without ``force=True``.  ``task_id`` is the id of the task that
    was cancelled directly (a child of it reports the parent's id).
    """

    def __init__(self, task_id: Optional[Any] = None, error_message: Optional[str] = None):
        self.task_id = task_id
        self.error_message = error_message
        self.args = (task_id, error_message)

    def __str__(self):
        msg = ""
        if self.task_id:
            msg = f"Task: {self.task_id} was cancelled. "
        if self.error_message:
            msg += self.error_message
        return msg


# ---------------------------------------------------------------------------
# Worker / actor failures
# ---------------------------------------------------------------------------


class LocalRayletDiedError(RayError):
    """Raised by ``get()`` for a task whose node daemon (the process that
    schedules work on its machine) died before the task finished."""

    def __str__(self):
        return (
            "The task's local raylet died. Check the zray node daemon's log for more information."
        )


class WorkerCrashedError(RayError):
    """Raised by ``get()`` for a task whose worker process exited unexpectedly
    (crash, signal, ``os._exit``, killed by the OOM killer) while running it,
    once the task's ``max_retries`` are used up."""

    def __str__(self):
        return (
            "The worker died unexpectedly while executing this task. "
            "Check the zray worker logs for more information."
        )


class RayActorError(RayError):
    """Raised by ``get()`` on an actor method result when the actor could not
    run the method because it is dead or unreachable.

    zray raises the subclasses ``ActorDiedError`` (actor is gone) and
    ``ActorUnavailableError`` (actor may come back) rather than this class.
    """

    BASE_ERROR_MSG = "The actor experienced an error before finishing this task."

    def __init__(
        self,
        actor_id: str = None,
        error_msg: str = BASE_ERROR_MSG,
        actor_init_failed: bool = False,
        preempted: bool = False,
    ):
        self.actor_id = actor_id
        self.error_msg = error_msg
        self._actor_init_failed = actor_init_failed
        self._preempted = preempted
        self.args = (actor_id, error_msg, actor_init_failed, preempted)

    def __str__(self) -> str:
        return self.error_msg

    @property
    def preempted(self) -> bool:
        """Whether the actor died because its node was preempted/drained."""
        return self._preempted

    @property
    def actor_init_failed(self) -> bool:
        """Whether the actor died because its ``__init__`` raised."""
        return self._actor_init_failed


class ActorDiedError(RayActorError):
    """Raised by ``get()`` on an actor method result when the actor is dead:
    killed with ``kill()``, exited, its process or node crashed with no
    restarts left, or its ``__init__`` raised.  Also raised for methods
    submitted to an actor that is already dead.

    ``cause`` is the ``RayTaskError`` from a failed ``__init__``, or a mapping
    / attribute object describing the death with any of: ``class_name``,
    ``actor_id``, ``pid``, ``name``, ``ray_namespace``, ``node_ip_address``,
    ``error_message``, ``never_started``, ``preempted``; or None.
    """

    BASE_ERROR_MSG = "The actor died unexpectedly before finishing this task."

    def __init__(self, cause: Optional[Union["RayTaskError", Any]] = None):
        actor_id = None
        error_msg = ActorDiedError.BASE_ERROR_MSG
        actor_init_failed = False
        preempted = False
        if not cause:
            pass
        elif isinstance(cause, RayTaskError):
            actor_init_failed = True
            actor_id = cause.__dict__.get("_actor_id")
            error_msg = (
                "The actor died because of an error raised in its "
                f"creation task, {RayTaskError.__str__(cause)}"
            )
        else:
            actor_id = _hex(_field(cause, "actor_id"))
            lines = [ActorDiedError.BASE_ERROR_MSG]
            lines.append(f"\tclass_name: {_field(cause, 'class_name', '')}")
            lines.append(f"\tactor_id: {actor_id}")
            for label, key in (
                ("pid", "pid"),
                ("name", "name"),
                ("namespace", "ray_namespace"),
                ("ip", "node_ip_address"),
            ):
                value = _field(cause, key)
                if value not in (None, "", 0):
                    lines.append(f"\t{label}: {value}")
            message = _field(cause, "error_message")
            if message:
                lines.append(str(message))
            if _field(cause, "never_started", False):
                lines.append("The actor never ran - it was cancelled before it started running.")
            preempted = bool(_field(cause, "preempted", False))
            error_msg = "\n".join(lines)
        super().__init__(actor_id, error_msg, actor_init_failed, preempted)
        self.args = (cause,)

    @staticmethod
    def from_task_error(task_error: "RayTaskError") -> "ActorDiedError":
        """The error for an actor whose ``__init__`` raised ``task_error``."""
        return ActorDiedError(task_error)


class ActorUnavailableError(RayActorError):
    """Raised by ``get()`` on an actor method result when the actor could not
    be reached (for example it is restarting, or the connection to it broke)
    but may be available again later.  The method may or may not have run."""

    def __init__(self, error_message: str, actor_id: Optional[bytes]):
        hex_id = _hex(actor_id)
        super().__init__(
            hex_id,
            f"The actor {hex_id} is unavailable: {error_message}. The task may "
            "or may not have been executed on the actor.",
            False,
            False,
        )
        self.args = (error_message, actor_id)


class RaySystemError(RayError):
    """Raised when zray itself fails (a runtime bug, or a node daemon or the
    head process becoming unreachable) rather than user code."""

    def __init__(self, client_exc, traceback_str=None):
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        self.args = (client_exc, traceback_str)

    def __str__(self):
        msg = f"System error: {self.client_exc}"
        if self.traceback_str:
            msg += f"\ntraceback: {self.traceback_str}"
        return msg


class AuthenticationError(RayError):
    """Raised when connecting to a cluster that requires a token and the token
    is missing or wrong."""

    def __init__(self, message: str):
        self.message = message
        self.__suppress_context__ = True
        super().__init__(message)

    def __str__(self) -> str:
        return (
            f"{self.message}. Make sure the cluster's authentication token "
            "is available to this process."
        )


class UserCodeException(RayError):
    """Wraps an exception from user code run by a zray library.

    Task retries with ``retry_exceptions`` look at the wrapped cause.
    """


# ---------------------------------------------------------------------------
# Resource exhaustion / nodes
# ---------------------------------------------------------------------------


class ObjectStoreFullError(RayError):
    """Raised by ``put()`` (or when storing a task's return value) if the
    node's object store stays full after zray has tried to free space, because
    every stored object is still referenced."""

    def __str__(self):
        return super().__str__() + (
            "\nThe local object store is full of objects that are still in "
            "scope and cannot be evicted. Tip: Use the `ray memory` command to "
            "list active objects in the cluster."
        )


class OutOfDiskError(RayError):
    """Raised when an object cannot be stored because the object store is full
    and the disk used for spilling is over its usage threshold."""

    def __str__(self):
        return super().__str__() + (
            "\nThe object cannot be created because the local object store is "
            "full and the local disk's utilization is over capacity. Tip: Use "
            "`df` to check disk usage and `ray memory` to check object store "
            "memory usage."
        )


class OutOfMemoryError(RayError):
    """Raised by ``get()`` for a task or actor that zray's memory monitor
    killed because the node was close to running out of memory."""

    def __init__(self, message):
        self.message = message
        self.args = (message,)

    def __str__(self):
        return self.message


class NodeDiedError(RayError):
    """Raised by ``get()`` for a task whose node died or became unreachable
    while the task was running there."""

    def __init__(self, message):
        self.message = message
        self.args = (message,)

    def __str__(self):
        return self.message


# ---------------------------------------------------------------------------
# Lost objects
# ---------------------------------------------------------------------------


class ObjectLostError(RayError):
    """Raised by ``get()`` when every copy of the object is gone (for example
    its node died) and it cannot be recreated.

    ``call_site`` is where the ObjectRef was created, frames separated by
    ``" | "``; it may be empty.
    """

    def __init__(self, object_ref_hex: str, owner_address: Optional[bytes], call_site: str):
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = (call_site or "").replace(CALL_STACK_LINE_DELIMITER, "\n  ")
        self.args = (object_ref_hex, owner_address, call_site)

    def _base_str(self):
        msg = f"Failed to retrieve object {self.object_ref_hex}. "
        if self.call_site:
            msg += f"The ObjectRef was created at: {self.call_site}"
        else:
            msg += (
                "To see where this ObjectRef was created, set the environment "
                "variable RAY_record_ref_creation_sites=1 before starting "
                "zray."
            )
        return msg

    def __str__(self):
        return self._base_str() + (
            f"\n\nAll copies of {self.object_ref_hex} have been lost due to "
            f"node failure. {_LOG_HINT}"
        )


class ObjectFetchTimedOutError(ObjectLostError):
    """Raised by ``get()`` when fetching the object from another node timed
    out because no node holding a copy could be found."""

    def __str__(self):
        return self._base_str() + (
            f"\n\nFetch for object {self.object_ref_hex} timed out because no "
            "locations were found for the object. This may indicate a "
            "system-level bug."
        )


class RpcError(RayError):
    """Raised when a request between zray processes fails at the transport
    level (connection refused or reset, malformed reply)."""

    def __init__(self, message, rpc_code=None):
        self.message = message
        self.rpc_code = rpc_code
        self.args = (message, rpc_code)

    def __str__(self):
        return self.message


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """Raised by ``get()`` when the object was already deleted by reference
    counting although a reference to it still existed (a zray bug)."""

    def __str__(self):
        return self._base_str() + (
            "\n\nThe object has already been deleted by the reference counting "
            "protocol. This should not happen."
        )


class ObjectFreedError(ObjectLostError):
    """Raised by ``get()`` on an object that was explicitly freed with the
    internal ``free()`` call."""

    def __str__(self):
        return self._base_str() + (
            "\n\nThe object was manually freed using the internal `free` call. "
            "Please ensure that `free` is only called once the object is no "
            "longer needed."
        )


class OwnerDiedError(ObjectLostError):
    """Raised by ``get()`` when the process that owns the object (the one that
    created it with ``.remote()`` or ``put()``) has exited, so the object's
    value and location can no longer be resolved."""

    def __str__(self):
        owner = ""
        if self.owner_address:
            addr = self.owner_address
            if isinstance(addr, (bytes, bytearray)):
                addr = bytes(addr).decode("utf-8", "replace")
            owner = f"\n\nOwner address: {addr}."
        return self._base_str() + (
            "\n\nThe object's owner has exited. This is the Python worker that "
            "first created the ObjectRef via `.remote()` or `ray.put()`. "
            f"{_LOG_HINT}" + owner
        )


class ObjectReconstructionFailedError(ObjectLostError):
    """Raised by ``get()`` when a lost object could not be recomputed from its
    lineage.  ``reason`` names why (one of ``REASON_MESSAGES``' keys)."""

    REASON_MESSAGES = {
        "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED": (
            "The object cannot be reconstructed because the maximum number of "
            "task retries has been exceeded. Consider increasing the number of "
            "retries using `@ray.remote(max_retries=N)`."
        ),
        "OBJECT_UNRECONSTRUCTABLE_LINEAGE_EVICTED": (
            "The object cannot be reconstructed because its lineage has been "
            "evicted to reduce memory pressure."
        ),
        "OBJECT_UNRECONSTRUCTABLE_PUT": (
            "The object cannot be reconstructed because it was created by "
            "ray.put(), which has no task lineage. To prevent this error, "
            "return the value from a task instead."
        ),
        "OBJECT_UNRECONSTRUCTABLE_RETRIES_DISABLED": (
            "The object cannot be reconstructed because the task was created "
            "with max_retries=0. Consider enabling retries using "
            "`@ray.remote(max_retries=N)`."
        ),
        "OBJECT_UNRECONSTRUCTABLE_BORROWED": (
            "The object cannot be reconstructed because it crossed an ownership "
            "boundary: only the owner of an object can trigger reconstruction."
        ),
        "OBJECT_UNRECONSTRUCTABLE_REF_NOT_FOUND": (
            "The object cannot be reconstructed because its reference was not "
            "found in the reference counter."
        ),
        "OBJECT_UNRECONSTRUCTABLE_TASK_CANCELLED": (
            "The object cannot be reconstructed because the task that would "
            "produce it was cancelled."
        ),
        "OBJECT_UNRECONSTRUCTABLE_LINEAGE_DISABLED": (
            "The object cannot be reconstructed because lineage reconstruction is disabled."
        ),
    }

    def __init__(
        self,
        object_ref_hex: str,
        reason: "ErrorType" = None,  # noqa: F821 - a reason name string in zray
        reason_message: str = None,
        owner_address: Optional["Address"] = None,  # noqa: F821
        call_site: str = "",
    ):
        super().__init__(object_ref_hex, owner_address, call_site)
        self.reason = reason
        self.reason_message = reason_message or self.REASON_MESSAGES.get(
            getattr(reason, "name", reason),
            "Unknown error reason. This should not happen.",
        )
        self.args = (object_ref_hex, reason, reason_message, owner_address, call_site)

    def __str__(self):
        base = self._base_str()
        if self.reason_message:
            name = getattr(self.reason, "name", self.reason) or "UNKNOWN"
            return base + f"\n\n[{name}] {self.reason_message}"
        return base


# ---------------------------------------------------------------------------
# Timeouts, scheduling, misc
# ---------------------------------------------------------------------------


class GetTimeoutError(RayError, TimeoutError):
    """Raised by ``get()`` when ``timeout`` expires before every requested
    object is ready (message: ``Get timed out: some object(s) not ready.``).

    Also a builtin ``TimeoutError``.
    """


class PlasmaObjectNotAvailable(RayError):
    """Raised internally when an object is not available in the local object
    store within the given timeout; not normally seen by user code."""


class AsyncioActorExit(RayError):
    """Raised inside an async actor by ``exit_actor()`` to stop it; zray
    catches it and shuts the actor down cleanly."""


class RuntimeEnvSetupError(RayError):
    """Raised by ``get()`` for a task or actor whose ``runtime_env`` could not
    be prepared (bad ``env_vars``, missing ``working_dir``, failed install)."""

    def __init__(self, error_message: str = None):
        self.error_message = error_message
        self.args = (error_message,)

    def __str__(self):
        msgs = ["Failed to set up runtime environment."]
        if self.error_message:
            msgs.append(self.error_message)
        return "\n".join(msgs)


class TaskPlacementGroupRemoved(RayError):
    """Raised by ``get()`` for a task whose placement group was removed before
    or while it ran."""

    def __str__(self):
        return "The placement group corresponding to this task has been removed."


class ActorPlacementGroupRemoved(RayError):
    """Raised by ``get()`` on an actor's results when the actor's placement
    group was removed."""

    def __str__(self):
        return "The placement group corresponding to this Actor has been removed."


class PendingCallsLimitExceeded(RayError):
    """Raised by ``actor.method.remote()`` when the actor already has
    ``max_pending_calls`` submitted calls that have not finished."""


class TaskUnschedulableError(RayError):
    """Raised by ``get()`` for a task that can never be scheduled, for example
    because the node its scheduling strategy requires is dead."""

    def __init__(self, error_message: str):
        self.error_message = error_message
        self.args = (error_message,)

    def __str__(self):
        return f"The task is not schedulable: {self.error_message}"


class ActorUnschedulableError(RayError):
    """Raised by ``get()`` on an actor's results when the actor can never be
    placed, for example because the node it must run on is dead."""

    def __init__(self, error_message: str):
        self.error_message = error_message
        self.args = (error_message,)

    def __str__(self):
        return f"The actor is not schedulable: {self.error_message}"


class ObjectRefStreamEndOfStreamError(RayError):
    """Raised internally by a streaming generator's ObjectRefGenerator when
    the generator task has no more values; iteration turns it into
    ``StopIteration`` / ``StopAsyncIteration``."""


class StreamingGeneratorReplayInconsistentError(RaySystemError):
    """Raised by ``get()``/iteration when a retried streaming generator task
    yields a different number of values than its first run."""


class OufOfBandObjectRefSerializationException(RayError):
    """Raised when an ObjectRef is pickled outside zray's own serialization
    (plain ``cloudpickle.dumps``) and out-of-band ref serialization is
    disallowed.  (The name keeps Ray's spelling.)"""


class RayChannelError(RaySystemError):
    """Raised on failures of compiled-graph channels (experimental)."""


class RayChannelTimeoutError(RayChannelError, TimeoutError):
    """Raised when a compiled-graph channel operation times out
    (experimental).  Also a builtin ``TimeoutError``."""


class RayCgraphCapacityExceeded(RaySystemError):
    """Raised when a compiled-graph channel's buffer is full (experimental)."""


class RayDirectTransportError(RaySystemError):
    """Raised when a direct (out-of-object-store) tensor transfer fails
    (experimental)."""


class ActorAlreadyExistsError(ValueError, RayError):
    """Raised by ``ActorClass.options(name=...).remote()`` when an actor with
    that name already exists in the namespace (and ``get_if_exists`` is not
    set).  Also a ``ValueError`` for compatibility."""

    def __init__(self, error_message: str):
        super().__init__(error_message)
        self.error_message = error_message

    def __str__(self):
        return self.error_message


class ActorHandleNotFoundError(ValueError, RayError):
    """Raised by ``kill()`` for an actor handle unknown to the current session
    (typically a handle kept across ``shutdown()``/``init()``).  Also a
    ``ValueError`` for compatibility."""

    def __init__(self, error_message: str):
        super().__init__(error_message)
        self.error_message = error_message

    def __str__(self):
        return self.error_message


RAY_EXCEPTION_TYPES = [
    PlasmaObjectNotAvailable,
    RayError,
    RayTaskError,
    WorkerCrashedError,
    RayActorError,
    ObjectStoreFullError,
    ObjectLostError,
    ObjectFetchTimedOutError,
    ReferenceCountingAssertionError,
    ObjectReconstructionFailedError,
    OwnerDiedError,
    GetTimeoutError,
    AsyncioActorExit,
    RuntimeEnvSetupError,
    TaskPlacementGroupRemoved,
    ActorPlacementGroupRemoved,
    PendingCallsLimitExceeded,
    LocalRayletDiedError,
    TaskUnschedulableError,
    ActorDiedError,
    ActorUnschedulableError,
    ActorUnavailableError,
    RayChannelError,
    RayChannelTimeoutError,
    OufOfBandObjectRefSerializationException,
    RayCgraphCapacityExceeded,
    UnserializableException,
    ActorAlreadyExistsError,
    ActorHandleNotFoundError,
    AuthenticationError,
]
