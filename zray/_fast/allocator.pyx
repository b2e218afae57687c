# distutils: language = c++
"""Offset bookkeeping for the shared-memory arena (compiled twin of ``_allocator_py``).

The allocator owns no memory: it hands out aligned ``[offset, offset + size)`` ranges of
``[0, capacity)`` and takes them back.  Best fit, ties to the lowest offset: low addresses are
the ones already written, and warm pages are ~30x cheaper to write than fresh ones.

Free blocks are indexed twice -- by offset (for coalescing) and by (size, offset) (for best
fit) -- in ``std::map``/``std::set``, so every operation is O(log n) even with 100k live
allocations.  Live allocations only need lookup by offset, so they sit in a hash map: at 100k
live a tree there made allocate/free ~1.5x slower (728 vs 478 ns/op in perf/bench_fast.py).  Not thread-safe by itself; callers serialise
access.
"""
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cython.operator cimport dereference as deref, predecrement as dec, preincrement as inc
from libc.stdint cimport int64_t
from libcpp.map cimport map as cmap
from libcpp.pair cimport pair
from libcpp.set cimport set as cset
from libcpp.unordered_map cimport unordered_map

ctypedef pair[int64_t, int64_t] SizeOffset

# Leaves headroom so offset + size arithmetic can never overflow int64.
cdef long long MAX_CAPACITY = (<long long>1) << 62


cdef class Allocator:
    cdef int64_t _capacity
    cdef int64_t _alignment
    cdef int64_t _used
    cdef int64_t _high_water
    cdef cmap[int64_t, int64_t] _free_at      # offset -> size
    cdef cset[SizeOffset] _free_by_size       # (size, offset): begin() of a lower_bound is best fit
    cdef unordered_map[int64_t, int64_t] _live  # offset -> rounded size

    def __init__(self, capacity, alignment=64):
        cdef long long cap = _as_int64(capacity, "capacity")
        cdef long long align = _as_int64(alignment, "alignment")
        if cap < 0 or cap > MAX_CAPACITY:
            raise ValueError(f"capacity must be in [0, 2**62], got {capacity}")
        if align <= 0 or (align & (align - 1)) != 0:
            raise ValueError(f"alignment must be a positive power of two, got {alignment}")
        self._capacity = cap
        self._alignment = align
        self._used = 0
        self._high_water = 0
        self._free_at.clear()  # in case __init__ is called again on a live instance
        self._free_by_size.clear()
        self._live.clear()
        if cap > 0:
            self._add_free(0, cap)

    cdef inline void _add_free(self, int64_t offset, int64_t size):
        self._free_at[offset] = size
        self._free_by_size.insert(SizeOffset(size, offset))

    cdef inline void _remove_free(self, int64_t offset, int64_t size):
        self._free_at.erase(offset)
        self._free_by_size.erase(SizeOffset(size, offset))

    def allocate(self, size):
        cdef int overflow = 0
        cdef long long n = PyLong_AsLongLongAndOverflow(size, &overflow)
        if overflow > 0:
            return -1
        if n < 0 or overflow < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if n > self._capacity:
            return -1
        cdef int64_t need = (n + self._alignment - 1) & ~(self._alignment - 1)
        if need == 0:
            need = self._alignment
        it = self._free_by_size.lower_bound(SizeOffset(need, -1))
        if it == self._free_by_size.end():
            return -1
        cdef int64_t block_size = deref(it).first
        cdef int64_t offset = deref(it).second
        self._free_by_size.erase(it)
        self._free_at.erase(offset)
        if block_size > need:
            self._add_free(offset + need, block_size - need)
        self._live[offset] = need
        self._used += need
        if offset + need > self._high_water:
            self._high_water = offset + need
        return offset

    def free(self, offset):
        cdef int overflow = 0
        cdef long long off = PyLong_AsLongLongAndOverflow(offset, &overflow)
        if overflow != 0:
            raise KeyError(offset)
        live = self._live.find(off)
        if live == self._live.end():
            raise KeyError(offset)
        cdef int64_t size = deref(live).second
        self._live.erase(live)
        self._used -= size

        cdef int64_t start = off
        cdef int64_t end = off + size
        after = self._free_at.find(end)
        if after != self._free_at.end():
            end += deref(after).second
            self._remove_free(deref(after).first, deref(after).second)
        before = self._free_at.lower_bound(off)
        if before != self._free_at.begin():
            dec(before)
            if deref(before).first + deref(before).second == off:
                start = deref(before).first
                self._remove_free(deref(before).first, deref(before).second)
        self._add_free(start, end - start)
        return size

    def size_of(self, offset):
        cdef int overflow = 0
        cdef long long off = PyLong_AsLongLongAndOverflow(offset, &overflow)
        if overflow != 0:
            raise KeyError(offset)
        live = self._live.find(off)
        if live == self._live.end():
            raise KeyError(offset)
        return deref(live).second

    @property
    def capacity(self):
        return self._capacity

    @property
    def alignment(self):
        return self._alignment

    @property
    def used(self):
        return self._used

    @property
    def free_bytes(self):
        return self._capacity - self._used

    @property
    def largest_free(self):
        if self._free_by_size.empty():
            return 0
        return deref(self._free_by_size.rbegin()).first

    @property
    def num_allocations(self):
        return self._live.size()

    @property
    def high_water(self):
        return self._high_water

    def allocations(self):
        out = []
        it = self._live.begin()
        while it != self._live.end():
            out.append((deref(it).first, deref(it).second))
            inc(it)
        out.sort()
        return out

    def free_blocks(self):
        out = []
        it = self._free_at.begin()
        while it != self._free_at.end():
            out.append((deref(it).first, deref(it).second))
            inc(it)
        return out

    def __repr__(self):
        return (f"Allocator(capacity={self._capacity}, used={self._used}, "
                f"allocations={self._live.size()}, largest_free={self.largest_free})")


cdef long long _as_int64(obj, str what) except? -1:
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(obj, &overflow)
    if overflow != 0:
        raise ValueError(f"{what} out of range: {obj}")
    return value
