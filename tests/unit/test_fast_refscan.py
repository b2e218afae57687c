"""zray._fast refscan: the one-pass scan of a wait's refs, for both implementations."""

import pytest

import zray._fast as fast
from zray._config import config


def _load(impl):
    compiled, pure = fast.implementations()["refscan"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.refscan is not built: {fast.FAST_IMPORT_ERRORS.get('refscan')}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def refscan(request):
    return _load(request.param)


class Ref:
    __slots__ = ("_id",)

    def __init__(self, object_id):
        self._id = object_id


class SubRef(Ref):
    __slots__ = ()


def test_counts_missing_and_distinct(refscan):
    present = {b"a": 1, b"c": 2}
    assert refscan.scan_refs([Ref(b"a"), Ref(b"b"), Ref(b"c")], Ref, present) == (True, 1)
    assert refscan.scan_refs([Ref(b"a"), Ref(b"c")], Ref, present) == (True, 0)
    assert refscan.scan_refs([Ref(b"a"), Ref(b"b"), Ref(b"a")], Ref, present) == (False, 1)
    assert refscan.scan_refs([], Ref, present) == (True, 0)


def test_other_types_fall_back(refscan):
    # Exactly the given type: a subclass or anything else leaves the caller's general path
    # to decide (generators are waitable, other objects a TypeError).
    assert refscan.scan_refs([Ref(b"a"), SubRef(b"b")], Ref, {}) is None
    assert refscan.scan_refs([Ref(b"a"), b"a"], Ref, {}) is None
    assert refscan.scan_refs([None], Ref, {}) is None


def test_bad_arguments_raise(refscan):
    with pytest.raises(TypeError):
        refscan.scan_refs((Ref(b"a"),), Ref, {})
    with pytest.raises(TypeError):
        refscan.scan_refs([Ref(b"a")], Ref, None)
    with pytest.raises(TypeError):
        refscan.scan_refs([Ref([1])], Ref, {})  # an unhashable id


def test_many(refscan):
    refs = [Ref(bytes([i % 256, i // 256])) for i in range(5000)]
    present = {ref._id: None for ref in refs[::2]}
    assert refscan.scan_refs(refs, Ref, present) == (True, 2500)
    assert refscan.scan_refs(refs + refs[:1], Ref, present) == (False, 2500)
