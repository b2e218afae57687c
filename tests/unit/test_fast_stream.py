"""zray._fast stream: the framing of direct connections, for both implementations."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zray._fast as fast
from zray._config import config


def _load(impl):
    compiled, pure = fast.implementations()["stream"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.stream is not built: {fast.FAST_IMPORT_ERRORS.get('stream')}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def stream(request):
    return _load(request.param)


frames_st = st.lists(st.binary(max_size=300), min_size=1, max_size=6)


def wire(stream, messages) -> bytes:
    return b"".join(b"".join(bytes(b) for b in stream.pack(m)) for m in messages)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(frames_st, min_size=1, max_size=8), data=st.data())
def test_any_chunking_yields_the_messages_sent(stream, messages, data):
    raw = wire(stream, messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=10)))
    unpacker, received, start = stream.Unpacker(), [], 0
    for cut in cuts + [len(raw)]:
        received += unpacker.feed(raw[start:cut])
        start = cut
    assert [[f.bytes for f in m] for m in received] == messages
    assert all(isinstance(f.buffer, memoryview) for m in received for f in m)
    assert unpacker.buffered == 0


@settings(max_examples=100, deadline=None)
@given(frames=frames_st)
def test_both_implementations_write_the_same_bytes(frames):
    pure, compiled = _load("python"), _load("cython")
    views = [memoryview(f) for f in frames]  # any buffer, not only bytes
    assert wire(pure, [views]) == wire(compiled, [frames])
    head = pure.pack(frames)[0]
    assert head == struct.pack(f"<{len(frames) + 1}I", len(frames), *map(len, frames))


def test_small_frames_of_a_big_chunk_are_copies_large_ones_views(stream):
    big = b"x" * (stream.COPY_BELOW + 1)
    [message] = stream.Unpacker().feed(wire(stream, [[b"small", big]]))
    assert message[0].buffer.obj is not message[1].buffer.obj
    assert message[0].bytes == b"small" and message[1].bytes == big


def test_frames_of_a_small_chunk_are_views_of_it(stream):
    chunk = wire(stream, [[b"a", b"bc"], [b"d"]])
    first, second = stream.Unpacker().feed(chunk)
    assert first[0].buffer.obj is first[1].buffer.obj is second[0].buffer.obj


@pytest.mark.parametrize(
    "head", [struct.pack("<I", 0), struct.pack("<I", 2**20 + 1), struct.pack("<II", 1, 256 * 2**20)]
)
def test_garbage_raises_framing_error(stream, head):
    assert stream.MAX_FRAMES == 2**20 and stream.MAX_MESSAGE_BYTES == 256 * 2**20
    with pytest.raises(stream.FramingError):
        stream.Unpacker().feed(head + b"\0" * 8)


def test_both_raise_the_same_framing_error_class():
    assert _load("python").FramingError is _load("cython").FramingError
    assert _load("python").MessageTooLarge is _load("cython").MessageTooLarge


def test_pack_refuses_what_the_reader_would_refuse(stream):
    """A message the reader drops as garbage must never be written: its caller would wait
    for an answer that cannot come. Up to the limits it goes through whole."""
    many = [b"x"] * (stream.MAX_FRAMES - 1)
    assert len(stream.Unpacker().feed(b"".join(stream.pack(many)))[0]) == len(many)
    with pytest.raises(stream.MessageTooLarge):
        stream.pack([b"x"] * (stream.MAX_FRAMES + 1))
    with pytest.raises(stream.MessageTooLarge):
        stream.pack([b"", memoryview(bytearray(stream.MAX_MESSAGE_BYTES))])


def test_a_message_arriving_in_pieces_is_joined_once_it_is_whole():
    """Joining the buffered start of a message with every new chunk made a message of n
    chunks cost n/2 copies of itself (a quarter of a TiB of memcpy for a 256 MiB message
    trickled in by a stranger). Pieces now wait as they are until the message is whole."""
    pure = _load("python")
    raw = wire(pure, [[b"x" * 100_000]])
    unpacker, pieces = pure.Unpacker(), [raw[i : i + 1000] for i in range(0, len(raw), 1000)]
    for piece in pieces[:-1]:
        assert unpacker.feed(piece) == []
    assert len(unpacker._chunks) == len(pieces) - 1  # not one blob re-joined each time
    assert unpacker.buffered == len(raw) - len(pieces[-1])
    [message] = unpacker.feed(pieces[-1])
    assert message[0].bytes == b"x" * 100_000 and unpacker.buffered == 0


def test_pieces_of_a_frame_table_and_of_a_message_after_a_whole_one(stream):
    raw = wire(stream, [[b"a"], [b"bb" * 3000, b"c"]])
    unpacker, received = stream.Unpacker(), []
    for piece in (raw[:3], raw[3:9], raw[9:20], raw[20:4000], raw[4000:]):
        received += unpacker.feed(bytearray(piece))  # any buffer, which the caller may reuse
    assert [[f.bytes for f in m] for m in received] == [[b"a"], [b"bb" * 3000, b"c"]]
    assert unpacker.buffered == 0


def _fed_through_one_buffer(unpacker, raw: bytes, cuts) -> list:
    """What a direct connection's reader does: every piece lands in the same buffer, which is
    overwritten once the unpacker has returned."""
    inbox, received, start = bytearray(max(cuts + [1])), [], 0
    for size in cuts:
        piece = raw[start : start + size]
        inbox[: len(piece)] = piece
        received += unpacker.feed(memoryview(inbox)[: len(piece)])
        inbox[:] = b"\xee" * len(inbox)
        start += size
    return received


LARGE = [b"meta", b"s" * 20_000, b"L" * (1 << 20), b"t" * 100]


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_large_message_in_reused_pieces_comes_out_whole_among_small_ones(stream, data):
    # Pieces of a message and of those around it are kept past the feed that brought them:
    # copies, never the caller's buffer (the pure twin kept a first piece as it was).
    messages = [[b"a", b"bc"], LARGE, [b"d"], LARGE, [b"e" * 70_000]]
    raw = wire(stream, messages)
    cuts = data.draw(st.lists(st.integers(1, 300_000), min_size=1, max_size=40))
    cuts.append(len(raw))  # whatever the drawn pieces leave, in one last piece
    unpacker = stream.Unpacker()
    received = _fed_through_one_buffer(unpacker, raw, cuts)
    assert [[f.bytes for f in m] for m in received] == messages
    assert unpacker.buffered == 0


def test_a_large_message_is_buffered_as_it_fills_and_its_frames_survive_the_reader(stream):
    raw = wire(stream, [LARGE, [b"after"]])
    unpacker, size = stream.Unpacker(), 256 * 1024
    first = _fed_through_one_buffer(unpacker, raw, [size])
    assert first == [] and unpacker.buffered == size
    rest = _fed_through_one_buffer(unpacker, raw[size:], [size] * 5)
    assert [[f.bytes for f in m] for m in rest] == [LARGE, [b"after"]]
    assert unpacker.buffered == 0


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.binary(max_size=40), max_size=8), cut=st.integers(0, 400))
def test_unsent_is_what_a_partial_send_left_in_order(stream, frames, cut):
    data = b"".join(frames)
    sent = min(cut, len(data))
    rest = stream.unsent(frames, sent)
    assert b"".join(bytes(b) for b in rest) == data[sent:]
    if sent == len(data):
        assert rest == []  # everything went: nothing to queue


def test_unsent_counts_bytes_of_any_buffer_and_refuses_a_negative_count(stream):
    import array

    doubles = memoryview(array.array("d", [1.0, 2.0]))  # 2 items, 16 bytes
    rest = stream.unsent([b"ab", doubles, bytearray(b"xyz")], 5)
    assert [bytes(b) for b in rest] == [doubles.tobytes()[3:], b"xyz"]
    assert stream.unsent([b"ab", doubles], 18) == []
    with pytest.raises(ValueError):
        stream.unsent([b"ab"], -1)
