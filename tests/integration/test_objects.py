"""put/get/wait and the shared-memory object store."""

import gc
import pickle
import time

import numpy as np
import pyarrow as pa
import pytest


def test_put_get_small_values(ray):
    for value in [1, "text", b"bytes", None, [1, 2], {"a": (1, 2)}, 3.5, {1, 2}]:
        assert ray.get(ray.put(value)) == value


def test_put_copies_small_arrays(ray):
    arr = np.arange(10)
    ref = ray.put(arr)
    arr[0] = 99  # a put value is immutable even if the caller mutates its array later
    assert ray.get(ref)[0] == 0


def test_large_numpy_is_a_read_only_view_into_shared_memory(ray):
    arr = np.arange(10**7)
    ref = ray.put(arr)
    out = ray.get(ref)
    assert np.array_equal(out, arr)
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 1
    again = ray.get(ref)
    # Both gets map the same bytes: no copy.
    assert out.__array_interface__["data"][0] == again.__array_interface__["data"][0]


def test_arrow_table_zero_copy(ray):
    table = pa.table({"x": np.arange(1_000_000), "y": np.ones(1_000_000)})
    out = ray.get(ray.put(table))
    assert out.equals(table)
    assert (
        out.column("x").chunk(0).buffers()[1].address
        != table.column("x").chunk(0).buffers()[1].address
    )


def node_stats():
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    reply, _ = core.requests.call(core.node_address, P.GetNodeStats(0), 10)
    return reply.stats


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_pinned_while_views_live_and_freed_after(ray):
    gc.collect()
    time.sleep(0.2)  # let earlier tests' unpins reach the node
    before = node_stats()["store"]
    ref = ray.put(np.ones(2_000_000))
    view = ray.get(ref)
    arr2 = ray.get(ref)[10:20]
    stats = node_stats()["store"]
    assert stats["pinned"] == before["pinned"] + 1
    assert stats["objects"] == before["objects"] + 1
    del view
    gc.collect()
    time.sleep(0.2)
    assert node_stats()["store"]["pinned"] == before["pinned"] + 1  # arr2 still maps it
    del ref
    gc.collect()
    # The ref is gone but a view lives: the free waits for the pin.
    assert arr2.sum() == 10
    del arr2
    gc.collect()
    assert wait_until(lambda: node_stats()["store"]["objects"] == before["objects"])
    assert node_stats()["store"]["pinned"] == before["pinned"]


def test_get_list_and_single(ray):
    refs = [ray.put(i) for i in range(5)]
    assert ray.get(refs) == list(range(5))
    assert ray.get(tuple(refs)) == list(range(5))
    assert ray.get(refs[2]) == 2
    assert ray.get([refs[1], refs[1]]) == [1, 1]


def test_wait_semantics(ray):
    @ray.remote
    def sleep_then(t, v):
        time.sleep(t)
        return v

    fast = [sleep_then.remote(0, i) for i in range(3)]
    slow = [sleep_then.remote(5, i) for i in range(2)]
    ready, pending = ray.wait(fast + slow, num_returns=3, timeout=4)
    assert ready == fast and pending == slow
    ready, pending = ray.wait(slow, num_returns=1, timeout=0.2)
    assert ready == [] and pending == slow
    ready, pending = ray.wait(fast, num_returns=1)
    assert ready == fast[:1] and pending == fast[1:]
    for ref in slow:
        ray.cancel(ref)


def test_wait_example_from_issue(ray):
    @ray.remote
    def add(a, b):
        return a + b

    ready, pending = ray.wait([add.remote(i, i) for i in range(10)], num_returns=5, timeout=1.0)
    assert len(ready) == 5 and len(pending) == 5


def test_object_ref_behaviour(ray):
    ref = ray.put(1)
    same = pickle.loads(pickle.dumps(ref))
    assert same == ref and hash(same) == hash(ref)
    assert {ref: 1}[same] == 1
    assert repr(ref) == f"ObjectRef({ref.hex()})"
    assert len(ref.hex()) == 56 and len(ref.binary()) == 28
    assert ray.get(pickle.loads(pickle.dumps([ref]))[0]) == 1


def test_ref_inside_put_value(ray):
    inner = ray.put("inner")
    outer = ray.put({"ref": inner})
    assert ray.get(ray.get(outer)["ref"]) == "inner"


def test_ref_future_and_await(ray):
    import asyncio

    @ray.remote
    def f():
        return 42

    assert f.remote().future().result(timeout=10) == 42

    async def main():
        return await f.remote()

    assert asyncio.run(main()) == 42


def test_put_object_ref_is_an_error(ray):
    with pytest.raises(TypeError, match="put"):
        ray.put(ray.put(1))


def test_unpicklable_argument_names_the_culprit(ray):
    import threading

    @ray.remote
    def f(x):
        return x

    with pytest.raises(TypeError, match="lock"):
        f.remote({"lock": threading.Lock()})


def test_put_task_get_loop_keeps_store_use_flat(ray):
    """10,000 rounds of put -> task -> get: the arena and the memory store stay flat."""
    import zray._private.core.runtime as runtime

    core = runtime.core

    @ray.remote
    def double(a):
        return a * 2

    gc.collect()
    time.sleep(0.2)
    baseline = len(core.memory_store)
    samples = []
    for i in range(10_000):
        ref = ray.put(np.full(20_000, i, dtype=np.float64))  # 160 KB: goes to shared memory
        assert ray.get(double.remote(ref))[0] == 2 * i
        del ref
        if i % 1000 == 999:
            samples.append((node_stats()["store"]["used"], len(core.memory_store)))
    assert max(used for used, _ in samples) < 8 * 2**20, samples  # a few objects, not 10,000
    assert max(entries for _, entries in samples) <= baseline + 4, samples


def test_get_right_after_the_view_died_reuses_the_pin(ray):
    """The release of a dead view is batched; a get before it is sent takes the pin back
    instead of asking the node, and the pin count stays exact either way."""
    gc.collect()
    time.sleep(0.1)  # earlier tests' releases have landed
    before = node_stats()["store"]
    ref = ray.put(np.arange(1_000_000, dtype=np.float64))
    for i in range(200):
        out = ray.get(ref)
        assert out[i] == i
        del out
        if i % 50 == 0:
            time.sleep(0.02)  # let some releases reach the node in between
    assert wait_until(lambda: node_stats()["store"]["pinned"] == before["pinned"])
    out = ray.get(ref)
    assert node_stats()["store"]["pinned"] == before["pinned"] + 1
    del out, ref
    gc.collect()
    assert wait_until(lambda: node_stats()["store"]["objects"] == before["objects"])
