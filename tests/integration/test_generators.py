"""Ray generators: tasks and actor methods that yield stream their values as ObjectRefs."""

import asyncio
import concurrent.futures
import gc
import os
import time

import numpy as np
import pytest


def test_a_generator_task_streams_refs_by_default(ray):
    @ray.remote
    def count(n):
        for i in range(n):
            yield i

    stream = count.remote(5)
    assert isinstance(stream, ray.ObjectRefGenerator)
    assert [ray.get(ref) for ref in stream] == [0, 1, 2, 3, 4]
    with pytest.raises(StopIteration):
        next(stream)
    assert list(stream) == []  # consumed twice: an iterator, as in Ray
    assert stream.is_finished() and ray.get(stream.completed(), timeout=10) is None
    explicit = count.options(num_returns="streaming").remote(2)
    assert [ray.get(ref) for ref in explicit] == [0, 1]


def test_each_value_is_readable_as_soon_as_it_is_yielded(ray):
    @ray.remote
    def slow(n):
        for i in range(n):
            yield i
            time.sleep(1.0)

    stream = slow.remote(3)
    start = time.monotonic()
    assert ray.get(next(stream), timeout=10) == 0
    assert time.monotonic() - start < 0.9  # not after the whole task
    assert not stream.is_finished()
    assert [ray.get(r) for r in stream] == [1, 2]


def test_large_values_go_through_shared_memory(ray):
    @ray.remote
    def arrays(n):
        for i in range(n):
            yield np.full(2**18, i, dtype=np.int64)  # 2 MiB: above the inline limit

    values = [ray.get(ref) for ref in arrays.remote(3)]
    assert [int(v[0]) for v in values] == [0, 1, 2] and values[0].nbytes == 2**21


def test_an_exception_surfaces_where_it_happened(ray):
    @ray.remote
    def fails_third():
        yield "a"
        yield "b"
        raise KeyError("third")

    stream = fails_third.remote()
    first, second, third = next(stream), next(stream), next(stream)
    assert ray.get([first, second]) == ["a", "b"]
    with pytest.raises(KeyError):
        ray.get(third)
    with pytest.raises(StopIteration):
        next(stream)


def test_dynamic_and_fixed_num_returns(ray):
    @ray.remote(num_returns="dynamic")
    def dynamic(n):
        for i in range(n):
            yield i * 2

    inner = ray.get(dynamic.remote(4), timeout=30)
    assert isinstance(inner, ray.DynamicObjectRefGenerator) and len(inner) == 4
    assert [ray.get(ref) for ref in inner] == [0, 2, 4, 6]

    @ray.remote(num_returns=3)
    def three():
        yield from (1, 2, 3)

    assert ray.get(three.remote(), timeout=30) == [1, 2, 3]

    @ray.remote(num_returns=2)
    def too_many():
        yield from (1, 2, 3)

    with pytest.raises(ValueError, match="yielded 3 values but num_returns=2"):
        ray.get(too_many.remote(), timeout=30)


def test_wait_and_async_for(ray):
    @ray.remote
    def delayed(n):
        for i in range(n):
            time.sleep(0.3)
            yield i

    stream = delayed.remote(2)
    ready, not_ready = ray.wait([stream], timeout=0)
    assert ready == [] and not_ready == [stream]
    ready, _ = ray.wait([stream], timeout=10)
    assert ready == [stream] and stream.next_ready()

    async def consume():
        return [await ref for ref in [r async for r in delayed.remote(3)]]

    assert asyncio.run(consume()) == [0, 1, 2]


def test_actor_methods_stream_sync_and_async(ray):
    @ray.remote
    class Source:
        def numbers(self, n):
            yield from range(n)

    @ray.remote
    class AsyncSource:
        async def numbers(self, n):
            for i in range(n):
                await asyncio.sleep(0.001)
                yield i * 10

    assert [ray.get(r) for r in Source.remote().numbers.remote(3)] == [0, 1, 2]
    assert [ray.get(r) for r in AsyncSource.remote().numbers.remote(3)] == [0, 10, 20]


def test_back_pressure_pauses_a_producer_that_runs_ahead(ray):
    @ray.remote(_generator_backpressure_num_objects=2)
    def stamps(n):
        for _ in range(n):
            yield time.monotonic()

    stream = stamps.remote(5)
    time.sleep(1.0)  # the consumer lags: the producer must wait after two values
    values = [ray.get(r) for r in stream]
    gaps = [b - a for a, b in zip(values, values[1:])]
    assert gaps[0] < 0.5 and gaps[1] > 0.5, gaps


def test_back_pressure_pauses_actor_method_streams(ray):
    @ray.remote
    class Source:
        def stamps(self, n):
            for _ in range(n):
                yield time.monotonic()

    @ray.remote
    class AsyncSource:
        @ray.method(_generator_backpressure_num_objects=2)
        async def stamps(self, n):
            for _ in range(n):
                yield time.monotonic()

    streams = [
        Source.remote().stamps.options(_generator_backpressure_num_objects=2).remote(5),
        AsyncSource.remote().stamps.remote(5),
    ]
    time.sleep(1.0)  # the consumer lags: each producer must wait after two values
    for stream in streams:
        values = [ray.get(r, timeout=30) for r in stream]
        gaps = [b - a for a, b in zip(values, values[1:])]
        assert gaps[0] < 0.5 and gaps[1] > 0.5, gaps


def test_an_actor_caps_untaken_values_across_its_streams(ray):
    @ray.remote(max_concurrency=3, _actor_generator_backpressure_num_objects=3)
    class Counter:
        def __init__(self):
            self.made = 0

        def values(self, n):
            for i in range(n):
                self.made += 1
                yield i

        def made_so_far(self):
            return self.made

    counter = Counter.remote()
    first, second = counter.values.remote(10), counter.values.remote(10)
    time.sleep(1.0)
    # Each stream checks the cap after it sends, so at most one value per stream past it.
    assert 3 <= ray.get(counter.made_so_far.remote(), timeout=30) <= 4
    # The streams share the room, so each needs a consumer of its own to finish.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        taken = pool.map(lambda stream: [ray.get(r, timeout=30) for r in stream], [first, second])
        assert list(taken) == [list(range(10))] * 2
    assert ray.get(counter.made_so_far.remote(), timeout=30) == 20


def test_dropping_the_generator_stops_the_producer(ray, tmp_path):
    marker = str(tmp_path / "progress")

    @ray.remote
    def endless(path):
        i = 0
        while True:
            with open(path, "w") as f:
                f.write(str(i))
            i += 1
            time.sleep(0.05)
            yield i

    stream = endless.remote(marker)
    ray.get(next(stream), timeout=30)
    completed = stream.completed()
    del stream
    gc.collect()
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(completed, timeout=30)
    time.sleep(0.3)
    last = open(marker).read()
    time.sleep(0.5)
    assert open(marker).read() == last  # nothing runs any more


def test_cancelling_a_generator_ends_its_stream(ray):
    @ray.remote
    def endless():
        i = 0
        while True:
            time.sleep(0.02)
            i += 1
            yield i

    stream = endless.remote()
    assert ray.get(next(stream), timeout=30) == 1
    ray.cancel(stream)
    refs = list(stream)  # ends: the values yielded before, then the cancellation
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(refs[-1], timeout=30)
    assert stream.is_finished()


def test_a_retried_generator_yields_no_duplicates(ray, tmp_path):
    flag = str(tmp_path / "died-once")

    @ray.remote(max_retries=2)
    def dies_midway():
        yield 1
        yield 2
        if not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(1)  # the worker dies after two values
        yield 3

    assert [ray.get(r, timeout=30) for r in dies_midway.remote()] == [1, 2, 3]


def test_a_generator_cannot_be_passed_on(ray):
    @ray.remote
    def one():
        yield 1

    @ray.remote
    def take(gen):
        return 1

    stream = one.remote()
    with pytest.raises(TypeError, match="Serializing a ObjectRefGenerator is not allowed"):
        take.remote(stream)
    assert [ray.get(r) for r in stream] == [1]
