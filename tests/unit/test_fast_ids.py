"""zray._fast ids: Ray-compatible id sizes and derivations, for both implementations."""

import os
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zray._fast as fast
from zray._config import config


def _load(impl):
    compiled, pure = fast.implementations()["ids"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.ids is not built: {fast.FAST_IMPORT_ERRORS.get('ids')}")
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def ids(request):
    return _load(request.param)


def test_sizes(ids):
    assert (ids.JOB_ID_SIZE, ids.ACTOR_ID_SIZE, ids.TASK_ID_SIZE) == (4, 16, 24)
    assert (ids.OBJECT_ID_SIZE, ids.NODE_ID_SIZE, ids.WORKER_ID_SIZE) == (28, 28, 28)


def test_random_id(ids):
    for size in range(0, 70):
        value = ids.random_id(size)
        assert type(value) is bytes and len(value) == size
    many = {ids.random_id(ids.OBJECT_ID_SIZE) for _ in range(20_000)}
    assert len(many) == 20_000
    # Every byte position varies (no constant tail from a short generator word).
    samples = [ids.random_id(28) for _ in range(64)]
    assert all(len({s[i] for s in samples}) > 1 for i in range(28))
    with pytest.raises(ValueError):
        ids.random_id(-1)
    with pytest.raises(TypeError):
        ids.random_id(2.0)


def test_random_id_differs_after_fork(ids):
    ids.random_id(28)  # the generator is in use before the fork
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:
        try:
            os.write(write_fd, ids.random_id(28) + ids.random_id(28))
        finally:
            os._exit(0)
    os.close(write_fd)
    parent = ids.random_id(28) + ids.random_id(28)
    with os.fdopen(read_fd, "rb") as f:
        child = f.read()
    os.waitpid(pid, 0)
    assert len(child) == 56
    assert child != parent


@settings(max_examples=100, deadline=None)
@given(task_id=st.binary(min_size=24, max_size=24), index=st.integers(0, 2**32 - 1))
def test_object_id_round_trip(ids, task_id, index):
    oid = ids.object_id_for(task_id, index)
    assert type(oid) is bytes and len(oid) == ids.OBJECT_ID_SIZE
    assert oid == task_id + index.to_bytes(4, "little")
    assert ids.task_id_of(oid) == task_id
    assert ids.index_of(oid) == index
    assert ids.object_id_for(bytearray(task_id), index) == oid
    assert ids.index_of(memoryview(oid)) == index


def test_object_id_errors(ids):
    task = bytes(range(24))
    for bad_task in (b"", task[:-1], task + b"x"):
        with pytest.raises(ValueError):
            ids.object_id_for(bad_task, 0)
    for bad_index in (-1, 2**32, 2**100):
        with pytest.raises(ValueError):
            ids.object_id_for(task, bad_index)
    with pytest.raises(TypeError):
        ids.object_id_for(24, 0)  # not bytes(24) zeros
    with pytest.raises(TypeError):
        ids.object_id_for(task, 1.0)
    for bad_oid in (b"", task, task + b"12345"):
        with pytest.raises(ValueError):
            ids.task_id_of(bad_oid)
        with pytest.raises(ValueError):
            ids.index_of(bad_oid)
