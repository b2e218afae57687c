"""zray._fast buffers: copy_into, populate and pinned_view, for both implementations."""

import gc
import mmap
import os
import pickle
import tempfile
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zray._fast as fast
from zray._config import config


def _load(name, impl):
    compiled, pure = fast.implementations()[name]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.{name} is not built: {fast.FAST_IMPORT_ERRORS.get(name)}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def buffers(request):
    return _load("buffers", request.param)


@pytest.fixture(scope="module")
def both_buffers():
    # Resolved outside @given so a missing build fails cleanly instead of inside hypothesis.
    return _load("buffers", "cython"), _load("buffers", "python")


@pytest.fixture(scope="module", params=["cython", "python"])
def objformat(request):
    return _load("objformat", request.param)


@pytest.fixture
def arena():
    m = mmap.mmap(-1, 1 << 20)
    yield m
    gc.collect()
    m.close()


class Counter:
    """on_release stand-in that records every call and the thread it ran in."""

    def __init__(self):
        self.calls = 0
        self.threads = []

    def __call__(self):
        self.calls += 1
        self.threads.append(threading.get_ident())


# ---------------------------------------------------------------------------------------------
# copy_into


def _sources():
    yield b"hello"
    yield bytearray(b"\x00\x01\x02" * 7)
    yield memoryview(b"abcdefgh").cast("I")
    yield memoryview(bytearray(range(48))).cast("d", (2, 3))
    yield np.arange(12, dtype=np.float32).reshape(3, 4)
    yield np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
    yield np.array(3.5)  # 0-d
    yield pickle.PickleBuffer(np.arange(5, dtype=np.int16))
    yield b""


@pytest.mark.parametrize("src", list(_sources()), ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("dest_kind", ["mmap", "bytearray", "memoryview"])
def test_copy_into_any_contiguous_source(buffers, src, dest_kind):
    raw = memoryview(src).tobytes()
    backing = mmap.mmap(-1, 4096) if dest_kind == "mmap" else bytearray(4096)
    dest = memoryview(backing) if dest_kind == "memoryview" else backing
    assert buffers.copy_into(dest, 100, src) == len(raw)
    assert bytes(backing[100 : 100 + len(raw)]) == raw
    assert bytes(backing[:100]) == bytes(100)
    assert bytes(backing[100 + len(raw) :]) == bytes(4096 - 100 - len(raw))
    del dest
    if dest_kind == "mmap":
        backing.close()


def test_copy_into_errors(buffers):
    dest = bytearray(16)
    with pytest.raises(ValueError):
        buffers.copy_into(dest, 10, b"x" * 7)  # does not fit
    with pytest.raises(ValueError):
        buffers.copy_into(dest, 17, b"")
    with pytest.raises(ValueError):
        buffers.copy_into(dest, -1, b"x")
    with pytest.raises(ValueError):
        buffers.copy_into(dest, 2**70, b"x")
    with pytest.raises(ValueError):
        buffers.copy_into(dest, 0, np.arange(8, dtype=np.uint8)[::2])  # strided
    with pytest.raises(ValueError):
        buffers.copy_into(dest, 0, np.zeros((2, 2), dtype=np.uint8, order="F"))
    with pytest.raises(TypeError):
        buffers.copy_into(b"immutable", 0, b"x")
    with pytest.raises(TypeError):
        buffers.copy_into(dest, 0, "not a buffer")
    assert dest == bytearray(16)
    assert buffers.copy_into(dest, 16, b"") == 0
    assert buffers.copy_into(dest, 9, b"x" * 7) == 7


@pytest.mark.parametrize("size", [64 * 1024 - 1, 64 * 1024, 1 << 20, (32 << 20) + 4097])
def test_copy_into_large(buffers, size):
    # Crosses the GIL-release and two-thread thresholds of the compiled version.
    src = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    with mmap.mmap(-1, size + 8192) as m:
        assert buffers.copy_into(m, 4095, src) == size
        out = np.frombuffer(m, dtype=np.uint8)
        assert np.array_equal(out[4095 : 4095 + size], src)
        assert not out[:4095].any() and not out[4095 + size :].any()
        del out


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=300), offset=st.integers(0, 400))
def test_copy_into_matches_slice_assignment(both_buffers, data, offset):
    for buffers in both_buffers:
        dest = bytearray(b"\xaa" * 500)
        expected = bytearray(dest)
        if offset + len(data) > len(dest):
            with pytest.raises(ValueError):
                buffers.copy_into(dest, offset, data)
        else:
            expected[offset : offset + len(data)] = data
            assert buffers.copy_into(dest, offset, data) == len(data)
        assert dest == expected


# ---------------------------------------------------------------------------------------------
# populate


def _kernel_has_populate_write():
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (5, 14)


def test_populate_anonymous(buffers, arena):
    arena[:5] = b"hello"
    result = buffers.populate(arena, 1, 100_000)  # unaligned start and end
    assert result is _kernel_has_populate_write()
    assert arena[:5] == b"hello"  # pre-faulting never changes contents
    assert buffers.populate(arena, 0, len(arena)) is result
    assert buffers.populate(arena, len(arena), 0) is True


def test_populate_shm_file(buffers, tmp_path):
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    # Unlinked at once: nothing is left behind, and a zray session's cleanup of stale
    # /dev/shm/zray-* arenas cannot race with us.
    fd, path = tempfile.mkstemp(prefix="test-fast-populate-", dir=directory)
    os.unlink(path)
    try:
        os.ftruncate(fd, 1 << 20)
        with mmap.mmap(fd, 1 << 20) as m:
            m[-3:] = b"end"
            assert buffers.populate(m, 4096 * 3 + 5, 70_000) is _kernel_has_populate_write()
            assert m[-3:] == b"end" and m[:4] == bytes(4)
    finally:
        os.close(fd)


def test_populate_large_range(buffers):
    with mmap.mmap(-1, 20 << 20) as m:
        m[-1] = 7
        assert buffers.populate(m, 5, (20 << 20) - 5) is _kernel_has_populate_write()
        assert m[-1] == 7


def test_populate_allocates_every_page_of_a_range_split_across_threads(buffers, tmp_path):
    # 40 MiB: past the size the compiled populate splits between two threads; the file's
    # allocated blocks show that both halves (and only the range) were allocated.
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    fd, path = tempfile.mkstemp(prefix="test-fast-populate-", dir=directory)
    os.unlink(path)
    size, start, length = 48 << 20, (4 << 20) + 5, 40 << 20
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as m:
            assert os.fstat(fd).st_blocks == 0
            if not buffers.populate(m, start, length):
                pytest.skip("no MADV_POPULATE_WRITE in this kernel")
            allocated = os.fstat(fd).st_blocks * 512
            first, last = start - start % 4096, start + length
            assert last - first <= allocated <= last - first + 4096 * 512  # a huge page or so
            assert m[first : first + 8] == bytes(8) and m[last - 8 : last] == bytes(8)
    finally:
        os.close(fd)


def test_populate_errors(buffers, arena):
    with pytest.raises(ValueError):
        buffers.populate(arena, 0, len(arena) + 1)
    with pytest.raises(ValueError):
        buffers.populate(arena, len(arena) + 1, 0)
    with pytest.raises(ValueError):
        buffers.populate(arena, -1, 10)
    with pytest.raises(TypeError):
        buffers.populate(bytearray(10), 0, 10)


# ---------------------------------------------------------------------------------------------
# pinned_view


def test_pinned_view_basic(buffers, arena):
    arena[10:15] = b"hello"
    cb = Counter()
    view = buffers.pinned_view(arena, 10, 5, cb)
    assert isinstance(view, memoryview)
    assert view.readonly and view.format == "B" and view.nbytes == 5
    assert bytes(view) == b"hello"
    with pytest.raises(TypeError):
        view[0] = 1
    arena[10] = ord("j")  # it is a view, not a copy
    assert bytes(view) == b"jello"
    assert cb.calls == 0
    del view
    gc.collect()
    assert cb.calls == 1


def test_pinned_view_slices_keep_it_alive(buffers, arena):
    cb = Counter()
    view = buffers.pinned_view(arena, 0, 100, cb)
    part = view[10:20]
    again = memoryview(view)
    del view
    gc.collect()
    assert cb.calls == 0
    del again
    gc.collect()
    assert cb.calls == 0
    assert part.nbytes == 10
    del part
    gc.collect()
    assert cb.calls == 1


def test_pinned_view_numpy_keeps_it_alive(buffers, arena):
    np.frombuffer(arena, dtype=np.float64)[:100] = np.arange(100.0)
    cb = Counter()
    view = buffers.pinned_view(arena, 0, 800, cb)
    arr = np.frombuffer(view, dtype=np.float64)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr.flags.writeable = True
    del view
    gc.collect()
    assert cb.calls == 0
    assert arr.sum() == sum(range(100))
    sub = arr[50:].reshape(5, 10)
    del arr
    gc.collect()
    assert cb.calls == 0
    assert sub[0, 0] == 50.0
    del sub
    gc.collect()
    assert cb.calls == 1


def test_pinned_view_pickle5_out_of_band(buffers, objformat, arena):
    value = {"a": np.arange(10_000, dtype=np.int64), "b": np.ones((7, 3), dtype=np.float32)}
    oob = []
    meta = pickle.dumps(value, protocol=5, buffer_callback=oob.append)
    size = objformat.write_object(arena, 4096, meta, [b.raw() for b in oob])
    cb = Counter()
    view = buffers.pinned_view(arena, 4096, size, cb)
    meta_view, bufs = objformat.read_object(view)
    loaded = pickle.loads(meta_view, buffers=bufs)
    del view, meta_view, bufs
    gc.collect()
    assert cb.calls == 0
    assert np.array_equal(loaded["a"], value["a"])
    assert not loaded["a"].flags.writeable
    assert loaded["a"].ctypes.data % 64 == 0  # 64-byte aligned buffers
    b = loaded["b"]
    del loaded
    gc.collect()
    assert cb.calls == 0
    assert np.array_equal(b, value["b"])
    del b
    gc.collect()
    assert cb.calls == 1


def test_pinned_view_pyarrow_keeps_it_alive(buffers, arena):
    pa = pytest.importorskip("pyarrow")
    arena[0:3] = b"abc"
    cb = Counter()
    view = buffers.pinned_view(arena, 0, 3, cb)
    buf = pa.py_buffer(view)
    arr = pa.Array.from_buffers(pa.uint8(), 3, [None, buf])
    del view
    gc.collect()
    assert cb.calls == 0
    del buf
    gc.collect()
    assert cb.calls == 0
    assert arr.to_pylist() == [97, 98, 99]
    del arr
    gc.collect()
    assert cb.calls == 1


def test_pinned_view_blocks_closing_the_mmap(buffers):
    m = mmap.mmap(-1, 4096)
    cb = Counter()
    view = buffers.pinned_view(m, 0, 10, cb)
    with pytest.raises(BufferError):
        m.close()
    del view
    gc.collect()
    m.close()
    assert cb.calls == 1


def test_pinned_view_released_in_other_thread(buffers, arena):
    cb = Counter()
    holder = [buffers.pinned_view(arena, 64, 64, cb)]

    def drop():
        holder.pop()
        gc.collect()

    t = threading.Thread(target=drop)
    t.start()
    t.join()
    assert cb.calls == 1
    assert cb.threads == [t.ident]


def test_pinned_view_many_exactly_once(buffers, arena):
    counters = [Counter() for _ in range(200)]
    views = [buffers.pinned_view(arena, i, 10, c) for i, c in enumerate(counters)]
    derived = [np.frombuffer(v[1:], dtype=np.uint8) for v in views]
    del views
    gc.collect()
    assert all(c.calls == 0 for c in counters)
    del derived
    gc.collect()
    assert all(c.calls == 1 for c in counters)


def test_pinned_view_zero_length_and_readonly_base(buffers, tmp_path):
    path = tmp_path / "ro"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        cb = Counter()
        view = buffers.pinned_view(m, 2, 3, cb)
        assert bytes(view) == b"234"
        empty = buffers.pinned_view(m, 10, 0, cb)
        assert empty.nbytes == 0
        del view, empty
        gc.collect()
        assert cb.calls == 2


def test_pinned_view_errors_do_not_call_back(buffers, arena):
    cb = Counter()
    with pytest.raises(ValueError):
        buffers.pinned_view(arena, len(arena) - 5, 6, cb)
    with pytest.raises(ValueError):
        buffers.pinned_view(arena, -1, 1, cb)
    with pytest.raises(TypeError):
        buffers.pinned_view(arena, 0, 1, "not callable")
    gc.collect()
    assert cb.calls == 0
