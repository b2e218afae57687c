"""Records of a ray:// client's connection to the head's client server
(zray/util/client/): requests and replies carry a pickled payload; frames above
CLIENT_CHUNK_BYTES follow as ClientChunks.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


CLIENT_CHUNK_BYTES = 4 * 2**20


@message(180)
class ClientRequest(NamedTuple):
    """Client to its session: call `op`. `sizes`: the payload's frame sizes, the small ones
    attached, each larger one in ClientChunks after it. `acked`: every reply below this seq
    arrived, so the session may forget them (it keeps the others to answer a resend)."""

    seq: int
    op: str
    acked: int
    sizes: list


@message(181)
class ClientReply(NamedTuple):
    """Session to client: the outcome of request `seq`; `ok` False: the payload is the
    pickled exception to raise. Frames as in ClientRequest."""

    seq: int
    ok: bool
    sizes: list


@message(182)
class ClientChunk(NamedTuple):
    """One piece of a large frame of request or reply `seq`: `frame` is its index in the
    payload, `offset` where this piece starts; the piece is the single payload frame."""

    seq: int
    frame: int
    offset: int


@message(183)
class ClientHeartbeat(NamedTuple):
    """Client to the client server each second, answered at once: the session stays while they
    arrive (and for the reconnect grace period after the last). A session process sends one
    when it is ready for requests."""

    acked: int


@message(184)
class ClientSessionEnded(NamedTuple):
    """Client server to a client whose session does not exist (ended, or its grace period
    passed), or to a session process: end now."""

    reason: str


@message(185)
class ClientLogLines(NamedTuple):
    """Session to client (one-way): lines a task or actor printed, as LogLines to a driver."""

    stream: str
    prefix: str
    lines: list
