"""Raw byte movement in and out of the arena (compiled twin of ``_buffers_py``).

* ``copy_into`` -- memcpy of any C-contiguous buffer into a writable one, GIL released for
  large copies (and split across two threads for very large ones, see ``_copy.pxd``).
* ``populate`` -- pre-fault arena pages for writing; fresh shm pages cost ~30x a warm write
  (split across two threads for large ranges: the kernel allocates pages on both cores).
* ``pinned_view`` -- a read-only view of part of the arena that reports, exactly once, when it
  and everything derived from it (slices, numpy arrays, unpickled out-of-band buffers, pyarrow
  buffers) are gone, so the owner knows when the range may be reused.
"""
import mmap
import os

cimport cython
from cpython.buffer cimport (
    PyBUF_FORMAT, PyBUF_ND, PyBUF_SIMPLE, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release,
    PyObject_GetBuffer,
)
from libc.errno cimport EINVAL, errno
from libc.stdint cimport uintptr_t

from ._copy cimport copy_bytes, get_contiguous, get_writable, non_negative

cdef extern from "<sys/mman.h>" nogil:
    int madvise(void *addr, size_t length, int advice)

cdef extern from *:
    """
    #include <errno.h>
    #include <pthread.h>
    #include <sys/mman.h>

    /* Populating never-touched shm pages allocates and zeroes each one: with two threads the
     * kernel does that on both cores. 800 MiB into a fresh shm file, then the (split) copy,
     * medians of 3 and 5 rounds under load 6-7 on the 2-core dev VM: one posix_fallocate
     * 1.31 / 1.22 GB/s, two threads populating 2.49 / 1.52, four 1.48 / 1.05. The copy's
     * split threshold is used here too. */
    #define ZRAY_SPLIT_POPULATE_MIN ((size_t)32 << 20)

    typedef struct { char *start; size_t n; int advice; int err; } zray_populate_job;

    static void *zray_populate_worker(void *arg) {
        zray_populate_job *job = (zray_populate_job *)arg;
        job->err = madvise(job->start, job->n, job->advice) == 0 ? 0 : errno;
        return NULL;
    }

    /* Returns 0 or the errno of the first half that failed. `start` and `n` are page-aligned. */
    static int zray_populate_pages(char *start, size_t n, int advice, size_t page) {
        pthread_t helper;
        zray_populate_job job;
        size_t half;
        int err;
        if (n < ZRAY_SPLIT_POPULATE_MIN) {
            return madvise(start, n, advice) == 0 ? 0 : errno;
        }
        half = (n / 2) & ~(page - 1);
        job.start = start + half;
        job.n = n - half;
        job.advice = advice;
        job.err = 0;
        if (pthread_create(&helper, NULL, zray_populate_worker, &job) != 0) {
            return madvise(start, n, advice) == 0 ? 0 : errno;
        }
        err = madvise(start, half, advice) == 0 ? 0 : errno;
        pthread_join(helper, NULL);
        return err != 0 ? err : job.err;
    }
    """
    int zray_populate_pages(char *start, size_t n, int advice, size_t page) nogil

# Not in older libc headers; the kernel value has been 23 since Linux 5.14.
cdef int MADV_POPULATE_WRITE = 23
cdef uintptr_t PAGE_SIZE = mmap.PAGESIZE


def copy_into(dest, dest_offset, src):
    """Copy all bytes of C-contiguous ``src`` into ``dest`` at ``dest_offset``; return the count."""
    cdef long long offset = non_negative(dest_offset, "dest_offset")
    cdef Py_buffer d
    cdef Py_buffer s
    get_writable(dest, &d)
    try:
        get_contiguous(src, &s, "src")
        try:
            if s.len > d.len - offset:
                raise ValueError(
                    f"{s.len} bytes do not fit at offset {offset} of a {d.len}-byte buffer")
            copy_bytes(<char *>d.buf + offset, <const char *>s.buf, <size_t>s.len)
            return s.len
        finally:
            PyBuffer_Release(&s)
    finally:
        PyBuffer_Release(&d)


def populate(dest, offset, length):
    """Pre-fault, for writing, the pages covering ``[offset, offset+length)`` of mmap ``dest``.

    Returns False when the kernel does not support MADV_POPULATE_WRITE for this mapping (EINVAL);
    other failures raise OSError.
    """
    if not isinstance(dest, mmap.mmap):
        raise TypeError(f"dest must be an mmap.mmap, not {type(dest).__name__}")
    cdef long long off = non_negative(offset, "offset")
    cdef long long n = non_negative(length, "length")
    cdef Py_buffer view
    cdef uintptr_t start, end
    cdef int rc = 0
    cdef int err = 0
    PyObject_GetBuffer(dest, &view, PyBUF_SIMPLE)
    try:
        if off > view.len or n > view.len - off:
            raise ValueError(f"range [{off}, {off + n}) exceeds the {view.len}-byte mapping")
        if n == 0:
            return True
        start = (<uintptr_t>view.buf + <uintptr_t>off) & ~(PAGE_SIZE - 1)
        end = (<uintptr_t>view.buf + <uintptr_t>(off + n) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        with nogil:
            err = zray_populate_pages(<char *>start, end - start, MADV_POPULATE_WRITE, PAGE_SIZE)
            rc = -1 if err != 0 else 0
    finally:
        PyBuffer_Release(&view)
    if rc == 0:
        return True
    if err == EINVAL:
        return False
    raise OSError(err, os.strerror(err))


@cython.final
@cython.no_gc_clear  # a gc pass must not drop the callback before it has run
cdef class _PinnedRegion:
    """Exports a read-only window of ``base``; its death means no view of the window is left.

    Every memoryview derived from ``memoryview(region)`` -- and every consumer that took a buffer
    from one -- keeps a reference to this exporter, so ``__dealloc__`` is the moment the window
    is unreferenced.
    """
    cdef Py_buffer _base
    cdef bint _holds_base
    cdef char *_ptr
    cdef Py_ssize_t _len
    cdef Py_ssize_t _itemsize
    cdef object _on_release
    cdef object __weakref__  # the core worker caches live regions by weak reference

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("pinned views are read-only")
        buffer.buf = self._ptr
        buffer.len = self._len
        buffer.readonly = 1
        buffer.itemsize = 1
        buffer.format = NULL
        if flags & PyBUF_FORMAT:
            buffer.format = <char *>"B"
        buffer.ndim = 1
        buffer.shape = &self._len if (flags & PyBUF_ND) == PyBUF_ND else NULL
        buffer.strides = &self._itemsize if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        buffer.suboffsets = NULL
        buffer.internal = NULL
        buffer.obj = self

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    def __dealloc__(self):
        if self._holds_base:
            PyBuffer_Release(&self._base)
            self._holds_base = False
        callback = self._on_release
        self._on_release = None
        if callback is not None:
            callback()


def pinned_view(base, offset, length, on_release):
    """Read-only memoryview of ``base[offset:offset+length]``; ``on_release()`` runs exactly once
    when it and everything derived from it are gone (in whichever thread drops the last one).

    The view also holds a buffer export of ``base``, so an mmap cannot be closed under it.
    """
    if not callable(on_release):
        raise TypeError("on_release must be callable")
    cdef long long off = non_negative(offset, "offset")
    cdef long long n = non_negative(length, "length")
    cdef _PinnedRegion region = _PinnedRegion.__new__(_PinnedRegion)
    PyObject_GetBuffer(base, &region._base, PyBUF_SIMPLE)
    region._holds_base = True
    if off > region._base.len or n > region._base.len - off:
        raise ValueError(f"range [{off}, {off + n}) exceeds the {region._base.len}-byte buffer")
    region._ptr = <char *>region._base.buf + off
    region._len = n
    region._itemsize = 1
    # Set last: a region that failed validation above is dropped without calling back.
    region._on_release = on_release
    return memoryview(region)
