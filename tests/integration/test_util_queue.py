"""zray.util.queue: an actor-backed FIFO with Ray's blocking, batch and asyncio methods."""

import asyncio
import queue as std_queue
import time

import pytest


def test_fifo_sizes_and_len(ray):
    from zray.util.queue import Queue

    q = Queue()
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0 and q.size() == 0
    for item in range(5):
        q.put(item)
    assert len(q) == 5 and not q.empty()
    assert [q.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    q.shutdown()


def test_bounded_queue_nowait_raises_plain_full_and_empty(ray):
    from zray.util.queue import Empty, Full, Queue

    q = Queue(maxsize=2)
    q.put_nowait("a")
    q.put("b", block=False)
    assert q.full()
    with pytest.raises(Full) as full:
        q.put_nowait("c")
    assert type(full.value) is Full and isinstance(full.value, std_queue.Full)
    assert q.get_nowait() == "a" and q.get(block=False) == "b"
    with pytest.raises(Empty) as empty:
        q.get_nowait()
    assert type(empty.value) is Empty and isinstance(empty.value, std_queue.Empty)
    q.shutdown()


def test_blocking_timeouts_raise_empty_and_full(ray):
    from zray.exceptions import RayTaskError
    from zray.util.queue import Empty, Full, Queue

    q = Queue(maxsize=1)
    started = time.monotonic()
    with pytest.raises(Empty) as empty:
        q.get(timeout=0.2)
    waited = time.monotonic() - started
    assert 0.19 <= waited < 5
    assert isinstance(empty.value, RayTaskError)  # Ray raises the call's error, an Empty too
    q.put(1)
    with pytest.raises(Full):
        q.put(2, timeout=0.1)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.put(2, timeout=-1)
    q.shutdown()


def test_a_blocked_get_is_woken_by_a_put_from_a_task(ray):
    from zray.util.queue import Queue

    q = Queue()

    @ray.remote
    def producer(shared, delay):
        time.sleep(delay)
        shared.put("late")
        return True

    done = producer.remote(q, 0.3)
    started = time.monotonic()
    assert q.get(timeout=20) == "late"
    assert time.monotonic() - started >= 0.25
    assert ray.get(done, timeout=20)
    q.shutdown()


def test_a_blocked_put_is_woken_by_a_get(ray):
    from zray.util.queue import Queue

    q = Queue(maxsize=1)
    q.put(0)

    @ray.remote
    def consumer(shared, delay):
        time.sleep(delay)
        return shared.get(timeout=20)

    taken = consumer.remote(q, 0.3)
    q.put(1, timeout=20)  # blocks until the consumer makes room
    assert ray.get(taken, timeout=20) == 0
    assert q.get_nowait() == 1
    q.shutdown()


def test_batches_are_all_or_nothing(ray):
    from zray.util.queue import Empty, Full, Queue

    q = Queue(maxsize=3)
    q.put_nowait_batch(item for item in [1, 2])  # any iterable, a generator too
    with pytest.raises(Full, match="Cannot add 2 items to queue of size 2 and maxsize 3"):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    with pytest.raises(Empty, match="Cannot get 3 items from queue of size 2"):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    with pytest.raises(TypeError, match="'items' must be an Iterable"):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError, match="'num_items' must be an int"):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError, match="'num_items' must be nonnegative"):
        q.get_nowait_batch(-1)
    q.shutdown()


def test_async_put_and_get(ray):
    from zray.util.queue import Empty, Full, Queue

    q = Queue(maxsize=1)

    async def scenario():
        await q.put_async("x")
        with pytest.raises(Full):
            await q.put_async("y", block=False)
        with pytest.raises(Full):
            await q.put_async("y", timeout=0.05)
        first = await q.get_async()
        with pytest.raises(Empty):
            await q.get_async(block=False)
        waiter = asyncio.ensure_future(q.get_async(timeout=20))
        await asyncio.sleep(0.1)
        await q.put_async("z")
        return first, await asyncio.wait_for(waiter, 20)

    assert asyncio.run(scenario()) == ("x", "z")
    q.shutdown()


def test_actor_options_and_shutdown(ray):
    from zray.util.queue import Queue

    q = Queue(actor_options={"name": "util-queue-actor"})
    q.put(1)
    assert "util-queue-actor" in ray.util.list_named_actors()
    q.shutdown(grace_period_s=10)
    assert q.actor is None
    deadline = time.monotonic() + 10
    while "util-queue-actor" in ray.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "util-queue-actor" not in ray.util.list_named_actors()
    forced = Queue()
    handle = forced.actor
    forced.shutdown(force=True)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(handle.qsize.remote(), timeout=20)
