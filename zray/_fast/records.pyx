"""The type check of a decoded message's fields (compiled twin of ``_records_py``).

Every message read is checked field by field against its record's allowed types before it is
built (zray/_private/wire/protocol.py): in Python that loop was most of decoding a PushTask
(14 fields), once per task on the worker and once per answer on its owner.
"""
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_TYPE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE


def first_bad_field(tuple checks not None, list fields not None):
    """The index of the first of ``fields`` whose exact type is not in its entry of ``checks``
    (a set of types, or None for any), or -1 if all pass. Only the first ``min(len(checks),
    len(fields))`` are looked at: the caller checks the count."""
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(checks)
    if PyList_GET_SIZE(fields) < n:
        n = PyList_GET_SIZE(fields)
    cdef object allowed
    for i in range(n):
        allowed = <object>PyTuple_GET_ITEM(checks, i)
        if allowed is None:
            continue
        if <object>Py_TYPE(<object>PyList_GET_ITEM(fields, i)) not in allowed:
            return i
    return -1
