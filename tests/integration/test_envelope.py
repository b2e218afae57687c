"""Ray's scalability envelope on one node, at counts that keep each test to a few seconds
(perf/envelope.py runs the full counts): many ref arguments, many returns, a get of many
shared-memory objects, many actors, and calls too large for their connection."""

import os
import time

import numpy as np
import pytest

import zray


def test_ten_thousand_ref_arguments(ray):
    # Each small value is one frame of the call: 4,094 of them used to exceed the direct
    # connection's frame limit, the worker dropped the call and the caller hung.
    refs = [ray.put(i) for i in range(10_000)]

    @ray.remote
    def count(*values):
        return len(values), sum(values)

    assert ray.get(count.remote(*refs), timeout=60) == (10_000, sum(range(10_000)))


def test_ref_arguments_past_the_inline_budget(ray):
    # 12 MiB of small values: more than a call inlines (task_rpc_inlined_bytes_limit), so the
    # worker asks the owner for the rest.
    refs = [ray.put(bytes([i % 256]) * 20_000) for i in range(600)]

    @ray.remote
    def check(*values):
        return [v[0] for v in values if len(v) == 20_000]

    assert ray.get(check.remote(*refs), timeout=60) == [i % 256 for i in range(600)]


def test_values_past_the_inline_budget_are_asked_for_in_batches(ray, monkeypatch):
    # One round trip per value was most of a call with 10,000 ref arguments: the worker asks
    # the owner (this driver) for up to 256 of them per message.
    from collections import Counter

    from zray._private.core.core_worker import CoreWorker
    from zray._private.wire import protocol as P

    asked: Counter = Counter()
    for kind in (P.GetObjectStatus, P.GetObjectStatuses):
        handler = CoreWorker._handlers[kind]

        def counting(self, identity, msg, seq, payload, handler=handler):
            asked[type(msg).__name__] += 1
            return handler(self, identity, msg, seq, payload)

        monkeypatch.setitem(CoreWorker._handlers, kind, counting)
    refs = [ray.put(bytes([i % 256]) * 20_000) for i in range(1_200)]  # 24 MB

    @ray.remote
    def check(*values):
        return [v[0] for v in values if len(v) == 20_000]

    assert ray.get(check.remote(*refs), timeout=60) == [i % 256 for i in range(1_200)]
    # ~700 values past the 10 MiB budget: a few batches, no value asked for alone.
    assert 1 <= asked["GetObjectStatuses"] <= 4 and asked["GetObjectStatus"] == 0, asked


def test_three_thousand_returns(ray):
    # 3,000 x 10 KB: past the answer's inline budget, so most results go to the arena.
    @ray.remote(num_returns=3000)
    def many():
        return tuple(bytes([i % 256]) * 10_000 for i in range(3000))

    start = time.monotonic()
    values = ray.get(many.remote(), timeout=60)
    assert [v[:1] for v in values] == [bytes([i % 256]) for i in range(3000)]
    assert all(len(v) == 10_000 for v in values)
    assert time.monotonic() - start < 30


def test_returns_past_the_inline_budget_are_created_in_batches(ray):
    """One CreateObject round trip per result was most of a task with 3,000 returns: the
    worker creates up to 1,024 of them (or 64 MiB) per CreateObjects."""

    @ray.remote
    class Returner:
        def __init__(self):
            from collections import Counter

            from zray._private.core import runtime

            self.asked: Counter = Counter()
            call = runtime.core.requests.call

            def counting(address, msg, *args, **kwargs):
                self.asked[type(msg).__name__] += 1
                return call(address, msg, *args, **kwargs)

            runtime.core.requests.call = counting

        @zray.method(num_returns=3000)
        def many(self):
            return tuple(bytes([i % 256]) * 10_000 for i in range(3000))

        def asked_for(self):
            return dict(self.asked)

    returner = Returner.remote()
    values = ray.get(returner.many.remote(), timeout=60)
    assert [v[:1] for v in values] == [bytes([i % 256]) for i in range(3000)]
    asked = ray.get(returner.asked_for.remote(), timeout=30)
    # ~2,000 results past the 10 MiB budget: two batches, none created alone.
    assert asked.get("CreateObjects") == 2 and "CreateObject" not in asked, asked


def test_get_of_many_shared_memory_objects(ray):
    refs = [ray.put(np.full(13_000, i, dtype=np.int64)) for i in range(2_000)]  # 104 KB each
    values = ray.get(refs, timeout=60)
    assert [int(v[0]) for v in values] == list(range(2_000))
    assert all(v.shape == (13_000,) and not v.flags.writeable for v in values)


def test_call_too_large_for_its_connection_fails_with_a_typed_error(ray):
    @ray.remote
    def size(value):
        return len(value)

    @ray.remote
    class Sizer:
        def size(self, value):
            return len(value)

    big = b"x" * (300 * 2**20)  # bytes pickle in-band: one 300 MiB frame, never put
    with pytest.raises(zray.exceptions.RpcError, match="was not sent"):
        ray.get(size.remote(big), timeout=60)
    assert ray.get(size.remote(b"ok"), timeout=30) == 2  # the lease is still usable
    sizer = Sizer.remote()
    with pytest.raises(zray.exceptions.RpcError, match="was not sent"):
        ray.get(sizer.size.remote(big), timeout=60)
    assert ray.get(sizer.size.remote(b"ok"), timeout=30) == 2
    # The actor is surely ready now: a plain call (scalars only) takes the direct path, which
    # must fail the same way (it raised MessageTooLarge from .remote() instead).
    with pytest.raises(zray.exceptions.RpcError, match="was not sent"):
        ray.get(sizer.size.remote(big), timeout=60)
    assert ray.get(sizer.size.remote(b"ok"), timeout=30) == 2


def test_150_actors(ray):
    @ray.remote(num_cpus=0)
    class Idle:
        def pid(self):
            return os.getpid()

    start = time.monotonic()
    actors = [Idle.remote() for _ in range(150)]
    pids = ray.get([a.pid.remote() for a in actors], timeout=60)
    assert len(set(pids)) == 150
    assert time.monotonic() - start < 30
    for actor in actors:
        ray.kill(actor)


def test_queued_tasks_and_waiting_results_leave_the_collector_nothing_to_walk(ray):
    # A full collection walks every tracked object: a million refs held, or a million results
    # waiting as a memoryview in a list each, cost the seventh to twelfth sessions' drivers
    # seconds per collection (docs/benchmarks.md, "a million queued tasks").
    import gc

    import zray._fast

    @ray.remote
    def nothing():
        return None

    @ray.remote
    class Echo:
        def value(self, v):
            return v

    echo = Echo.remote()
    ray.get([nothing.remote(), echo.value.remote(1)])
    gc.collect()
    before = len(gc.get_objects())
    refs = [nothing.remote() for _ in range(2_000)]
    refs += [echo.value.remote(i % 3) for i in range(1_000)]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=60, fetch_local=False)
    assert len(ready) == len(refs)
    del ready
    tracked = gc.get_objects()
    held_refs = sum(1 for o in tracked if type(o) is zray.ObjectRef)
    if zray._fast.USING_FAST:
        assert held_refs == 0, "a plain ObjectRef holds bytes and a str: never in a cycle"
        left = len(tracked) - before
    else:  # pure Python cannot untrack an instance: refs and the twins' records stay tracked
        assert held_refs >= len(refs)
        left = sum(1 for o in tracked if type(o).__module__ != "zray._fast._untracked_py")
        left -= held_refs + before
    assert left < 300, f"{left} tracked objects left by {len(refs)} results"
    assert ray.get(refs[-3:]) == [i % 3 for i in range(997, 1_000)]
