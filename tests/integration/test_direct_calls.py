"""Calls to workers on the same machine travel over direct connections (zray/_private/wire/direct.py);
ZeroMQ carries them when direct calls are off, and a busy worker never blocks its caller."""

import os
import time

import numpy as np
import pytest

from tests.integration.test_lifecycle import run_script


def _core():
    import zray._private.core.runtime as runtime

    return runtime.core


def test_local_tasks_and_actor_calls_use_direct_connections(ray):
    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

    assert ray.get([square.remote(i) for i in range(50)]) == [i * i for i in range(50)]
    counter = Counter.remote()
    assert [ray.get(counter.add.remote(1)) for _ in range(20)] == list(range(1, 21))
    connections = [c for c in _core().channels.by_fd.values() if not c.closed]
    assert connections, "no direct connection was opened"
    assert all(c.unpacker.buffered == 0 for c in connections)


def test_results_that_live_in_the_arena_still_arrive_over_direct_connections(ray):
    @ray.remote
    class Maker:
        def make(self, n):
            return np.arange(n)

    # The handle dies at once: the actor is killed as soon as the call is answered, so the
    # seal must be on its way first (the answer then follows it over ZeroMQ).
    for _ in range(5):
        arr = ray.get(Maker.remote().make.remote(1_000_000), timeout=60)
        assert arr.sum() == 499999500000


def test_a_busy_actor_never_blocks_its_caller(ray):
    @ray.remote
    class Slow:
        def nap(self, seconds):
            time.sleep(seconds)

        def echo(self, blob):
            return len(blob)

    slow = Slow.remote()
    ray.get(slow.nap.remote(0))
    slow.nap.remote(2.0)
    blob = b"x" * 20_000
    start = time.monotonic()
    refs = [slow.echo.remote(blob) for _ in range(1000)]  # 20 MB: far more than the socket holds
    assert time.monotonic() - start < 1.9, "submitting blocked on the sleeping actor"
    assert ray.get(refs, timeout=60) == [len(blob)] * 1000


def test_an_actor_dying_mid_call_over_a_direct_connection_is_reported(ray):
    @ray.remote(max_restarts=0)
    class Doomed:
        def crash(self):
            os._exit(1)

    doomed = Doomed.remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(doomed.crash.remote(), timeout=60)


@pytest.mark.parametrize("direct", ["0", "1"])
def test_tasks_and_actors_work_with_direct_calls_on_or_off(direct):
    result = run_script(
        """
        import zray as ray
        import zray._private.core.runtime as runtime
        ray.init(num_cpus=2)

        @ray.remote
        def f(x):
            return x + 1

        @ray.remote
        class A:
            async def g(self, x):
                return x * 2

        @ray.remote(max_concurrency=4)
        class T:
            def h(self, x):
                return x - 1

        a, t = A.remote(), T.remote()
        assert ray.get([f.remote(i) for i in range(100)]) == [i + 1 for i in range(100)]
        assert ray.get([a.g.remote(i) for i in range(100)]) == [i * 2 for i in range(100)]
        assert ray.get([t.h.remote(i) for i in range(100)]) == [i - 1 for i in range(100)]
        print("direct connections:", len(runtime.core.channels.by_fd))
        ray.shutdown()
    """,
        env={"ZRAY_DIRECT_CALLS": direct},
    )
    assert result.returncode == 0, result.stderr
    count = int(result.stdout.split("direct connections:")[1].split()[0])
    assert (count > 0) == (direct == "1")


def test_results_reach_futures_and_awaits_after_gets_read_them(ray):
    """A blocked get takes the connections from the I/O thread; results nobody waits for in
    get (futures, asyncio) must still arrive once it is over."""
    import asyncio

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

    echo = Echo.remote()
    for i in range(200):
        assert ray.get(echo.echo.remote(i)) == i
    futures = [echo.echo.remote(i).future() for i in range(50)]
    assert [f.result(timeout=30) for f in futures] == list(range(50))

    async def gather():
        return await asyncio.wait_for(asyncio.gather(*[echo.echo.remote(i) for i in range(50)]), 30)

    assert asyncio.run(gather()) == list(range(50))


def test_many_threads_blocked_in_get_all_wake(ray):
    import threading

    @ray.remote
    def slow_square(x):
        time.sleep(0.01)
        return x * x

    results, errors = {}, []

    def worker(k):
        try:
            results[k] = [ray.get(slow_square.remote(k * 10 + i), timeout=60) for i in range(10)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors
    assert results == {k: [(k * 10 + i) ** 2 for i in range(10)] for k in range(6)}


def test_calls_held_for_a_batch_leave_without_a_get(ray):
    """The second call of a streak is held (zray/_private/wire/pacing.py); with no get or wait
    after it, the I/O thread must still send it within its hold time, not at the next get."""

    @ray.remote
    class Clock:
        def now(self):
            return time.monotonic()

    clock = Clock.remote()
    ray.get(clock.now.remote())
    refs = [clock.now.remote() for _ in range(3)]  # the 2nd and 3rd are held
    sent_by = time.monotonic()
    time.sleep(0.5)
    ran_at = ray.get(refs, timeout=30)
    assert all(t - sent_by < 0.25 for t in ran_at), [t - sent_by for t in ran_at]


def test_connections_that_end_while_gets_read_them_raise_no_io_loop_errors(ray):
    """Actors killed and re-created while other threads wait in get: a connection may be
    opened, read to its end by a get and closed without the I/O thread ever polling it. Its
    poller once unregistered such an fd anyway (KeyError) on every event, for as long as the
    dead connection stayed listed: hundreds of tracebacks per second."""
    import logging
    import threading

    class LoopErrors(logging.Handler):
        def __init__(self):
            super().__init__()
            self.records = []

        def emit(self, record):
            if "I/O loop error" in record.getMessage():
                self.records.append(record)

    @ray.remote
    class Echo:
        async def echo(self, x):
            return x

    @ray.remote
    class Short:
        def ping(self):
            return 1

    core = _core()
    handler = LoopErrors()
    logging.getLogger("zray._private.core.core_worker").addHandler(handler)
    echo = Echo.remote()
    ray.get(echo.echo.remote(0), timeout=60)
    stop = time.monotonic() + 4
    errors = []

    def hammer():
        try:
            while time.monotonic() < stop:
                assert ray.get([echo.echo.remote(i) for i in range(50)], timeout=60) == list(
                    range(50)
                )
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        created = 0
        while time.monotonic() < stop:
            short = Short.remote()
            assert ray.get(short.ping.remote(), timeout=60) == 1
            ray.kill(short)
            created += 1
        for t in threads:
            t.join(90)
        # Ended connections are closed at the I/O thread's next ticks, not kept forever.
        deadline = time.monotonic() + 10
        while len(core.channels.by_fd) > 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        logging.getLogger("zray._private.core.core_worker").removeHandler(handler)
    assert not errors
    assert created > 5
    assert handler.records == []
    assert len(core.channels.by_fd) <= 2, len(core.channels.by_fd)
    ray.kill(echo)
