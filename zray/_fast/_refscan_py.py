"""One pass over the refs of a get or wait (pure-Python twin of ``refscan.pyx``)."""

from __future__ import annotations


def scan_refs(refs: list, ref_type: type, present: dict):
    """``(distinct, missing)`` for a list whose items are all exactly ``ref_type``: whether
    their ``_id``s are all different, and how many are not keys of ``present``. ``None`` if
    any item is of another type (the caller's general path then sorts out generators and
    type errors)."""
    if type(refs) is not list:
        raise TypeError(f"refs must be a list, not {type(refs).__name__}")
    if type(present) is not dict:
        raise TypeError(f"present must be a dict, not {type(present).__name__}")
    seen = set()
    missing = 0
    for item in refs:
        if type(item) is not ref_type:
            return None
        oid = item._id
        seen.add(oid)
        if oid not in present:
            missing += 1
    return len(seen) == len(refs), missing
