"""Hypothesis strategies for what a stranger may write into a worker's direct-call socket
(zray/_private/wire/direct.py): byte streams that must never be delivered as a call."""

from __future__ import annotations

import struct

import msgpack
from hypothesis import strategies as st

from zray._fast import pack
from zray._private.wire import protocol as P

HEADER = struct.Struct("<BBHI")
ACTOR_ID = b"\xaa" * 16
OWNER = "ipc:///tmp/zray-nowhere/d-owner"


def stream(frames) -> bytes:
    return b"".join(bytes(b) for b in pack(list(frames)))


def call(**fields) -> P.PushActorTask:
    """A well-formed call to ACTOR_ID, with `fields` replaced."""
    values = dict(
        actor_id=ACTOR_ID,
        task_id=b"t" * 24,
        method="ping",
        num_returns=1,
        concurrency_group="",
        owner_address=OWNER,
        nbuffers=0,
        resolved=[],
        borrowed=[],
        generator_backpressure=-1,
        attempt=0,
    )
    values.update(fields)
    return P.PushActorTask(**values)


_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40).filter(lambda b: len(b) not in (16, 24, 28))
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def random_bytes(draw):
    return draw(st.binary(min_size=1, max_size=512))


@st.composite
def garbage_body(draw):
    """A valid frame table around garbage frames."""
    frames = draw(st.lists(st.binary(max_size=64), min_size=0, max_size=6))
    return stream(frames) if frames else struct.pack("<I", 0)


@st.composite
def huge_prefix(draw):
    count = draw(st.sampled_from([0, 4097, 2**31, 2**32 - 1]) | st.integers(1, 3))
    lengths = draw(st.lists(st.sampled_from([2**28, 2**31, 2**32 - 1]), min_size=1, max_size=3))
    return struct.pack(f"<I{len(lengths)}I", count, *lengths) + draw(st.binary(max_size=64))


@st.composite
def truncated(draw):
    whole = stream(P.encode(call()) + [msgpack.packb(((), {}))])
    return whole[: draw(st.integers(1, len(whole) - 1))]


@st.composite
def wrong_types(draw):
    """A valid header of a random message type, its field count, values of any type."""
    code = draw(st.sampled_from(sorted(P.message_types())))
    cls = P.message_types()[code]
    values = draw(st.lists(_ANY, min_size=len(cls._fields), max_size=len(cls._fields)))
    return stream(
        [
            HEADER.pack(P.PROTOCOL_VERSION, code, 0, draw(st.integers(0, 2**32 - 1))),
            msgpack.packb(values),
        ]
        + draw(st.lists(st.binary(max_size=8), max_size=3))
    )


@st.composite
def bad_call(draw, actor_id: bytes):
    """A call that decodes, with one field the worker could not use."""
    bad = draw(
        st.sampled_from(
            [
                dict(task_id=b"short"),
                dict(num_returns=10**9),
                dict(num_returns=-1),
                dict(owner_address="nowhere"),
                dict(owner_address=""),
                dict(nbuffers=7),
                dict(nbuffers=-3),
                dict(resolved=[[1, 2]]),
                dict(resolved=[["x"] * 5]),
                dict(resolved=[[b"o" * 28, 1, 10**6, b"", 0]]),
                dict(borrowed=[[b"o" * 28]]),
                dict(borrowed=[[b"o" * 28, "not an address"]]),
                dict(borrowed=["x"]),
                dict(actor_id=b"\xbb" * 16),
            ]
        )
    )
    msg = call(**dict(dict(actor_id=actor_id), **bad))
    return stream(P.encode(msg) + [msgpack.packb(((), {}))])


@st.composite
def not_a_call(draw, actor_id: bytes):
    msg = draw(
        st.sampled_from(
            [
                P.StartActor(actor_id, {"class_id": b"x"}, 0, [], 0),
                P.TaskDone(b"t" * 24, [], 0, []),
                P.PushTask(
                    b"t" * 24, b"f" * 20, "f", 1, OWNER, 1, 0, [], [], {"CPU": 1.0}, [], "", -1, 0
                ),
                P.Hello(OWNER),
                P.KillWorker(b"w" * 28),
            ]
        )
    )
    return stream(P.encode(msg))


def garbage(actor_id: bytes = ACTOR_ID):
    """Any of the kinds above; the calls among them address `actor_id`."""
    return st.one_of(
        random_bytes(),
        garbage_body(),
        huge_prefix(),
        truncated(),
        wrong_types(),
        bad_call(actor_id),
        not_a_call(actor_id),
    )
