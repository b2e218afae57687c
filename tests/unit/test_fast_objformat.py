"""zray._fast objformat: layout, round trips and malformed input, for both implementations."""

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zray._fast as fast
from zray._config import config


def _load(impl):
    compiled, pure = fast.implementations()["objformat"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(
            f"zray._fast.objformat is not built: {fast.FAST_IMPORT_ERRORS.get('objformat')}"
        )
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def objformat(request):
    return _load(request.param)


@pytest.fixture(scope="module")
def both():
    # Resolved outside @given so a missing build fails cleanly instead of inside hypothesis.
    return _load("cython"), _load("python")


def _address(view):
    return np.frombuffer(view, dtype=np.uint8).ctypes.data


def test_layout(objformat):
    dest = bytearray(b"\xaa" * 512)
    size = objformat.write_object(dest, 8, b"meta!", [b"abc", b"", b"x" * 70])
    assert size == objformat.object_size(5, [3, 0, 70])
    # header 16 + 3 lengths 24 + meta 5 = 45 -> buffers at 64, 128 (empty: 67 -> 128), 128.
    assert size == 128 + 70
    obj = dest[8 : 8 + size]
    assert struct.unpack_from("<4sIQ3Q", obj) == (b"ZOB1", 3, 5, 3, 0, 70)
    assert obj[40:45] == b"meta!"
    assert obj[45:64] == bytes(19)  # padding is zeroed
    assert obj[64:67] == b"abc" and obj[67:128] == bytes(61)
    assert obj[128:198] == b"x" * 70
    assert dest[:8] == b"\xaa" * 8 and dest[8 + size :] == b"\xaa" * (512 - 8 - size)


def test_object_size(objformat):
    assert objformat.object_size(0, []) == 16
    assert objformat.object_size(10, []) == 26
    assert objformat.object_size(0, [0]) == 64
    assert objformat.object_size(30, [1, 1]) == 129  # 62 -> 64+1 -> 128+1
    with pytest.raises(ValueError):
        objformat.object_size(-1, [])
    with pytest.raises(ValueError):
        objformat.object_size(0, [5, -1])


_buffers = st.lists(
    st.one_of(st.binary(max_size=200), st.integers(0, 3000).map(lambda n: bytes([n % 251]) * n)),
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(meta=st.binary(max_size=300), bufs=_buffers, offset=st.integers(0, 130))
def test_round_trip_both_ways(both, meta, bufs, offset):
    impls = both
    written = []
    for writer in impls:
        size = writer.object_size(len(meta), [len(b) for b in bufs])
        dest = bytearray(b"\xcc" * (offset + size + 7))
        assert writer.write_object(dest, offset, meta, bufs) == size
        written.append(bytes(dest))
        for reader in impls:
            view = memoryview(dest)[offset : offset + size]
            meta_view, buf_views = reader.read_object(view)
            assert bytes(meta_view) == meta
            assert [bytes(b) for b in buf_views] == bufs
            base = _address(view)
            for b in buf_views:
                if b.nbytes:
                    assert (_address(b) - base) % 64 == 0
            del view, meta_view, buf_views
    assert written[0] == written[1]  # byte-identical output, padding included


def test_numpy_pickle5_round_trip(objformat):
    value = [np.arange(1001, dtype=np.float64), np.zeros((3, 5), dtype=np.int8), "text", 42]
    oob = []
    meta = pickle.dumps(value, protocol=5, buffer_callback=oob.append)
    raws = [b.raw() for b in oob]
    size = objformat.object_size(len(meta), [r.nbytes for r in raws])
    dest = bytearray(size + 64)
    assert objformat.write_object(dest, 64, meta, raws) == size
    meta_view, bufs = objformat.read_object(memoryview(dest)[64:])
    loaded = pickle.loads(meta_view, buffers=bufs)
    assert np.array_equal(loaded[0], value[0]) and np.array_equal(loaded[1], value[1])
    assert loaded[2:] == ["text", 42]
    assert all(b.readonly is False for b in bufs)  # slices of a writable view stay writable


def test_read_accepts_longer_views_and_other_buffers(objformat):
    dest = bytearray(300)
    size = objformat.write_object(dest, 0, b"m", [b"buf"])
    for view in (
        dest,
        bytes(dest),
        memoryview(dest),
        np.frombuffer(dest, dtype=np.uint8),
        memoryview(dest)[:size],
        memoryview(dest).cast("I"),
    ):
        meta, bufs = objformat.read_object(view)
        assert bytes(meta) == b"m" and [bytes(b) for b in bufs] == [b"buf"]


def test_read_slices_are_zero_copy(objformat):
    dest = bytearray(300)
    objformat.write_object(dest, 0, b"m", [b"buf"])
    meta, (buf,) = objformat.read_object(memoryview(dest))
    dest[64] = ord("B")
    assert bytes(buf) == b"Buf"


def test_every_truncation_raises(objformat):
    dest = bytearray(400)
    size = objformat.write_object(dest, 0, b"metadata", [b"a" * 10, b"", b"b" * 33])
    for cut in range(size):
        with pytest.raises(ValueError):
            objformat.read_object(memoryview(dest)[:cut])
    objformat.read_object(memoryview(dest)[:size])


def test_malformed_headers(objformat):
    good = bytearray(200)
    objformat.write_object(good, 0, b"meta", [b"xyz"])
    bad_magic = bytearray(good)
    bad_magic[:4] = b"ZOB2"
    with pytest.raises(ValueError, match="magic"):
        objformat.read_object(bad_magic)
    huge_meta = bytearray(good)
    struct.pack_into("<Q", huge_meta, 8, 2**64 - 1)
    with pytest.raises(ValueError, match="metadata"):
        objformat.read_object(huge_meta)
    huge_nbufs = bytearray(good)
    struct.pack_into("<I", huge_nbufs, 4, 2**32 - 1)
    with pytest.raises(ValueError, match="buffer lengths"):
        objformat.read_object(huge_nbufs)
    huge_buf = bytearray(good)
    struct.pack_into("<Q", huge_buf, 16, 2**64 - 1)
    with pytest.raises(ValueError, match="buffer 0"):
        objformat.read_object(huge_buf)
    with pytest.raises(ValueError):
        objformat.read_object(b"")
    with pytest.raises(ValueError):
        objformat.read_object(np.zeros((40, 4), dtype=np.uint8)[:, ::2])  # not contiguous


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), magic=st.booleans())
def test_garbage_never_crashes(both, data, magic):
    if magic:
        data = b"ZOB1" + data
    results = []
    for objformat in both:
        try:
            meta, bufs = objformat.read_object(data)
        except ValueError as exc:
            results.append(("error", str(exc)))
        else:
            for part in [meta, *bufs]:
                assert part.nbytes <= len(data)
            results.append((bytes(meta), [bytes(b) for b in bufs]))
    assert results[0] == results[1]


def test_write_errors_leave_dest_untouched(objformat):
    dest = bytearray(b"\xee" * 100)
    with pytest.raises(ValueError, match="does not fit"):
        objformat.write_object(dest, 10, b"m" * 30, [b"x" * 40])
    with pytest.raises(ValueError, match="does not fit"):
        objformat.write_object(dest, 101, b"", [])
    with pytest.raises(ValueError):
        objformat.write_object(dest, 0, b"", [np.arange(10, dtype=np.uint8)[::2]])
    with pytest.raises(ValueError):
        objformat.write_object(dest, -1, b"", [])
    with pytest.raises(TypeError):
        objformat.write_object(b"readonly" * 20, 0, b"", [])
    assert dest == bytearray(b"\xee" * 100)
    assert objformat.write_object(dest, 84, b"", []) == 16


@pytest.mark.parametrize("impl", ["fast", "pure"])
def test_large_buffers_are_page_aligned(impl):
    """Copying into a destination whose page offset differs from the source's runs ~4x slower
    here, so buffers of 64 KiB or more start on a 4096-byte boundary of the object."""
    import zray._fast as fast

    compiled, pure = fast.implementations()["objformat"]
    module = compiled if impl == "fast" else pure
    if module is None:
        pytest.fail("zray._fast.objformat is not built")
    small, large = b"s" * 100, b"L" * (64 * 1024)
    size = module.object_size(10, [len(small), len(large)])
    dest = bytearray(size)
    module.write_object(dest, 0, b"m" * 10, [small, large])
    meta, (first, second) = module.read_object(memoryview(dest))
    base = memoryview(dest)
    offset_of = lambda view: _address(view) - _address(base)  # noqa: E731
    assert offset_of(first) % 64 == 0 and offset_of(first) < 4096
    assert offset_of(second) % 4096 == 0
    assert bytes(second) == large and bytes(first) == small
