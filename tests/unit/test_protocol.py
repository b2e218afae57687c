"""Wire protocol codec: every message type round-trips; malformed input only ever raises
ProtocolError.

Strategies are derived from each record's field annotations (strings under ``from __future__
import annotations``, or ForwardRefs), so new message types are covered without editing this file.
"""

from __future__ import annotations

import math
import random
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zray._fast import HEADER_SIZE, pack_header
from zray._private.wire import codec
from zray._private.wire import protocol as P
from zray._private.wire.protocol import ProtocolError, decode, encode, message_types

TYPES = message_types()
CODES = sorted(TYPES)
VERSION = P.PROTOCOL_VERSION
QUICK = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def examples(n: int):
    return settings(QUICK, max_examples=n)


def annotation_of(cls, name: str) -> str:
    text = codec._annotation_text(cls.__annotations__[name])
    if not isinstance(text, str):  # a real type if a module ever drops the __future__ import
        text = getattr(text, "__name__", str(text))
    return text


def test_registry_is_consistent():
    assert len(CODES) >= 40
    assert all(0 < code < 256 for code in CODES)
    for code, cls in TYPES.items():
        assert cls.CODE == code
        assert len(cls._checks) == len(cls._fields)
        for name in cls._fields:
            base = annotation_of(cls, name).removesuffix(" | None")
            assert base in codec._CHECKS, (cls.__name__, name, base)


# ------------------------------------------------------------------ value strategies


def _random_bytes(n: int):
    return st.integers(0, 2**32 - 1).map(lambda seed: random.Random(seed).randbytes(n))


BIG_SIZES = (255, 256, 65535, 65536, 2**20 - 1, 2**20)
byte_values = st.one_of(
    st.binary(max_size=40),
    st.just(b""),
    st.sampled_from(BIG_SIZES).flatmap(_random_bytes),
)
str_values = st.one_of(
    st.text(max_size=30),
    st.just(""),
    st.sampled_from(("é", "日本", "\U0001f600", "\x00", "a\nb")).map(lambda s: s * 20000),
)
INT_EDGES = (0, 1, -1, 2**31 - 1, 2**32 - 1, 2**32, 2**63 - 1, -(2**63), 2**64 - 1)
int_values = st.one_of(st.sampled_from(INT_EDGES), st.integers(-(2**63), 2**64 - 1))
float_values = st.one_of(
    st.floats(allow_nan=False),
    st.sampled_from((0.0, -0.0, 1.5, math.inf, -math.inf, 5e-324, 1.7976931348623157e308)),
)
scalar_values = st.one_of(
    st.none(), st.booleans(), int_values, float_values, st.text(max_size=10), st.binary(max_size=10)
)
map_keys = st.one_of(st.text(max_size=10), st.binary(max_size=8), st.integers(-1000, 1000))
nested_values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(map_keys, children, max_size=4)
    ),
    max_leaves=6,
)

STRATEGIES = {
    "bytes": byte_values,
    "str": str_values,
    "int": int_values,
    "float": float_values,
    "bool": st.booleans(),
    "list": st.lists(nested_values, max_size=4),
    "dict": st.dictionaries(map_keys, nested_values, max_size=4),
    "Any": nested_values,
}


def field_strategy(annotation: str):
    if annotation.endswith(" | None"):
        return st.one_of(st.none(), STRATEGIES[annotation.removesuffix(" | None")])
    return STRATEGIES[annotation]


def message_strategy(cls):
    return st.builds(
        cls, **{name: field_strategy(annotation_of(cls, name)) for name in cls._fields}
    )


def data_for(annotation: str):
    """One fixed valid value per annotation."""
    return {
        "bytes": b"x",
        "str": "naïve ☃",
        "int": 2**63 - 1,
        "float": -2.5,
        "bool": True,
        "list": [1, "a", b"b", None, [2.5, {"k": []}]],
        "dict": {"a": 1, b"b": [None], 3: {}},
        "Any": [None],
    }[annotation.removesuffix(" | None")]


seqs = st.one_of(st.sampled_from((0, 1, 2**32 - 1)), st.integers(0, 2**32 - 1))
flag_values = st.one_of(st.sampled_from((0, 1, 0xFFFF)), st.integers(0, 0xFFFF))


def same(a, b) -> bool:
    """Equal with the same types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return (
            len(a) == len(b)
            and all(any(same(k, k2) for k2 in b) for k in a)
            and all(same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@examples(150)
@given(data=st.data())
def test_field_strategies_produce_what_the_decoder_accepts(data):
    """Covers every annotation the decoder knows, optional ones included, so a new field
    type (or a first `X | None` field) is exercised here before any message uses it."""
    base = data.draw(st.sampled_from(sorted(codec._CHECKS)))
    annotation = base + data.draw(st.sampled_from(("", " | None")))
    value = data.draw(field_strategy(annotation))
    assert codec._checker(annotation)(value)
    wire = msgpack.unpackb(
        msgpack.packb([value], use_bin_type=True), raw=False, use_list=True, strict_map_key=False
    )
    assert same(wire, [value])


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("code", CODES, ids=[TYPES[c].__name__ for c in CODES])
@examples(16)
@given(data=st.data(), seq=seqs, flags=flag_values)
def test_round_trip(code, data, seq, flags):
    cls = TYPES[code]
    msg = data.draw(message_strategy(cls))
    frames = encode(msg, seq, flags)
    assert len(frames) == 2 and len(frames[0]) == HEADER_SIZE
    assert all(isinstance(f, bytes) for f in frames)
    out = decode(*frames)
    assert out == (msg, seq, flags)
    assert type(out[0]) is cls
    assert same(tuple(out[0]), tuple(msg))
    # The transport hands zero-copy frame buffers to decode.
    assert decode(memoryview(frames[0]), memoryview(frames[1])) == (msg, seq, flags)
    assert decode(bytearray(frames[0]), bytearray(frames[1])) == (msg, seq, flags)


def test_round_trip_extreme_seq_and_empty_values():
    """Every type with its 'smallest' field values and the extreme sequence numbers."""
    empty = {
        "bytes": b"",
        "str": "",
        "int": 0,
        "float": 0.0,
        "bool": False,
        "list": [],
        "dict": {},
        "Any": None,
    }
    for cls in TYPES.values():
        fields = []
        for name in cls._fields:
            annotation = annotation_of(cls, name)
            fields.append(None if annotation.endswith(" | None") else empty[annotation])
        msg = cls(*fields)
        for seq in (0, 2**32 - 1):
            assert decode(*encode(msg, seq, 0xFFFF)) == (msg, seq, 0xFFFF)
        assert decode(*encode(msg)) == (msg, 0, 0)


def test_round_trip_mebibyte_payload_in_every_bytes_field():
    big = random.Random(1).randbytes(2**20)
    for cls in TYPES.values():
        fields = [
            big if annotation_of(cls, n) == "bytes" else data_for(annotation_of(cls, n))
            for n in cls._fields
        ]
        msg = cls(*fields)
        assert decode(*encode(msg, 7, 3)) == (msg, 7, 3)


def test_encode_rejects_out_of_range_header_fields():
    msg = TYPES[CODES[0]](
        *[data_for(annotation_of(TYPES[CODES[0]], n)) for n in TYPES[CODES[0]]._fields]
    )
    for seq, flags in [(-1, 0), (2**32, 0), (0, -1), (0, 2**16)]:
        with pytest.raises(ValueError):
            encode(msg, seq, flags)


# ------------------------------------------------------------------ malformed input


def assert_rejected_or_consistent(header, body):
    """decode either raises ProtocolError (and nothing else) or returns a message that
    re-encodes to an equivalent message."""
    try:
        msg, seq, flags = decode(header, body)
    except ProtocolError:
        return False
    assert type(msg) in TYPES.values()
    assert decode(*encode(msg, seq, flags)) == (msg, seq, flags)
    return True


def valid_frames(code=None, seq=5, flags=0):
    cls = TYPES[code if code is not None else CODES[0]]
    msg = cls(*[data_for(annotation_of(cls, n)) for n in cls._fields])
    return encode(msg, seq, flags)


@examples(500)
@given(header=st.binary(max_size=12), body=st.binary(max_size=64))
def test_random_bytes_only_raise_protocol_error(header, body):
    assert_rejected_or_consistent(header, body)


@examples(400)
@given(code=st.sampled_from(CODES), seq=seqs, flags=flag_values, body=st.binary(max_size=64))
def test_random_body_behind_valid_header_only_raises_protocol_error(code, seq, flags, body):
    assert_rejected_or_consistent(pack_header(VERSION, code, flags, seq), body)


@examples(400)
@given(code=st.sampled_from(CODES), data=st.data())
def test_corrupted_valid_bodies_only_raise_protocol_error(code, data):
    header, body = valid_frames(code)
    body = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(("flip", "truncate", "insert", "append")))
        if action == "flip" and body:
            i = data.draw(st.integers(0, len(body) - 1))
            body[i] = data.draw(st.integers(0, 255))
        elif action == "truncate":
            del body[data.draw(st.integers(0, len(body))) :]
        elif action == "insert":
            body.insert(data.draw(st.integers(0, len(body))), data.draw(st.integers(0, 255)))
        else:
            body += data.draw(st.binary(min_size=1, max_size=4))
    assert_rejected_or_consistent(header, bytes(body))


def test_wrong_header_length():
    header, body = valid_frames()
    for length in (0, 1, 4, 7, 9, 16):
        for bad in ((header * 3)[:length], memoryview((header * 3)[:length])):
            with pytest.raises(ProtocolError, match="header"):
                decode(bad, body)


@examples(200)
@given(version=st.integers(0, 255).filter(lambda v: v != VERSION), code=st.sampled_from(CODES))
def test_wrong_version(version, code):
    _, body = valid_frames(code)
    with pytest.raises(ProtocolError, match="version"):
        decode(pack_header(version, code, 0, 1), body)


def test_unknown_type():
    _, body = valid_frames()
    unknown = [c for c in range(256) if c not in TYPES]
    assert 0 in unknown
    for code in unknown:
        with pytest.raises(ProtocolError, match="unknown message type"):
            decode(pack_header(VERSION, code, 0, 1), body)


@pytest.mark.parametrize("code", CODES, ids=[TYPES[c].__name__ for c in CODES])
def test_wrong_field_count_and_shape(code):
    cls = TYPES[code]
    fields = [data_for(annotation_of(cls, n)) for n in cls._fields]
    header = pack_header(VERSION, code, 0, 1)
    bodies = [
        fields + [0],
        fields[:-1],
        [],
        fields + fields,
        dict(zip(cls._fields, fields)),
        0,
        "x",
        None,
        b"fields",
    ]
    for value in bodies:
        with pytest.raises(ProtocolError):
            decode(header, msgpack.packb(value, use_bin_type=True))


ALLOWED = {  # an independent statement of which Python types each annotation admits
    "bytes": lambda v: type(v) is bytes,
    "str": lambda v: type(v) is str,
    "int": lambda v: type(v) is int,
    "float": lambda v: type(v) in (int, float),
    "bool": lambda v: type(v) is bool,
    "list": lambda v: type(v) is list,
    "dict": lambda v: type(v) is dict,
    "Any": lambda v: True,
}
WRONG_POOL = (
    None,
    True,
    False,
    0,
    7,
    -3,
    2**64 - 1,
    1.5,
    "",
    "text",
    b"",
    b"bytes",
    [],
    [1],
    {},
    {"a": 1},
    msgpack.ExtType(5, b"x"),
    msgpack.Timestamp(1, 0),
)


def _admits(annotation: str, value) -> bool:
    if annotation.endswith(" | None"):
        return value is None or ALLOWED[annotation.removesuffix(" | None")](value)
    return ALLOWED[annotation](value)


@pytest.mark.parametrize("code", CODES, ids=[TYPES[c].__name__ for c in CODES])
@examples(12)
@given(data=st.data())
def test_wrong_field_types(code, data):
    cls = TYPES[code]
    annotations = [annotation_of(cls, n) for n in cls._fields]
    fields = [data_for(a) if not a.endswith(" | None") else None for a in annotations]
    index = data.draw(st.integers(0, len(fields) - 1))
    wrong = [v for v in WRONG_POOL if not _admits(annotations[index], v)]
    assume(wrong)
    fields[index] = data.draw(st.sampled_from(wrong))
    body = msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(ProtocolError, match=cls._fields[index]):
        decode(pack_header(VERSION, code, 0, 1), body)


HUGE = [
    b"\xdd\xff\xff\xff\xff",  # array32 of 4G elements
    b"\xdf\xff\xff\xff\xff",  # map32 of 4G pairs
    b"\xdb\xff\xff\xff\xff" + b"a",  # str32 of 4G bytes
    b"\xc6\xff\xff\xff\xff" + b"a",  # bin32 of 4G bytes
    b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4G bytes
    b"\x91\xc6\xff\xff\xff\xff",  # [bin32 4G]
    b"\x93\xc4\x01a\xdd\xff\xff\xff\xff\x00",  # [b"a", array32 4G, ...]
    b"\x91" * 100_000,  # nesting far beyond any stack limit
    b"\x81" * 50_000 + b"\xc0",  # nested maps
    b"\x92\x81\x90\x00\x00",  # a map keyed by a list (unhashable)
    b"\x91\xc1",  # reserved byte 0xc1
    b"\x91\xa2\xff\xfe",  # invalid UTF-8 in a str
    b"\x91\xc0\xc0",  # extra data after a valid array
    b"",
]


@pytest.mark.parametrize("body", HUGE, ids=range(len(HUGE)))
def test_huge_declared_sizes_and_garbage_bodies(body):
    for code in CODES:
        with pytest.raises(ProtocolError):
            decode(pack_header(VERSION, code, 0, 1), body)


@pytest.mark.parametrize("size", ["just-too-long", 2**16, 2**32 - 1])
def test_truncated_bin_field(size):
    """A bytes field that declares more bytes than the body holds."""
    code = next(
        c
        for c in CODES
        if annotation_of(TYPES[c], TYPES[c]._fields[0]) == "bytes" and len(TYPES[c]._fields) < 16
    )
    cls = TYPES[code]
    rest = b"".join(
        msgpack.packb(data_for(annotation_of(cls, n)), use_bin_type=True) for n in cls._fields[1:]
    )
    if size == "just-too-long":
        size = len(rest) + 2
    body = bytes([0x90 + len(cls._fields)]) + b"\xc6" + struct.pack(">I", size) + b"x" + rest
    with pytest.raises(ProtocolError):
        decode(pack_header(VERSION, code, 0, 1), body)
