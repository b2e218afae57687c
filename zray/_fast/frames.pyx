"""Fixed 8-byte header of every wire-protocol message (compiled twin of ``_frames_py``).

Layout ``<BBHI``: u8 version, u8 msg_type, u16 flags, u32 seq, little-endian.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow

HEADER_SIZE = 8


cdef inline unsigned long long _field(obj, str name, unsigned long long limit) except? 0xFFFFFFFFFFFFFFFF:
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(obj, &overflow)
    if overflow != 0 or value < 0 or <unsigned long long>value > limit:
        raise ValueError(f"header field {name}={obj!r} is outside [0, {limit}]")
    return <unsigned long long>value


def pack_header(version, msg_type, flags, seq):
    cdef unsigned long long v = _field(version, "version", 0xFF)
    cdef unsigned long long t = _field(msg_type, "msg_type", 0xFF)
    cdef unsigned long long f = _field(flags, "flags", 0xFFFF)
    cdef unsigned long long s = _field(seq, "seq", 0xFFFFFFFF)
    out = PyBytes_FromStringAndSize(NULL, 8)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    p[0] = v
    p[1] = t
    p[2] = f & 0xFF
    p[3] = f >> 8
    p[4] = s & 0xFF
    p[5] = (s >> 8) & 0xFF
    p[6] = (s >> 16) & 0xFF
    p[7] = s >> 24
    return out


cdef inline tuple _unpack(const unsigned char *p):
    return (p[0], p[1], p[2] | (p[3] << 8),
            <unsigned long>p[4] | (<unsigned long>p[5] << 8) | (<unsigned long>p[6] << 16)
            | (<unsigned long>p[7] << 24))


def unpack_header(buf):
    cdef Py_buffer view
    if type(buf) is bytes:
        if len(<bytes>buf) != 8:
            raise ValueError(f"message header must be 8 bytes, got {len(<bytes>buf)}")
        return _unpack(<const unsigned char *>PyBytes_AS_STRING(buf))
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    except BufferError as exc:
        raise ValueError(f"message header must be a contiguous buffer ({exc})") from None
    try:
        if view.len != 8:
            raise ValueError(f"message header must be 8 bytes, got {view.len}")
        return _unpack(<const unsigned char *>view.buf)
    finally:
        PyBuffer_Release(&view)
