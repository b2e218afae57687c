"""zray._fast frames: the 8-byte message header, for both implementations."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zray._fast as fast
from zray._config import config


def _load(impl):
    compiled, pure = fast.implementations()["frames"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.frames is not built: {fast.FAST_IMPORT_ERRORS.get('frames')}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def frames(request):
    return _load(request.param)


_fields = st.tuples(
    st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
)


@settings(max_examples=200, deadline=None)
@given(fields=_fields)
def test_round_trip(frames, fields):
    packed = frames.pack_header(*fields)
    assert type(packed) is bytes and len(packed) == frames.HEADER_SIZE == 8
    assert packed == struct.pack("<BBHI", *fields)
    assert frames.unpack_header(packed) == fields
    assert frames.unpack_header(bytearray(packed)) == fields
    assert frames.unpack_header(memoryview(b"xx" + packed)[2:]) == fields


def test_unpack_other_buffers(frames):
    packed = frames.pack_header(1, 2, 0x0304, 0x05060708)
    assert frames.unpack_header(np.frombuffer(packed, dtype=np.uint16)) == (
        1,
        2,
        0x0304,
        0x05060708,
    )
    assert frames.unpack_header(memoryview(packed).cast("Q")) == (1, 2, 0x0304, 0x05060708)


@pytest.mark.parametrize("length", [0, 1, 7, 9, 16])
def test_unpack_wrong_length(frames, length):
    with pytest.raises(ValueError, match="8 bytes"):
        frames.unpack_header(b"\x01" * length)
    with pytest.raises(ValueError, match="8 bytes"):
        frames.unpack_header(bytearray(length))


def test_unpack_bad_types(frames):
    with pytest.raises(TypeError):
        frames.unpack_header("12345678")
    with pytest.raises(TypeError):
        frames.unpack_header(12345678)
    with pytest.raises(ValueError):
        frames.unpack_header(memoryview(bytes(16))[::2])  # 8 bytes, but strided


@pytest.mark.parametrize("position", range(4))
@pytest.mark.parametrize("value", [-1, 0x100, 0x10000, 2**32, 2**64, 2**200, -(2**200)])
def test_pack_out_of_range_is_value_error(frames, position, value):
    limits = [0xFF, 0xFF, 0xFFFF, 0xFFFFFFFF]
    fields = [0, 0, 0, 0]
    fields[position] = value
    if 0 <= value <= limits[position]:
        assert frames.unpack_header(frames.pack_header(*fields))[position] == value
    else:
        with pytest.raises(ValueError, match="outside"):
            frames.pack_header(*fields)


def test_pack_bad_types(frames):
    with pytest.raises(TypeError):
        frames.pack_header(1.0, 0, 0, 0)
    with pytest.raises(TypeError):
        frames.pack_header(1, 0, 0, "1")
    assert frames.pack_header(True, 0, 0, np.uint32(7)) == struct.pack("<BBHI", 1, 0, 0, 7)
