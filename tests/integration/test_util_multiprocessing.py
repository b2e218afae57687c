"""zray.util.multiprocessing.Pool: the multiprocessing.Pool interface on actors."""

import multiprocessing
import os
import time

import pytest


def _functions():
    """Helpers defined in a function body, so they travel by value: workers cannot import
    this test module by name."""

    def set_marker(value):
        os.environ["ZRAY_TEST_POOL_MARKER"] = value  # state the initializer leaves behind

    def marker(_):
        return os.environ.get("ZRAY_TEST_POOL_MARKER"), os.getpid()

    def fail_on_three(x):
        if x == 3:
            raise KeyError("three")
        return x

    return set_marker, marker, fail_on_three


_set_marker, _marker, _fail_on_three = _functions()


@pytest.fixture(scope="module")
def pool(ray):
    from zray.util.multiprocessing import Pool

    with Pool(processes=2) as shared:
        yield shared


def test_map_starmap_apply(pool):
    assert pool.map(abs, range(-50, 50)) == [abs(x) for x in range(-50, 50)]
    assert pool.map(abs, range(-5, 5), chunksize=3) == [abs(x) for x in range(-5, 5)]
    assert pool.map(abs, iter([-1, -2])) == [1, 2]  # an iterator without len()
    assert pool.map(abs, []) == []
    assert pool.starmap(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]
    assert pool.apply(divmod, (7, 2)) == (3, 1)
    assert pool.apply(int, ("ff",), {"base": 16}) == 255
    assert pool.map(lambda x: x + 1, [1, 2]) == [2, 3]  # closures travel too
    returned = pool.map(KeyError, ["k"])  # an exception returned is a value, not a failure
    assert type(returned[0]) is KeyError and returned[0].args == ("k",)


def test_work_runs_in_the_pool_actors(pool):
    pids = {pid for _, pid in pool.map(_marker, range(40), chunksize=1)}
    assert len(pids) == 2 and os.getpid() not in pids


def test_imap_keeps_order_and_imap_unordered_does_not(pool):
    assert list(pool.imap(abs, range(-4, 4))) == [4, 3, 2, 1, 0, 1, 2, 3]
    assert list(pool.imap(abs, range(-4, 4), chunksize=3)) == [4, 3, 2, 1, 0, 1, 2, 3]
    finished = list(pool.imap_unordered(time.sleep, [0.8, 0, 0, 0]))
    assert finished == [None] * 4
    order = list(pool.imap_unordered(lambda s: (time.sleep(s), s)[1], [0.8, 0, 0, 0]))
    assert order[-1] == 0.8 and sorted(order) == [0, 0, 0, 0.8]


def test_imap_reads_its_input_as_the_work_goes(pool):
    pulled = []

    def items():
        for x in range(100):
            pulled.append(x)
            yield x

    iterator = pool.imap(abs, items())
    assert len(pulled) == 2  # one chunk of one item per actor
    assert next(iterator) == 0
    assert len(pulled) < 10
    assert list(iterator) == list(range(1, 100))


def test_imap_timeout_and_errors(pool):
    iterator = pool.imap(time.sleep, [1.0])
    with pytest.raises(multiprocessing.TimeoutError):
        iterator.next(timeout=0.05)
    assert iterator.next(timeout=30) is None
    with pytest.raises(StopIteration):
        next(iterator)
    # A failed item raises at its position, and the iteration goes on after it.
    iterator = pool.imap(_fail_on_three, range(5))
    assert [next(iterator) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError, match="three"):
        next(iterator)
    assert list(iterator) == [4]
    unordered = pool.imap_unordered(_fail_on_three, [3])
    with pytest.raises(KeyError):
        next(unordered)


def test_map_raises_the_first_failed_item(pool):
    with pytest.raises(KeyError, match="three"):
        pool.map(_fail_on_three, range(10))
    with pytest.raises(KeyError):
        pool.apply(_fail_on_three, (3,))


def test_async_results_and_callbacks(pool):
    got, errors = [], []
    result = pool.map_async(abs, [-1, -2, -3], callback=got.append, error_callback=errors.append)
    assert result.get(timeout=30) == [1, 2, 3]
    assert result.ready() and result.successful()
    assert got == [[1, 2, 3]] and errors == []

    single = pool.apply_async(divmod, (9, 2), callback=got.append)
    assert single.get(timeout=30) == (4, 1) and got[-1] == (4, 1)

    failing = pool.map_async(
        _fail_on_three, range(6), chunksize=1, callback=got.append, error_callback=errors.append
    )
    failing.wait(timeout=30)
    assert failing.ready() and not failing.successful()
    assert len(errors) == 1 and isinstance(errors[0], KeyError)
    assert len(got) == 2  # no callback when an item failed
    with pytest.raises(KeyError):
        failing.get(timeout=30)

    star = pool.starmap_async(divmod, [(5, 2)])
    assert star.get(timeout=30) == [(2, 1)]


def test_async_result_timeout(pool):
    slow = pool.apply_async(time.sleep, (1.0,))
    with pytest.raises(multiprocessing.TimeoutError):
        slow.get(timeout=0.05)
    with pytest.raises(ValueError, match="not ready"):
        slow.successful()
    started = time.monotonic()
    slow.wait(timeout=0.05)  # returns without raising
    assert time.monotonic() - started < 0.9 and not slow.ready()
    assert slow.get(timeout=30) is None


def test_bad_chunksize_and_process_counts(ray, pool):
    from zray.util.multiprocessing import Pool

    with pytest.raises(ValueError, match="Chunksize must be 1"):
        pool.map(abs, [1, 2], chunksize=0)

    with pytest.raises(ValueError, match="Processes in the pool must be >0."):
        Pool(processes=0)
    with pytest.raises(
        ValueError,
        match="Tried to start a pool with 3 processes on an existing "
        "ray cluster, but there are only 2 CPUs",
    ):
        Pool(processes=3)


def test_initializer_runs_in_each_actor(ray):
    from zray.util.multiprocessing import Pool

    with Pool(processes=2, initializer=_set_marker, initargs=("ready",)) as initialized:
        results = initialized.map(_marker, range(8), chunksize=1)
    assert {marker for marker, _ in results} == {"ready"}


def test_maxtasksperchild_replaces_actors(ray):
    from zray.util.multiprocessing import Pool

    with Pool(processes=1, maxtasksperchild=1) as fresh_each_time:
        pids = [fresh_each_time.apply(os.getpid) for _ in range(3)]
    assert len(set(pids)) == 3


def test_close_join_and_terminate(ray):
    from zray.util.multiprocessing import Pool

    closing = Pool(processes=2)
    pending = closing.map_async(time.sleep, [0.3, 0.3], chunksize=1)
    with pytest.raises(ValueError, match="Pool is still running"):
        closing.join()
    closing.close()
    with pytest.raises(ValueError, match="Pool not running"):
        closing.map(abs, [1])
    with pytest.raises(ValueError, match="Pool not running"):
        closing.apply_async(abs, (1,))
    closing.join()
    assert pending.get(timeout=30) == [None, None]  # close lets submitted work finish

    terminating = Pool(processes=1)
    doomed = terminating.apply_async(time.sleep, (30,))
    terminating.terminate()
    with pytest.raises(ray.exceptions.RayActorError):
        doomed.get(timeout=30)
    terminating.join()
