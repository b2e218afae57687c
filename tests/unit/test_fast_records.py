"""zray._fast records: the field type check of decoded messages, for both implementations."""

import pytest

import zray._fast as fast
from zray._config import config
from zray._private.wire import protocol as P


def _load(impl):
    compiled, pure = fast.implementations()["records"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.records is not built: {fast.FAST_IMPORT_ERRORS.get('records')}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def records(request):
    return _load(request.param)


def test_first_bad_field(records):
    checks = (frozenset({bytes}), None, frozenset({int, float}))
    assert records.first_bad_field(checks, [b"x", object(), 1]) == -1
    assert records.first_bad_field(checks, [b"x", None, 1.5]) == -1
    assert records.first_bad_field(checks, ["x", None, 1]) == 0
    assert records.first_bad_field(checks, [b"x", None, "1"]) == 2
    assert records.first_bad_field(checks, [b"x", None, True]) == 2  # exact types: bool is not int
    assert records.first_bad_field(checks, [b"x"]) == -1  # the caller checks the count
    assert records.first_bad_field(checks, [b"x", 1, 2, "extra"]) == -1
    assert records.first_bad_field((), []) == -1


def test_bad_arguments_raise(records):
    with pytest.raises(TypeError):
        records.first_bad_field([frozenset({int})], [1])
    with pytest.raises(TypeError):
        records.first_bad_field((frozenset({int}),), (1,))


def test_every_record_accepts_its_own_encoding(records):
    # The check the decoder runs, on what the encoder makes of a real message of each kind.
    msg = P.PushTask(
        b"t" * 24, b"f" * 28, "f", 1, "ipc://x", 5, 0, [], [], {"CPU": 1.0}, [], "", -1, 0
    )
    assert records.first_bad_field(P.PushTask._checks, list(msg)) == -1
    bad = list(msg)
    bad[3] = "1"  # num_returns
    assert records.first_bad_field(P.PushTask._checks, bad) == 3


def test_decode_names_the_bad_field():
    header, body = P.encode(P.TaskDone(b"t" * 24, [], 5, []))
    import msgpack

    fields = msgpack.unpackb(body)
    fields[2] = "five"
    with pytest.raises(P.ProtocolError, match=r"TaskDone\.lease_id: unexpected str"):
        P.decode(header, msgpack.packb(fields, use_bin_type=True))
