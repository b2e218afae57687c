"""CallPool (zray/_private/worker/call_pool.py): at most `size` calls at once, one thread for a burst
of short calls, and more threads as soon as the running calls stop making progress."""

from __future__ import annotations

import threading
import time

from zray._private.worker.call_pool import STALL_S, CallPool


def run_until(pool: CallPool, done, timeout: float = 10.0):
    """Plays the executor's reader thread: check() at the pool's pace until done()."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "calls did not finish"
        time.sleep(pool.poll_timeout(0.01))
        pool.check()


def test_a_burst_of_short_calls_runs_on_one_thread():
    ran = []
    threads = set()

    def call(i):
        threads.add(threading.get_ident())
        ran.append(i)

    pool = CallPool(16, call, "test")
    for i in range(2000):
        pool.submit(i)
    run_until(pool, lambda: len(ran) == 2000)
    assert sorted(ran) == list(range(2000))
    assert pool.threads <= 2 and len(threads) <= 2
    pool.close()


def test_calls_that_need_each_other_get_threads():
    # The first call waits for the second: a pool that kept one thread would never finish.
    release = threading.Event()
    results = []

    def call(kind):
        if kind == "wait":
            results.append(release.wait(10))
        else:
            release.set()
            results.append("set")

    pool = CallPool(2, call, "test")
    pool.submit("wait")
    pool.submit("set")
    started = time.monotonic()
    run_until(pool, lambda: len(results) == 2)
    assert sorted(map(str, results)) == ["True", "set"]
    assert time.monotonic() - started < 1
    pool.close()


def test_never_more_than_size_calls_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def call(_):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(20 * STALL_S)
        with lock:
            running[0] -= 1

    pool = CallPool(3, call, "test")
    for i in range(12):
        pool.submit(i)
    run_until(pool, lambda: pool.threads == 3 and running[0] == 0 and not pool._queue)
    assert peak[0] == 3 and pool.threads == 3
    pool.close()


def test_a_full_pool_of_blocked_calls_is_not_watched():
    release = threading.Event()
    pool = CallPool(1, lambda _: release.wait(10), "test")
    pool.submit(1)
    pool.submit(2)
    run_until(pool, lambda: pool._running == 1)
    assert pool.poll_timeout(1.0) == 1.0  # the one thread is busy: nothing to check for
    release.set()
    run_until(pool, lambda: not pool._queue and pool._running == 0)
    pool.close()
