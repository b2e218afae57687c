"""Framing of direct connections (compiled twin of ``_stream_py``).

A message on the stream is: u32 frame count, one u32 length per frame, then the frames
(little-endian). Both ends of every direct call run this per message, so the parse loop and
the frame objects are C here.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t

from zray._fast._stream_py import (COPY_BELOW, MAX_FRAMES, MAX_MESSAGE_BYTES, FramingError,
                                   MessageTooLarge, too_large)

cdef Py_ssize_t _COPY_BELOW = COPY_BELOW
cdef Py_ssize_t _MAX_FRAMES = MAX_FRAMES
cdef Py_ssize_t _MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES


cdef class Frame:
    """What a ZeroMQ frame offers the handlers: `.buffer` and `.bytes`."""
    cdef public object buffer

    def __init__(self, buffer):
        self.buffer = buffer

    @property
    def bytes(self):
        return bytes(self.buffer)


cdef inline uint32_t _u32(const unsigned char *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline void _put_u32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = v >> 24


cdef Py_ssize_t _nbytes(obj) except -1:
    cdef Py_buffer view
    if type(obj) is bytes:
        return len(<bytes>obj)
    PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE)
    try:
        return view.len
    finally:
        PyBuffer_Release(&view)


def pack(frames):
    """One message as a list of buffers for sendmsg (no join of large frames)."""
    cdef Py_ssize_t count = len(frames), i, length
    if not 0 < count <= _MAX_FRAMES:
        raise too_large(count, -1)
    head = PyBytes_FromStringAndSize(NULL, 4 * (count + 1))
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(head)
    cdef Py_ssize_t total = 4 * (count + 1)
    _put_u32(p, <uint32_t>count)
    for i in range(count):
        length = _nbytes(frames[i])
        total += length
        _put_u32(p + 4 * (i + 1), <uint32_t>length)
    if total > _MAX_MESSAGE_BYTES:
        raise too_large(count, total)
    out = [head]
    out.extend(frames)
    return out


def unsent(buffers, Py_ssize_t sent):
    """What of `buffers` (a sendmsg's list) a send of `sent` bytes did not take, in order: []
    if it took them all, else the rest, the first cut to its unsent part."""
    cdef Py_ssize_t index, count = len(buffers), size
    if sent < 0:
        raise ValueError(f"sent must be >= 0, not {sent}")
    for index in range(count):
        buffer = buffers[index]
        size = _nbytes(buffer)
        if sent < size:
            rest = list(buffers[index:])
            if sent:
                rest[0] = memoryview(buffer).cast("B")[sent:]
            return rest
        sent -= size
    return []


cdef class Unpacker:
    """Splits a byte stream into messages, whatever the chunks it arrives in."""
    cdef list _chunks
    cdef Py_ssize_t _size
    cdef Py_ssize_t _need

    def __init__(self):
        self._chunks = []
        self._size = 0
        self._need = 0

    def feed(self, data):
        """Returns the complete messages (lists of frames) the stream now holds."""
        if type(data) is not bytes:
            data = bytes(data)
        if self._chunks:
            self._chunks.append(data)
            self._size += len(<bytes>data)
            if self._size < self._need:
                return []  # see _stream_py: joined once the message is whole
            data = b"".join(self._chunks)
            self._chunks = []
        cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t end = len(<bytes>data), pos = 0, count, table, total, start, length, i
        cdef Py_ssize_t need = 4
        # Frames of a small chunk are views of it: it pins nothing much. Those of a big one
        # (many messages, or a large frame) are copied out when small, so that a stored
        # result does not keep a quarter of a MiB of other messages alive.
        cdef bint small_chunk = end < _COPY_BELOW
        cdef Frame frame
        view = memoryview(data)
        messages = []
        while end - pos >= 4:
            count = _u32(base + pos)
            if not 0 < count <= _MAX_FRAMES:
                raise FramingError(f"a message of {count} frames")
            table = 4 + 4 * count
            if end - pos < table:
                need = table
                break
            total = table
            for i in range(count):
                total += _u32(base + pos + 4 + 4 * i)
            if total > _MAX_MESSAGE_BYTES:
                raise FramingError(f"a message of {total} bytes")
            if end - pos < total:
                need = total
                break
            frames = []
            start = pos + table
            for i in range(count):
                length = _u32(base + pos + 4 + 4 * i)
                frame = Frame.__new__(Frame)
                if small_chunk or length >= _COPY_BELOW:
                    frame.buffer = view[start:start + length]
                else:
                    frame.buffer = memoryview(
                        PyBytes_FromStringAndSize(<const char *>base + start, length))
                frames.append(frame)
                start += length
            messages.append(frames)
            pos += total
        if pos < end:
            self._chunks.append(data[pos:] if pos else data)
        self._size = end - pos
        self._need = need
        return messages

    @property
    def buffered(self):
        return self._size
