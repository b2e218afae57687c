"""The zray wire protocol's codec: message framing, the record registry, encode and decode.
The records themselves are in `messages/`, one module per area (docs/protocol.md lists them).

Every ZeroMQ message is a multipart message::

    [header (8 bytes)] [body (msgpack array)] [payload frame]*

The header is ``<BBHI``: protocol version, message type, flags, sequence number. The body is a
msgpack array holding the record's fields in declaration order. Payload frames carry object bytes
(pickle-5 metadata and out-of-band buffers) and are never copied into the body.

Requests that expect an answer carry a non-zero ``seq``; the answer repeats it. Receivers drop
(and count) any message whose header, type, field count or field types do not match.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, TypeVar

import msgpack

from zray._fast import first_bad_field, pack_header, unpack_header

PROTOCOL_VERSION = 1
# Returns per task or actor call: more than any program asks for, and bounded because a worker
# builds one result (or error) per return before it answers; callers refuse more, and workers
# drop pushes asking for more (zray/_private/core/push_checks.py).
MAX_NUM_RETURNS = 100_000

_TYPES: dict[int, Any] = {}  # the record classes, with the CODE and _checks set on them
_CODES: dict[type, int] = {}
_Record = TypeVar("_Record")


class ProtocolError(ValueError):
    """A message that does not follow docs/protocol.md; the receiver drops it."""


def message(code: int) -> Callable[[_Record], _Record]:
    def register(cls: Any) -> Any:
        if code in _TYPES:
            raise RuntimeError(f"message code {code} used twice")
        _TYPES[code] = cls
        _CODES[cls] = code
        cls.CODE = code
        cls._checks = tuple(
            _allowed_types(_annotation_text(cls.__annotations__[name])) for name in cls._fields
        )
        return cls

    return register


def message_types() -> dict[int, type]:
    return dict(_TYPES)


def _body_packer() -> Callable[[Any], bytes]:
    """One packer for every message: msgpack.packb builds a Packer (and its buffer) per call,
    half of a small message's encoding. Sharing the compiled one between threads is safe:
    its `pack` holds the GIL throughout (no `default` hook calls back into Python) and resets
    its buffer on error. msgpack's pure-Python fallback could switch threads mid-message."""
    if msgpack.Packer.__module__ != "msgpack._cmsgpack":
        return lambda body: msgpack.packb(body, use_bin_type=True)
    pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
    return pack


_pack_body = _body_packer()


def encode(msg: NamedTuple, seq: int = 0, flags: int = 0) -> list[bytes]:
    return [
        pack_header(PROTOCOL_VERSION, _CODES[type(msg)], flags, seq),
        _pack_body(tuple(msg)),
    ]


def decode(header: bytes | memoryview, body: bytes | memoryview) -> tuple[Any, int, int]:
    """Returns (record, seq, flags); raises ProtocolError on anything malformed."""
    try:
        version, code, flags, seq = unpack_header(header)
    except ValueError as exc:
        raise ProtocolError(f"bad header: {exc}") from None
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version}, expected {PROTOCOL_VERSION}")
    cls = _TYPES.get(code)
    if cls is None:
        raise ProtocolError(f"unknown message type {code}")
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated classes on garbage
        raise ProtocolError(f"{cls.__name__}: undecodable body ({type(exc).__name__})") from None
    if not isinstance(fields, list) or len(fields) != len(cls._fields):
        raise ProtocolError(f"{cls.__name__}: expected {len(cls._fields)} fields")
    bad = first_bad_field(cls._checks, fields)  # compiled: most of decoding a PushTask
    if bad >= 0:
        name, value = cls._fields[bad], fields[bad]
        raise ProtocolError(f"{cls.__name__}.{name}: unexpected {type(value).__name__}")
    return cls(*fields), seq, flags


# The exact types msgpack decodes each annotation to (so bool is no int here); None: any.
# One set lookup per field: every message a daemon receives is checked field by field.
_CHECKS = {
    "bytes": frozenset({bytes}),
    "str": frozenset({str}),
    "int": frozenset({int}),
    "float": frozenset({int, float}),
    "bool": frozenset({bool}),
    "list": frozenset({list}),
    "dict": frozenset({dict}),
    "Any": None,
}


def _annotation_text(annotation: Any) -> str:
    text: str = getattr(annotation, "__forward_arg__", annotation)
    return text


def _allowed_types(annotation: str) -> frozenset[type] | None:
    if annotation.endswith(" | None"):
        inner = _CHECKS[annotation[: -len(" | None")]]
        return None if inner is None else inner | {type(None)}
    return _CHECKS[annotation]


def _checker(annotation: str) -> Callable[[Any], bool]:
    """The predicate `decode` applies to a field of this annotation."""
    allowed = _allowed_types(annotation)
    return lambda v: allowed is None or type(v) in allowed
