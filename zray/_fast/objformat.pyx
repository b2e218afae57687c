"""Layout of one serialized object in the arena (compiled twin of ``_objformat_py``).

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
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy, memset

from ._copy cimport copy_bytes, get_contiguous, get_writable, non_negative

MAGIC = b"ZOB1"
HEADER_BYTES = 16
ALIGNMENT = 64
PAGE_ALIGNMENT = 4096
PAGE_ALIGN_MIN = 64 * 1024

cdef enum:
    HEADER_LEN = 16

cdef uint64_t ALIGN_MASK = 63
cdef uint64_t MAX_BUFFERS = 0xFFFFFFFF


cdef inline uint64_t _align(uint64_t pos, uint64_t length) noexcept nogil:
    cdef uint64_t mask = 4095 if length >= 65536 else ALIGN_MASK
    return (pos + mask) & ~mask


cdef inline void _put_u32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef inline void _put_u64(unsigned char *p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = (v >> (8 * i)) & 0xFF


cdef inline uint32_t _get_u32(const unsigned char *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint64_t _get_u64(const unsigned char *p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


def object_size(meta_len, buffer_lens):
    """Total bytes one object with these metadata and buffer lengths occupies."""
    cdef uint64_t pos = HEADER_LEN + non_negative(meta_len, "meta_len")
    cdef uint64_t n = len(buffer_lens)
    if n > MAX_BUFFERS:
        raise ValueError(f"at most {MAX_BUFFERS} buffers per object, got {n}")
    pos += 8 * n
    cdef uint64_t size
    for length in buffer_lens:
        size = <uint64_t>non_negative(length, "buffer length")
        pos = _align(pos, size) + size
    return pos


def write_object(dest, offset, metadata, buffers):
    """Write one object into ``dest`` at ``offset``; return its size (== ``object_size``)."""
    cdef long long off = non_negative(offset, "offset")
    buffers = list(buffers)
    cdef Py_ssize_t nbufs = len(buffers)
    if <uint64_t>nbufs > MAX_BUFFERS:
        raise ValueError(f"at most {MAX_BUFFERS} buffers per object, got {nbufs}")
    cdef Py_buffer d
    cdef Py_buffer meta
    cdef Py_buffer *views = NULL
    cdef Py_ssize_t acquired = 0
    cdef Py_ssize_t i
    cdef uint64_t total, pos, start
    cdef unsigned char *base
    get_writable(dest, &d)
    try:
        get_contiguous(metadata, &meta, "metadata")
        try:
            views = <Py_buffer *>calloc(nbufs if nbufs > 0 else 1, sizeof(Py_buffer))
            if views == NULL:
                raise MemoryError()
            for i in range(nbufs):
                get_contiguous(buffers[i], &views[i], f"buffer {i}")
                acquired += 1

            total = HEADER_LEN + 8 * <uint64_t>nbufs + <uint64_t>meta.len
            for i in range(nbufs):
                total = _align(total, <uint64_t>views[i].len) + <uint64_t>views[i].len
            if total > <uint64_t>(d.len - off) or off > d.len:
                raise ValueError(
                    f"a {total}-byte object does not fit at offset {off} of a "
                    f"{d.len}-byte buffer")

            base = <unsigned char *>d.buf + off
            memcpy(base, <const char *>"ZOB1", 4)
            _put_u32(base + 4, <uint32_t>nbufs)
            _put_u64(base + 8, <uint64_t>meta.len)
            for i in range(nbufs):
                _put_u64(base + HEADER_LEN + 8 * i, <uint64_t>views[i].len)
            pos = HEADER_LEN + 8 * <uint64_t>nbufs
            copy_bytes(<char *>base + pos, <const char *>meta.buf, <size_t>meta.len)
            pos += <uint64_t>meta.len
            for i in range(nbufs):
                start = _align(pos, <uint64_t>views[i].len)
                memset(base + pos, 0, start - pos)
                copy_bytes(<char *>base + start, <const char *>views[i].buf, <size_t>views[i].len)
                pos = start + <uint64_t>views[i].len
            return pos
        finally:
            for i in range(acquired):
                PyBuffer_Release(&views[i])
            free(views)
            PyBuffer_Release(&meta)
    finally:
        PyBuffer_Release(&d)


def read_object(view):
    """Return ``(metadata, buffers)`` of the object at the start of ``view`` as zero-copy slices.

    The slices reference ``view``'s underlying buffer, so a pinned view stays pinned while any of
    them lives.  Raises ValueError, never reads out of bounds, on malformed input.
    """
    cdef object mv = view if isinstance(view, memoryview) else memoryview(view)
    if not mv.c_contiguous:
        raise ValueError("object view must be C-contiguous")
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    cdef Py_buffer b
    cdef uint64_t n, nbufs, table_end, meta_len, meta_end, pos, start, length
    cdef uint64_t i
    cdef const unsigned char *p
    PyObject_GetBuffer(mv, &b, PyBUF_SIMPLE)
    try:
        p = <const unsigned char *>b.buf
        n = <uint64_t>b.len
        if n < HEADER_LEN:
            raise ValueError(f"truncated object: {n} bytes, the header alone needs 16")
        if memcmp(p, <const char *>"ZOB1", 4) != 0:
            raise ValueError(f"bad object magic {bytes(mv[:4])!r}, expected {MAGIC!r}")
        nbufs = _get_u32(p + 4)
        meta_len = _get_u64(p + 8)
        table_end = HEADER_LEN + 8 * nbufs
        if table_end > n:
            raise ValueError(
                f"truncated object: {nbufs} buffer lengths end at {table_end}, view has {n} bytes")
        if meta_len > n - table_end:
            raise ValueError(
                f"truncated object: metadata ends at {int(table_end) + int(meta_len)}, view has {n} bytes")
        meta_end = table_end + meta_len
        pos = meta_end
        buffers = []
        for i in range(nbufs):
            length = _get_u64(p + HEADER_LEN + 8 * i)
            start = _align(pos, length)
            if start > n or length > n - start:
                raise ValueError(
                    f"truncated object: buffer {i} ends at {int(start) + int(length)}, view has {n} bytes")
            buffers.append(mv[start:start + length])
            pos = start + length
        return mv[table_end:meta_end], buffers
    finally:
        PyBuffer_Release(&b)
