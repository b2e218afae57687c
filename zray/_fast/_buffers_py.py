"""Raw byte movement in and out of the arena (pure-Python twin of ``buffers.pyx``).

* ``copy_into`` -- copy any C-contiguous buffer into a writable one.
* ``populate`` -- pre-fault arena pages for writing; fresh shm pages cost ~30x a warm write.
* ``pinned_view`` -- a read-only view of part of the arena that reports, exactly once, when it
  and everything derived from it (slices, numpy arrays, unpickled out-of-band buffers, pyarrow
  buffers) are gone, so the owner knows when the range may be reused.
"""

from __future__ import annotations

import errno
import mmap
import weakref
from operator import index as _index
from pickle import PickleBuffer

MADV_POPULATE_WRITE = 23  # Linux >= 5.14; not exported by the mmap module of every Python
_POPULATE_CHUNK = 8 << 20  # a multiple of every page size

# Weak references whose callbacks are the pending on_release calls, by id(): a weakref must
# stay referenced for its callback to fire (and one to an ndarray cannot be hashed).
_pending = {}


def _non_negative(value, what: str) -> int:
    value = _index(value)
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"{what} must be a non-negative int64, got {value}")
    return value


def copy_into(dest, dest_offset, src) -> int:
    """Copy all bytes of C-contiguous ``src`` into ``dest`` at ``dest_offset``; return the count."""
    offset = _non_negative(dest_offset, "dest_offset")
    d = memoryview(dest)
    if d.readonly or not d.c_contiguous:
        raise TypeError("dest must be a writable contiguous buffer")
    s = memoryview(src)
    if not s.c_contiguous:
        raise ValueError("src must be a C-contiguous buffer")
    n = s.nbytes
    if n > d.nbytes - offset:
        raise ValueError(f"{n} bytes do not fit at offset {offset} of a {d.nbytes}-byte buffer")
    if n:
        # raw() is a flat byte view whatever the format or shape (numpy records, 0-d arrays).
        PickleBuffer(d).raw()[offset : offset + n] = PickleBuffer(s).raw()
    return n


def populate(dest, offset, length) -> bool:
    """Pre-fault, for writing, the pages covering ``[offset, offset+length)`` of mmap ``dest``.

    Returns False when the kernel does not support MADV_POPULATE_WRITE for this mapping (EINVAL);
    other failures raise OSError.
    """
    if not isinstance(dest, mmap.mmap):
        raise TypeError(f"dest must be an mmap.mmap, not {type(dest).__name__}")
    offset = _non_negative(offset, "offset")
    length = _non_negative(length, "length")
    size = len(dest)
    if offset > size or length > size - offset:
        raise ValueError(f"range [{offset}, {offset + length}) exceeds the {size}-byte mapping")
    if length == 0:
        return True
    # An mmap's data starts on a page boundary, so page-aligning the offset aligns the address.
    start = offset - offset % mmap.PAGESIZE
    end = offset + length
    try:
        # mmap.madvise holds the GIL (populating shm runs at ~1.4 GB/s here), so go in chunks
        # of a few ms each to let other threads run in between.
        for chunk in range(start, end, _POPULATE_CHUNK):
            dest.madvise(MADV_POPULATE_WRITE, chunk, min(_POPULATE_CHUNK, end - chunk))
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    return True


def pinned_view(base, offset, length, on_release) -> memoryview:
    """Read-only memoryview of ``base[offset:offset+length]``; ``on_release()`` runs exactly once
    when it and everything derived from it are gone (in whichever thread drops the last one).

    The view also holds a buffer export of ``base``, so an mmap cannot be closed under it.
    """
    if not callable(on_release):
        raise TypeError("on_release must be callable")
    offset = _non_negative(offset, "offset")
    length = _non_negative(length, "length")
    whole = memoryview(base)
    if whole.format != "B" or whole.ndim != 1:
        whole = whole.cast("B")
    if offset > whole.nbytes or length > whole.nbytes - offset:
        raise ValueError(
            f"range [{offset}, {offset + length}) exceeds the {whole.nbytes}-byte buffer"
        )
    import numpy  # deferred: only this function needs it

    # The view must be exported by an object we can watch.  A memoryview slice will not do:
    # slices and re-exports of it reference the shared managed buffer, not the memoryview
    # object, which can die first.  A numpy array is a weakref-able exporter that every
    # derived view references, and it holds ``whole`` (hence the export of ``base``).
    region = numpy.frombuffer(whole, dtype=numpy.uint8, count=length, offset=offset)
    region.flags.writeable = False
    ref = weakref.ref(region, _release_callback(on_release))
    _pending[id(ref)] = ref
    return memoryview(region)


def _release_callback(on_release):
    def released(ref):
        _pending.pop(id(ref), None)
        on_release()

    return released
