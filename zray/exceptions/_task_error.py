"""RayTaskError and the machinery behind it: the dual ``RayTaskError(Cause)``
classes ``get()`` raises, the rebuilding of a remote traceback without zray's own
frames, and the pickling that carries a task's exception between processes.

``zray.exceptions`` re-exports what is public here; ``_rebuild_task_error`` is
re-exported too, because every pickled RayTaskError names it as
``zray.exceptions._rebuild_task_error`` and stored pickles must keep loading.
"""

from __future__ import annotations

import os
import socket
import threading
import traceback as _traceback
from typing import Any, Optional, Sequence

from zray.exceptions._base import PUBLIC_MODULE, RayError, _dumps

#: Path fragments of traceback frames that belong to zray's own machinery.
#: RayTaskError.__str__ drops these frames (and their source/caret lines) so
#: users see only their own code.  ``__str__`` reads this module's global: to
#: extend the tuple, rebind it here, not on the re-export in ``zray.exceptions``.
INTERNAL_FRAME_MARKERS: tuple = (
    "/zray/_private/",
    "/zray/_fast/",
    "/zray/worker.py",
    "/zray/_worker/",
    "/zray/_raylet",
)


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


def _is_internal_frame(line: str, markers: Sequence[str]) -> bool:
    return line.startswith("  File ") and any(m in line for m in markers)


def _format_remote_traceback(header: str, traceback_str: str, markers: Sequence[str]) -> str:
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
_TASK_ERROR_FIELDS = (
    "function_name",
    "traceback_str",
    "cause",
    "proctitle",
    "pid",
    "ip",
    "actor_repr",
    "_actor_id",
)

_dual_classes: dict = {}
_dual_lock = threading.Lock()


# Attributes stored in BaseException's C struct (or shadowing it) that must
# not be copied between exception objects.
_SKIP_BUILTIN_FIELDS = frozenset(
    {
        "args",
        "__traceback__",
        "__context__",
        "__cause__",
        "__suppress_context__",
        "__dict__",
        "__notes__",
        "__weakref__",
    }
)


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
    return any(
        ("__init__" in vars(c) or "__new__" in vars(c))
        for c in cls.__mro__
        if c.__module__ != "builtins"
    )


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


def _rebuild_task_error(
    state: tuple, packed_cause: tuple, dual: bool, extra: Optional[dict] = None
):
    """Unpickling helper for RayTaskError and its dual subclasses."""
    err = RayTaskError.__new__(RayTaskError)
    err.__dict__.update(zip(_TASK_ERROR_FIELDS, state))
    err.__dict__["cause"] = _unpack_cause(packed_cause)
    d = err.__dict__
    err.args = (
        d["function_name"],
        d["traceback_str"],
        d["cause"],
        d["proctitle"],
        d["pid"],
        d["ip"],
    )
    if dual:
        err = err.as_instanceof_cause()
    if extra:
        err.__dict__.update(extra)
    return err


# Pickles name the function by its public module, so those written before this
# module was split off (and after) load alike.
_rebuild_task_error.__module__ = PUBLIC_MODULE


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

    __module__ = PUBLIC_MODULE

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
        self.args = (function_name, traceback_str, cause, self.proctitle, self.pid, self.ip)

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        function_name: str,
        *,
        proctitle=None,
        pid=None,
        ip=None,
        actor_repr=None,
        actor_id=None,
    ) -> "RayTaskError":
        """Build a RayTaskError from an exception caught while running a task.

        Must be called while ``exc``'s traceback is still attached (inside the
        ``except`` block or with ``exc.__traceback__`` set).
        """
        tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            function_name,
            tb,
            exc,
            proctitle=proctitle,
            pid=pid,
            ip=ip,
            actor_repr=actor_repr,
            actor_id=actor_id,
        )

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
        "__module__": PUBLIC_MODULE,
        "__qualname__": name,
        "__doc__": (
            f"A RayTaskError whose cause is a {cause_cls.__name__}; "
            "raised by get() for a task that raised "
            f"{cause_cls.__name__}."
        ),
    }
    try:
        meta = type(cause_cls)
        if not issubclass(meta, type(RayTaskError)) and not issubclass(type(RayTaskError), meta):
            return None
        dual = meta(name, bases, namespace)
    except Exception:  # not subclassable, metaclass or layout conflict, ...
        return None
    return dual
