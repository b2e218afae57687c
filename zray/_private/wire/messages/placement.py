"""Records of placement groups: the head's two-phase reservation of bundles on nodes.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


@message(100)
class CreatePlacementGroup(NamedTuple):
    """Driver or worker to head; bundles: resource dicts; answered Ok, or Error (ValueError)."""

    pg_id: bytes
    name: str
    namespace: str
    strategy: str
    bundles: list
    detached: bool
    job_id: bytes
    soft_target: bytes
    creator_actor: bytes  # the actor creating it (it fate-shares with it), or b""


@message(101)
class RemovePlacementGroup(NamedTuple):
    pg_id: bytes


@message(102)
class WaitPlacementGroup(NamedTuple):
    """Answered PlacementGroupReady once the group is created or removed, or after timeout_s
    (a negative timeout waits for one of the two)."""

    pg_id: bytes
    timeout_s: float


@message(103)
class PlacementGroupReady(NamedTuple):
    pg_id: bytes
    created: bool
    state: str


@message(104)
class GetPlacementGroups(NamedTuple):
    """pg_id, or a name in a namespace, or neither for all; answered PlacementGroupTable."""

    pg_id: bytes
    name: str
    namespace: str


@message(105)
class PlacementGroupTable(NamedTuple):
    groups: list


@message(106)
class PrepareBundles(NamedTuple):
    """Head to node, phase one: reserve all of bundles ([index, resources]) or none."""

    pg_id: bytes
    attempt: int
    bundles: list


@message(107)
class BundlesPrepared(NamedTuple):
    pg_id: bytes
    attempt: int
    ok: bool


@message(108)
class CommitBundles(NamedTuple):
    pg_id: bytes
    indices: list


@message(109)
class ReturnBundles(NamedTuple):
    pg_id: bytes
    indices: list
