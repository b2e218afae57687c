"""The type check of a decoded message's fields (pure-Python twin of ``records.pyx``)."""

from __future__ import annotations


def first_bad_field(checks: tuple, fields: list) -> int:
    """The index of the first of ``fields`` whose exact type is not in its entry of ``checks``
    (a set of types, or None for any), or -1 if all pass. Only the first ``min(len(checks),
    len(fields))`` are looked at: the caller checks the count."""
    if type(checks) is not tuple:
        raise TypeError(f"checks must be a tuple, not {type(checks).__name__}")
    if type(fields) is not list:
        raise TypeError(f"fields must be a list, not {type(fields).__name__}")
    for index, (allowed, value) in enumerate(zip(checks, fields)):
        if allowed is not None and type(value) not in allowed:
            return index
    return -1
