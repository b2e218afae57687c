"""Layout of one serialized object in the arena (pure-Python twin of ``objformat.pyx``).

An object is pickle protocol 5 metadata plus its out-of-band buffers, laid out so a reader can
hand out zero-copy slices::

    offset 0    magic      4 bytes  b"ZOB1"
    offset 4    nbufs      u32 LE
    offset 8    meta_len   u64 LE
    offset 16   lengths    nbufs x u64 LE, the byte length of each buffer
    then        metadata   meta_len bytes
    then        buffer i   at the next offset (relative to the object start) that is a
                           multiple of 64, so numpy views of it are aligned -- or of 4096 for
                           buffers of 64 KiB or more, because copying into a destination whose
                           page offset differs from the source's runs ~4x slower here (glibc's
                           non-temporal memcpy); the gap is zeroed

The object ends where its last buffer (or, with none, its metadata) ends: no trailing padding.
"""

from __future__ import annotations

import struct
from operator import index as _index
from pickle import PickleBuffer

MAGIC = b"ZOB1"
HEADER_BYTES = 16
ALIGNMENT = 64
PAGE_ALIGNMENT = 4096
PAGE_ALIGN_MIN = 64 * 1024

_HEADER = struct.Struct("<4sIQ")
_MAX_BUFFERS = 0xFFFFFFFF


def _align(pos: int, length: int) -> int:
    alignment = PAGE_ALIGNMENT if length >= PAGE_ALIGN_MIN else ALIGNMENT
    return (pos + alignment - 1) & ~(alignment - 1)


def _non_negative(value, what: str) -> int:
    value = _index(value)
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"{what} must be a non-negative int64, got {value}")
    return value


def object_size(meta_len, buffer_lens) -> int:
    """Total bytes one object with these metadata and buffer lengths occupies."""
    pos = HEADER_BYTES + _non_negative(meta_len, "meta_len")
    n = len(buffer_lens)
    if n > _MAX_BUFFERS:
        raise ValueError(f"at most {_MAX_BUFFERS} buffers per object, got {n}")
    pos += 8 * n
    for length in buffer_lens:
        length = _non_negative(length, "buffer length")
        pos = _align(pos, length) + length
    return pos


def _contiguous(obj, what: str) -> memoryview:
    view = memoryview(obj)
    if not view.c_contiguous:
        raise ValueError(f"{what} must be a C-contiguous buffer")
    # raw() is a flat byte view whatever the format or shape (numpy records, 0-d arrays).
    return PickleBuffer(view).raw()


def write_object(dest, offset, metadata, buffers) -> int:
    """Write one object into ``dest`` at ``offset``; return its size (== ``object_size``)."""
    offset = _non_negative(offset, "offset")
    buffers = list(buffers)
    if len(buffers) > _MAX_BUFFERS:
        raise ValueError(f"at most {_MAX_BUFFERS} buffers per object, got {len(buffers)}")
    d = memoryview(dest)
    if d.readonly or not d.c_contiguous:
        raise TypeError("dest must be a writable contiguous buffer")
    out = PickleBuffer(d).raw()
    meta = _contiguous(metadata, "metadata")
    views = [_contiguous(b, f"buffer {i}") for i, b in enumerate(buffers)]
    total = object_size(meta.nbytes, [v.nbytes for v in views])
    if offset > out.nbytes or total > out.nbytes - offset:
        raise ValueError(
            f"a {total}-byte object does not fit at offset {offset} of a {out.nbytes}-byte buffer"
        )

    _HEADER.pack_into(out, offset, MAGIC, len(views), meta.nbytes)
    struct.pack_into(f"<{len(views)}Q", out, offset + HEADER_BYTES, *(v.nbytes for v in views))
    pos = offset + HEADER_BYTES + 8 * len(views)
    out[pos : pos + meta.nbytes] = meta
    pos += meta.nbytes
    for v in views:
        start = offset + _align(pos - offset, v.nbytes)
        out[pos:start] = bytes(start - pos)
        out[start : start + v.nbytes] = v
        pos = start + v.nbytes
    return pos - offset


def read_object(view) -> tuple[memoryview, list[memoryview]]:
    """Return ``(metadata, buffers)`` of the object at the start of ``view`` as zero-copy slices.

    The slices reference ``view``'s underlying buffer, so a pinned view stays pinned while any of
    them lives.  Raises ValueError, never reads out of bounds, on malformed input.
    """
    mv = view if isinstance(view, memoryview) else memoryview(view)
    if not mv.c_contiguous:
        raise ValueError("object view must be C-contiguous")
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    n = mv.nbytes
    if n < HEADER_BYTES:
        raise ValueError(f"truncated object: {n} bytes, the header alone needs 16")
    magic, nbufs, meta_len = _HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise ValueError(f"bad object magic {magic!r}, expected {MAGIC!r}")
    table_end = HEADER_BYTES + 8 * nbufs
    if table_end > n:
        raise ValueError(
            f"truncated object: {nbufs} buffer lengths end at {table_end}, view has {n} bytes"
        )
    if meta_len > n - table_end:
        raise ValueError(
            f"truncated object: metadata ends at {table_end + meta_len}, view has {n} bytes"
        )
    meta_end = table_end + meta_len
    pos = meta_end
    buffers = []
    for i, length in enumerate(struct.unpack_from(f"<{nbufs}Q", mv, HEADER_BYTES)):
        start = _align(pos, length)
        if start > n or length > n - start:
            raise ValueError(
                f"truncated object: buffer {i} ends at {start + length}, view has {n} bytes"
            )
        buffers.append(mv[start : start + length])
        pos = start + length
    return mv[table_end:meta_end], buffers
