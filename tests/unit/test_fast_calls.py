"""zray._fast calls: the common actor call's message and its answer, for both implementations,
against the general encoder and decoder (zray/_private/wire/codec.py, the stream's framing)."""

import msgpack
import pytest

import zray._fast as fast
from zray._config import config
from zray._fast import MessageTooLarge, Unpacker, pack
from zray._private.wire import protocol as P


def _load(impl):
    compiled, pure = fast.implementations()["calls"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.calls is not built: {fast.FAST_IMPORT_ERRORS.get('calls')}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def calls(request):
    return _load(request.param)


HEADER = P.encode(P.PushActorTask(b"", b"", "", 1, "", 0, [], [], "", -1, 0))[0]
ACTOR = bytes(range(16))
TASK = bytes(range(8)) + ACTOR


def _general(method, owner, attempt, arguments, actor=ACTOR, task=TASK):
    msg = P.PushActorTask(actor, task, method, 1, owner, 0, [], [], "", -1, attempt)
    return b"".join(bytes(b) for b in pack([*P.encode(msg), arguments]))


def test_record_shapes_match():
    from zray._fast._calls_py import PUSH_FIELDS, TASK_DONE_FIELDS

    assert PUSH_FIELDS == len(P.PushActorTask._fields)
    assert TASK_DONE_FIELDS == len(P.TaskDone._fields)


@pytest.mark.parametrize("method_len", [0, 1, 31, 32, 255, 256, 65535, 65536])
@pytest.mark.parametrize("attempt", [-1, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**63])
def test_frame_actor_call_is_the_general_message(calls, method_len, attempt):
    method = "m" * method_len
    owner = "tcp://127.0.0.1:1|direct:///tmp/x.sock"
    out = calls.frame_actor_call(HEADER, ACTOR, TASK, method, owner, attempt, b"args")
    assert out == _general(method, owner, attempt, b"args")


@pytest.mark.parametrize("attempt", [-32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1])
def test_frame_actor_call_negative_ints(calls, attempt):
    out = calls.frame_actor_call(HEADER, ACTOR, TASK, "f", "o", attempt, b"")
    assert out == _general("f", "o", attempt, b"")


def test_frame_actor_call_long_and_unicode_fields(calls):
    owner = "é" * 40_000  # a str16 of multibyte characters
    actor, task = b"a" * 300, b"t" * 70_000  # bin16, bin32
    out = calls.frame_actor_call(HEADER, actor, task, "ünïcode", owner, 3, b"x" * 1000)
    assert out == _general("ünïcode", owner, 3, b"x" * 1000, actor, task)


def test_frame_actor_call_reads_back(calls):
    out = calls.frame_actor_call(HEADER, ACTOR, TASK, "small_value", "owner", 0, b"args")
    (frames,) = Unpacker().feed(out)
    msg, seq, flags = P.decode(frames[0].buffer, frames[1].buffer)
    assert msg == P.PushActorTask(ACTOR, TASK, "small_value", 1, "owner", 0, [], [], "", -1, 0)
    assert (seq, flags, bytes(frames[2].buffer)) == (0, 0, b"args")


def test_frame_actor_call_refuses_bad_input(calls):
    with pytest.raises(TypeError):
        calls.frame_actor_call(HEADER, ACTOR, TASK, b"method", "o", 0, b"")
    with pytest.raises(TypeError):
        calls.frame_actor_call(HEADER, ACTOR, TASK, "m", "o", True, b"")  # msgpack: a bool
    with pytest.raises(TypeError):
        calls.frame_actor_call(HEADER, ACTOR, TASK, "m", "o", 0, bytearray())
    with pytest.raises(ValueError):
        calls.frame_actor_call(b"short", ACTOR, TASK, "m", "o", 0, b"")
    with pytest.raises(OverflowError):
        calls.frame_actor_call(HEADER, ACTOR, TASK, "m", "o", 2**64, b"")
    with pytest.raises(OverflowError):
        calls.frame_actor_call(HEADER, ACTOR, TASK, "m", "o", -(2**63) - 1, b"")


def test_frame_actor_call_too_large(calls):
    fits = b"x" * (fast.MAX_MESSAGE_BYTES - len(_general("m", "o", 0, b"")))
    assert len(calls.frame_actor_call(HEADER, ACTOR, TASK, "m", "o", 0, fits)) == (
        fast.MAX_MESSAGE_BYTES
    )
    with pytest.raises(MessageTooLarge):
        calls.frame_actor_call(HEADER, ACTOR, TASK, "m", "o", 0, fits + b"x")


OID = TASK + b"\x01\x00\x00\x00"


def _answer(msg, payload=(b"meta",), flags=0, seq=0):
    data = b"".join(bytes(b) for b in pack([*P.encode(msg, seq, flags), *payload]))
    (frames,) = Unpacker().feed(data)
    return frames


def test_plain_answer_reads_one_inline_value(calls):
    frames = _answer(P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 0, []), seq=7)
    assert calls.plain_answer(frames, P.PROTOCOL_VERSION, P.TaskDone.CODE) == (TASK, OID, b"", 9)
    frames = _answer(P.TaskDone(TASK, [[OID, 0, 3, b"n", 2**40]], 0, []), (b"m", b"b1", b"b2"))
    assert calls.plain_answer(frames, P.PROTOCOL_VERSION, P.TaskDone.CODE) == (
        TASK,
        OID,
        b"n",
        2**40,
    )


@pytest.mark.parametrize(
    "msg, payload, flags",
    [
        (P.TaskDone(TASK, [[OID, 1, 0, b"node", 9]], 0, []), (), 0),  # in shared memory
        (P.TaskDone(TASK, [[OID, 2, 1, b"", 9]], 0, []), (b"m",), 0),  # an error
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 5, []), (b"m",), 0),  # a task's (leased)
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 0, [[[OID, "o"]]]), (b"m",), 0),  # refs inside
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9], [OID, 0, 1, b"", 9]], 0, []), (b"m", b"m"), 0),
        (P.TaskDone(TASK, [], 0, []), (b"m",), 0),  # no return
        (P.TaskDone(TASK, [[OID, 0, 2, b"", 9]], 0, []), (b"m",), 0),  # frames do not match
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 0, []), (b"m",), 1),  # a reply flag
        (P.TaskDone(TASK, [[OID, True, 1, b"", 9]], 0, []), (b"m",), 0),  # a bool
        (P.TaskDone(TASK, [[OID, 0, 1, "", 9]], 0, []), (b"m",), 0),  # str node id
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9.0]], 0, []), (b"m",), 0),  # float size
        (P.TaskDone(TASK, [[OID, 0, 1, b""]], 0, []), (b"m",), 0),  # a short return
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 0, None), (b"m",), 0),
        (P.CancelTask(TASK, False, False), (b"m",), 0),  # another message
    ],
)
def test_plain_answer_refuses_the_rest(calls, msg, payload, flags):
    frames = _answer(msg, payload, flags)
    assert calls.plain_answer(frames, P.PROTOCOL_VERSION, P.TaskDone.CODE) is None


def test_plain_task_answer_reads_a_leased_workers_answer(calls):
    """A task's answer (lease > 0): the same reading, with the lease; an actor call's is not
    one, nor is any answer plain_answer refuses for what it holds."""
    code, version = P.TaskDone.CODE, P.PROTOCOL_VERSION
    frames = _answer(P.TaskDone(TASK, [[OID, 0, 1, b"n", 9]], 5, []), seq=3)
    assert calls.plain_task_answer(frames, version, code) == (TASK, OID, b"n", 9, 5)
    assert calls.plain_answer(frames, version, code) is None
    frames = _answer(P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 0, []))
    assert calls.plain_task_answer(frames, version, code) is None
    assert calls.plain_answer(frames, version, code) == (TASK, OID, b"", 9)
    # Negative fixints read as such (the compiled reader once read -1 as 255).
    frames = _answer(P.TaskDone(TASK, [[OID, 0, 1, b"", -1]], 0, []))
    assert calls.plain_answer(frames, version, code) == (TASK, OID, b"", -1)
    header = P.encode(P.TaskDone(b"", [], 0, []))[0]
    (frames,) = Unpacker().feed(calls.frame_task_done(header, TASK, OID, 9, 2**40, b"meta"))
    assert calls.plain_task_answer(frames, version, code) == (TASK, OID, b"", 9, 2**40)
    for msg, payload in [
        (P.TaskDone(TASK, [[OID, 1, 0, b"node", 9]], 5, []), ()),  # in shared memory
        (P.TaskDone(TASK, [[OID, 2, 1, b"", 9]], 5, []), (b"m",)),  # an error
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 5, [[[OID, "o"]]]), (b"m",)),  # refs inside
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]] * 2, 5, []), (b"m", b"m")),  # two returns
        (P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], -1, []), (b"m",)),  # a negative lease
        (P.CancelTask(TASK, False, False), (b"m",)),  # another message
    ]:
        assert calls.plain_task_answer(_answer(msg, payload), version, code) is None, msg
    assert (
        calls.plain_task_answer(
            _answer(P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 5, []), flags=1), version, code
        )
        is None
    )


def test_plain_answer_refuses_malformed_bodies(calls):
    good = _answer(P.TaskDone(TASK, [[OID, 0, 1, b"", 9]], 0, []))
    header, body = bytes(good[0].buffer), bytes(good[1].buffer)

    class F:
        def __init__(self, buffer):
            self.buffer = buffer

    version, code = P.PROTOCOL_VERSION, P.TaskDone.CODE
    for cut in range(len(body)):  # every truncation, and trailing bytes
        assert calls.plain_answer([F(header), F(body[:cut]), F(b"m")], version, code) is None
    assert calls.plain_answer([F(header), F(body + b"\x00"), F(b"m")], version, code) is None
    assert calls.plain_answer([F(header[:7]), F(body), F(b"m")], version, code) is None
    assert calls.plain_answer([F(header), F(body), F(b"m")], version + 1, code) is None
    assert calls.plain_answer([F(header), F(body)], version, code) is None  # no payload
    assert calls.plain_answer([F(header), F(object()), F(b"m")], version, code) is None
    assert calls.plain_answer([F(header), F(body), F(b"m")], version, code) is not None
    # The same values in longer encodings (array16, uint64 zeros) still read.
    fields = msgpack.unpackb(body)
    long_body = (
        b"\xdc\x00\x04"
        + msgpack.packb(fields[0])
        + b"\xdc\x00\x01\x95"
        + msgpack.packb(OID)
        + b"\xcf"
        + bytes(8)
        + b"\xcd\x00\x01"
        + msgpack.packb(b"")
        + b"\xd3"
        + (9).to_bytes(8, "big")
        + b"\xce"
        + bytes(4)
        + b"\xdd"
        + bytes(4)
    )
    assert msgpack.unpackb(long_body) == fields
    assert calls.plain_answer([F(header), F(long_body), F(b"m")], version, code) == (
        TASK,
        OID,
        b"",
        9,
    )
    with pytest.raises(TypeError):
        calls.plain_answer((F(header), F(body), F(b"m")), version, code)


@pytest.mark.parametrize("size", [0, 127, 128, 65536, 2**32])
@pytest.mark.parametrize("lease_id", [0, 1, 300, 2**40])
def test_frame_task_done_is_the_general_message(calls, size, lease_id):
    done = P.TaskDone(TASK, [[OID, 0, 1, b"", size]], lease_id, [])
    general = b"".join(bytes(b) for b in pack([*P.encode(done), b"meta"]))
    header = P.encode(done)[0]
    assert calls.frame_task_done(header, TASK, OID, size, lease_id, b"meta") == general


def test_frame_task_done_reads_back_as_a_plain_answer(calls):
    header = P.encode(P.TaskDone(b"", [], 0, []))[0]
    (frames,) = Unpacker().feed(calls.frame_task_done(header, TASK, OID, 9, 0, b"meta"))
    assert calls.plain_answer(frames, P.PROTOCOL_VERSION, P.TaskDone.CODE) == (TASK, OID, b"", 9)
    long_ids = calls.frame_task_done(header, b"t" * 300, b"o" * 70_000, 9, 0, b"m")
    (frames,) = Unpacker().feed(long_ids)
    msg, _, _ = P.decode(frames[0].buffer, frames[1].buffer)
    assert msg == P.TaskDone(b"t" * 300, [[b"o" * 70_000, 0, 1, b"", 9]], 0, [])


def test_frame_task_done_refuses_bad_input(calls):
    header = P.encode(P.TaskDone(b"", [], 0, []))[0]
    with pytest.raises(TypeError):
        calls.frame_task_done(header, TASK, OID, True, 0, b"m")
    with pytest.raises(TypeError):
        calls.frame_task_done(header, TASK, OID, 1, 0.0, b"m")
    with pytest.raises(TypeError):
        calls.frame_task_done(header, TASK, "oid", 1, 0, b"m")
    with pytest.raises(TypeError):
        calls.frame_task_done(header, TASK, OID, 1, 0, memoryview(b"m"))
    with pytest.raises(ValueError):
        calls.frame_task_done(header[:4], TASK, OID, 1, 0, b"m")
    with pytest.raises(OverflowError):
        calls.frame_task_done(header, TASK, OID, 2**64, 0, b"m")
    with pytest.raises(MessageTooLarge):
        calls.frame_task_done(header, TASK, OID, 1, 0, b"x" * fast.MAX_MESSAGE_BYTES)
