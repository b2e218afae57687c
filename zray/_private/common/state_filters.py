"""How the state API's filters compare a row's column with a value, shared by the asker
(`zray.util.state`) and the head, which applies a task query's filters where the rows are
(`head/task_queries.py`). Ray's semantics: `=` and `!=`, strings equal ignoring case, a text
value compared with a bool or int column converted first (Ray's convert_string_to_type)."""

from __future__ import annotations

from typing import Any


def convert(value: Any, to: type) -> Any:
    """Ray's convert_string_to_type: how a filter value given as text compares to a column."""
    if type(value) is to:
        return value
    if to is bool:
        if value in ("False", "false", "0"):
            return False
        if value in ("True", "true", "1"):
            return True
    else:
        try:
            return to(value)
        except ValueError:
            pass
    raise ValueError(f"Failed to convert a value {value} of type {type(value)} to {to}")


def matches(datum: dict, col: str, predicate: str, value: Any) -> bool:
    if col not in datum:
        return False
    have = datum[col]
    if isinstance(value, str) and isinstance(have, str):
        same = have.lower() == value.lower()  # Ray: string filters ignore case
    elif isinstance(value, str) and isinstance(have, bool):
        same = have == convert(value, bool)
    elif isinstance(value, str) and isinstance(have, int):
        same = have == convert(value, int)
    else:
        same = have == value
    return same if predicate == "=" else not same
