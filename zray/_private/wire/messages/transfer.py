"""Records of moving an object between nodes: pulls by chunk or by stream, choosing a
source for a fan-out, and asking where objects stand.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


@message(55)
class PullObject(NamedTuple):
    """Node to node: answered ObjectInfo; the source pins the object until PullDone."""

    object_id: bytes


@message(56)
class ObjectInfo(NamedTuple):
    """`arena_path`/`offset`: where the pinned copy lies, for a puller on the same machine to
    copy it straight from the source's shared memory (one copy, no chunks)."""

    object_id: bytes
    found: bool
    size: int
    owner_address: str
    arena_path: str
    offset: int


@message(57)
class PullChunk(NamedTuple):
    """Answered ObjectChunk with the bytes [offset, offset+length) as its payload frame."""

    object_id: bytes
    offset: int
    length: int
    compress: bool


@message(58)
class ObjectChunk(NamedTuple):
    object_id: bytes
    offset: int
    compressed: bool


@message(59)
class PullDone(NamedTuple):
    object_id: bytes


@message(160)
class PullStream(NamedTuple):
    """Node to the node chosen as the source (another host, or the same-host shortcut off):
    answered StreamGrant; the source pins the object (or, if it is still receiving it, pins it
    once complete) until PullDone."""

    object_id: bytes


@message(161)
class StreamGrant(NamedTuple):
    """`grant`: 16 random bytes that open the object's range on the source's transfer port
    (`port`, a plain TCP socket; see zray/_private/node/transfer.py) until PullDone."""

    object_id: bytes
    found: bool
    size: int
    owner_address: str
    port: int
    grant: bytes


@message(162)
class LocateSource(NamedTuple):
    """Node to head: which node should `node_id` stream this object from? Answered
    SourceChosen at once, or when a first copy is sealed; `exclude`: nodes that failed it."""

    object_id: bytes
    node_id: bytes
    sealed_on: bytes
    exclude: list


@message(163)
class SourceChosen(NamedTuple):
    """Head to puller: the node to pull from (a holder or a node still receiving a copy, the
    one with the fewest pullers); empty when every copy is lost."""

    object_id: bytes
    node_id: bytes
    size: int


@message(164)
class PullEnded(NamedTuple):
    """Node to head: it gave up pulling this object, so it forwards no copy to anyone."""

    object_id: bytes
    node_id: bytes


@message(165)
class GetObjectStatuses(NamedTuple):
    """Borrower to owner, for several values at once (a call's arguments past the inline
    budget): answered ObjectStatuses at once."""

    object_ids: list


@message(166)
class ObjectStatuses(NamedTuple):
    """Owner to borrower: `statuses` of the values ready now, each [object_id, kind, node_id,
    size, frame_sizes, contained] (as in ObjectStatus, with the byte size of each of the
    value's frames); the payload is one frame, every value's frames end to end in that order;
    `pending`: the ids not ready yet (the borrower asks for each with GetObjectStatus)."""

    statuses: list
    pending: list


@message(211)
class AddCopyLocations(NamedTuple):
    """Node to head, batched like AddObjectLocations: copies it pulled from other nodes. A copy
    of an object whose owner freed it lately (the free reached the head before this) is freed
    at once (FreeObjects back) instead of listed: nobody would ever free it."""

    node_id: bytes
    object_ids: list
    sizes: list
