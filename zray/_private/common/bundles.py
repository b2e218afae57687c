"""How a placement group's bundles appear among a node's resources, with Ray's names.

Committing bundle ``i`` of group ``G`` (hex id) that holds ``{"CPU": 2}`` adds to its node::

    CPU_group_i_G: 2        the bundle itself
    CPU_group_G: 2          the "wildcard": any bundle of G on this node (summed over them)
    bundle_group_i_G: 1000  lets a task that asks for nothing still land on the bundle's node
    bundle_group_G: 1000

and takes the 2 CPUs out of the node's free ``CPU``. A task placed in bundle ``i`` asks for
``CPU_group_i_G`` and ``CPU_group_G`` instead of ``CPU``, plus 0.001 of both bundle markers;
with index -1 it asks for the wildcard names alone. The node's scheduler needs nothing else: a group's resources are
ordinary resources that exist only where its bundles were committed.
"""

from __future__ import annotations

import re

from zray._private.common import resources as R

BUNDLE = "bundle"
BUNDLE_AMOUNT = 1000.0  # of the bundle marker resource, per committed bundle
TASK_BUNDLE_SHARE = 0.001  # what every task in a bundle takes of its marker

_INDEXED = re.compile(r"^(.+)_group_(\d+)_([0-9a-f]{36})$")
_WILDCARD = re.compile(r"^(.+)_group_([0-9a-f]{36})$")


def indexed_name(name: str, index: int, pg_hex: str) -> str:
    return f"{name}_group_{index}_{pg_hex}"


def wildcard_name(name: str, pg_hex: str) -> str:
    return f"{name}_group_{pg_hex}"


def committed_units(pg_hex: str, index: int, units: R.Units) -> R.Units:
    """What committing the bundle adds to its node's total (in resource units)."""
    out: R.Units = {}
    for name, amount in units.items():
        out[indexed_name(name, index, pg_hex)] = amount
        out[wildcard_name(name, pg_hex)] = amount
    marker = round(BUNDLE_AMOUNT * R.UNIT)
    out[indexed_name(BUNDLE, index, pg_hex)] = marker
    out[wildcard_name(BUNDLE, pg_hex)] = marker
    return out


def request_in_bundle(resources: dict[str, float], pg_hex: str, index: int) -> dict[str, float]:
    """A task's resource request (floats) rewritten to run in bundle `index` (-1: any). A
    request for one bundle takes the wildcard names too, as in Ray: the wildcard then counts
    everything the group's bundles on a node lend, so a task placed in "any bundle" never
    takes what one placed in a given bundle holds."""
    asked = dict(resources, **{BUNDLE: TASK_BUNDLE_SHARE})
    out = {wildcard_name(name, pg_hex): amount for name, amount in asked.items()}
    if index >= 0:
        out.update({indexed_name(name, index, pg_hex): amount for name, amount in asked.items()})
    return out


def is_group_resource(name: str) -> bool:
    return bool(_INDEXED.match(name) or _WILDCARD.match(name))


def group_of(name: str) -> str | None:
    """The hex id of the placement group a resource name belongs to, if any."""
    return group_and_index(name)[0]


def group_and_index(name: str) -> tuple[str | None, int]:
    """(group hex, bundle index or -1 for a wildcard name) of a group resource name."""
    match = _INDEXED.match(name)
    if match:
        return match.group(3), int(match.group(2))
    match = _WILDCARD.match(name)
    return (match.group(2), -1) if match else (None, -1)


def original(resources: dict[str, float]) -> dict[str, float]:
    """Resource names as the task asked for them (what get_assigned_resources shows)."""
    out: dict[str, float] = {}
    for name, amount in resources.items():
        match = _INDEXED.match(name) or _WILDCARD.match(name)
        if match is None:
            out[name] = amount
        elif match.group(1) != BUNDLE:
            out[match.group(1)] = amount
    return out


def without_groups(resources: dict[str, float]) -> dict[str, float]:
    """What cluster_resources() and available_resources() show: Ray leaves groups out."""
    return {name: amount for name, amount in resources.items() if not is_group_resource(name)}
