"""Framing of direct connections (pure-Python twin of ``stream.pyx``).

A message on the stream is: u32 frame count, one u32 length per frame, then the frames
(little-endian). `pack` lays one out as buffers for sendmsg; `Unpacker` splits whatever chunks
arrive back into messages, each a list of `Frame`s.
"""

from __future__ import annotations

import struct

# A reader refuses more (the stream is garbage then), so `pack` refuses to write more: a call
# over either limit fails at its caller with MessageTooLarge instead of vanishing at the
# reader. A frame per inline argument or return value: 4,096 frames hung a call with 4,094
# ref arguments (refused by the worker; its caller never heard). A table of 2**20 lengths is
# 4 MiB, which is all a forged count can make a reader buffer.
MAX_FRAMES = 2**20
MAX_MESSAGE_BYTES = 256 * 2**20
# Copying a small frame out of the read chunk lets the chunk go; a stored result must not pin
# a quarter of a MiB of other messages for as long as it lives.
COPY_BELOW = 64 * 1024

_U32 = struct.Struct("<I")


_LENGTHS: dict = {}


def _lengths(count: int) -> struct.Struct:
    """The Struct of a frame-length table (struct's own cache is a dict lookup keyed by the
    format string, which would have to be formatted for every message first)."""
    table = _LENGTHS.get(count)
    if table is None:
        table = _LENGTHS[count] = struct.Struct(f"<{count}I")
    return table


class FramingError(ValueError):
    """The byte stream is not a sequence of messages: the connection cannot be resynchronised."""


class MessageTooLarge(ValueError):
    """`pack` was given a message its reader would refuse (MAX_FRAMES, MAX_MESSAGE_BYTES)."""


def too_large(count: int, total: int) -> MessageTooLarge:
    size = f" and {total} bytes" if total >= 0 else ""
    return MessageTooLarge(
        f"a message of {count} frames{size} exceeds what a direct connection carries "
        f"({MAX_FRAMES} frames, {MAX_MESSAGE_BYTES} bytes)"
    )


class Frame:
    """What a ZeroMQ frame offers the handlers: `.buffer` and `.bytes`."""

    __slots__ = ("buffer",)

    def __init__(self, buffer: memoryview):
        self.buffer = buffer

    @property
    def bytes(self) -> bytes:
        return bytes(self.buffer)


def pack(frames) -> list:
    """One message as a list of buffers for sendmsg (no join of large frames)."""
    lengths = [len(f) if type(f) is bytes else memoryview(f).nbytes for f in frames]
    count = len(frames)
    total = 4 + 4 * count + sum(lengths)
    if not 0 < count <= MAX_FRAMES or total > MAX_MESSAGE_BYTES:
        raise too_large(count, total)
    return [_lengths(count + 1).pack(count, *lengths), *frames]


def unsent(buffers, sent: int) -> list:
    """What of `buffers` (a sendmsg's list) a send of `sent` bytes did not take, in order: []
    if it took them all, else the rest, the first cut to its unsent part."""
    if sent < 0:
        raise ValueError(f"sent must be >= 0, not {sent}")
    for index, buffer in enumerate(buffers):
        size = len(buffer) if type(buffer) is bytes else memoryview(buffer).nbytes
        if sent < size:
            rest = list(buffers[index:])
            if sent:
                rest[0] = memoryview(buffer).cast("B")[sent:]
            return rest
        sent -= size
    return []


class Unpacker:
    """Splits a byte stream into messages, whatever the chunks it arrives in."""

    def __init__(self):
        self._chunks: list = []
        self._size = 0
        self._need = 0  # bytes the buffered start of a message must reach to be parsed further

    def feed(self, data) -> list:
        """Returns the complete messages (lists of frames) the stream now holds. `data` may
        be any buffer: the caller may reuse it once this returns."""
        if type(data) is not bytes:
            data = bytes(data)  # frames and pieces are kept past this call
        if self._chunks:
            self._chunks.append(data)
            self._size += len(data)
            if self._size < self._need:
                # Joined only once the message is whole: joining the whole prefix at every
                # chunk copied a 256 MiB message ~1,000 times (a stranger could trickle one).
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        view = memoryview(data)
        messages, pos, end = [], 0, len(data)
        # Frames of a small chunk are views of it: it pins nothing much. Those of a big one
        # (many messages, or a large frame) are copied out when small, so that a stored
        # result does not keep a quarter of a MiB of other messages alive.
        small_chunk = end < COPY_BELOW
        need = 4
        while end - pos >= 4:
            count = _U32.unpack_from(view, pos)[0]
            if not 0 < count <= MAX_FRAMES:
                raise FramingError(f"a message of {count} frames")
            table = 4 + 4 * count
            if end - pos < table:
                need = table
                break
            lengths = _lengths(count).unpack_from(view, pos + 4)
            total = table + sum(lengths)
            if total > MAX_MESSAGE_BYTES:
                raise FramingError(f"a message of {total} bytes")
            if end - pos < total:
                need = total
                break
            frames, start = [], pos + table
            for length in lengths:
                stop = start + length
                if small_chunk or length >= COPY_BELOW:
                    frames.append(Frame(view[start:stop]))
                else:
                    frames.append(Frame(memoryview(data[start:stop])))
                start = stop
            messages.append(frames)
            pos += total
        if pos < end:
            self._chunks.append(data[pos:] if pos else data)
        self._size = end - pos
        self._need = need
        return messages

    @property
    def buffered(self) -> int:
        return self._size
