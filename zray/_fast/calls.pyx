"""The common actor call's wire work in one call each way (compiled twin of ``_calls_py``).

An actor call without ObjectRef arguments, with one return and default options is most
calls (Ray's `actor calls async` microbenchmark is nothing else): `frame_actor_call` writes
its whole direct-connection message (the stream's frame table, the header, the
`PushActorTask` body in msgpack and the pickled arguments) into one bytes object,
`frame_task_done` does the same for the worker's answer of one inline value, and
`plain_answer` reads that answer straight from the message's frames on the caller's side.
In Python these were a record, an encode, a frame table and a list of buffers per message,
and a decode, a record and a type check per answer (zray/_private/core/plain_calls.py,
zray/_private/worker/worker_main.py).

Both produce or accept exactly what the general path does: `frame_actor_call`'s bytes are the
general encoder's buffers joined, and `plain_answer` answers None for anything it does not
recognize whole (the general decoder then reads it, and drops it if it is malformed).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_FromLongLong
from cpython.long cimport PyLong_FromUnsignedLongLong
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from zray._fast._calls_py import PUSH_FIELDS, TASK_DONE_FIELDS
from zray._fast._stream_py import MAX_MESSAGE_BYTES, too_large

cdef Py_ssize_t _MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object, Py_ssize_t *) except NULL

# The longest msgpack prefix of one field (a str32, bin32 or uint64 marker and its length).
cdef enum:
    PREFIX_MAX = 9


cdef inline void _put_u32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = v >> 24


cdef inline void _put_be(unsigned char *p, uint64_t v, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = (v >> (8 * (n - 1 - i))) & 0xFF


cdef inline Py_ssize_t _len_prefix(unsigned char *p, Py_ssize_t n, int is_str) noexcept nogil:
    """msgpack's prefix of a str (fixstr, str8/16/32) or bin (bin8/16/32) of n bytes, as
    msgpack's Packer(use_bin_type=True) writes it; returns its size."""
    if is_str and n < 32:
        p[0] = 0xA0 | n
        return 1
    if n < 256:
        p[0] = 0xD9 if is_str else 0xC4
        p[1] = n
        return 2
    if n < 65536:
        p[0] = 0xDA if is_str else 0xC5
        _put_be(p + 1, n, 2)
        return 3
    p[0] = 0xDB if is_str else 0xC6
    _put_be(p + 1, n, 4)
    return 5


cdef Py_ssize_t _int(unsigned char *p, value) except -1:
    """msgpack's smallest encoding of an int, as msgpack's Packer writes it."""
    cdef int overflow = 0
    cdef long long d = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef unsigned long long u
    if overflow > 0:
        u = value  # OverflowError past 2**64, as msgpack's own "Integer value out of range"
        p[0] = 0xCF
        _put_be(p + 1, u, 8)
        return 9
    if overflow < 0:
        raise OverflowError("Integer value out of range")
    if d < -(1 << 5):
        if d < -(1 << 15):
            if d < -(1LL << 31):
                p[0] = 0xD3
                _put_be(p + 1, <uint64_t>d, 8)
                return 9
            p[0] = 0xD2
            _put_be(p + 1, <uint64_t>d, 4)
            return 5
        if d < -(1 << 7):
            p[0] = 0xD1
            _put_be(p + 1, <uint64_t>d, 2)
            return 3
        p[0] = 0xD0
        p[1] = <unsigned char>(d & 0xFF)
        return 2
    if d < (1 << 7):
        p[0] = <unsigned char>(d & 0xFF)
        return 1
    if d < (1 << 8):
        p[0] = 0xCC
        p[1] = d
        return 2
    if d < (1 << 16):
        p[0] = 0xCD
        _put_be(p + 1, d, 2)
        return 3
    if d < (1LL << 32):
        p[0] = 0xCE
        _put_be(p + 1, d, 4)
        return 5
    p[0] = 0xCF
    _put_be(p + 1, d, 8)
    return 9


def frame_actor_call(bytes header not None, bytes actor_id not None, bytes task_id not None,
                     str method not None, str owner_address not None, attempt,
                     bytes arguments not None):
    """One direct-connection message (frame table and frames, joined) carrying a
    `PushActorTask` of one return, no resolved or borrowed refs, the default concurrency
    group and no generator backpressure, with `arguments` (the pickled (args, kwargs)) as its
    one payload frame. `header` is the message's 8-byte header (protocol.encode's first).
    Raises MessageTooLarge, as `pack` does, for a message a reader would refuse."""
    if type(attempt) is not int:
        raise TypeError(f"attempt must be int, not {type(attempt).__name__}")
    cdef Py_ssize_t method_len, owner_len
    cdef const char *method_utf8 = PyUnicode_AsUTF8AndSize(method, &method_len)
    cdef const char *owner_utf8 = PyUnicode_AsUTF8AndSize(owner_address, &owner_len)
    cdef Py_ssize_t actor_len = len(actor_id), task_len = len(task_id)
    cdef Py_ssize_t header_len = len(header), args_len = len(arguments)
    if header_len != 8:
        raise ValueError(f"message header must be 8 bytes, got {header_len}")
    # fixarray marker, four length prefixes, the two ints' and the four constant fields'
    # bytes (num_returns, nbuffers, resolved, borrowed, group, backpressure: 1 byte each).
    cdef Py_ssize_t body_max = (1 + 4 * PREFIX_MAX + actor_len + task_len + method_len
                                + owner_len + 6 + PREFIX_MAX)
    cdef unsigned char body[256]
    cdef unsigned char *b = body
    big = None
    if body_max > 256:
        big = PyBytes_FromStringAndSize(NULL, body_max)
        b = <unsigned char *>PyBytes_AS_STRING(big)
    cdef Py_ssize_t n = 0
    b[n] = 0x90 | PUSH_FIELDS
    n += 1
    n += _len_prefix(b + n, actor_len, 0)
    memcpy(b + n, PyBytes_AS_STRING(actor_id), actor_len)
    n += actor_len
    n += _len_prefix(b + n, task_len, 0)
    memcpy(b + n, PyBytes_AS_STRING(task_id), task_len)
    n += task_len
    n += _len_prefix(b + n, method_len, 1)
    memcpy(b + n, method_utf8, method_len)
    n += method_len
    b[n] = 1  # num_returns
    n += 1
    n += _len_prefix(b + n, owner_len, 1)
    memcpy(b + n, owner_utf8, owner_len)
    n += owner_len
    b[n] = 0  # nbuffers
    b[n + 1] = 0x90  # resolved: []
    b[n + 2] = 0x90  # borrowed: []
    b[n + 3] = 0xA0  # concurrency_group: ""
    b[n + 4] = 0xFF  # generator_backpressure: -1
    n += 5
    n += _int(b + n, attempt)
    cdef Py_ssize_t table = 4 * 4
    if table + header_len + n + args_len > _MAX_MESSAGE_BYTES:
        raise too_large(3, table + header_len + n + args_len)
    out = PyBytes_FromStringAndSize(NULL, table + header_len + n + args_len)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    _put_u32(o, 3)
    _put_u32(o + 4, <uint32_t>header_len)
    _put_u32(o + 8, <uint32_t>n)
    _put_u32(o + 12, <uint32_t>args_len)
    memcpy(o + table, PyBytes_AS_STRING(header), header_len)
    memcpy(o + table + header_len, b, n)
    memcpy(o + table + header_len + n, PyBytes_AS_STRING(arguments), args_len)
    return out


def frame_task_done(bytes header not None, bytes task_id not None, bytes object_id not None,
                    size, lease_id, bytes meta not None):
    """One direct-connection message (frame table and frames, joined) carrying the `TaskDone`
    of one inline value without refs inside (`meta`: its pickle, no out-of-band buffer; `size`:
    its object size), for lease `lease_id` (0: an actor call). `header` is the message's 8-byte
    header (protocol.encode's first). Raises MessageTooLarge, as `pack` does, past a reader's
    limit."""
    if type(size) is not int or type(lease_id) is not int:
        raise TypeError("size and lease_id must be int")
    cdef Py_ssize_t task_len = len(task_id), oid_len = len(object_id)
    cdef Py_ssize_t header_len = len(header), meta_len = len(meta)
    if header_len != 8:
        raise ValueError(f"message header must be 8 bytes, got {header_len}")
    cdef Py_ssize_t body_max = 4 + 2 * PREFIX_MAX + task_len + oid_len + 4 + 2 * PREFIX_MAX + 1
    cdef unsigned char body[256]
    cdef unsigned char *b = body
    big = None
    if body_max > 256:
        big = PyBytes_FromStringAndSize(NULL, body_max)
        b = <unsigned char *>PyBytes_AS_STRING(big)
    cdef Py_ssize_t n = 0
    b[0] = 0x90 | TASK_DONE_FIELDS
    n = 1
    n += _len_prefix(b + n, task_len, 0)
    memcpy(b + n, PyBytes_AS_STRING(task_id), task_len)
    n += task_len
    b[n] = 0x91  # returns: one
    b[n + 1] = 0x95  # [object_id, kind, nframes, node_id, size]
    n += 2
    n += _len_prefix(b + n, oid_len, 0)
    memcpy(b + n, PyBytes_AS_STRING(object_id), oid_len)
    n += oid_len
    b[n] = 0  # kind: inline
    b[n + 1] = 1  # nframes: the pickle
    b[n + 2] = 0xC4  # node_id: b""
    b[n + 3] = 0
    n += 4
    n += _int(b + n, size)
    n += _int(b + n, lease_id)
    b[n] = 0x90  # contained: []
    n += 1
    cdef Py_ssize_t table = 4 * 4
    if table + header_len + n + meta_len > _MAX_MESSAGE_BYTES:
        raise too_large(3, table + header_len + n + meta_len)
    out = PyBytes_FromStringAndSize(NULL, table + header_len + n + meta_len)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    _put_u32(o, 3)
    _put_u32(o + 4, <uint32_t>header_len)
    _put_u32(o + 8, <uint32_t>n)
    _put_u32(o + 12, <uint32_t>meta_len)
    memcpy(o + table, PyBytes_AS_STRING(header), header_len)
    memcpy(o + table + header_len, b, n)
    memcpy(o + table + header_len + n, PyBytes_AS_STRING(meta), meta_len)
    return out


cdef struct Reader:
    const unsigned char *p
    Py_ssize_t pos
    Py_ssize_t end


cdef inline uint64_t _be(const unsigned char *p, int n) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef object _read_int(Reader *r):
    """Reads a msgpack int (any of its encodings); None if the next item is none."""
    if r.pos >= r.end:
        return None
    cdef unsigned char m = r.p[r.pos]
    cdef int n
    if m <= 0x7F:
        r.pos += 1
        return PyLong_FromLongLong(m)
    if m >= 0xE0:  # a negative fixint (a conditional expression made it unsigned: -1 read 255)
        r.pos += 1
        return PyLong_FromLongLong(<signed char>m)
    if 0xCC <= m <= 0xCF:
        n = 1 << (m - 0xCC)
        if r.end - r.pos < 1 + n:
            return None
        value = PyLong_FromUnsignedLongLong(_be(r.p + r.pos + 1, n))
    elif 0xD0 <= m <= 0xD3:
        n = 1 << (m - 0xD0)
        if r.end - r.pos < 1 + n:
            return None
        if n == 1:
            value = PyLong_FromLongLong(<signed char>r.p[r.pos + 1])
        elif n == 2:
            value = PyLong_FromLongLong(<short>_be(r.p + r.pos + 1, 2))
        elif n == 4:
            value = PyLong_FromLongLong(<int>_be(r.p + r.pos + 1, 4))
        else:
            value = PyLong_FromLongLong(<int64_t>_be(r.p + r.pos + 1, 8))
    else:
        return None
    r.pos += 1 + n
    return value


cdef object _read_bin(Reader *r):
    """Reads a msgpack bin as bytes; None if the next item is none."""
    if r.pos >= r.end:
        return None
    cdef unsigned char m = r.p[r.pos]
    cdef int n
    if m == 0xC4:
        n = 1
    elif m == 0xC5:
        n = 2
    elif m == 0xC6:
        n = 4
    else:
        return None
    if r.end - r.pos < 1 + n:
        return None
    cdef Py_ssize_t length = <Py_ssize_t>_be(r.p + r.pos + 1, n)
    if r.end - r.pos - 1 - n < length:
        return None
    value = PyBytes_FromStringAndSize(<const char *>r.p + r.pos + 1 + n, length)
    r.pos += 1 + n + length
    return value


cdef Py_ssize_t _read_array(Reader *r) noexcept:
    """The length of the array that comes next, or -1 if none does."""
    if r.pos >= r.end:
        return -1
    cdef unsigned char m = r.p[r.pos]
    cdef Py_ssize_t n
    if 0x90 <= m <= 0x9F:
        r.pos += 1
        return m & 0x0F
    if m == 0xDC and r.end - r.pos >= 3:
        n = <Py_ssize_t>_be(r.p + r.pos + 1, 2)
        r.pos += 3
        return n
    if m == 0xDD and r.end - r.pos >= 5:
        n = <Py_ssize_t>_be(r.p + r.pos + 1, 4)
        r.pos += 5
        return n
    return -1


cdef tuple _answer(const unsigned char *h, Py_ssize_t hlen, const unsigned char *body,
                   Py_ssize_t blen, int version, int code, Py_ssize_t payload_frames,
                   bint leased):
    if hlen != 8 or h[0] != version or h[1] != code or h[2] != 0 or h[3] != 0:
        return None
    cdef Reader r
    r.p, r.pos, r.end = body, 0, blen
    if _read_array(&r) != TASK_DONE_FIELDS:
        return None
    task_id = _read_bin(&r)
    if task_id is None or _read_array(&r) != 1 or _read_array(&r) != 5:
        return None
    object_id = _read_bin(&r)
    if object_id is None:
        return None
    kind = _read_int(&r)
    if kind is None:
        return None
    nframes = _read_int(&r)
    if nframes is None:
        return None
    node_id = _read_bin(&r)
    if node_id is None:
        return None
    size = _read_int(&r)
    if size is None:
        return None
    lease_id = _read_int(&r)
    if lease_id is None or _read_array(&r) != 0 or r.pos != r.end:
        return None
    if kind != 0 or nframes != payload_frames:
        return None
    if leased:
        return (task_id, object_id, node_id, size, lease_id) if lease_id > 0 else None
    if lease_id != 0:
        return None
    return (task_id, object_id, node_id, size)


def plain_answer(list frames not None, int version, int code):
    """(task id, object id, node id, size) of a `TaskDone` (message type `code`, protocol
    `version`, no flags) answering an actor call (lease 0) with one inline value whose frames
    are the message's payload and no refs inside it; None for any other message, well formed
    or not. `frames` are a message's frames as the stream's Unpacker returns them."""
    return _plain(frames, version, code, False)


def plain_task_answer(list frames not None, int version, int code):
    """`plain_answer` of a task's answer: (task id, object id, node id, size, lease id) of a
    `TaskDone` for a leased worker's task (lease > 0), else None."""
    return _plain(frames, version, code, True)


cdef tuple _plain(list frames, int version, int code, bint leased):
    if len(frames) < 3:
        return None
    cdef Py_buffer hv, bv
    try:
        PyObject_GetBuffer(frames[0].buffer, &hv, PyBUF_SIMPLE)
    except (BufferError, TypeError, AttributeError):
        return None
    try:
        try:
            PyObject_GetBuffer(frames[1].buffer, &bv, PyBUF_SIMPLE)
        except (BufferError, TypeError, AttributeError):
            return None
        try:
            return _answer(<const unsigned char *>hv.buf, hv.len,
                           <const unsigned char *>bv.buf, bv.len, version, code,
                           len(frames) - 2, leased)
        finally:
            PyBuffer_Release(&bv)
    finally:
        PyBuffer_Release(&hv)
