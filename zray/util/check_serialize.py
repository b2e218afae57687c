"""Finding what in a value cannot be pickled (Ray's ``ray.util.inspect_serializability``).

A value that fails to pickle is opened up: a function's globals and closure variables, an
object's or a class's attributes. Each member that fails too is opened in turn, down to
`depth`; the deepest failing members (or the value itself, when none of its members fails on
its own) are reported. Everything is printed as an indented tree, as Ray prints it.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, Optional, Set, Tuple

import cloudpickle

_RULE = "=" * 64


class FailureTuple:
    """A value found not serializable: `obj`, the `path` of names that led to it from the
    inspected value, and the value holding it (`parent`)."""

    def __init__(self, obj: Any, path: tuple, parent: Any):
        self.obj = obj
        self.path = path
        self.parent = parent

    def __repr__(self):
        names = [str(name) if name is not None else "unknown" for name in self.path]
        last = names[-1] if names else "unknown"
        return (
            f"FailTuple({last} [path={' -> '.join(names)}, obj={self.obj}, parent={self.parent}])"
        )


class _Printer:
    def __init__(self, file):
        self.file = file
        self.indent = 0

    def __call__(self, text: str = ""):
        print("    " * self.indent + text, file=self.file)


def _pickle_error(obj) -> Optional[BaseException]:
    try:
        cloudpickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return exc
    return None


def _members(obj) -> list:
    """[(kind, {name: value})] of what `obj` holds that pickling it pickles too."""
    if inspect.isfunction(obj):
        closure = inspect.getclosurevars(obj)
        return [("global", dict(closure.globals)), ("nonlocal", dict(closure.nonlocals))]
    if inspect.isclass(obj):
        attributes = {
            name: value
            for name, value in vars(obj).items()
            if not (name.startswith("__") and name.endswith("__"))
        }
        return [("class attribute", attributes)]
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        return [("attribute", dict(attributes))]
    return []


def _inspect(obj, path: tuple, depth: int, parent, failures: set, out: _Printer) -> bool:
    error = _pickle_error(obj)
    if error is None:
        return True
    out(f"!!! FAIL serialization: {error}")
    if depth <= 0:
        failures.add(FailureTuple(obj, path, parent))
        return False
    found_before = len(failures)
    for kind, members in _members(obj):
        if not members:
            continue
        plural = "s" if len(members) != 1 else ""
        out(f"Detected {len(members)} {kind} variable{plural}. Checking serializability...")
        out.indent += 1
        for member_name, member in members.items():
            out(f"Serializing '{member_name}' {member}...")
            _inspect(member, path + (member_name,), depth - 1, obj, failures, out)
        out.indent -= 1
    if len(failures) == found_before:  # nothing inside fails alone: the value itself does
        failures.add(FailureTuple(obj, path, parent))
        out(f"WARNING: Did not find non-serializable object in {obj}. This may be an oversight.")
    return False


def inspect_serializability(
    base_obj: Any,
    name: Optional[str] = None,
    depth: int = 3,
    print_file: Optional[Any] = None,
) -> Tuple[bool, Set[FailureTuple]]:
    """Identifies what in `base_obj` (a function, class or object) cannot be serialized.

    Args:
        base_obj: The object to check.
        name: The name its failures' paths start with (default: none).
        depth: How many levels of members to open.
        print_file: Where to print the findings (default: stdout).

    Returns:
        (whether `base_obj` serializes, the set of FailureTuple found).
    """
    out = _Printer(print_file if print_file is not None else sys.stdout)
    out(_RULE)
    out(f"Checking Serializability of {base_obj}")
    out(_RULE)
    failures: set = set()
    serializable = _inspect(
        base_obj, (name,) if name is not None else (), depth, None, failures, out
    )
    if failures:
        out(_RULE)
        out("Variable: \n")
        for failure in failures:
            out(f"\t{failure}")
        out(
            "\nwas found to be non-serializable. There may be multiple other undetected "
            "variables that were non-serializable. "
        )
        out(
            "Consider either removing the instantiation/imports of these variables or moving "
            "the instantiation into the scope of the function/class. "
        )
    out(_RULE)
    return serializable, failures


__all__ = ["FailureTuple", "inspect_serializability"]
