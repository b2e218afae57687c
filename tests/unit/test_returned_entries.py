"""A task's answer becomes memory-store entries: small frames are copied out of the chunk they
arrived in (bytes in a tuple: nothing for the garbage collector to walk, and a kept small result
does not keep the whole chunk alive); large ones stay views (no copy)."""

import gc

from zray._fast import Frame
from zray._private.core import dependencies
from zray._private.core.dependencies import (
    COPY_RESULT_BELOW,
    SHARED_RESULTS_MAX,
    returned_entries,
)
from zray._private.core.memory_store import KIND_INLINE


def test_small_frames_are_copied_large_ones_stay_views():
    chunk = bytes(range(256)) * 64  # one received chunk, 16 KiB
    view = memoryview(chunk)
    small_meta, small_buf, large = view[:10], view[10:20], view[20 : 20 + COPY_RESULT_BELOW]
    returns = [[b"a" * 28, KIND_INLINE, 2, b"", 20], [b"b" * 28, KIND_INLINE, 1, b"", 1024]]
    entries = returned_entries(returns, [Frame(small_meta), Frame(small_buf), Frame(large)])
    (first_id, first), (second_id, second) = entries
    assert (first_id, second_id) == (b"a" * 28, b"b" * 28)
    assert first.frames == (chunk[:10], chunk[10:20])
    assert all(type(f) is bytes for f in first.frames)
    assert type(second.frames[0]) is memoryview and second.frames[0].obj is chunk
    del entries, second
    gc.collect()
    assert not gc.is_tracked(first.frames)


def test_the_tiniest_results_share_one_frames_tuple():
    none_pickled = b"\x80\x05N."  # what a task returning None answers with
    first = returned_entries(
        [[b"a" * 28, KIND_INLINE, 1, b"", 4]], [Frame(memoryview(bytearray(none_pickled)))]
    )[0][1]
    second = returned_entries(
        [[b"b" * 28, KIND_INLINE, 1, b"", 4]], [Frame(memoryview(bytes(none_pickled)))]
    )[0][1]
    assert first.frames == (none_pickled,) and type(first.frames[0]) is bytes
    assert second.frames is first.frames  # no new tuple (nor bytes) per result
    other = returned_entries(
        [[b"c" * 28, KIND_INLINE, 1, b"", 4]], [Frame(memoryview(b"\x80\x05K\x01."))]
    )
    assert other[0][1].frames == (b"\x80\x05K\x01.",)
    for n in range(SHARED_RESULTS_MAX + 10):  # many distinct small values: the table stays bounded
        value = n.to_bytes(4, "big")
        entry = returned_entries([[b"d" * 28, KIND_INLINE, 1, b"", 4]], [Frame(memoryview(value))])
        assert entry[0][1].frames == (value,)
    assert len(dependencies._shared_results) <= SHARED_RESULTS_MAX
