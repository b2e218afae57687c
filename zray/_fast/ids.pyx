"""Ray-compatible binary ids (compiled twin of ``_ids_py``).

Random ids come from xoshiro256** seeded from ``os.urandom``: ids need to be unique, not
secret, and a syscall per id would cost more than the rest of id creation.  A forked child
inherits the parent's generator state, so a ``pthread_atfork`` hook marks it for reseeding --
cheaper than comparing ``getpid()`` (a ~160 ns syscall here) on every call, and it also catches
forks made from C.
"""
import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

JOB_ID_SIZE = 4
ACTOR_ID_SIZE = 16
TASK_ID_SIZE = 24
OBJECT_ID_SIZE = 28
NODE_ID_SIZE = 28
WORKER_ID_SIZE = 28

cdef enum:
    TASK_BYTES = 24
    OBJECT_BYTES = 28

cdef extern from *:
    """
    #include <pthread.h>
    static volatile int zray_ids_forked = 0;
    static void zray_ids_mark_forked(void) { zray_ids_forked = 1; }
    """
    int zray_ids_forked
    void zray_ids_mark_forked() noexcept nogil

cdef extern from "<pthread.h>" nogil:
    int pthread_atfork(void (*prepare)(), void (*parent)(), void (*child)())

cdef uint64_t _state[4]


cdef void _seed():
    cdef bytes seed = os.urandom(32)
    memcpy(_state, PyBytes_AS_STRING(seed), 32)
    if _state[0] == 0 and _state[1] == 0 and _state[2] == 0 and _state[3] == 0:
        _state[0] = 1  # the one state xoshiro cannot leave


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _next() noexcept nogil:
    cdef uint64_t result = _rotl(_state[1] * 5, 7) * 9
    cdef uint64_t t = _state[1] << 17
    _state[2] ^= _state[0]
    _state[3] ^= _state[1]
    _state[1] ^= _state[2]
    _state[0] ^= _state[3]
    _state[2] ^= t
    _state[3] = _rotl(_state[3], 45)
    return result


def random_id(size):
    """``size`` random bytes, unique across the processes of a cluster with high probability."""
    cdef int overflow = 0
    cdef long long n = PyLong_AsLongLongAndOverflow(size, &overflow)
    if overflow != 0 or n < 0:
        raise ValueError(f"id size must be >= 0, got {size}")
    global zray_ids_forked
    if zray_ids_forked:
        zray_ids_forked = 0
        _seed()
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef char *p = PyBytes_AS_STRING(out)
    cdef uint64_t word
    cdef long long i = 0
    while i < n:
        word = _next()
        if n - i >= 8:
            memcpy(p + i, &word, 8)
        else:
            memcpy(p + i, &word, n - i)
        i += 8
    return out


def object_id_for(task_id, index):
    """The id of the ``index``-th object a task returns/puts: task id + u32 LE index."""
    if type(task_id) is not bytes:
        task_id = bytes(memoryview(task_id))
    if len(<bytes>task_id) != TASK_BYTES:
        raise ValueError(f"task id must be {TASK_ID_SIZE} bytes, got {len(<bytes>task_id)}")
    cdef int overflow = 0
    cdef long long i = PyLong_AsLongLongAndOverflow(index, &overflow)
    if overflow != 0 or i < 0 or i > 0xFFFFFFFF:
        raise ValueError(f"object index must be in [0, 2**32), got {index}")
    out = PyBytes_FromStringAndSize(NULL, OBJECT_BYTES)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(task_id), TASK_BYTES)
    p[24] = i & 0xFF
    p[25] = (i >> 8) & 0xFF
    p[26] = (i >> 16) & 0xFF
    p[27] = (i >> 24) & 0xFF
    return out


cdef inline bytes _object_id(object_id):
    if type(object_id) is not bytes:
        object_id = bytes(memoryview(object_id))
    if len(<bytes>object_id) != OBJECT_BYTES:
        raise ValueError(f"object id must be {OBJECT_ID_SIZE} bytes, got {len(<bytes>object_id)}")
    return object_id


def task_id_of(object_id):
    """The id of the task that created ``object_id``."""
    cdef bytes oid = _object_id(object_id)
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(oid), TASK_BYTES)


def index_of(object_id):
    """Which of its creating task's objects ``object_id`` is."""
    cdef bytes oid = _object_id(object_id)
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(oid)
    return <uint32_t>p[24] | (<uint32_t>p[25] << 8) | (<uint32_t>p[26] << 16) | (<uint32_t>p[27] << 24)


_seed()
if pthread_atfork(NULL, NULL, zray_ids_mark_forked) != 0:
    raise ImportError("pthread_atfork failed; random ids would repeat in forked children")
