"""zray.util.ActorPool with Ray's semantics, and the as_completed / map_unordered helpers."""

import os
import time

import pytest


@pytest.fixture(scope="module")
def Worker(ray):
    @ray.remote
    class Worker:
        def double(self, value, delay=0.0):
            time.sleep(delay)
            return 2 * value

        def pid(self, _):
            return os.getpid()

        def fail(self, value):
            raise KeyError(value)

        def die(self, _):
            os._exit(1)

        def pair(self, value):
            return value, -value

    return Worker


def double(actor, value):
    return actor.double.remote(value)


def test_map_keeps_order_and_uses_every_actor(ray, Worker):
    from zray.util import ActorPool

    actors = [Worker.remote(), Worker.remote()]
    pool = ActorPool(actors)
    assert list(pool.map(lambda a, v: a.double.remote(v, 0.05 * (v % 2)), range(8))) == [
        0,
        2,
        4,
        6,
        8,
        10,
        12,
        14,
    ]
    pids = set(pool.map(lambda a, v: a.pid.remote(v), range(4)))
    assert len(pids) == 2


def test_map_unordered_yields_the_fast_result_first(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote(), Worker.remote()])
    results = list(
        pool.map_unordered(lambda a, v: a.double.remote(v, 1.0 if v == 0 else 0), [0, 1, 2, 3])
    )
    assert sorted(results) == [0, 2, 4, 6]
    assert results[-1] == 0


def test_submit_queues_values_until_an_actor_is_free(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote()])
    assert pool.has_free()
    pool.submit(double, 1)
    pool.submit(double, 2)
    assert not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.has_next()
    assert pool.get_next(timeout=30) == 2
    assert pool.get_next(timeout=30) == 4
    assert not pool.has_next()
    assert pool.has_free()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()


def test_get_next_timeout_raises_timeout_error_and_keeps_the_call(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote()])
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 5)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="^Timed out waiting for result$"):
        pool.get_next(timeout=0.1)
    assert time.monotonic() - started < 0.9
    assert pool.has_next()  # still there: a later get_next returns it
    assert pool.get_next(timeout=30) == 10


def test_get_next_ignore_if_timedout_drops_the_call(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote()])
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 1)
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.05, ignore_if_timedout=True)
    assert not pool.has_next()
    assert pool.has_free()  # the actor is handed out again (it runs the new call afterwards)
    pool.submit(double, 3)
    assert pool.get_next(timeout=30) == 6


def test_get_next_unordered_timeout_and_ignore(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 1)
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 2)
    with pytest.raises(TimeoutError, match="^Timed out waiting for result$"):
        pool.get_next_unordered(timeout=0.05)
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next_unordered(timeout=0.05, ignore_if_timedout=True)
    assert pool.get_next_unordered(timeout=30) == 4  # the oldest (value 1) was dropped
    assert not pool.has_next()


def test_get_next_after_unordered_skips_taken_results(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(lambda a, v: a.double.remote(v, 0.5), 1)
    pool.submit(double, 2)
    assert pool.get_next_unordered(timeout=30) == 4
    with pytest.raises(ValueError, match="not allowed to call get_next"):
        pool.get_next()


def test_a_failing_call_raises_and_the_actor_stays(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote()])
    pool.submit(lambda a, v: a.fail.remote(v), "boom")
    with pytest.raises(KeyError, match="boom"):
        pool.get_next(timeout=30)
    assert pool.has_free()
    pool.submit(double, 4)
    assert pool.get_next(timeout=30) == 8


def test_a_dead_actor_leaves_the_pool(ray, Worker):
    from zray.exceptions import ActorDiedError
    from zray.util import ActorPool

    doomed, healthy = Worker.remote(), Worker.remote()
    pool = ActorPool([healthy, doomed])  # submit() takes the last idle actor first
    pool.submit(lambda a, v: a.die.remote(v), None)
    with pytest.raises(ActorDiedError):
        pool.get_next(timeout=30)
    assert pool._idle_actors == [healthy]
    assert list(pool.map(double, [1, 2, 3])) == [2, 4, 6]


def test_push_and_pop_idle(ray, Worker):
    from zray.util import ActorPool

    first, second = Worker.remote(), Worker.remote()
    pool = ActorPool([first])
    pool.push(second)
    with pytest.raises(ValueError, match="Actor already belongs to current ActorPool"):
        pool.push(first)
    pool.submit(double, 1)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(second)  # busy counts as in the pool
    assert pool.pop_idle() == first
    assert pool.pop_idle() is None
    assert pool.get_next(timeout=30) == 2
    assert pool.pop_idle() == second


def test_push_starts_a_waiting_value(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([])
    pool.submit(double, 7)
    assert not pool.has_next()  # nobody to run it yet
    pool.push(Worker.remote())
    assert pool.get_next(timeout=30) == 14


def test_fn_returning_several_refs(ray, Worker):
    from zray.util import ActorPool

    pool = ActorPool([Worker.remote()])
    pool.submit(lambda a, v: a.pair.options(num_returns=2).remote(v), 3)
    pool.submit(lambda a, v: a.pair.options(num_returns=2).remote(v), 4)
    assert pool.get_next(timeout=30) == [3, -3]
    assert pool.get_next_unordered(timeout=30) == [4, -4]


def test_as_completed_yields_values_as_they_finish(ray):
    from zray.util import as_completed

    @ray.remote
    def sleepy(seconds):
        time.sleep(seconds)
        return seconds

    refs = [sleepy.remote(s) for s in (1.0, 0.0, 0.0)]
    results = list(as_completed(refs, chunk_size=1))
    assert results[-1] == 1.0 and sorted(results) == [0.0, 0.0, 1.0]
    assert list(as_completed([], chunk_size=1)) == []
    refs = [sleepy.remote(0) for _ in range(3)]
    assert set(as_completed(refs, yield_obj_refs=True)) == set(refs)
    with pytest.raises(ValueError, match="chunk_size"):
        list(as_completed(refs, chunk_size=0))
    with pytest.raises(ValueError, match="instead of `num_returns`"):
        list(as_completed(refs, num_returns=1))


def test_map_unordered_bounds_the_calls_in_flight(ray):
    from zray.util import map_unordered
    from zray.util.queue import Queue

    counter = Queue()

    @ray.remote
    def tracked(x):
        counter.put(x)
        return x * 10

    stream = map_unordered(tracked, range(20), backpressure_size=3, chunk_size=1)
    first = next(stream)
    assert first in (0, 10, 20)
    deadline = time.monotonic() + 10
    while counter.qsize() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert counter.qsize() == 3  # the stream submits no more while its consumer pauses
    assert sorted([first] + list(stream)) == [10 * x for x in range(20)]
    with pytest.raises(ValueError, match="backpressure_size must be positive"):
        next(map_unordered(tracked, [1], backpressure_size=0))
    counter.shutdown()
