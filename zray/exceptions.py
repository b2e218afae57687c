"""Exceptions raised by zray.

Every class here carries the name, base classes and constructor signature of
its counterpart in ``ray.exceptions`` (Ray 2.60), so code written against Ray
(``except ray.exceptions.GetTimeoutError``, ``isinstance(e, RayActorError)``,
``RayTaskError(...).as_instanceof_cause()``) behaves the same under
``import zray as ray``.  Each docstring says when zray raises the exception.

Where Ray passes protobuf or ID objects to a constructor, zray accepts plain
Python values (hex strings, bytes, dicts or simple attribute objects).

This module is self-contained: it imports only the standard library and
cloudpickle, so it can be loaded in any process (driver, worker, node daemon)
before the rest of the runtime.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import traceback as _traceback
from typing import Any, Optional, Sequence, Union

try:  # cloudpickle can serialize causes defined in __main__ or closures.
    import cloudpickle as _cloudpickle
except ImportError:  # pragma: no cover - cloudpickle is a hard dependency
    _cloudpickle = None

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

#: Path fragments of traceback frames that belong to zray's own machinery.
#: RayTaskError.__str__ drops these frames (and their source/caret lines) so
#: users see only their own code.  The runtime may extend this tuple.
INTERNAL_FRAME_MARKERS: tuple = (
    "/zray/_private/",
    "/zray/_fast/",
    "/zray/worker.py",
    "/zray/_worker/",
    "/zray/_raylet",
)

_LOG_HINT = "Check the zray session logs for more information."


def _dumps(obj: Any) -> bytes:
    if _cloudpickle is not None:
        return _cloudpickle.dumps(obj)
    return pickle.dumps(obj)  # pragma: no cover


_node_ip_cache: Optional[str] = None


def _local_ip() -> str:
    """Best-effort IP of this host, resolved locally (no network traffic); the runtime passes
    the node's own address explicitly, this is only the fallback."""
    global _node_ip_cache
    if _node_ip_cache is None:
        try:
            _node_ip_cache = socket.gethostbyname(socket.gethostname())
        except OSError:
            _node_ip_cache = "127.0.0.1"
    return _node_ip_cache


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


# ---------------------------------------------------------------------------
# Base
# ---------------------------------------------------------------------------


class RayError(Exception):
    """Base class of every error zray raises for a distributed-execution failure.

    zray never raises a bare ``RayError`` for a task failure; it raises one of
    the subclasses below.  It appears directly only as a stand-in cause when a
    task's own exception could not be serialized (see ``RayTaskError``).
    """

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
# RayTaskError and the dual "RayTaskError(Cause)" classes
# ---------------------------------------------------------------------------


def _is_internal_frame(line: str, markers: Sequence[str]) -> bool:
    return line.startswith("  File ") and any(m in line for m in markers)


def _format_remote_traceback(header: str, traceback_str: str,
                             markers: Sequence[str]) -> str:
    """Replace each ``Traceback ...`` line by ``header``; drop internal frames."""
    out = []
    skipping = False
    for line in traceback_str.strip().split("\n"):
        if line.startswith("Traceback "):
            skipping = False
            out.append(header)
        elif _is_internal_frame(line, markers):
            skipping = True  # drop the frame header ...
        elif skipping and line.startswith("    "):
            continue  # ... and its source / caret lines
        else:
            skipping = False
            out.append(line)
    return "\n".join(out)


# The attributes that make up a RayTaskError, in constructor order.
_TASK_ERROR_FIELDS = ("function_name", "traceback_str", "cause", "proctitle",
                      "pid", "ip", "actor_repr", "_actor_id")

_dual_classes: dict = {}
_dual_lock = threading.Lock()


# Attributes stored in BaseException's C struct (or shadowing it) that must
# not be copied between exception objects.
_SKIP_BUILTIN_FIELDS = frozenset({
    "args", "__traceback__", "__context__", "__cause__", "__suppress_context__",
    "__dict__", "__notes__", "__weakref__",
})


def _builtin_fields(exc: BaseException) -> dict:
    """Values of C-level fields of builtin exception bases (``errno``,
    ``filename``, ``name``, ``value``, ``code``, ...) set on ``exc``."""
    fields = {}
    for base in type(exc).__mro__:
        if base.__module__ != "builtins" or base in (BaseException, object):
            continue
        for name, descr in vars(base).items():
            if name in _SKIP_BUILTIN_FIELDS or name in fields:
                continue
            if type(descr).__name__ not in ("member_descriptor", "getset_descriptor"):
                continue
            try:
                fields[name] = getattr(exc, name)
            except Exception:
                continue
    return fields


def _set_builtin_fields(inst: BaseException, fields: dict) -> None:
    for name, value in fields.items():
        try:
            setattr(inst, name, value)
        except Exception:
            pass


def _bare_instance(cls: type, args: tuple):
    """An instance of exception type ``cls`` made without running its
    ``__init__`` (whose signature is unknown), or None if impossible."""
    attempts = [lambda: cls.__new__(cls, *args), lambda: cls.__new__(cls)]
    # Fall back to each base's own __new__ in MRO order: a user type's
    # __new__ may demand arguments, while builtin exception types with a C
    # layout (OSError, ...) refuse BaseException.__new__.
    for base in cls.__mro__[1:]:
        if base is not object and "__new__" in vars(base):
            attempts.append(lambda b=base: b.__new__(cls))
    for attempt in attempts:
        try:
            inst = attempt()
        except Exception:
            continue
        if isinstance(inst, cls):
            return inst
    return None


def _needs_generic_reduce(exc: Any) -> bool:
    """True for exceptions pickled with BaseException's default reduce whose
    class has a Python ``__init__``/``__new__``: unpickling calls
    ``cls(*exc.args)``, which breaks when ``__init__`` takes other arguments
    than it passes to ``Exception.__init__``."""
    if not isinstance(exc, BaseException) or isinstance(exc, RayTaskError):
        return False
    cls = type(exc)
    if cls.__reduce__ is not BaseException.__reduce__:
        return False
    if cls.__reduce_ex__ is not BaseException.__reduce_ex__:
        return False
    return any(("__init__" in vars(c) or "__new__" in vars(c))
               for c in cls.__mro__ if c.__module__ != "builtins")


def _pack_cause(cause: Any) -> tuple:
    if _needs_generic_reduce(cause):
        args = BaseException.args.__get__(cause)
        return ("exc", type(cause), args, dict(cause.__dict__), _builtin_fields(cause))
    return ("obj", cause)


def _unpack_cause(packed: tuple) -> Any:
    if packed[0] == "obj":
        return packed[1]
    _, cls, args, state, fields = packed
    inst = _bare_instance(cls, args)
    if inst is None:  # pragma: no cover - defensive
        return RayError(f"{cls.__name__}{args!r}")
    BaseException.args.__set__(inst, args)
    _set_builtin_fields(inst, fields)
    inst.__dict__.update(state)
    return inst


def _rebuild_task_error(state: tuple, packed_cause: tuple, dual: bool,
                        extra: Optional[dict] = None):
    """Unpickling helper for RayTaskError and its dual subclasses."""
    err = RayTaskError.__new__(RayTaskError)
    err.__dict__.update(zip(_TASK_ERROR_FIELDS, state))
    err.__dict__["cause"] = _unpack_cause(packed_cause)
    d = err.__dict__
    err.args = (d["function_name"], d["traceback_str"], d["cause"],
                d["proctitle"], d["pid"], d["ip"])
    if dual:
        err = err.as_instanceof_cause()
    if extra:
        err.__dict__.update(extra)
    return err


def _reduce_task_error(err: "RayTaskError", dual: bool):
    d = err.__dict__
    state = tuple(None if f == "cause" else d.get(f) for f in _TASK_ERROR_FIELDS)
    extra = {k: v for k, v in d.items() if k not in _TASK_ERROR_FIELDS}
    return (_rebuild_task_error, (state, _pack_cause(d.get("cause")), dual, extra or None))


class RayTaskError(RayError):
    """Raised by ``get()`` when the task (or actor method) that produced the
    object raised an exception.

    The remote exception is kept as ``cause`` and its formatted traceback as
    ``traceback_str``.  ``get()`` actually raises ``as_instanceof_cause()``,
    an instance of a class deriving from both ``RayTaskError`` and the type
    of ``cause``, so both ``except RayTaskError`` and ``except ValueError``
    catch a remote ``ValueError``.

    ``str()`` shows a header naming the task, process and host, followed by
    the remote traceback with zray-internal frames removed::

        zray::f() (pid=1234, ip=10.0.0.1)
          File "script.py", line 3, in f
            raise ValueError("boom")
        ValueError: boom

    For actor methods the header also has ``actor_id=...`` and ``repr=...``.
    If ``cause`` cannot be pickled it is replaced by a ``RayError`` holding its
    text, so the error can always travel between processes.
    """

    def __init__(
        self,
        function_name,
        traceback_str,
        cause,
        proctitle=None,
        pid=None,
        ip=None,
        actor_repr=None,
        actor_id=None,
    ):
        if traceback_str is None:
            traceback_str = ""
        if not proctitle:
            name = str(function_name or "")
            parts = name.split(".")
            short = ".".join(parts[-2:]) if actor_repr and len(parts) > 1 else parts[-1]
            proctitle = f"zray::{short}"
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.proctitle = proctitle
        self.pid = pid or os.getpid()
        self.ip = ip or _local_ip()
        self.actor_repr = actor_repr
        self._actor_id = actor_id
        if cause is not None:
            try:
                _dumps(cause)
            except Exception as e:  # noqa: BLE001 - any pickling failure
                err_type = f"{type(cause).__module__}.{type(cause).__name__}"
                cause = RayError(
                    f"Exception {err_type} isn't serializable: {e}.\n"
                    f"Original exception details:\n{traceback_str}"
                )
        self.cause = cause
        self.args = (function_name, traceback_str, cause, self.proctitle,
                     self.pid, self.ip)

    @classmethod
    def from_exception(cls, exc: BaseException, function_name: str, *,
                       proctitle=None, pid=None, ip=None, actor_repr=None,
                       actor_id=None) -> "RayTaskError":
        """Build a RayTaskError from an exception caught while running a task.

        Must be called while ``exc``'s traceback is still attached (inside the
        ``except`` block or with ``exc.__traceback__`` set).
        """
        tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(function_name, tb, exc, proctitle=proctitle, pid=pid, ip=ip,
                   actor_repr=actor_repr, actor_id=actor_id)

    @property
    def actor_id(self):
        """Hex id of the actor whose method failed, or None for a task."""
        return self.__dict__.get("_actor_id")

    def _header(self) -> str:
        d = self.__dict__
        header = f"{d.get('proctitle')}() (pid={d.get('pid')}, ip={d.get('ip')}"
        if d.get("actor_repr"):
            header += f", actor_id={d.get('_actor_id')}, repr={d.get('actor_repr')})"
        else:
            header += ")"
        return header

    def __str__(self):
        tb = self.__dict__.get("traceback_str")
        if tb is None:  # constructed unusually (e.g. by a foreign __new__)
            return repr(self.__dict__.get("cause"))
        return _format_remote_traceback(self._header(), tb, INTERNAL_FRAME_MARKERS)

    def __reduce__(self):
        return _reduce_task_error(self, False)

    def as_instanceof_cause(self) -> "RayTaskError":
        """Return this error as an instance of both RayTaskError and the type
        of ``cause``.

        The returned object has this error's ``str()`` (header plus remote
        traceback), its ``cause``/``traceback_str``/``pid``/``ip`` fields, and
        forwards other attribute reads to ``cause`` (so ``e.errno`` or a
        custom exception's fields keep working).  If the cause's type cannot
        be combined with RayTaskError, ``self`` is returned unchanged.
        """
        cause = self.__dict__.get("cause")
        if cause is None:
            return self
        cause_cls = type(cause)
        if issubclass(RayTaskError, cause_cls):
            return self  # e.g. cause is a plain Exception or RayError
        dual_cls = _dual_class_for(cause_cls)
        if dual_cls is None:
            return self
        inst = _new_exception_instance(dual_cls, cause)
        if inst is None:
            return self
        try:
            # Write the instance dict directly: the cause type may define
            # read-only properties or __setattr__ hooks with these names.
            inst.__dict__.update(self.__dict__)
            BaseException.args.__set__(inst, (cause,))
            inst.__traceback__ = None
        except Exception:
            return self
        return inst


def _new_exception_instance(dual_cls: type, cause: BaseException):
    """Create an instance of ``dual_cls`` carrying ``cause``'s builtin fields,
    without running the cause type's ``__init__``."""
    cause_args = getattr(cause, "args", ())
    if not isinstance(cause_args, tuple):
        cause_args = ()
    inst = _bare_instance(dual_cls, cause_args)
    if inst is not None:
        _set_builtin_fields(inst, _builtin_fields(cause))
    return inst


def _dual_class_for(cause_cls: type) -> Optional[type]:
    """The cached ``RayTaskError(<cause_cls>)`` class, or None if impossible."""
    with _dual_lock:
        if cause_cls in _dual_classes:
            return _dual_classes[cause_cls]
        dual = _make_dual_class(cause_cls)
        _dual_classes[cause_cls] = dual
        return dual


def _make_dual_class(cause_cls: type) -> Optional[type]:
    if issubclass(cause_cls, RayTaskError):
        # Nested failure: the cause is itself a RayTaskError(X) raised by a
        # get() inside the task.  Reuse its class so the result is still an X.
        return cause_cls
    bases = (RayTaskError, cause_cls)

    def __init__(self, *args, **kwargs):
        # Instances are built by as_instanceof_cause(); never run the cause
        # type's __init__, whose signature is unknown.
        pass

    def __getattr__(self, name):
        # Only called when normal lookup fails: forward to the cause.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        try:
            cause = object.__getattribute__(self, "__dict__")["cause"]
        except (AttributeError, KeyError):
            raise AttributeError(name) from None
        return getattr(cause, name)

    def __str__(self):
        return RayTaskError.__str__(self)

    def __reduce__(self):
        return _reduce_task_error(self, True)

    def __reduce_ex__(self, protocol):
        return __reduce__(self)

    name = f"RayTaskError({cause_cls.__name__})"
    namespace = {
        "__init__": __init__,
        "__getattr__": __getattr__,
        "__str__": __str__,
        "__reduce__": __reduce__,
        "__reduce_ex__": __reduce_ex__,
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": (f"A RayTaskError whose cause is a {cause_cls.__name__}; "
                    "raised by get() for a task that raised "
                    f"{cause_cls.__name__}."),
    }
    try:
        meta = type(cause_cls)
        if not issubclass(meta, type(RayTaskError)) and not issubclass(type(RayTaskError), meta):
            return None
        dual = meta(name, bases, namespace)
    except Exception:  # not subclassable, metaclass or layout conflict, ...
        return None
    return dual


# ---------------------------------------------------------------------------
# Worker / actor failures
# ---------------------------------------------------------------------------


class LocalRayletDiedError(RayError):
    """Raised by ``get()`` for a task whose node daemon (the process that
    schedules work on its machine) died before the task finished."""

    def __str__(self):
        return ("The task's local raylet died. Check the zray node daemon's "
                "log for more information.")


class WorkerCrashedError(RayError):
    """Raised by ``get()`` for a task whose worker process exited unexpectedly
    (crash, signal, ``os._exit``, killed by the OOM killer) while running it,
    once the task's ``max_retries`` are used up."""

    def __str__(self):
        return ("The worker died unexpectedly while executing this task. "
                "Check the zray worker logs for more information.")


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
            error_msg = ("The actor died because of an error raised in its "
                         f"creation task, {RayTaskError.__str__(cause)}")
        else:
            actor_id = _hex(_field(cause, "actor_id"))
            lines = [ActorDiedError.BASE_ERROR_MSG]
            lines.append(f"\tclass_name: {_field(cause, 'class_name', '')}")
            lines.append(f"\tactor_id: {actor_id}")
            for label, key in (("pid", "pid"), ("name", "name"),
                               ("namespace", "ray_namespace"),
                               ("ip", "node_ip_address")):
                value = _field(cause, key)
                if value not in (None, "", 0):
                    lines.append(f"\t{label}: {value}")
            message = _field(cause, "error_message")
            if message:
                lines.append(str(message))
            if _field(cause, "never_started", False):
                lines.append("The actor never ran - it was cancelled before it "
                             "started running.")
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
        return (f"{self.message}. Make sure the cluster's authentication token "
                "is available to this process.")


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
            msg += ("To see where this ObjectRef was created, set the environment "
                    "variable RAY_record_ref_creation_sites=1 before starting "
                    "zray.")
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
            "The object cannot be reconstructed because lineage reconstruction "
            "is disabled."
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


class UnserializableException(RayError):
    """Raised by ``get()`` when a task's exception reached this process but
    could not be unpickled here (for example its class is not importable).
    ``str()`` contains the original exception's formatted traceback."""

    def __init__(self, original_stack_trace: str):
        self._original_stack_trace = original_stack_trace
        self.args = (original_stack_trace,)

    def __str__(self):
        return ("Failed to deserialize exception. Make sure the exception's "
                "class can be imported and unpickled in this process.\n"
                "Original exception:\n"
                f"{self._original_stack_trace}")


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
