"""Fixed 8-byte header of every wire-protocol message (pure-Python twin of ``frames.pyx``).

Layout ``<BBHI``: u8 version, u8 msg_type, u16 flags, u32 seq, little-endian.
"""

from __future__ import annotations

import struct
from operator import index as _index

HEADER_SIZE = 8

_HEADER = struct.Struct("<BBHI")


def _field(value, name: str, limit: int) -> int:
    value_int = _index(value)
    if not 0 <= value_int <= limit:
        raise ValueError(f"header field {name}={value!r} is outside [0, {limit}]")
    return value_int


def pack_header(version, msg_type, flags, seq) -> bytes:
    return _HEADER.pack(
        _field(version, "version", 0xFF),
        _field(msg_type, "msg_type", 0xFF),
        _field(flags, "flags", 0xFFFF),
        _field(seq, "seq", 0xFFFFFFFF),
    )


def unpack_header(buf) -> tuple[int, int, int, int]:
    view = memoryview(buf)
    if not view.c_contiguous:
        raise ValueError("message header must be a contiguous buffer")
    if view.nbytes != HEADER_SIZE:
        raise ValueError(f"message header must be 8 bytes, got {view.nbytes}")
    return _HEADER.unpack(view.cast("B") if view.format != "B" or view.ndim != 1 else view)
