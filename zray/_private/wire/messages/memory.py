"""Records of distributed reference counting (borrowers) and the memory report
(`zray memory`).

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


# --------------------------------------------------------------------------- references


@message(90)
class AddBorrowers(NamedTuple):
    """Anyone handing refs to another process, to each ref's owner, before the sender drops
    its own hold: `holder` now holds one more registration of each object."""

    holder: str
    object_ids: list


@message(91)
class RemoveBorrowers(NamedTuple):
    """Holder to owner, once nothing in the holder uses the objects any more: gives back
    `counts[i]` registrations of `object_ids[i]`."""

    holder: str
    object_ids: list
    counts: list


# --------------------------------------------------------------------------- memory report


@message(92)
class GetRefTable(NamedTuple):
    """Node to each of its clients, for `zray memory`; answered RefTable."""

    pass_: int


@message(93)
class RefTable(NamedTuple):
    """Client to node: one row per object the process knows, [object_id, owner_address, size,
    reasons, borrowers]; `reasons` say why it is held here (LOCAL_REFERENCE, PINNED_IN_MEMORY,
    USED_BY_PENDING_TASK, CAPTURED_IN_OBJECT, BORROWED, ESCAPED); `borrowers`: registrations
    other processes hold (owner only). `address`: the client's own, to name owners."""

    address: str
    rows: list


@message(94)
class GetMemoryReport(NamedTuple):
    """`zray memory` to each node; answered MemoryReport within `timeout_ms`."""

    timeout_ms: int


@message(95)
class MemoryReport(NamedTuple):
    """Node to `zray memory`: `store` is the node's store stats; `objects` one row per object
    in its store, [object_id, size, state, primary, pins, owner_address] with state "memory",
    "spilled" or "spilling"; `processes` one entry per client that answered in time,
    [pid, kind, address, rows as in RefTable]."""

    node_id: bytes
    node_ip: str
    store: dict
    objects: list
    processes: list


@message(96)
class HolderDied(NamedTuple):
    """A node's process (driver or worker) is gone: node to head, head to every live node, node
    to its local clients. Owners drop the borrower registrations that process held."""

    address: str
