"""ray.util's serialization helpers: custom serializers for unpicklable classes, and finding
what in a value cannot be pickled."""

import io
import threading

import pytest


def _locked_class():
    """A class unpicklable as it is (it holds a lock), with a serializer and deserializer;
    made in a function so that workers get them by value (this module is not importable
    there)."""

    class Locked:
        def __init__(self, value):
            self.value = value
            self.lock = threading.Lock()

    def serializer(obj):
        return obj.value

    def deserializer(value):
        return Locked(value)

    return Locked, serializer, deserializer


Locked = _locked_class()[0]


def test_a_registered_serializer_carries_values_to_tasks_and_back(ray):
    from zray.util import deregister_serializer, register_serializer

    Locked, _serializer, _deserializer = _locked_class()
    with pytest.raises(TypeError):
        ray.put(Locked(1))
    register_serializer(Locked, serializer=_serializer, deserializer=_deserializer)
    try:
        assert ray.get(ray.put(Locked(7)), timeout=30).value == 7

        @ray.remote
        def double(locked):
            # The worker registered nothing: the deserializer came with the value, and
            # its own results need its own registration, as in Ray.
            from zray.util import register_serializer as register_here

            register_here(Locked, serializer=_serializer, deserializer=_deserializer)
            return Locked(locked.value * 2)

        assert ray.get(double.remote(Locked(21)), timeout=30).value == 42
    finally:
        deregister_serializer(Locked)
    with pytest.raises(TypeError):
        ray.put(Locked(1))
    deregister_serializer(Locked)  # no effect when none is registered


def test_inspect_serializability_finds_the_unpicklable_member():
    from zray.util import inspect_serializability
    from zray.util.check_serialize import FailureTuple

    lock = threading.Lock()

    def uses_lock():
        return lock

    printed = io.StringIO()
    serializable, failures = inspect_serializability(
        uses_lock, name="uses_lock", print_file=printed
    )
    assert not serializable
    (failure,) = failures
    assert isinstance(failure, FailureTuple)
    assert failure.obj is lock and failure.parent is uses_lock
    assert failure.path == ("uses_lock", "lock")
    assert "FailTuple(lock [path=uses_lock -> lock" in repr(failure)
    text = printed.getvalue()
    assert "Checking Serializability of" in text and "!!! FAIL serialization" in text
    assert "was found to be non-serializable" in text


def test_inspect_serializability_opens_objects_and_passes_what_pickles():
    from zray.util import inspect_serializability

    holder = Locked(3)
    serializable, failures = inspect_serializability(holder, print_file=io.StringIO())
    assert not serializable
    assert [(f.path, f.parent) for f in failures] == [(("lock",), holder)]
    assert inspect_serializability({"fine": [1, 2]}, print_file=io.StringIO()) == (True, set())
