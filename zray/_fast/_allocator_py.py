"""Offset bookkeeping for the shared-memory arena (pure-Python twin of ``allocator.pyx``).

The allocator owns no memory: it hands out aligned ``[offset, offset + size)`` ranges of
``[0, capacity)`` and takes them back.  Best fit, ties to the lowest offset: low addresses are
the ones already written, and warm pages are ~30x cheaper to write than fresh ones.

Free blocks are indexed twice -- by offset (for coalescing) and by (size, offset) (for best
fit) -- as sorted lists searched with ``bisect``.  Insertion is O(n) memmove, which is fine for
a fallback; the compiled twin is O(log n).  Not thread-safe by itself; callers serialise access.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from operator import index as _index

# Leaves headroom so offset + size arithmetic stays within int64 in the compiled twin.
MAX_CAPACITY = 1 << 62


class Allocator:
    __slots__ = (
        "_capacity",
        "_alignment",
        "_used",
        "_high_water",
        "_free_offsets",
        "_free_size",
        "_free_by_size",
        "_live",
    )

    def __init__(self, capacity: int, alignment: int = 64):
        capacity = _index(capacity)
        alignment = _index(alignment)
        if capacity < 0 or capacity > MAX_CAPACITY:
            raise ValueError(f"capacity must be in [0, 2**62], got {capacity}")
        if alignment <= 0 or (alignment & (alignment - 1)) != 0:
            raise ValueError(f"alignment must be a positive power of two, got {alignment}")
        self._capacity = capacity
        self._alignment = alignment
        self._used = 0
        self._high_water = 0
        self._free_offsets: list[int] = []  # sorted
        self._free_size: dict[int, int] = {}  # offset -> size
        self._free_by_size: list[tuple[int, int]] = []  # sorted (size, offset)
        self._live: dict[int, int] = {}  # offset -> rounded size
        if capacity > 0:
            self._add_free(0, capacity)

    def _add_free(self, offset: int, size: int) -> None:
        insort(self._free_offsets, offset)
        self._free_size[offset] = size
        insort(self._free_by_size, (size, offset))

    def _remove_free(self, offset: int, size: int) -> None:
        del self._free_offsets[bisect_left(self._free_offsets, offset)]
        del self._free_size[offset]
        del self._free_by_size[bisect_left(self._free_by_size, (size, offset))]

    def allocate(self, size: int) -> int:
        size = _index(size)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if size > self._capacity:
            return -1
        mask = self._alignment - 1
        need = ((size + mask) & ~mask) or self._alignment
        i = bisect_left(self._free_by_size, (need, -1))
        if i == len(self._free_by_size):
            return -1
        block_size, offset = self._free_by_size[i]
        self._remove_free(offset, block_size)
        if block_size > need:
            self._add_free(offset + need, block_size - need)
        self._live[offset] = need
        self._used += need
        if offset + need > self._high_water:
            self._high_water = offset + need
        return offset

    def free(self, offset: int) -> int:
        offset = _index(offset)
        size = self._live.pop(offset, None)
        if size is None:
            raise KeyError(offset)
        self._used -= size

        start, end = offset, offset + size
        after = self._free_size.get(end)
        if after is not None:
            self._remove_free(end, after)
            end += after
        i = bisect_left(self._free_offsets, offset)
        if i > 0:
            before = self._free_offsets[i - 1]
            before_size = self._free_size[before]
            if before + before_size == offset:
                self._remove_free(before, before_size)
                start = before
        self._add_free(start, end - start)
        return size

    def size_of(self, offset: int) -> int:
        offset = _index(offset)
        try:
            return self._live[offset]
        except KeyError:
            raise KeyError(offset) from None

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def alignment(self) -> int:
        return self._alignment

    @property
    def used(self) -> int:
        return self._used

    @property
    def free_bytes(self) -> int:
        return self._capacity - self._used

    @property
    def largest_free(self) -> int:
        return self._free_by_size[-1][0] if self._free_by_size else 0

    @property
    def num_allocations(self) -> int:
        return len(self._live)

    @property
    def high_water(self) -> int:
        return self._high_water

    def allocations(self) -> list[tuple[int, int]]:
        return sorted(self._live.items())

    def free_blocks(self) -> list[tuple[int, int]]:
        return [(offset, self._free_size[offset]) for offset in self._free_offsets]

    def __repr__(self) -> str:
        return (
            f"Allocator(capacity={self._capacity}, used={self._used}, "
            f"allocations={len(self._live)}, largest_free={self.largest_free})"
        )
