"""One pass over the refs of a get or wait (compiled twin of ``_refscan_py``).

``wait`` on 1,000 refs that are all ready used to walk the list five times in Python (type
checks, ids, distinctness, which are missing, which are ready): this walks it once in C.
"""
from cpython.dict cimport PyDict_Contains
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.set cimport PySet_Add, PySet_GET_SIZE
from cpython.object cimport PyObject, PyObject_GetAttr
from cpython.ref cimport Py_TYPE

cdef str _ID = "_id"


def scan_refs(list refs not None, type ref_type not None, dict present not None):
    """``(distinct, missing)`` for a list whose items are all exactly ``ref_type``: whether
    their ``_id``s are all different, and how many are not keys of ``present``. ``None`` if
    any item is of another type (the caller's general path then sorts out generators and
    type errors)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(refs)
    cdef Py_ssize_t i, missing = 0
    cdef set seen = set()
    cdef object item, oid
    for i in range(n):
        item = <object>PyList_GET_ITEM(refs, i)
        if <PyObject*>Py_TYPE(item) is not <PyObject*>ref_type:
            return None
        oid = PyObject_GetAttr(item, _ID)
        PySet_Add(seen, oid)
        if PyDict_Contains(present, oid) != 1:
            missing += 1
    return PySet_GET_SIZE(seen) == n, missing
