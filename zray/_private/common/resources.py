"""Resource amounts in fixed point, as Ray does, so 0.1 + 0.2 CPUs never drifts.

A ResourceSet maps resource names to integer units of 1/10000; the wire and the user see floats.
"""

from __future__ import annotations

UNIT = 10000

Units = dict[str, int]  # resource name -> amount in units of 1/UNIT


def to_units(resources: dict[str, float]) -> Units:
    out = {}
    for name, amount in resources.items():
        if not isinstance(name, str):
            raise TypeError(f"resource names must be strings, got {name!r}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise TypeError(f"resource {name!r} must be a number, got {amount!r}")
        if amount < 0 or amount != amount or amount == float("inf"):
            raise ValueError(
                f"resource {name!r} must be a finite non-negative number, got {amount}"
            )
        scaled = amount * UNIT
        if scaled == float("inf"):
            raise ValueError(f"resource {name!r}: {amount} is too large")
        units = round(scaled)
        if amount > 1 and amount != int(amount):
            raise ValueError(
                f"resource {name!r}: amounts above 1 must be whole numbers, got {amount}"
            )
        if units:
            out[name] = units
    return out


def from_wire(amounts: dict[str, float]) -> Units:
    """Units of amounts a node reported: already checked where they were made, and a free
    amount may be fractional above 1 (999.999 of a bundle marker while a task holds 0.001)."""
    return {name: round(amount * UNIT) for name, amount in amounts.items()}


def to_floats(units: Units) -> dict[str, float]:
    return {name: value / UNIT for name, value in units.items()}


def fits(need: Units, available: Units) -> bool:
    return all(available.get(name, 0) >= amount for name, amount in need.items())


def add(into: Units, amounts: Units) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, 0) + amount


def subtract(into: Units, amounts: Units) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, 0) - amount


def shape_key(units: Units) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(units.items()))
