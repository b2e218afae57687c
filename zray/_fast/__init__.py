"""Hot-path primitives: compiled Cython modules, each with a pure-Python twin.

``X.pyx`` and ``_X_py.py`` have the same public API and semantics.  ``config.fast`` (env
``ZRAY_FAST=0`` turns it off) picks the compiled set; if any compiled module is missing (not
built) the whole pure set is used instead, silently -- check ``USING_FAST`` /
``IMPLEMENTATION`` (and ``FAST_IMPORT_ERRORS`` for why).  The set is all-or-nothing so that
``IMPLEMENTATION`` says exactly what runs.
"""

from __future__ import annotations

import importlib

from zray._config import config

MODULES = (
    "allocator",
    "buffers",
    "objformat",
    "frames",
    "ids",
    "stream",
    "refscan",
    "records",
    "calls",
    "untracked",
)

# Public names re-exported at package level, per module.
_EXPORTS = {
    "allocator": ("Allocator",),
    "buffers": ("copy_into", "populate", "pinned_view"),
    "objformat": ("object_size", "write_object", "read_object"),
    "frames": ("HEADER_SIZE", "pack_header", "unpack_header"),
    "stream": (
        "COPY_BELOW",
        "MAX_FRAMES",
        "MAX_MESSAGE_BYTES",
        "Frame",
        "FramingError",
        "MessageTooLarge",
        "Unpacker",
        "pack",
        "unsent",
    ),
    "refscan": ("scan_refs",),
    "records": ("first_bad_field",),
    "calls": ("frame_actor_call", "frame_task_done", "plain_answer", "plain_task_answer"),
    "untracked": (
        "TaskSpec",
        "Entry",
        "Shared",
        "Event",
        "Finished",
        "wire_batch",
        "EventStream",
        "Runs",
        "record_finished",
        "call_ended",
        "note_pushed",
        "untrack",
    ),
    "ids": (
        "JOB_ID_SIZE",
        "ACTOR_ID_SIZE",
        "TASK_ID_SIZE",
        "OBJECT_ID_SIZE",
        "NODE_ID_SIZE",
        "WORKER_ID_SIZE",
        "random_id",
        "object_id_for",
        "task_id_of",
        "index_of",
    ),
}

FAST_IMPORT_ERRORS: dict[str, str] = {}


def _import_fast(name: str):
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        FAST_IMPORT_ERRORS[name] = str(exc)
        return None
    FAST_IMPORT_ERRORS.pop(name, None)
    return module


def _import_pure(name: str):
    return importlib.import_module(f"{__name__}._{name}_py")


def implementations() -> dict:
    """``{name: (compiled module or None, pure module)}`` for every pair, whatever is selected."""
    return {name: (_import_fast(name), _import_pure(name)) for name in MODULES}


def _select() -> tuple[dict, bool]:
    if config.fast:
        fast = {name: _import_fast(name) for name in MODULES}
        if all(module is not None for module in fast.values()):
            return fast, True
    return {name: _import_pure(name) for name in MODULES}, False


_selected, USING_FAST = _select()
IMPLEMENTATION = "cython" if USING_FAST else "python"

for _name, _names in _EXPORTS.items():
    for _attr in _names:
        globals()[_attr] = getattr(_selected[_name], _attr)
del _name, _names, _attr

__all__ = [
    "MODULES",
    "USING_FAST",
    "IMPLEMENTATION",
    "FAST_IMPORT_ERRORS",
    "implementations",
    *(attr for names in _EXPORTS.values() for attr in names),
]
